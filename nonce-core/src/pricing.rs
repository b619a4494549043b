//! What messaging costs against what a worker costs: the figures the defaults over SQS are
//! chosen against (heartbeat, stall timeout, keep-alive), so a change of price or timing can
//! be checked by arithmetic and by `noncectl experiment sqs-cost`.
//!
//! Prices are AWS us-east-1 list prices (Fargate Linux/x86; SQS standard queues beyond the
//! free tier; SNS standard publishes), as of [`PRICES_AS_OF`]. SNS deliveries to SQS queues
//! are free; a publish of up to 64 KiB is one request.

use crate::planner::{FARGATE_GB_HOUR, FARGATE_VCPU_HOUR};

/// When the prices below were read.
pub const PRICES_AS_OF: &str = "2026-11-25";

/// USD per SQS request (standard queue, $0.40 per million).
pub const SQS_REQUEST_USD: f64 = 0.40e-6;

/// USD per SNS publish ($0.50 per million).
pub const SNS_PUBLISH_USD: f64 = 0.50e-6;

/// Fargate Spot, USD per vCPU-hour and GB-hour. AWS moves Spot's price with supply and
/// demand between 50% and 70% off on-demand (the Fargate pricing page's "current Spot price"
/// table); these are the 50%-off end, so a Spot cost the planner states is a ceiling.
pub const FARGATE_SPOT_VCPU_HOUR: f64 = FARGATE_VCPU_HOUR * 0.5;
/// Fargate Spot's GB-hour, the same 50%-off ceiling.
pub const FARGATE_SPOT_GB_HOUR: f64 = FARGATE_GB_HOUR * 0.5;

/// Spot interruptions the planner allows for, per task-hour. AWS publishes no rate for
/// Fargate Spot; EC2's Spot Instance Advisor puts most pools under 5% *a month*. An hour's
/// 5% is far more cautious, and still costs a plan only ~2.5% of an hour's hashing.
pub const SPOT_INTERRUPTIONS_PER_HOUR: f64 = 0.05;

/// The planner's terms for a fleet with `share` of its workers on Spot.
pub fn spot_terms(share: f64) -> crate::planner::SpotTerms {
    crate::planner::SpotTerms {
        share,
        vcpu_hour: FARGATE_SPOT_VCPU_HOUR,
        gb_hour: FARGATE_SPOT_GB_HOUR,
        interruptions_per_hour: SPOT_INTERRUPTIONS_PER_HOUR,
    }
}

/// The default worker task (`infra/terraform`: `worker_cpu = 1024`, `worker_memory = 2048`).
pub const DEFAULT_WORKER_VCPUS: f64 = 1.0;
/// The default worker task's memory, GB.
pub const DEFAULT_WORKER_GB: f64 = 2.0;

/// The instance a GPU worker runs on (`--capacity gpu`; infra/terraform/gpu.tf's default):
/// an EC2 instance priced whole, one worker task on each.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GpuInstance {
    /// The EC2 instance type.
    pub name: &'static str,
    /// Its vCPUs (the planner's unit: the hourly price is spread over them).
    pub vcpus: f64,
    /// On-demand USD an hour (Linux, us-east-1, as of [`PRICES_AS_OF`]).
    pub usd_hour: f64,
    /// Nonces a second the planner assumes for one worker on it. Stated, not measured: no
    /// GPU was at hand to measure (the README says so). Public hashcat figures for SHA-256 on
    /// GA102-class cards such as the A10G are several G/s of single-block hashes; a
    /// midstate sha256d costs two blocks a nonce, and our WGSL kernel is untuned on NVIDIA,
    /// so the plan takes 1 G/s, on the safe side. `--rate` overrides it in `estimate`.
    pub rate: f64,
    /// Seconds from RunTask to hashing when the Auto Scaling group must first launch the
    /// instance: EC2 boot, the ECS agent's registration and the image pull on the
    /// GPU-optimized AMI take minutes (Fargate: tens of seconds).
    pub startup_s: f64,
}

impl GpuInstance {
    /// `input` for workers on this instance: its rate, its whole price spread over its vCPUs
    /// (nothing for memory), and no Fargate launch ramp or Spot (the Auto Scaling group
    /// launches the instances).
    pub fn priced(&self, input: crate::planner::PlanInput) -> crate::planner::PlanInput {
        crate::planner::PlanInput {
            rate: self.rate,
            worker_vcpus: self.vcpus,
            worker_memory_gb: 0.0,
            vcpu_hour: self.usd_hour / self.vcpus,
            gb_hour: 0.0,
            ramp: None,
            spot: None,
            ..input
        }
    }
}

/// g5.xlarge: one NVIDIA A10G, 4 vCPUs, 16 GiB, $1.006 an hour on demand.
pub const GPU_WORKER: GpuInstance =
    GpuInstance { name: "g5.xlarge", vcpus: 4.0, usd_hour: 1.006, rate: 1.0e9, startup_s: 240.0 };

/// The most messaging may cost, as a share of the worker's own Fargate cost.
pub const MESSAGING_BUDGET: f64 = 0.01;

/// USD a minute for one Fargate task of `vcpus` and `gb`.
pub fn fargate_per_minute(vcpus: f64, gb: f64) -> f64 {
    (vcpus * FARGATE_VCPU_HOUR + gb * FARGATE_GB_HOUR) / 60.0
}

/// Messaging per worker-minute (the coordinator's share included), priced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MessagingRate {
    /// SQS requests per worker-minute.
    pub sqs: f64,
    /// SNS publishes per worker-minute.
    pub sns: f64,
}

impl MessagingRate {
    /// USD per worker-minute.
    pub fn usd_per_minute(&self) -> f64 {
        self.sqs * SQS_REQUEST_USD + self.sns * SNS_PUBLISH_USD
    }

    /// Messaging spend over the default worker task's Fargate spend.
    pub fn ratio_to_worker(&self) -> f64 {
        self.usd_per_minute() / fargate_per_minute(DEFAULT_WORKER_VCPUS, DEFAULT_WORKER_GB)
    }
}

/// SQS requests per worker-minute that [`MESSAGING_BUDGET`] buys for the default worker.
pub fn sqs_budget_per_worker_minute() -> f64 {
    MESSAGING_BUDGET * fargate_per_minute(DEFAULT_WORKER_VCPUS, DEFAULT_WORKER_GB) / SQS_REQUEST_USD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_worker_costs_what_the_price_list_says() {
        // (0.04048 + 2 x 0.004445) / 60 = 0.000822833... USD a minute.
        let m = fargate_per_minute(1.0, 2.0);
        assert!((m - 0.000_822_83).abs() < 1e-8, "{m}");
        // 1% of it buys about 20.6 SQS requests a minute.
        let budget = sqs_budget_per_worker_minute();
        assert!((budget - 20.57).abs() < 0.01, "{budget}");
        let at_budget = MessagingRate { sqs: budget, sns: 0.0 };
        assert!((at_budget.ratio_to_worker() - 0.01).abs() < 1e-12);
    }
}
