#!/usr/bin/env python3
"""ECS shim for tests: moto records RunTask calls but never runs containers. This shim sets
up a cluster and a Fargate task definition in the emulator, then runs every task the
emulator records as a local `nonce-worker` process with the task's container overrides, and
stops it (SIGTERM, as ECS does) once the task's desired status is STOPPED.

It serves the ECS task metadata endpoint v4 (`$ECS_CONTAINER_METADATA_URI_V4/task`) for its
workers, so they name themselves after their task as on Fargate.

With --task-definition FAMILY it uses what is already in the emulator (a cluster and worker
task definition that Terraform applied) instead of making its own, and runs each task as
Fargate would: the container's environment and command from the task's own task definition
(the applied GPU worker's for a task RunTask started with it), the
launcher's overrides on top, and credentials of the task definition's task role served on
the ECS container credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, from the
emulator's STS AssumeRole), with no other credentials in the environment. `/creds/<role
name>` serves any role's credentials the same way (the test gives the daemon its own).

With --front it also stands in front of the emulator's ECS API as Fargate's limits would: a
proxy (its URL is `ecs_endpoint` in the settings line; give it to the launcher as
`AWS_ENDPOINT_URL_ECS`) that keeps the account's RunTask token bucket (`--quota BURST:RATE`,
a call beyond it gets a ThrottlingException, as AWS answers) and injects faults besides: every
Nth call throttled (`--throttle-every`), every Mth call answered "Capacity is unavailable at
this time" (`--no-capacity-every`). Everything else passes through. `--interrupt N` plays
Fargate Spot: the first N tasks get a SIGTERM `--interrupt-after` seconds after they start.

`--container-instances N` registers N EC2 instances in the cluster as their ECS agents would,
so tasks of an EC2 capacity provider (the GPU workers') can be placed.

Protocol with the test: first line on stdout is a JSON object with the settings to pass to
`noncectl` (cluster, task_definition, subnets, security_groups). When stdin closes, it stops
what still runs and prints a JSON report of every task: arn, env, tags, startedBy,
stop_called, exit_code, family.
"""
import argparse
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import boto3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--worker-bin", required=True)
    ap.add_argument("--task-definition", help="use this applied worker task definition (family)")
    ap.add_argument("--front", action="store_true", help="serve a rate-limiting, fault-injecting ECS proxy")
    ap.add_argument("--quota", default="20:20", help="the RunTask bucket the proxy keeps, BURST:RATE")
    ap.add_argument("--throttle-every", type=int, default=0)
    ap.add_argument("--no-capacity-every", type=int, default=0)
    ap.add_argument("--interrupt", type=int, default=0, help="SIGTERM the first N tasks, as Spot does")
    ap.add_argument("--interrupt-after", type=float, default=2.0)
    ap.add_argument("--container-instances", type=int, default=0,
                    help="register N EC2 container instances, as the ECS agent on N GPU instances would")
    args = ap.parse_args()

    # Keep tasks RUNNING until StopTask (moto would otherwise advance them on every read).
    req = urllib.request.Request(
        args.endpoint + "/moto-api/state-manager/set-transition",
        data=json.dumps({"model_name": "ecs::task", "transition": {"progression": "manual", "times": 1000000}}).encode(),
        method="POST",
    )
    urllib.request.urlopen(req).read()

    kw = dict(endpoint_url=args.endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))
    ecs = boto3.client("ecs", **kw)
    ec2 = boto3.client("ec2", **kw)
    iam = boto3.client("iam", **kw)
    sts = boto3.client("sts", **kw)
    applied = bool(args.task_definition)
    if applied:
        family = args.task_definition
    else:
        ecs.create_cluster(clusterName=args.cluster)
        family = args.cluster + "-worker"
        ecs.register_task_definition(
            family=family,
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="1024",
            memory="2048",
            containerDefinitions=[{"name": "nonce-worker", "image": "nonce-worker:test", "memory": 2048, "essential": True}],
        )
    # What each task runs, from its own task definition (a job's GPU workers have another).
    definitions = {}

    def definition(arn):
        if arn not in definitions:
            td = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
            container = td["containerDefinitions"][0]
            definitions[arn] = ({kv["name"]: kv["value"] for kv in container.get("environment", [])} if applied else {},
                                container.get("command", []) if applied else [],
                                td.get("taskRoleArn") if applied else None,
                                td.get("family"))
        return definitions[arn]

    # EC2 capacity: instances whose ECS agent registered them in the cluster (moto places EC2
    # tasks only on registered container instances).
    if args.container_instances:
        image = ec2.describe_images()["Images"][0]["ImageId"]
        launched = ec2.run_instances(ImageId=image, MinCount=args.container_instances,
                                     MaxCount=args.container_instances)["Instances"]
        for i in launched:
            ecs.register_container_instance(cluster=args.cluster,
                                            instanceIdentityDocument=json.dumps({"instanceId": i["InstanceId"]}))
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups()["SecurityGroups"][0]["GroupId"]

    def credentials(role_name):
        arn = iam.get_role(RoleName=role_name)["Role"]["Arn"]
        c = sts.assume_role(RoleArn=arn, RoleSessionName="ecs-shim")["Credentials"]
        return {"AccessKeyId": c["AccessKeyId"], "SecretAccessKey": c["SecretAccessKey"], "Token": c["SessionToken"],
                "Expiration": c["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"), "RoleArn": arn}

    arns = {}  # task id -> ARN, for the metadata endpoint

    class Metadata(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            parts = self.path.strip("/").split("/")
            if len(parts) == 2 and parts[0] == "creds":
                try:
                    body = json.dumps(credentials(parts[1])).encode()
                except Exception as e:  # noqa: BLE001 - an unknown role is a 404, with why
                    body = str(e).encode()
                    self.send_response(404)
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif len(parts) == 2 and parts[1] == "task" and parts[0] in arns:
                body = json.dumps({"TaskARN": arns[parts[0]], "Cluster": args.cluster}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    front = {"calls": 0, "accepted": [], "bucket_throttles": 0, "injected_throttles": 0, "no_capacity": 0,
             "strategies": {}}
    front_lock = threading.Lock()
    burst, rate = (float(x) for x in args.quota.split(":"))
    bucket = {"tokens": burst, "at": time.monotonic(), "start": None}
    JITTER = 0.1  # seconds

    class Front(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            target = self.headers.get("X-Amz-Target", "")
            if target.endswith(".RunTask"):
                with front_lock:
                    now = time.monotonic()
                    if bucket["start"] is None:
                        bucket["start"] = now
                    bucket["tokens"] = min(burst, bucket["tokens"] + (now - bucket["at"]) * rate)
                    bucket["at"] = now
                    front["calls"] += 1
                    n = front["calls"]
                    # A call may arrive up to JITTER early: the client paces by its own clock,
                    # and two calls sent half a second apart do not arrive exactly so (one
                    # signed or scheduled later on a busy machine). Its token is borrowed from
                    # the next, so the long-run rate is kept exactly.
                    if bucket["tokens"] < 1.0 - JITTER * rate:
                        front["bucket_throttles"] += 1
                        return self.reply(400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
                    bucket["tokens"] -= 1.0
                    if args.throttle_every and n % args.throttle_every == 0:
                        front["injected_throttles"] += 1
                        return self.reply(400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
                    if args.no_capacity_every and n % args.no_capacity_every == 0:
                        front["no_capacity"] += 1
                        reason = "Capacity is unavailable at this time. Please try again later or in a different availability zone"
                        return self.reply(200, {"tasks": [], "failures": [{"reason": reason}]})
                    front["accepted"].append(round(now - bucket["start"], 3))
                    request = json.loads(body or b"{}")
                    worker = next((kv["value"] for o in request.get("overrides", {}).get("containerOverrides", [])
                                   for kv in o.get("environment", []) if kv["name"] == "NONCE_WORKER_ID"), None)
                    strategy = request.get("capacityProviderStrategy") or []
                    front["strategies"][worker] = strategy[0]["capacityProvider"] if strategy else request.get("launchType")
            forward = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
            req = urllib.request.Request(args.endpoint + self.path, data=body, headers=forward, method="POST")
            try:
                with urllib.request.urlopen(req) as r:
                    status, data, ctype = r.status, r.read(), r.headers.get("Content-Type", "application/x-amz-json-1.1")
            except urllib.error.HTTPError as e:
                status, data, ctype = e.code, e.read(), e.headers.get("Content-Type", "application/x-amz-json-1.1")
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def reply(self, status, obj):
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            if status >= 400:
                self.send_header("x-amzn-ErrorType", obj["__type"])
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a):
            pass

    settings = {"cluster": args.cluster, "task_definition": family, "subnets": [subnet], "security_groups": [group],
                "credentials": f"http://127.0.0.1:{port}/creds/"}
    if args.front:
        proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        settings["ecs_endpoint"] = f"http://127.0.0.1:{proxy.server_address[1]}"
    print(json.dumps(settings), flush=True)

    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()

    tasks = {}  # arn -> record
    procs = {}  # arn -> Popen
    started_at = {}  # arn -> when its process started
    interrupted = set()
    while True:
        finishing = done.is_set()
        listed = []
        for status in ("RUNNING", "STOPPED"):
            listed += ecs.list_tasks(cluster=args.cluster, desiredStatus=status)["taskArns"]
        for i in range(0, len(listed), 100):
            for t in ecs.describe_tasks(cluster=args.cluster, tasks=listed[i:i + 100], include=["TAGS"])["tasks"]:
                arn = t["taskArn"]
                if arn not in tasks:
                    env = {}
                    for o in t.get("overrides", {}).get("containerOverrides", []):
                        for kv in o.get("environment", []):
                            env[kv["name"]] = kv["value"]
                    base_env, command, task_role, task_family = definition(t["taskDefinitionArn"])
                    tasks[arn] = {
                        "arn": arn,
                        "family": task_family,
                        "env": env,
                        "tags": {x["key"]: x["value"] for x in t.get("tags", [])},
                        "startedBy": t.get("startedBy"),
                        "launchType": t.get("launchType"),
                        "capacityProviderName": t.get("capacityProviderName"),
                        "stop_called": False,
                        "exit_code": None,
                        "interrupted": False,
                    }
                    task_id = arn.rsplit("/", 1)[-1]
                    arns[task_id] = arn
                    child_env = dict(os.environ)
                    if task_role:
                        # As on Fargate: the task role's credentials from the endpoint, no others.
                        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
                            child_env.pop(k, None)
                        role_name = task_role.rsplit("/", 1)[-1]
                        child_env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = f"http://127.0.0.1:{port}/creds/{role_name}"
                    child_env.update(base_env)
                    child_env.update(env)
                    child_env["ECS_CONTAINER_METADATA_URI_V4"] = f"http://127.0.0.1:{port}/{task_id}"
                    tasks[arn]["credentials_uri"] = child_env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
                    tasks[arn]["static_keys"] = "AWS_ACCESS_KEY_ID" in child_env
                    procs[arn] = subprocess.Popen([args.worker_bin, *command], env=child_env, stdin=subprocess.DEVNULL)
                    started_at[arn] = time.monotonic()
                if t.get("desiredStatus") == "STOPPED" and not tasks[arn]["stop_called"]:
                    tasks[arn]["stop_called"] = True
                    p = procs.get(arn)
                    if p and p.poll() is None:
                        p.send_signal(signal.SIGTERM)
        for arn, p in procs.items():
            if p.poll() is not None:
                tasks[arn]["exit_code"] = p.returncode
            elif (len(interrupted) < args.interrupt and arn not in interrupted and not tasks[arn]["stop_called"]
                  and time.monotonic() - started_at[arn] >= args.interrupt_after):
                # Fargate Spot taking its capacity back: SIGTERM, two minutes before the end.
                interrupted.add(arn)
                tasks[arn]["interrupted"] = True
                p.send_signal(signal.SIGTERM)
        if finishing:
            break
        time.sleep(0.2)

    for arn, p in procs.items():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if tasks[arn]["exit_code"] is None:
            tasks[arn]["exit_code"] = p.returncode
    report = {"tasks": list(tasks.values())}
    if args.front:
        with front_lock:
            report["front"] = front
    print(json.dumps(report), flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
