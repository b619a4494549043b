#!/usr/bin/env python3
"""Load on nonced's network listener from a second process (stdlib only), bounded in time.

Clients with tokens start, watch and cancel jobs and list them; silent clients open a
connection and send half a request; garbage clients send bytes that are not HTTP or not
JSON; a bad-token client keeps guessing; a flood holds more connections than one address
may; an oversized body is sent. Each kind comes from its own loopback address (127.0.0.N),
so the daemon's per-address limits apply to it alone. Writes counts as JSON to --report;
exits non-zero only if the script itself cannot run.
"""
import argparse
import http.client
import json
import os
import socket
import threading
import time

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--seconds", type=float, default=20)
p.add_argument("--report", required=True)
p.add_argument("--token", action="append", required=True)
args = p.parse_args()

HOST = "127.0.0.1"
stop_at = time.monotonic() + args.seconds
counts = {k: 0 for k in ["started", "watched", "cancelled", "listed", "quota_refused", "unexpected",
                         "unauthorized", "throttled", "slow_closed_by_daemon", "garbage_answered",
                         "parse_errors", "over_cap_refused", "oversize_rejected"]}
lock = threading.Lock()
notes = []


def count(key, n=1):
    with lock:
        counts[key] += n


def unexpected(what):
    with lock:
        counts["unexpected"] += 1
        if len(notes) < 20:
            notes.append(what)


def post(body, token=None, source="127.0.0.1", timeout=30):
    c = http.client.HTTPConnection(HOST, args.port, timeout=timeout, source_address=(source, 0))
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    try:
        c.request("POST", "/rpc", body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def rpc(token, method, params):
    status, body = post(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}), token)
    if status != 200:
        raise RuntimeError(f"{method}: HTTP {status}")
    return json.loads(body)


def job_client(token, n):
    while time.monotonic() < stop_at:
        try:
            req = {"block": f"load {n} {time.monotonic()}", "difficulty": 60, "max_time": "30s",
                   "workers": 1, "threads": 1}
            r = rpc(token, "search.start", req)
            if "error" in r:
                if r["error"]["code"] == -32001:
                    count("quota_refused")
                    time.sleep(0.3)
                    continue
                unexpected(f"start: {r}")
                continue
            count("started")
            job = r["result"]["job_id"]
            for _ in range(2):
                w = rpc(token, "search.wait", {"job_id": job, "timeout_s": 0.3})
                if w.get("result", {}).get("finished") is False:
                    count("watched")
                else:
                    unexpected(f"wait: {w}")
            c = rpc(token, "search.cancel", {"job_id": job})
            if c.get("result", {}).get("cancelling") is not True:
                unexpected(f"cancel: {c}")
                continue
            w = rpc(token, "search.wait", {"job_id": job, "timeout_s": 10})
            if w.get("result", {}).get("result", {}).get("outcome") == "cancelled":
                count("cancelled")
            else:
                unexpected(f"after cancel: {w}")
        except Exception as e:  # noqa: BLE001 - every failure is counted, none hides
            unexpected(f"job client: {e!r}")
            time.sleep(0.2)


def lister(token):
    while time.monotonic() < stop_at:
        try:
            r = rpc(token, "search.list", {})
            if isinstance(r.get("result"), list):
                count("listed")
            else:
                unexpected(f"list: {r}")
        except Exception as e:  # noqa: BLE001
            unexpected(f"lister: {e!r}")
        time.sleep(0.1)


def silent_client():
    """Half a request, then silence: the daemon must close it (idle cut-off)."""
    try:
        s = socket.create_connection((HOST, args.port), timeout=30, source_address=("127.0.0.4", 0))
        s.sendall(b"POST /rpc HTTP/1.1\r\nHost: x\r\n")
        t = time.monotonic()
        try:
            data = s.recv(4096)
            while data:
                data = s.recv(4096)
        except (ConnectionResetError, socket.timeout):
            pass
        if time.monotonic() - t < 25:
            count("slow_closed_by_daemon")
        s.close()
    except Exception as e:  # noqa: BLE001
        unexpected(f"silent: {e!r}")


def garbage_client(n):
    try:
        s = socket.create_connection((HOST, args.port), timeout=15, source_address=("127.0.0.5", 0))
        s.sendall(os.urandom(512) + b"\r\n\r\n")
        s.recv(4096)  # a 400, or the connection closed: either way an answer, not a hang
        count("garbage_answered")
        s.close()
    except (ConnectionResetError, BrokenPipeError):
        count("garbage_answered")
    except Exception as e:  # noqa: BLE001
        unexpected(f"garbage {n}: {e!r}")
    try:
        status, body = post("{not json", args.token[0], source="127.0.0.5")
        if status == 200 and json.loads(body)["error"]["code"] == -32700:
            count("parse_errors")
        else:
            unexpected(f"bad JSON: {status} {body[:100]!r}")
    except Exception as e:  # noqa: BLE001
        unexpected(f"bad JSON: {e!r}")


def guesser():
    for i in range(15):
        try:
            status, _ = post('{"jsonrpc":"2.0","id":1,"method":"search.list"}', f"guess-{i}", source="127.0.0.3")
            if status == 401:
                count("unauthorized")
            elif status == 429:
                count("throttled")
            else:
                unexpected(f"guess: HTTP {status}")
        except Exception as e:  # noqa: BLE001
            unexpected(f"guess: {e!r}")


def flood():
    """More connections than one address may hold: the extra ones are closed at once."""
    held = []
    for _ in range(80):
        try:
            held.append(socket.create_connection((HOST, args.port), timeout=5, source_address=("127.0.0.6", 0)))
        except OSError:
            count("over_cap_refused")
    time.sleep(0.5)
    for s in held:
        s.setblocking(False)
        try:
            if s.recv(1) == b"":
                count("over_cap_refused")
        except BlockingIOError:
            pass  # still open: within the cap
        except OSError:
            count("over_cap_refused")
    for s in held:
        s.close()


def oversize():
    body = '{"jsonrpc":"2.0","id":1,"method":"search.list","params":{"x":"' + "a" * (2 << 20) + '"}}'
    try:
        status, reply = post(body, args.token[0], source="127.0.0.7")
        if status == 413 or (status == 200 and b"too big" in reply.lower()):
            count("oversize_rejected")
        else:
            unexpected(f"oversize: HTTP {status} {reply[:100]!r}")
    except (ConnectionResetError, BrokenPipeError):
        count("oversize_rejected")
    except Exception as e:  # noqa: BLE001
        unexpected(f"oversize: {e!r}")


threads = []
for i, token in enumerate(args.token):
    for n in range(3):
        threads.append(threading.Thread(target=job_client, args=(token, i * 10 + n)))
    threads.append(threading.Thread(target=lister, args=(token,)))
threads += [threading.Thread(target=silent_client) for _ in range(10)]
threads += [threading.Thread(target=garbage_client, args=(n,)) for n in range(10)]
threads += [threading.Thread(target=guesser), threading.Thread(target=flood), threading.Thread(target=oversize)]
for t in threads:
    t.daemon = True
    t.start()
deadline = time.monotonic() + args.seconds + 40
for t in threads:
    t.join(max(0.1, deadline - time.monotonic()))
alive = sum(t.is_alive() for t in threads)
if alive:
    unexpected(f"{alive} client threads still running at the deadline")
counts["notes"] = notes
with open(args.report, "w") as f:
    json.dump(counts, f)
print(json.dumps(counts))
