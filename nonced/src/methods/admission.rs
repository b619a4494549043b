//! Admission: `search.start` validates a request, applies the daemon's quotas and, for a
//! user, their own (workers per job, jobs at once, vCPU-seconds per UTC day), all under one
//! lock so concurrent starts cannot overshoot them together.

use super::{unix_now, DaemonMethods, JobEntry};
use crate::rpc::{RpcError, QUOTA_EXCEEDED};
use crate::users::Caller;
use coordinator::request::JobSpec;
use coordinator::request::SearchRequest;
use nonce_api::{Plan, Started};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// A count as an integer in JSON (`64`, not `64.0`); other numbers as they are.
fn whole(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// Seconds of a budget as a deadline: never past [`MAX_VCPU_SECONDS`] (a user's own quota
/// may be any u64; `Duration::from_secs_f64` panics past its range).
fn budget_duration(seconds: f64) -> Duration {
    let s = if seconds.is_nan() { 0.0 } else { seconds.clamp(0.0, crate::config::MAX_VCPU_SECONDS) };
    Duration::from_secs_f64(s)
}

impl DaemonMethods {
    pub(super) fn quota_error(quota: &str, limit: f64, requested: f64) -> RpcError {
        RpcError::new(QUOTA_EXCEEDED, format!("quota exceeded: {quota}"))
            .with_data(json!({ "quota": quota, "limit": whole(limit), "requested": whole(requested) }))
    }

    /// A user's own workers-per-job limit, checked before the daemon's (usually larger): the
    /// refusal names the limit that is theirs.
    fn check_user_workers(&self, caller: &Caller, spec: &JobSpec) -> Result<(), RpcError> {
        let uq = self.config().quotas_for(&caller.name);
        if spec.workers > uq.max_workers_per_job {
            return Err(Self::quota_error(
                &format!("user {}: max_workers_per_job", caller.name),
                uq.max_workers_per_job as f64,
                spec.workers as f64,
            ));
        }
        Ok(())
    }

    /// A user's own limits (admins have only the daemon's): workers per job, jobs at once,
    /// and vCPU-seconds per UTC day, spent by their jobs so far today; the job's deadline is
    /// cut to what is left. Called under the start lock, so two starts cannot overspend.
    pub(super) fn check_user_quotas(&self, caller: &Caller, spec: &mut JobSpec) -> Result<(), RpcError> {
        let uq = self.config().quotas_for(&caller.name);
        let named = |quota: &str| format!("user {}: {quota}", caller.name);
        self.check_user_workers(caller, spec)?;
        let (now, mine) = (unix_now(), caller.name.as_str());
        let (running, used) = {
            let jobs = self.jobs();
            let own: Vec<&JobEntry> = jobs.values().filter(|e| e.owner.as_deref() == Some(mine)).collect();
            let running = own.iter().filter(|e| e.result.is_none()).count();
            (running, own.iter().map(|e| e.vcpu_seconds_on(now / 86_400, now)).sum::<f64>())
        };
        // And what their jobs that are no longer kept spent today.
        let used = used + self.forgotten_usage(mine, now / 86_400);
        if running >= uq.max_concurrent_jobs {
            return Err(Self::quota_error(
                &named("max_concurrent_jobs"),
                uq.max_concurrent_jobs as f64,
                running as f64 + 1.0,
            ));
        }
        let vcpus = spec.vcpus();
        let left = uq.max_vcpu_seconds_per_day - used;
        if left < 1.0 {
            return Err(Self::quota_error(
                &named("max_vcpu_seconds_per_day"),
                uq.max_vcpu_seconds_per_day,
                used + vcpus,
            )
            .with_data(json!({
                "quota": named("max_vcpu_seconds_per_day"),
                "limit": uq.max_vcpu_seconds_per_day,
                "used_today": used,
                "requested": vcpus,
            })));
        }
        let allowed = budget_duration(left / vcpus);
        spec.deadline = Some(spec.deadline.map_or(allowed, |d| d.min(allowed)));
        Ok(())
    }

    pub(super) async fn start(
        self: &Arc<Self>,
        caller: &Caller,
        mut request: SearchRequest,
    ) -> Result<Started, RpcError> {
        if request.has_aws_settings() {
            return Err(RpcError::invalid_params(
                "aws and ecs settings come from the daemon's config file ([aws], [ecs]), not from requests",
            ));
        }
        // What the request leaves open, the daemon's config decides (and the journal records).
        request.transport.get_or_insert(self.config().transport);
        request.launcher.get_or_insert(self.config().launcher);
        if request.launcher == Some(coordinator::request::LauncherKind::Ecs) && request.capacity.is_none() {
            request.capacity = self.config().ecs.as_ref().and_then(|e| e.capacity.clone());
        }
        let mut spec = self.spec_of(&request).map_err(|e| RpcError::invalid_params(e.0))?;
        // What only the daemon's operator can give it: say so, not which flag to add.
        let ecs_settings = self.aws.as_ref().and_then(|a| a.settings.ecs.as_ref()).is_some();
        if spec.transport == coordinator::request::TransportKind::Aws && self.aws.is_none() {
            return Err(RpcError::invalid_params(
                "this daemon has no aws transport: its operator gives it one in its config (an [aws] table, \
                 or NONCE_TRANSPORT=aws); leave --transport out to use the daemon's own",
            ));
        }
        if spec.launcher == coordinator::request::LauncherKind::Ecs && !ecs_settings {
            return Err(RpcError::invalid_params(
                "this daemon has no ecs launcher: its operator gives it one in its config (an [ecs] table, \
                 or NONCE_ECS_* settings); leave --launcher out to use the daemon's own",
            ));
        }
        let gpu_settings =
            self.aws.as_ref().and_then(|a| a.settings.ecs.as_ref()).is_some_and(|e| e.gpu.is_some());
        if spec.capacity == coordinator::request::CapacityKind::Gpu && !gpu_settings {
            return Err(RpcError::invalid_params(
                "this daemon has no GPU capacity: its operator gives it one in its config ([ecs] \
                 gpu_task_definition and gpu_capacity_provider, or NONCE_ECS_GPU_*)",
            ));
        }
        if !caller.is_admin() {
            self.check_user_workers(caller, &spec)?;
        }
        let config = self.config();
        let q = &config.quotas;
        if spec.workers > q.max_workers_per_job {
            return Err(Self::quota_error(
                "max_workers_per_job",
                q.max_workers_per_job as f64,
                spec.workers as f64,
            ));
        }
        let vcpus = spec.vcpus();
        let budget = budget_duration(q.max_vcpu_seconds_per_job / vcpus);
        match spec.deadline {
            Some(d) if d.as_secs_f64() * vcpus > q.max_vcpu_seconds_per_job => {
                return Err(Self::quota_error(
                    "max_vcpu_seconds_per_job",
                    q.max_vcpu_seconds_per_job,
                    d.as_secs_f64() * vcpus,
                ));
            }
            Some(_) => {}
            None => spec.deadline = Some(budget),
        }
        let _guard = self.start_lock.lock().await;
        let (running, fleet) = {
            let jobs = self.jobs();
            let running: Vec<_> = jobs.values().filter(|e| e.result.is_none()).collect();
            (running.len(), running.iter().map(|e| e.spec.workers).sum::<usize>())
        };
        if running >= q.max_concurrent_jobs {
            return Err(Self::quota_error(
                "max_concurrent_jobs",
                q.max_concurrent_jobs as f64,
                running as f64 + 1.0,
            ));
        }
        if fleet + spec.workers > q.max_fleet {
            return Err(Self::quota_error("max_fleet", q.max_fleet as f64, (fleet + spec.workers) as f64));
        }
        if !caller.is_admin() {
            self.check_user_quotas(caller, &mut spec)?;
        }
        let planned = spec.planned.as_ref();
        let plan = Plan {
            workers: spec.workers,
            threads_per_worker: spec.threads_per_worker,
            mode: spec.mode.name().to_string(),
            range: spec.range.to_string(),
            deadline_s: spec.deadline.map(|d| d.as_secs_f64()),
            backend: spec.backend.name().to_string(),
            startup_s: spec.startup.as_ref().map(|st| st.seconds),
            startup_source: spec.startup.as_ref().map(|st| st.source.describe()),
            capacity: (spec.launcher == coordinator::request::LauncherKind::Ecs)
                .then(|| spec.capacity.name().to_string()),
            // What the planner promised, the launch quotas' ramp included.
            probability: planned.map(|p| p.probability),
            expected_s: planned.map(|p| (p.expected_seconds * 1000.0).round() / 1000.0),
            launch_ramp_s: planned.map(|p| (p.launch_ramp_s * 1000.0).round() / 1000.0),
            cost_usd: planned.map(|p| p.cost),
        };
        let job = self.launch(request, spec, None, Some(caller.name.clone()), unix_now()).await?;
        Ok(Started { job_id: job.to_string(), plan })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A user's own quota may be any u64 (or a sum gone NaN): the deadline is bounded, no panic.
    #[test]
    fn a_budget_is_a_duration_whatever_the_quota() {
        assert_eq!(budget_duration(f64::NAN), Duration::ZERO);
        assert_eq!(budget_duration(-1.0), Duration::ZERO);
        let max = Duration::from_secs_f64(crate::config::MAX_VCPU_SECONDS);
        assert_eq!(budget_duration(u64::MAX as f64), max);
        assert_eq!(budget_duration(1e300), max);
        assert_eq!(budget_duration(90.0), Duration::from_secs(90));
    }
}
