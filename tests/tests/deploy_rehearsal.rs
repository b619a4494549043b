//! The deployed whole, rehearsed on the emulator: `infra/terraform` applied to moto as an
//! operator would apply it to an account, then the system run on what it created, configured
//! exactly as ECS configures it, each process with its own role's credentials from the ECS
//! container credentials endpoint; then the role policies Terraform rendered are checked
//! against the operations the binaries called, and linted with parliament.
//!
//! Needs terraform and the AWS provider's filesystem mirror (`TF_CLI_CONFIG_FILE`, set by
//! `scripts/test`), the emulator, and parliament (`NONCE_TEST_PARLIAMENT`): fails without them.

mod common;
use common::emulator::{Emulator, REGION};
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Resources the emulator cannot create, left out of the apply (`-target` names every
/// other one), each with the reason. Everything else in `infra/terraform` is applied.
const UNEMULATED: &[(&str, &str)] = &[
    (
        "aws_sqs_queue_redrive_allow_policy.dead_letters",
        "moto does not store a queue's RedriveAllowPolicy, so the provider waits for it forever",
    ),
    ("aws_efs_backup_policy.state", "moto has no EFS PutBackupPolicy"),
];

/// Actions a role's policy may grant that no code path of ours calls, and why.
const GRANTED_FOR_OTHERS: &[(&str, &str, &str)] = &[
    ("daemon_task", "ssmmessages:*", "ECS Exec: `aws ecs execute-command` into the daemon's task"),
    ("daemon_task", "elasticfilesystem:Client*", "the EFS mount of the journal, made by the ECS agent"),
    ("daemon_task", "kms:", "SNS publishes to the KMS-encrypted topic on the daemon's behalf"),
    ("worker_task", "kms:", "SNS and SQS encrypt and decrypt with the main key on the worker's behalf"),
    ("daemon_task", "iam:PassRole", "RunTask hands the worker task and execution roles to ECS"),
    ("daemon_task", "ecs:TagResource", "RunTask tags the tasks it starts (tag-on-create)"),
];

/// Actions a task role grants that this rehearsal's short, clean run does not reach, each with
/// the source file whose code calls it (checked: the SDK call is there) and why it is not
/// reached here. Anything granted and neither called nor listed fails the test.
const CALLED_ON_OTHER_PATHS: &[(&str, &str, &str, &str)] = &[
    ("daemon_task", "sqs:ListQueueTags", "aws-transport/src/sweep.rs", "the stale-inbox sweep reads tags only when an inbox outlived its workers"),
    ("daemon_task", "sqs:DeleteQueue", "aws-transport/src/sweep.rs", "inboxes are swept only after a worker dies without deleting its own"),
    ("daemon_task", "sns:Unsubscribe", "aws-transport/src/sweep.rs", "likewise, the dead worker's subscription"),
    ("daemon_task", "sns:ListSubscriptionsByTopic", "aws-transport/src/sweep.rs", "likewise, to find that subscription"),
    ("daemon_task", "ecs:DescribeTasks", "aws-transport/src/ecs.rs", "polled every heartbeat (2-15 s); these jobs end sooner"),
    ("worker_task", "sqs:TagQueue", "aws-transport/src/worker_link.rs", "CreateQueue with tags needs it; the alive tag is refreshed every third of the orphan timeout (100 s)"),
];

/// `sqs:ListQueueTags` -> `.list_queue_tags()`, the SDK's method for it.
fn sdk_call(action: &str) -> String {
    let op = action.split_once(':').map_or(action, |(_, op)| op);
    let mut out = String::from(".");
    for (i, c) in op.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out + "()"
}

fn terraform(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("terraform")
        .current_dir(dir)
        .args(args)
        .env("TF_IN_AUTOMATION", "1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .expect("terraform runs (it must be on the PATH)");
    assert!(
        out.status.success(),
        "terraform {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn python(em: &Emulator, code: &str) -> Value {
    let py = std::env::var("NONCE_TEST_PYTHON")
        .expect("NONCE_TEST_PYTHON (the emulator's Python, from scripts/test)");
    let out = Command::new(py).arg("-c").arg(code).envs(em.env()).output().expect("python runs");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON from python")
}

/// Every `resource` address of the configuration (`type.name`), from the `.tf` files.
fn addresses(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "tf") {
            let body = hcl::parse(&std::fs::read_to_string(&path).expect("read")).expect("parses");
            for b in body.blocks().filter(|b| b.identifier() == "resource") {
                out.push(format!("{}.{}", b.labels()[0].as_str(), b.labels()[1].as_str()));
            }
        }
    }
    out.sort();
    out
}

/// Whether IAM action pattern `granted` (with `*` wildcards) covers `action`.
fn covers(granted: &str, action: &str) -> bool {
    let (g, a) = (granted.to_ascii_lowercase(), action.to_ascii_lowercase());
    match g.split_once('*') {
        None => g == a,
        Some((head, tail)) => {
            a.starts_with(head) && a[head.len()..].ends_with(tail) && a.len() >= head.len() + tail.len()
        }
    }
}

/// `Service.Operation` as counted by the SDK interceptor -> the IAM action that authorizes
/// it (SQS's batch operations are authorized by their single-message actions).
fn action_of(op: &str) -> String {
    let (service, operation) = op.split_once('.').expect("Service.Operation");
    let service = service.to_ascii_lowercase();
    let operation = match (service.as_str(), operation.strip_suffix("Batch")) {
        ("sqs", Some(single)) => single,
        _ => operation,
    };
    format!("{service}:{operation}")
}

#[test]
fn terraform_applied_on_the_emulator_runs_the_system_as_ecs_would_with_least_privilege() {
    let em = Emulator::get("rehearsal");
    assert!(
        std::env::var_os("TF_CLI_CONFIG_FILE").is_some(),
        "TF_CLI_CONFIG_FILE is not set: run scripts/test (it points terraform at the provider mirror)"
    );
    let parliament = std::env::var("NONCE_TEST_PARLIAMENT")
        .expect("NONCE_TEST_PARLIAMENT (parliament, from scripts/test)");
    let work = std::env::temp_dir().join(format!("nonce-rehearsal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let tf = work.join("terraform");
    std::fs::create_dir_all(&tf).expect("dir");
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../infra/terraform");
    for entry in std::fs::read_dir(&source).expect("infra/terraform") {
        let p = entry.expect("entry").path();
        if p.extension().is_some_and(|e| e == "tf") {
            std::fs::copy(&p, tf.join(p.file_name().expect("name"))).expect("copy");
        }
    }
    // The provider pointed at the emulator (an override file, as an operator's would be).
    let services = [
        "cloudwatch",
        "cloudwatchlogs",
        "ec2",
        "ecr",
        "autoscaling",
        "ecs",
        "efs",
        "elbv2",
        "iam",
        "kms",
        "secretsmanager",
        "sns",
        "sqs",
        "ssm",
        "sts",
    ];
    let endpoints: String = services.iter().map(|s| format!("    {s} = \"{}\"\n", em.endpoint)).collect();
    std::fs::write(
        tf.join("override.tf"),
        format!(
            "provider \"aws\" {{\n  access_key = \"test\"\n  secret_key = \"test\"\n  skip_credentials_validation = true\n  \
             skip_metadata_api_check = true\n  skip_requesting_account_id = false\n  endpoints {{\n{endpoints}  }}\n}}\n"
        ),
    )
    .expect("override");
    let net = python(
        &em,
        // The emulator's default VPC and two of its subnets (RunTask's network interfaces fail in
        // a VPC made through the API: moto's ENIs there lack a private DNS name).
        "import boto3, json\nec2 = boto3.client('ec2')\n\
         v = ec2.describe_vpcs(Filters=[{'Name': 'isDefault', 'Values': ['true']}])['Vpcs'][0]['VpcId']\n\
         s = [x['SubnetId'] for x in ec2.describe_subnets(Filters=[{'Name': 'vpc-id', 'Values': [v]}])['Subnets']][:2]\n\
         print(json.dumps({'vpc': v, 'subnets': s}))",
    );
    let prefix = em.prefix.clone();
    std::fs::write(
        tf.join("terraform.tfvars.json"),
        json!({
            "region": REGION, "prefix": prefix, "vpc_id": net["vpc"], "subnet_ids": net["subnets"],
            "worker_image": "nonce-worker:rehearsal", "daemon_image": "nonced:rehearsal",
            // GPU capacity too; the instance's memory is the emulator's container instance's
            // (moto gives every one 7,482 MiB), so its task can be placed there.
            "gpu_workers": {
                "enabled": true, "image": "nonce-worker-gpu:rehearsal", "instance_type": "g5.xlarge",
                "instance_memory_mib": 8192, "max_instances": 2,
            },
        })
        .to_string(),
    )
    .expect("tfvars");
    terraform(&tf, &["init", "-backend=false", "-input=false", "-no-color"]);
    let skipped: BTreeSet<&str> = UNEMULATED.iter().map(|(a, _)| *a).collect();
    let all = addresses(&tf);
    for a in &skipped {
        assert!(all.iter().any(|x| x == a), "{a} is no longer in the configuration: update UNEMULATED");
    }
    let targets: Vec<String> =
        all.iter().filter(|a| !skipped.contains(a.as_str())).map(|a| format!("-target={a}")).collect();
    let t = Instant::now();
    let mut args = vec!["apply", "-auto-approve", "-input=false", "-no-color", "-parallelism=4"];
    args.extend(targets.iter().map(String::as_str));
    let applied = terraform(&tf, &args);
    let text = String::from_utf8_lossy(&applied.stdout);
    eprintln!(
        "terraform apply: {} in {:.0?}",
        text.lines().find(|l| l.starts_with("Apply complete")).unwrap_or("?"),
        t.elapsed()
    );
    let state: Value =
        serde_json::from_slice(&terraform(&tf, &["show", "-json"]).stdout).expect("state JSON");
    let outputs: Value =
        serde_json::from_slice(&terraform(&tf, &["output", "-json"]).stdout).expect("outputs JSON");
    let resources: Vec<&Value> =
        state["values"]["root_module"]["resources"].as_array().expect("resources").iter().collect();
    let find = |addr: &str| -> &Value {
        resources
            .iter()
            .find(|r| r["address"] == json!(addr))
            .copied()
            .unwrap_or_else(|| panic!("{addr} not in the applied state"))
    };

    // --- The daemon, started as its task definition says ------------------------------
    let daemon_td = &find("aws_ecs_task_definition.daemon")["values"];
    let containers: Value =
        serde_json::from_str(daemon_td["container_definitions"].as_str().expect("JSON")).expect("containers");
    let container = &containers[0];
    let state_dir = work.join("efs"); // stands for the EFS volume at /var/lib/nonced
    let run_dir = work.join("run");
    std::fs::create_dir_all(&run_dir).expect("run dir");
    let mut env: BTreeMap<String, String> = container["environment"]
        .as_array()
        .expect("environment")
        .iter()
        .map(|kv| (s(&kv["name"]).to_string(), s(&kv["value"]).to_string()))
        .collect();
    // The container's paths, mapped to this machine; the secret ECS would inject, given.
    env.insert("NONCE_STATE_DIR".into(), state_dir.display().to_string());
    env.insert("NONCE_SOCKET".into(), run_dir.join("nonced.sock").display().to_string());
    assert!(container["secrets"]
        .as_array()
        .expect("secrets")
        .iter()
        .any(|x| x["name"] == json!("NONCE_USERS")));
    env.insert("NONCE_USERS".into(), "users = []".into());
    env.insert("NONCE_SWEEP_EVERY_S".into(), "3600".into());

    // The ECS shim runs RunTask's tasks with the applied worker task definition.
    let calls = work.join("calls.jsonl");
    let py = std::env::var("NONCE_TEST_PYTHON").expect("NONCE_TEST_PYTHON");
    let worker_family = s(&outputs["worker_task_definition"]["value"]).to_string();
    let cluster = s(&outputs["cluster"]["value"]).to_string();
    let mut shim = Command::new(&py)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/emulator/ecs_shim.py"))
        .args(["--endpoint", &em.endpoint, "--cluster", &cluster, "--task-definition", &worker_family])
        .args(["--worker-bin", &bin("nonce-worker").display().to_string()])
        // One GPU instance's agent registered, as the capacity provider's scale-out would.
        .args(["--container-instances", "1"])
        .envs(em.env())
        .env("NONCE_AWS_CALL_LOG", &calls)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the ECS shim starts");
    let mut lines = BufReader::new(shim.stdout.take().expect("stdout")).lines();
    let settings: Value =
        serde_json::from_str(&lines.next().expect("settings").expect("line")).expect("JSON");
    let creds = s(&settings["credentials"]).to_string();
    let daemon_role = s(&find("aws_iam_role.daemon_task")["values"]["name"]).to_string();

    let start_daemon = |env: &BTreeMap<String, String>, config: Option<&Path>| {
        let mut cmd = Command::new(bin("nonced"));
        if let Some(c) = config {
            cmd.arg("--config").arg(c);
        }
        cmd.envs(env.iter())
            .env("AWS_ENDPOINT_URL", &em.endpoint)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", format!("{creds}{daemon_role}"))
            .env("NONCE_AWS_CALL_LOG", &calls)
            .env("NONCE_LOG", "warn")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = cmd.spawn().expect("nonced starts");
        let socket = PathBuf::from(&env["NONCE_SOCKET"]);
        let t = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            assert!(t.elapsed() < Duration::from_secs(30), "nonced did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    };
    let case = golden_case("lowest", "coursework-be32-top");
    let range = range_arg(&case);
    let search_with = |socket: &str, extra: &[&str]| {
        let out = Command::new(bin("noncectl"))
            .args(["search", "--block-hex", s(&case["block_hex"]), "--encoding", s(&case["encoding"])])
            .args(["--difficulty", &case["difficulty"].to_string(), "--mode", "lowest", "--range", &range])
            .args(["--json", "--socket", socket])
            .args(extra)
            .env("NONCE_LOG", "error")
            .output()
            .expect("noncectl runs");
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(out.status.code(), Some(0), "{v}");
        v
    };
    let search = |socket: &str| search_with(socket, &["--workers", "2"]);

    // The ECS service variant: environment only, as the task definition sets it.
    let mut daemon = start_daemon(&env, None);
    let v = search(&env["NONCE_SOCKET"]);
    assert_eq!(v["nonce"].to_string(), s(&case["lowest"]), "the brute-force answer on the applied stack");
    // A GPU worker: the GPU task definition on the GPU capacity provider, hashing on the
    // Vulkan adapter here (lavapipe), with the same answer.
    let v = search_with(&env["NONCE_SOCKET"], &["--workers", "1", "--capacity", "gpu"]);
    assert_eq!(v["nonce"].to_string(), s(&case["lowest"]), "the GPU worker's answer on the applied stack");
    signal("-TERM", &daemon.id().to_string());
    let status = daemon.wait().expect("nonced ends");
    assert!(status.success(), "nonced on SIGTERM: {status}");

    // The systemd variant: the `nonced_config` output as the config file.
    let config = work.join("nonced.toml");
    std::fs::write(&config, s(&outputs["nonced_config"]["value"])).expect("config");
    let mut host_env: BTreeMap<String, String> = BTreeMap::new();
    host_env.insert("AWS_REGION".into(), REGION.into());
    host_env.insert("NONCE_STATE_DIR".into(), work.join("host-state").display().to_string());
    host_env.insert("NONCE_SOCKET".into(), run_dir.join("host.sock").display().to_string());
    let mut daemon = start_daemon(&host_env, Some(&config));
    let v = search(&host_env["NONCE_SOCKET"]);
    assert_eq!(v["nonce"].to_string(), s(&case["lowest"]), "the systemd variant's answer");
    signal("-TERM", &daemon.id().to_string());
    assert!(daemon.wait().expect("nonced ends").success());

    // Stop reached every task; every task ran as the worker role with the endpoint's credentials.
    drop(shim.stdin.take());
    let report: Value = serde_json::from_str(&lines.next().expect("report").expect("line")).expect("JSON");
    let _ = shim.wait();
    let tasks = report["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 5, "two workers for each of two searches, one GPU worker: {report}");
    let gpu_family = s(&outputs["worker_gpu_task_definition"]["value"]).to_string();
    let gpu_provider = s(&outputs["gpu_capacity_provider"]["value"]).to_string();
    let on_gpu: Vec<&Value> = tasks.iter().filter(|t| t["family"] == json!(gpu_family)).collect();
    assert_eq!(on_gpu.len(), 1, "the GPU search ran one GPU task: {report}");
    assert_eq!(on_gpu[0]["capacityProviderName"], json!(gpu_provider), "on the GPU capacity provider");
    let worker_role = s(&find("aws_iam_role.worker_task")["values"]["name"]).to_string();
    for t in tasks {
        assert_eq!(t["exit_code"], json!(0), "a worker that did not stop cleanly: {t}");
        assert_eq!(
            t["credentials_uri"],
            json!(format!("{creds}{worker_role}")),
            "each task runs as the worker role"
        );
        assert_eq!(t["static_keys"], json!(false), "no credentials but the endpoint's: {t}");
    }
    let left = python(&em, &format!(
        "import boto3, json\nprint(json.dumps(boto3.client('sqs').list_queues(QueueNamePrefix='{prefix}-inbox').get('QueueUrls', [])))"
    ));
    assert_eq!(left, json!([]), "inboxes left behind");

    // --- Least privilege, at the action level ------------------------------------------
    let mut called: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in std::fs::read_to_string(&calls).expect("call log").lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        let role = if v["role"] == json!("daemon") { "daemon_task" } else { "worker_task" };
        for op in v["calls"].as_object().expect("calls").keys() {
            called.entry(role.into()).or_default().insert(action_of(op));
        }
    }
    assert!(called.get("worker_task").is_some_and(|c| c.contains("sqs:SendMessage")), "{called:?}");
    let mut unused = Vec::new();
    assert!(called.get("daemon_task").is_some_and(|c| c.contains("ecs:RunTask")), "{called:?}");
    let policies = work.join("policies");
    std::fs::create_dir_all(&policies).expect("dir");
    for role in ["daemon_task", "worker_task", "daemon_execution", "worker_execution"] {
        let policy: Value =
            serde_json::from_str(s(&find(&format!("aws_iam_role_policy.{role}"))["values"]["policy"]))
                .expect("policy JSON");
        std::fs::write(policies.join(format!("{role}.json")), policy.to_string()).expect("write");
        let granted: Vec<String> = policy["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .flat_map(|st| match &st["Action"] {
                Value::String(a) => vec![a.clone()],
                Value::Array(a) => a.iter().map(|x| s(x).to_string()).collect(),
                _ => vec![],
            })
            .collect();
        let used = called.get(role).cloned().unwrap_or_default();
        for action in &used {
            assert!(
                granted.iter().any(|g| covers(g, action)),
                "{role} calls {action}, which its policy does not grant: {granted:?}"
            );
        }
        if role.ends_with("_task") {
            for g in &granted {
                let excused = GRANTED_FOR_OTHERS.iter().any(|(r, prefix, _)| {
                    *r == role && (g.starts_with(prefix.trim_end_matches('*')) || g == prefix)
                });
                let elsewhere = CALLED_ON_OTHER_PATHS.iter().find(|(r, a, _, _)| *r == role && a == g).map(
                    |(_, _, file, _)| {
                        let text = std::fs::read_to_string(
                            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(file),
                        )
                        .expect("the source file");
                        assert!(
                            text.contains(&sdk_call(g)),
                            "{file} no longer calls {} ({g}): drop the grant",
                            sdk_call(g)
                        );
                    },
                );
                if !(excused || elsewhere.is_some() || used.iter().any(|a| covers(g, a))) {
                    unused.push(format!("{role}: {g}"));
                }
            }
        }
        let lint = Command::new(&parliament)
            .arg("--file")
            .arg(policies.join(format!("{role}.json")))
            .arg("--json")
            .output()
            .expect("parliament runs");
        let findings = String::from_utf8_lossy(&lint.stdout);
        let serious: Vec<&str> = findings
            .lines()
            .filter(|l| {
                l.contains("UNKNOWN_ACTION")
                    || l.contains("UNKNOWN_PREFIX")
                    || l.contains("RESOURCE_MISMATCH")
                    || l.contains("UNKNOWN_CONDITION_FOR_ACTION")
            })
            .collect();
        assert!(serious.is_empty(), "parliament on {role}:\n{}", serious.join("\n"));
        eprintln!(
            "{role}: {} actions granted, {} called; parliament: {}",
            granted.len(),
            used.len(),
            if findings.trim().is_empty() {
                "no findings".to_string()
            } else {
                findings.lines().count().to_string() + " findings"
            }
        );
    }
    assert!(unused.is_empty(), "granted but never called here: {unused:?}\ncalled: {called:?}");
    let _ = std::fs::remove_dir_all(&work);
}
