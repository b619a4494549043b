//! The Terraform in `infra/terraform` parses, declares what a deployment needs, and sets
//! exactly the environment variables the binaries read (and every one they require).
//! `terraform validate` needs the AWS provider, which cannot be downloaded here: this is
//! the check that can run (see docs/DEPLOY.md).

use hcl::{Block, Body, Expression, ObjectKey};
use std::collections::BTreeSet;
use std::path::PathBuf;

fn terraform_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/terraform")
}

/// Every `.tf` file, parsed.
fn bodies() -> Vec<(String, Body)> {
    let mut files: Vec<_> = std::fs::read_dir(terraform_dir())
        .expect("infra/terraform")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "tf"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "the Terraform files: {files:?}");
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("readable");
            let body = hcl::parse(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", p.display()));
            (p.display().to_string(), body)
        })
        .collect()
}

/// Every `resource "TYPE" "NAME"` block.
fn resources() -> Vec<(String, String, Block)> {
    let mut out = vec![];
    for (_, body) in bodies() {
        for block in body.blocks() {
            if block.identifier() == "resource" {
                let labels: Vec<&str> = block.labels().iter().map(|l| l.as_str()).collect();
                out.push((labels[0].to_string(), labels[1].to_string(), block.clone()));
            }
        }
    }
    out
}

fn resource(kind: &str, name: &str) -> Block {
    resources()
        .into_iter()
        .find(|(k, n, _)| k == kind && n == name)
        .map(|(_, _, b)| b)
        .unwrap_or_else(|| panic!("resource {kind}.{name} is missing"))
}

fn attr<'a>(block: &'a Block, key: &str) -> Option<&'a Expression> {
    block.body().attributes().find(|a| a.key() == key).map(|a| a.expr())
}

fn key_name(k: &ObjectKey) -> String {
    match k {
        ObjectKey::Identifier(i) => i.to_string(),
        ObjectKey::Expression(Expression::String(s)) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// The one container object inside `container_definitions = jsonencode([{ ... }])`.
fn container(task_definition: &Block) -> Vec<(String, Expression)> {
    let expr = attr(task_definition, "container_definitions").expect("container_definitions");
    let Expression::FuncCall(call) = expr else { panic!("container_definitions is not jsonencode(...)") };
    let Some(Expression::Array(items)) = call.args.first() else { panic!("jsonencode([...]) expected") };
    assert_eq!(items.len(), 1, "one container per task");
    let Expression::Object(obj) = &items[0] else { panic!("a container object") };
    obj.iter().map(|(k, v)| (key_name(k), v.clone())).collect()
}

fn field<'a>(c: &'a [(String, Expression)], key: &str) -> Option<&'a Expression> {
    c.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The names in the container's `environment = [{ name = "...", value = ... }, ...]`.
fn env_names(c: &[(String, Expression)]) -> BTreeSet<String> {
    let Some(Expression::Array(items)) = field(c, "environment") else { panic!("an environment list") };
    items
        .iter()
        .map(|item| {
            let Expression::Object(o) = item else { panic!("environment entries are objects") };
            let name = o.iter().find(|(k, _)| key_name(k) == "name").map(|(_, v)| v).expect("a name");
            let Expression::String(s) = name else { panic!("environment names are literal strings") };
            s.clone()
        })
        .collect()
}

/// Read by the AWS SDK inside both binaries.
const SDK_VARS: [&str; 2] = ["AWS_REGION", "AWS_DEFAULT_REGION"];

#[test]
fn every_file_parses_and_a_deployment_has_what_it_needs() {
    let needed = [
        ("aws_sqs_queue", "events"),
        ("aws_sqs_queue", "dead_letters"),
        ("aws_sns_topic", "control"),
        ("aws_ecs_cluster", "main"),
        ("aws_ecs_task_definition", "worker"),
        ("aws_ecs_task_definition", "daemon"),
        ("aws_ecs_service", "daemon"),
        ("aws_iam_role", "worker_execution"),
        ("aws_iam_role", "worker_task"),
        ("aws_iam_role", "daemon_execution"),
        ("aws_iam_role", "daemon_task"),
        ("aws_cloudwatch_log_group", "worker"),
        ("aws_cloudwatch_log_group", "daemon"),
        ("aws_ecr_repository", "worker"),
        ("aws_ecr_repository", "daemon"),
        ("aws_kms_key", "main"),
        ("aws_efs_file_system", "state"),
    ];
    for (kind, name) in needed {
        resource(kind, name);
    }
    let events = resource("aws_sqs_queue", "events");
    assert!(attr(&events, "redrive_policy").is_some(), "the events queue has a DLQ");
    assert!(attr(&events, "sqs_managed_sse_enabled").is_some(), "the events queue is encrypted");
    assert!(
        attr(&resource("aws_sns_topic", "control"), "kms_master_key_id").is_some(),
        "the topic is encrypted"
    );
    for group in ["worker", "daemon"] {
        assert!(attr(&resource("aws_cloudwatch_log_group", group), "retention_in_days").is_some());
    }
    for family in ["worker", "daemon", "worker_gpu"] {
        let td = resource("aws_ecs_task_definition", family);
        // The GPU worker shares its EC2 instance's interface; Fargate tasks need awsvpc.
        let network = if family == "worker_gpu" { "bridge" } else { "awsvpc" };
        assert!(matches!(attr(&td, "network_mode"), Some(Expression::String(m)) if m == network));
        let c = container(&td);
        assert!(
            matches!(field(&c, "readonlyRootFilesystem"), Some(Expression::Bool(true))),
            "{family}: read-only root"
        );
        assert!(
            matches!(field(&c, "user"), Some(Expression::String(u)) if !u.starts_with("0") && !u.starts_with("root")),
            "{family}: non-root user"
        );
        assert!(field(&c, "memory").is_some(), "{family}: container memory set");
        // Separate roles for pulling/logging and for the program.
        assert_ne!(
            format!("{:?}", attr(&td, "execution_role_arn")),
            format!("{:?}", attr(&td, "task_role_arn")),
            "{family}: execution and task roles differ"
        );
    }
    for family in ["worker", "worker_gpu"] {
        let worker = container(&resource("aws_ecs_task_definition", family));
        assert!(
            matches!(field(&worker, "name"), Some(Expression::String(n)) if n == coordinator::request::DEFAULT_ECS_CONTAINER),
            "the {family} container has the name the ecs launcher overrides"
        );
    }
    // The GPU worker asks ECS for a GPU and runs on the GPU instances' capacity provider.
    let gpu = container(&resource("aws_ecs_task_definition", "worker_gpu"));
    let wants = field(&gpu, "resourceRequirements").map(text_of).unwrap_or_default();
    assert!(wants.contains("GPU"), "the GPU worker asks for a GPU: {wants}");
    resource("aws_ecs_capacity_provider", "gpu");
    resource("aws_autoscaling_group", "gpu");
    let template = text_of(attr(&resource("aws_launch_template", "gpu"), "image_id").expect("image_id"));
    assert!(template.contains("ecs_gpu_ami"), "GPU instances boot ECS's GPU AMI: {template}");
}

/// Every `"..."` string literal (and template text) inside an expression, flattened.
fn text_of(e: &Expression) -> String {
    format!("{e}")
}

#[test]
fn the_api_is_https_at_a_load_balancer_that_alone_reaches_the_daemon_and_users_come_from_a_secret() {
    let listener = resource("aws_lb_listener", "https");
    assert!(matches!(attr(&listener, "protocol"), Some(Expression::String(p)) if p == "HTTPS"));
    assert!(
        text_of(attr(&listener, "certificate_arn").expect("certificate")).contains("var.api_certificate_arn")
    );
    assert!(text_of(attr(&listener, "ssl_policy").expect("policy")).contains("TLS13"));
    let lb = resource("aws_lb", "api");
    assert!(matches!(attr(&lb, "drop_invalid_header_fields"), Some(Expression::Bool(true))));
    let tg = resource("aws_lb_target_group", "daemon");
    let hc = tg.body().blocks().find(|b| b.identifier() == "health_check").expect("a health check");
    assert!(
        hc.body()
            .attributes()
            .any(|a| a.key() == "path" && matches!(a.expr(), Expression::String(p) if p == "/healthz")),
        "the target group checks /healthz"
    );
    // The daemon's port admits the load balancer's group and nothing else.
    let ingress = resource("aws_vpc_security_group_ingress_rule", "daemon_from_api");
    assert!(text_of(attr(&ingress, "referenced_security_group_id").expect("source group"))
        .contains("aws_security_group.api"));
    assert!(attr(&ingress, "cidr_ipv4").is_none(), "no CIDR reaches the daemon's listener");
    let service = resource("aws_ecs_service", "daemon");
    assert!(
        service.body().blocks().any(|b| b.identifier() == "dynamic"
            && b.labels().first().is_some_and(|l| l.as_str() == "load_balancer")),
        "the service registers with the target group"
    );
    // The token hashes: a KMS-encrypted secret handed to the container, never in its environment.
    let secret = resource("aws_secretsmanager_secret", "users");
    assert!(attr(&secret, "kms_key_id").is_some(), "the users secret is KMS-encrypted");
    let daemon = container(&resource("aws_ecs_task_definition", "daemon"));
    let secrets = text_of(field(&daemon, "secrets").expect("container secrets"));
    assert!(
        secrets.contains("NONCE_USERS") && secrets.contains("aws_secretsmanager_secret.users"),
        "{secrets}"
    );
    assert!(!env_names(&daemon).contains("NONCE_USERS"), "token hashes never in the plain environment");
    for v in ["NONCE_HTTP_LISTEN", "NONCE_HTTP_PLAIN", "NONCE_HTTP_FORWARDED_FOR"] {
        assert!(env_names(&daemon).contains(v), "the daemon task sets {v}");
    }
    let outputs: Vec<String> = bodies()
        .iter()
        .flat_map(|(_, b)| {
            b.blocks()
                .filter(|x| x.identifier() == "output")
                .map(|x| x.labels()[0].as_str().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(outputs.contains(&"api_endpoint".to_string()), "an endpoint output for users");
}

#[test]
fn metrics_reach_cloudwatch_as_emf_with_a_dashboard_and_alarms_on_stalls_and_failures() {
    let daemon = container(&resource("aws_ecs_task_definition", "daemon"));
    assert!(env_names(&daemon).contains("NONCE_METRICS_EMF"), "the daemon prints EMF lines");
    resource("aws_cloudwatch_dashboard", "main");
    for (alarm, metric) in [("stalled_workers", "WorkersStalled"), ("failing_jobs", "JobsFailed")] {
        let a = resource("aws_cloudwatch_metric_alarm", alarm);
        assert!(matches!(attr(&a, "metric_name"), Some(Expression::String(m)) if m == metric), "{alarm}");
        assert!(
            matches!(attr(&a, "namespace"), Some(Expression::String(n)) if n == "nonce-cloud"),
            "{alarm}"
        );
    }
}

#[test]
fn task_definitions_set_exactly_what_the_binaries_read() {
    for family in ["worker", "worker_gpu"] {
        worker_task_sets_what_nonce_worker_reads(family);
    }
    let daemon = env_names(&container(&resource("aws_ecs_task_definition", "daemon")));
    let reads: BTreeSet<&str> = nonced::config::ENV_VARS.iter().chain(SDK_VARS.iter()).copied().collect();
    for v in &daemon {
        assert!(reads.contains(v.as_str()), "the daemon task sets {v}, which nonced does not read");
    }
    for v in nonced::config::REQUIRED_ON_ECS {
        assert!(daemon.contains(*v), "nonced on ECS requires {v}: the task definition does not set it");
    }
}

fn worker_task_sets_what_nonce_worker_reads(family: &str) {
    let worker = env_names(&container(&resource("aws_ecs_task_definition", family)));
    let reads: BTreeSet<&str> =
        worker_actor::env_config::VARIABLES.iter().chain(SDK_VARS.iter()).copied().collect();
    for v in &worker {
        assert!(reads.contains(v.as_str()), "the worker task sets {v}, which nonce-worker does not read");
    }
    // What the launcher adds per job (container overrides) need not be in the definition.
    let overrides: BTreeSet<&str> = coordinator::transport::aws::WORKER_OVERRIDES
        .iter()
        .chain(coordinator::transport::seal::CREDENTIAL_VARIABLES.iter())
        .copied()
        .collect();
    for v in worker_actor::env_config::REQUIRED {
        assert!(
            worker.contains(*v) || overrides.contains(v),
            "nonce-worker requires {v}: neither the task definition nor the launcher sets it"
        );
    }
    for v in &overrides {
        assert!(reads.contains(v), "the ecs launcher overrides {v}, which nonce-worker does not read");
    }
}

#[test]
fn dockerfiles_are_multi_stage_distroless_non_root_and_name_real_binaries() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    for (file, entry) in [
        ("nonce-worker.Dockerfile", "nonce-worker"),
        ("nonce-worker-gpu.Dockerfile", "nonce-worker"),
        ("nonced.Dockerfile", "nonced"),
    ] {
        let text = std::fs::read_to_string(root.join("infra/docker").join(file)).expect("Dockerfile");
        let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.starts_with('#')).collect();
        let froms: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].starts_with("FROM ")).collect();
        assert!(froms.len() >= 2, "{file}: multi-stage");
        let last = *froms.last().expect("a FROM");
        // The GPU worker needs the libraries the NVIDIA Vulkan driver links (its Dockerfile
        // says which): Debian slim with exactly those, pinned.
        let small = if file == "nonce-worker-gpu.Dockerfile" {
            lines[last] == "FROM debian:bookworm-slim" && text.contains("--no-install-recommends")
        } else {
            lines[last].contains("distroless") || lines[last].contains("scratch")
        };
        assert!(small, "{file}: a small final image, not {}", lines[last]);
        let final_stage = &lines[last..];
        let user =
            final_stage.iter().find(|l| l.starts_with("USER ")).unwrap_or_else(|| panic!("{file}: USER"));
        let uid = user.trim_start_matches("USER ").split(':').next().expect("uid");
        assert!(uid != "0" && uid != "root", "{file}: runs as {uid}");
        assert!(
            final_stage.iter().any(|l| *l == format!("ENTRYPOINT [\"/{entry}\"]")),
            "{file}: ENTRYPOINT [\"/{entry}\"]"
        );
        // Every binary it builds exists in the workspace.
        for word in text.split_whitespace().collect::<Vec<_>>().windows(2) {
            if word[0] == "--bin" {
                let name = word[1];
                // A crate's extra binary (`src/bin/NAME.rs`), or a crate named for its program.
                let exists = ["worker-actor", "coordinator", "nonced", "noncectl"]
                    .iter()
                    .any(|c| root.join(c).join("src/bin").join(format!("{name}.rs")).exists())
                    || root.join(name).join("src/main.rs").exists();
                assert!(exists, "{file} builds {name}, which is no binary of this workspace");
            }
        }
    }
}
