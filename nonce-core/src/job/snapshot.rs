//! `Snapshot`: what outlives a coordinator's life. The daemon journals it and a restarted
//! coordinator resumes from it, so a crash costs at most the progress since the last record.

use protocol::NonceRange;

/// What a restarted coordinator knows of a job's earlier life: the ranges known searched and
/// the golden nonces found (re-verified on load: a journal is trusted no more than a worker).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Snapshot {
    /// As `"start..end"` strings: JSON numbers (and serde's tagged enums) cannot carry 2^64.
    #[serde(with = "range_strings")]
    pub done: Vec<NonceRange>,
    /// The verified golden nonces so far.
    pub found: Vec<u64>,
}

mod range_strings {
    use protocol::NonceRange;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ranges: &[NonceRange], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ranges.iter().map(|r| r.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NonceRange>, D::Error> {
        let texts = Vec::<String>::deserialize(d)?;
        texts.iter().map(|t| NonceRange::parse(t, 1u128 << 64).map_err(serde::de::Error::custom)).collect()
    }
}
