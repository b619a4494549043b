//! `AwsError`: why an AWS step failed, by kind, so a caller can tell a missing deployment
//! (deploy, or bootstrap) from a refused or failed call (credentials, throttling, network)
//! from a bad setting (fix the flag).

/// Why an AWS step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsError {
    /// No region is configured, so no endpoint can be chosen.
    #[error("no AWS region: set AWS_REGION (or a profile's region)")]
    NoRegion,
    /// A resource the deployment needs does not exist.
    #[error("{kind} {name} not found (deploy infra/terraform, or pass --aws-bootstrap)")]
    NotFound {
        /// `queue`, `SNS topic`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A call failed: the operation and everything the SDK said (its causes, each once).
    #[error("{0}")]
    Call(String),
    /// A call succeeded but its answer lacks what it must carry.
    #[error("{operation} answered no {missing}")]
    Incomplete {
        /// The operation (`CreateQueue`).
        operation: &'static str,
        /// What was missing (`URL`).
        missing: &'static str,
    },
    /// A setting that cannot work (a prefix, the ECS settings).
    #[error("{0}")]
    Invalid(String),
}
