//! Resource names derived from one prefix, so that coordinator, workers and Terraform agree
//! without passing every ARN around (and IAM policies can be scoped to `prefix-*`).

/// The names of one deployment's queues and topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceNames {
    prefix: String,
}

/// Longest prefix: SQS names are at most 80 characters and inbox names add up to 39.
pub const MAX_PREFIX: usize = 40;

impl ResourceNames {
    /// Checks the prefix: 1 to 40 of `A-Z a-z 0-9 - _`.
    pub fn new(prefix: &str) -> Result<Self, crate::AwsError> {
        let ok = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX
            && prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(ResourceNames { prefix: prefix.to_string() })
        } else {
            Err(crate::AwsError::Invalid(format!(
                "aws prefix {prefix:?}: use 1 to {MAX_PREFIX} letters, digits, '-' or '_'"
            )))
        }
    }

    /// The prefix every name starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Worker -> coordinator events.
    pub fn events_queue(&self) -> String {
        format!("{}-events", self.prefix)
    }

    /// Where undecodable and repeatedly failing events end.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}-events-dlq", self.prefix)
    }

    /// The broadcast topic.
    pub fn control_topic(&self) -> String {
        format!("{}-control", self.prefix)
    }

    /// The start of every inbox queue's name (what IAM lets workers create and delete).
    pub fn inbox_prefix(&self) -> String {
        format!("{}-inbox-", self.prefix)
    }

    /// One worker's inbox: the inbox prefix and the worker id, with characters SQS refuses
    /// replaced and the length capped at 80.
    pub fn inbox_queue(&self, worker: &str) -> String {
        inbox_queue(&self.inbox_prefix(), worker)
    }
}

/// `inbox_prefix` + a sanitised worker id, at most 80 characters.
pub fn inbox_queue(inbox_prefix: &str, worker: &str) -> String {
    let clean: String = worker
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
        .collect();
    let mut name = format!("{inbox_prefix}{clean}");
    name.truncate(80);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let n = ResourceNames::new("nc-dev").expect("valid");
        assert_eq!(n.events_queue(), "nc-dev-events");
        assert_eq!(n.dead_letter_queue(), "nc-dev-events-dlq");
        assert_eq!(n.control_topic(), "nc-dev-control");
        assert_eq!(n.inbox_queue("p0-00000000000000ab"), "nc-dev-inbox-p0-00000000000000ab");
        assert_eq!(n.inbox_queue("a.b/c"), "nc-dev-inbox-a_b_c");
        assert_eq!(n.inbox_queue(&"x".repeat(200)).len(), 80);
        for bad in ["", "a b", "ä", &"y".repeat(41)] {
            assert!(ResourceNames::new(bad).is_err(), "{bad:?}");
        }
    }
}
