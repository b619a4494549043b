#!/usr/bin/env python3
"""ECS shim for tests: moto records RunTask calls but never runs containers. This shim sets
up a cluster and a Fargate task definition in the emulator, then runs every task the
emulator records as a local `nonce-worker` process with the task's container overrides, and
stops it (SIGTERM, as ECS does) once the task's desired status is STOPPED.

It serves the ECS task metadata endpoint v4 (`$ECS_CONTAINER_METADATA_URI_V4/task`) for its
workers, so they name themselves after their task as on Fargate.

With --task-definition FAMILY it uses what is already in the emulator (a cluster and worker
task definition that Terraform applied) instead of making its own, and runs each task as
Fargate would: the container's environment and command from that task definition, the
launcher's overrides on top, and credentials of the task definition's task role served on
the ECS container credentials endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, from the
emulator's STS AssumeRole), with no other credentials in the environment. `/creds/<role
name>` serves any role's credentials the same way (the test gives the daemon its own).

Protocol with the test: first line on stdout is a JSON object with the settings to pass to
`noncectl` (cluster, task_definition, subnets, security_groups). When stdin closes, it stops
what still runs and prints a JSON report of every task: arn, env, tags, startedBy,
stop_called, exit_code.
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
import urllib.request

import boto3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--worker-bin", required=True)
    ap.add_argument("--task-definition", help="use this applied worker task definition (family)")
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
    base_env, task_role = {}, None
    if args.task_definition:
        family = args.task_definition
        td = ecs.describe_task_definition(taskDefinition=family)["taskDefinition"]
        container = td["containerDefinitions"][0]
        base_env = {kv["name"]: kv["value"] for kv in container.get("environment", [])}
        command = container.get("command", [])
        task_role = td.get("taskRoleArn")
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
        command = []
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

    print(json.dumps({"cluster": args.cluster, "task_definition": family, "subnets": [subnet], "security_groups": [group],
                      "credentials": f"http://127.0.0.1:{port}/creds/"}), flush=True)

    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()

    tasks = {}  # arn -> record
    procs = {}  # arn -> Popen
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
                    tasks[arn] = {
                        "arn": arn,
                        "env": env,
                        "tags": {x["key"]: x["value"] for x in t.get("tags", [])},
                        "startedBy": t.get("startedBy"),
                        "launchType": t.get("launchType"),
                        "stop_called": False,
                        "exit_code": None,
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
                if t.get("desiredStatus") == "STOPPED" and not tasks[arn]["stop_called"]:
                    tasks[arn]["stop_called"] = True
                    p = procs.get(arn)
                    if p and p.poll() is None:
                        p.send_signal(signal.SIGTERM)
        for arn, p in procs.items():
            if p.poll() is not None:
                tasks[arn]["exit_code"] = p.returncode
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
    print(json.dumps({"tasks": list(tasks.values())}), flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
