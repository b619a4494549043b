//! The JSON-RPC surface: the method names as one enum, the params each takes, and the error
//! object. The daemon dispatches on [`Method`] (an exhaustive `match`, so a method cannot be
//! served on one listener and missing on the other) and clients call by it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::codes::INVALID_PARAMS;

/// Every method the daemon answers (`search.subscribe` is the network listener's push of
/// `search.wait` replies, not a call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// Start a search: params a search request (`noncectl search`'s flags as JSON), reply
    /// [`crate::Started`].
    SearchStart,
    /// A job's progress or report: [`JobRef`] → [`crate::JobStatus`].
    SearchStatus,
    /// Wait up to `timeout_s` for a job to end: [`WaitParams`] → [`crate::JobStatus`].
    SearchWait,
    /// Cancel a job: [`JobRef`] → [`crate::Cancelling`].
    SearchCancel,
    /// The caller's jobs: no params → `Vec<`[`crate::JobSummary`]`>`.
    SearchList,
    /// Which parts of a job's range are done, by whom: [`JobRef`] → [`crate::SpaceMap`].
    SearchMap,
    /// Workers of running jobs: [`WorkersParams`] → `Vec<`[`crate::WorkerView`]`>`.
    WorkersList,
    /// The daemon's own state (admins): no params → [`crate::DaemonInfo`].
    DaemonInfo,
}

// `ALL` holds every variant: a variant added after the last fails here, one added before it
// fails `all_lists_the_variants_in_order`.
const _: () = assert!(Method::DaemonInfo as usize + 1 == Method::ALL.len());

impl Method {
    /// Every method, in declaration order.
    pub const ALL: [Method; 8] = [
        Method::SearchStart,
        Method::SearchStatus,
        Method::SearchWait,
        Method::SearchCancel,
        Method::SearchList,
        Method::SearchMap,
        Method::WorkersList,
        Method::DaemonInfo,
    ];

    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Method::SearchStart => "search.start",
            Method::SearchStatus => "search.status",
            Method::SearchWait => "search.wait",
            Method::SearchCancel => "search.cancel",
            Method::SearchList => "search.list",
            Method::SearchMap => "search.map",
            Method::WorkersList => "workers.list",
            Method::DaemonInfo => "daemon.info",
        }
    }

    /// The method of a wire name, if the daemon has one by that name.
    pub fn parse(name: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == name)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Params naming one job (`search.status`, `search.cancel`, `search.map`, `search.subscribe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobRef {
    /// 16 hex digits.
    pub job_id: String,
}

/// `search.wait`'s params.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitParams {
    /// 16 hex digits.
    pub job_id: String,
    /// Seconds to wait, 0 to 3600 (default 30): the reply comes at the end or at this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<f64>,
}

/// `workers.list`'s params.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkersParams {
    /// Only this job's workers (default: every running job the caller may see).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

/// The params of a method that takes none (an empty object; unknown fields refused).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// An error reply: code ([`crate::codes`]), message and optional structured data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpcError {
    /// One of [`crate::codes`].
    pub code: i64,
    /// In words.
    pub message: String,
    /// What the code needs said (`reason` of invalid params, `quota` and `limit` of a quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with no data.
    pub fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }

    /// The same error with `data`.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// Invalid params, `why` in `data.reason`.
    pub fn invalid_params(why: impl Into<String>) -> Self {
        let why = why.into();
        RpcError::new(INVALID_PARAMS, "Invalid params").with_data(json!({ "reason": why }))
    }

    /// `data.reason`, where the error has one (invalid params).
    pub fn reason(&self) -> Option<&str> {
        self.data.as_ref()?.get("reason")?.as_str()
    }
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)?;
        if let Some(d) = &self.data {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RpcError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_parses_back_from_its_name() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.name()), Some(m));
        }
        let mut names: Vec<_> = Method::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Method::ALL.len(), "two methods share a name");
        assert_eq!(Method::parse("search.subscribe"), None);
        assert_eq!(Method::parse("Search.Start"), None);
    }

    #[test]
    fn all_lists_the_variants_in_order() {
        for (i, m) in Method::ALL.into_iter().enumerate() {
            assert_eq!(m as usize, i, "{m}");
        }
    }

    #[test]
    fn an_error_object_is_the_specifications() {
        let e = RpcError::invalid_params("no");
        let v = serde_json::to_value(&e).expect("serializes");
        assert_eq!(v, json!({ "code": -32602, "message": "Invalid params", "data": { "reason": "no" } }));
        assert_eq!(
            serde_json::to_value(RpcError::new(-32000, "x")).expect("ok"),
            json!({ "code": -32000, "message": "x" })
        );
        assert_eq!(e.reason(), Some("no"));
    }
}
