//! The dashboard in a real browser: headless chromium (Debian's), driven by playwright-core
//! (npm), against a real `nonced` on loopback with `nonce-worker` processes. The page must
//! show the job, fill its map, show a SIGSTOPped worker stale and its range going to the
//! others, and end with the reference nonce (`tests/browser/dashboard.mjs`); and, checked by
//! the script below ([`CHECKS`]): say when there are no jobs, show each job's owner, label
//! its axes with the exact range, zoom onto the frontier, call a worker stale when the
//! daemon's `stale_after_s` says so, end the subscription of a job it leaves, show a 64-bit
//! job's nonce exactly, say a finished job has no workers, show the cost, and give a resumed
//! job this life's rate. `scripts/test` installs chromium and playwright-core and sets
//! `NONCE_TEST_PLAYWRIGHT_DIR` and `NONCE_TEST_CHROMIUM`; without them this test fails.

mod common;
use common::http::{free_port, nonced_in, rpc_over_http, sha256_hex, wait_for_listener};
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The lowest nonce of `sup-a` at difficulty 27 (as in tests/tests/supervision.rs).
const REFERENCE: u64 = 213_623_294;
const ADMIN: &str = "dashboard-admin-token-0123456789abcdef0123456789abcdef012345";
const ALICE: &str = "dashboard-alice-token-0123456789abcdef0123456789abcdef012345";
/// Where job A's range starts: below [`REFERENCE`], so the answer is the same, with less
/// work than from 0 (and an axis that does not start at 0).
const A_START: &str = "80000000";
/// A 64-bit range whose nonces a JS Number cannot hold (doubles are 2048 apart up there).
const WIDE_START: &str = "9223372036854775809";
const WIDE_END: &str = "18446744073709551615";

/// The checks of the newer parts of the page, run by node with playwright-core. One script,
/// two phases: `empty` (before any job) and `main` (job A running, B and C finished). What it
/// is given comes in `NONCE_CHECKS` (JSON). Every check runs even when an earlier one failed,
/// so one run lists all that is wrong; it exits 0 when everything was seen.
const CHECKS: &str = r##"
import { createRequire } from "node:module";
import path from "node:path";

const want = JSON.parse(process.env.NONCE_CHECKS);
const require = createRequire(path.join(process.env.NONCE_PLAYWRIGHT_DIR, "node_modules", "x.js"));
const { chromium } = require("playwright-core");
const step = (msg) => console.log(`[${new Date().toISOString().slice(11, 23)}] ${msg}`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const failures = [];
const check = (ok, what) => {
  if (!ok) throw new Error(what);
  step(`ok: ${what}`);
};
// One check: its failure is recorded, and the next check still runs.
const attempt = async (name, body) => {
  try {
    await body();
  } catch (e) {
    failures.push(`${name}: ${e.message.split("\n")[0]}`);
    step(`FAILED ${name}: ${e.message.split("\n")[0]}`);
  }
};

const browser = await chromium.launch({
  executablePath: process.env.NONCE_CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Every JSON-RPC frame of the page's WebSocket, both ways, with when it passed.
  const frames = [];
  page.on("websocket", (ws) => {
    const keep = (dir) => (f) => { try { frames.push({ t: Date.now(), dir, msg: JSON.parse(f.payload) }); } catch { /* not JSON */ } };
    ws.on("framesent", keep("out"));
    ws.on("framereceived", keep("in"));
  });
  await page.goto(`${want.url}/#token=${want.token}`);
  await page.waitForSelector("#app:not([hidden])", { timeout: 15000 });
  const text = (sel) => page.$eval(sel, (e) => e.textContent.trim());
  const axis = (sel) => page.$eval(sel, (a) => ({
    start: a.querySelector(".axis-start").textContent, end: a.querySelector(".axis-end").textContent,
    name: a.querySelector(".axis-name").textContent, shown: a.getBoundingClientRect().height > 0,
  }));

  if (want.phase === "empty") {
    await attempt("empty job list", async () => {
      await page.waitForSelector("#jobs tbody tr.empty", { timeout: 10000 });
      const said = await text("#jobs tbody tr.empty");
      check(said.startsWith("no jobs yet"), `an empty job list says so ("${said}")`);
    });
  } else {
    const row = (job) => `#jobs tbody tr[data-job="${want[job]}"]`;
    await page.waitForSelector(`${row("a")}[data-state=running]`, { timeout: 20000 });
    await page.waitForSelector(`${row("b")}[data-state=finished]`, { timeout: 5000 });
    await page.waitForSelector(`${row("c")}[data-state=finished]`, { timeout: 5000 });
    const heads = await page.$$eval("#jobs thead th", (ths) => ths.map((th) => th.textContent.trim()));
    const column = (name) => heads.indexOf(name);
    const cellOf = (job, name) => page.$eval(row(job), (tr, i) => tr.children[i]?.textContent.trim(), column(name));
    await attempt("owner column", async () => {
      check(column("owner") >= 0, `the job list has an owner column (${heads.join(", ")})`);
      const owners = [await cellOf("a", "owner"), await cellOf("b", "owner"), await cellOf("c", "owner")];
      check(same(owners, ["ops", "alice", "ops"]), `the admin sees every job with its owner (${owners.join(", ")})`);
    });

    // Job A, running, is selected by itself.
    await page.waitForFunction((a) => document.querySelector("#detail-id")?.textContent === a, want.a, { timeout: 10000 });
    await page.waitForFunction(() => Number(document.querySelector("#map")?.dataset.done) > 0, null, { timeout: 15000 });
    await attempt("map axis", async () => {
      await page.waitForSelector("#map-axis", { timeout: 5000 });
      const ax = await axis("#map-axis");
      check(ax.shown && ax.start === want.a_start && ax.end === "4294967296" && /^nonce\b/.test(ax.name),
        `the map's axis: ${ax.start} .. ${ax.end} ("${ax.name}")`);
    });
    // The zoom: from the range start to just past every nonce done or held, a small part of it.
    await attempt("zoom strip", async () => {
      await page.waitForFunction(() => document.querySelector("#zoom")?.dataset.end, null, { timeout: 5000 });
      const zoom = await page.evaluate(() => ({
        done: Number(document.querySelector("#zoom").dataset.done),
        mapDone: Number(document.querySelector("#map").dataset.done),
        shown: document.querySelector("#zoom").getBoundingClientRect().height > 0,
        held: [...document.querySelectorAll("#workers tbody tr")].flatMap((tr) =>
          tr.children[2].textContent.split(", ").filter((r) => r.includes("..")).map((r) => r.split("..")[1].replaceAll(",", ""))),
      }));
      const ax = await axis("#zoom-axis");
      const highest = zoom.held.reduce((m, e) => (BigInt(e) > m ? BigInt(e) : m), 0n);
      const lo = BigInt(want.a_start);
      check(zoom.shown && ax.shown && ax.start === want.a_start && /^\d+$/.test(ax.end) && (BigInt(ax.end) - lo) * 10n < 4294967296n - lo
        && BigInt(ax.end) >= highest && zoom.done > zoom.mapDone,
        `the zoom strip: ${ax.start} .. ${ax.end}, past the highest held nonce ${highest}; ${zoom.done} done there, ${zoom.mapDone} of the range`);
    });
    await attempt("cost", async () => {
      await page.waitForSelector("#detail-cost", { timeout: 5000 });
      const cost = await page.$eval("#detail-cost", (c) => ({ text: c.textContent, basis: c.dataset.basis }));
      check(cost.basis === "local" && cost.text.includes("local"), `the cost of a process job: "${cost.text}"`);
    });

    // Stale is the daemon's call (stale_after_s: 1.5 x the 1 s heartbeat here), not a fixed 3 s:
    // the stopped worker turns red while it is still live, before 3 s of silence.
    await attempt("stale threshold stated", async () => {
      await page.waitForSelector("#stale-note", { timeout: 5000 });
      const note = await text("#stale-note");
      check(note.includes(`${want.stale_after} s`), `the page states the daemon's threshold ("${note}")`);
    });
    await page.evaluate(() => {
      window.seen = [];
      const body = document.querySelector("#workers tbody");
      new MutationObserver(() => {
        for (const tr of body.querySelectorAll("tr[data-worker]")) {
          window.seen.push({ worker: tr.dataset.worker, health: tr.dataset.health, silent: parseFloat(tr.children[4].textContent), stale: tr.classList.contains("stale") });
        }
      }).observe(body, { childList: true });
    });
    process.kill(want.stop_pid, "SIGSTOP");
    step(`SIGSTOP ${want.stop_pid}`);
    await page.waitForSelector("#workers tr[data-health=stalled]", { timeout: 20000 });
    await attempt("stale from stale_after_s", async () => {
      const stopped = await page.$eval("#workers tr[data-health=stalled]", (tr) => tr.dataset.worker);
      const seen = await page.evaluate(() => window.seen);
      const wrong = seen.filter((s) => s.health === "live" && s.stale !== s.silent > want.stale_after);
      const early = seen.filter((s) => s.worker === stopped && s.health === "live" && s.stale).map((s) => s.silent);
      check(wrong.length === 0, `every live worker was shown stale exactly when silent past ${want.stale_after} s (wrong: ${JSON.stringify(wrong.slice(0, 3))})`);
      check(early.length > 0 && Math.min(...early) > want.stale_after && Math.min(...early) < 3,
        `${stopped} was shown stale while live, from ${Math.min(...early)} s of silence`);
    });

    // Leaving A for B ends A's subscription: the page says so and the notifications stop.
    const subscribed = frames.find((f) => f.dir === "out" && f.msg.method === "search.subscribe" && f.msg.params?.job_id === want.a);
    const sub = frames.find((f) => f.dir === "in" && subscribed && f.msg.id === subscribed.msg.id)?.msg.result;
    await page.click(row("b"));
    await page.waitForFunction((b) => document.querySelector("#detail-id").textContent === b
      && document.querySelector("#detail").dataset.outcome !== "running", want.b, { timeout: 10000 });
    await attempt("unsubscribe on switch", async () => {
      check(sub !== undefined, `job A was subscribed to (${JSON.stringify(sub)})`);
      let ended = null;
      for (let k = 0; k < 50 && !ended; k++) {
        const asked = frames.find((f) => f.dir === "out" && f.msg.method === "search.unsubscribe" && same(f.msg.params, [sub]));
        ended = asked && frames.find((f) => f.dir === "in" && f.msg.id === asked.msg.id);
        if (!ended) await sleep(100);
      }
      check(ended && ended.msg.result === true, `search.unsubscribe ended A's subscription (${JSON.stringify(ended?.msg)})`);
      await sleep(2500);
      const late = frames.filter((f) => f.dir === "in" && f.msg.method === "search.progress" && same(f.msg.params?.subscription, sub) && f.t > ended.t);
      check(late.length === 0, `no notification of A came after it (${late.length})`);
    });

    // B: alice's finished 64-bit job; nothing a double cannot hold is rounded.
    await attempt("exact 64-bit axis", async () => {
      const ax = await axis("#map-axis");
      check(ax.start === want.wide_start && ax.end === want.wide_end, `B's axis is exact: ${ax.start} .. ${ax.end}`);
    });
    await attempt("exact 64-bit nonce", async () => {
      const nonce = await page.$eval("#detail", (d) => d.dataset.nonce);
      const found = await cellOf("b", "found");
      check(nonce === want.b_nonce && found === want.b_nonce, `B's nonce is exact: ${nonce} and ${found} (the daemon's ${want.b_nonce})`);
    });
    await attempt("empty workers", async () => {
      const workers = await text("#workers tbody");
      check(workers === "no workers (the job has finished)", `a finished job's workers: "${workers}"`);
    });
    await attempt("empty events", async () => {
      const events = await text("#events");
      check(events.startsWith("no supervision events"), `a job without events: "${events}"`);
    });
    await attempt("no zoom once finished", async () => {
      const zoomed = await text("#zoom-empty");
      check(!(await page.$eval("#zoom-empty", (e) => e.hidden)) && zoomed.includes("finished"), `no zoom once finished: "${zoomed}"`);
    });
    await attempt("cost of a finished job", async () => {
      const cost = await page.$eval("#detail-cost", (c) => ({ text: c.textContent, basis: c.dataset.basis }));
      check(cost.basis === "local" && cost.text.includes("local"), `the cost of a threads job: "${cost.text}"`);
    });

    // C: resumed after a restart, then cancelled: its rate is this life's nonces over this
    // life's time, not all its nonces over this life's second.
    await page.click(row("c"));
    await page.waitForFunction((c) => document.querySelector("#detail-id").textContent === c
      && document.querySelector("#detail").dataset.outcome !== "running", want.c, { timeout: 10000 });
    await attempt("a resumed job's rate", async () => {
      await page.waitForFunction(() => document.querySelector("#detail").dataset.rate, null, { timeout: 5000 });
      const resumed = await page.$eval("#detail-resumed", (e) => (e.hidden ? "" : e.textContent));
      const rate = Number(await page.$eval("#detail", (d) => d.dataset.rate));
      check(resumed.includes("resumed") && rate > 0 && rate <= 2 * want.c_rate,
        `C's rate is this life's: ${rate}/s (its worker did ${want.c_rate}/s; the daemon's result says ${want.c_result_rate}/s); "${resumed}"`);
    });
  }
  if (errors.length) failures.push(`errors in the page: ${errors.join("; ")}`);
} catch (e) {
  failures.push(e.message.split("\n")[0]);
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(`dashboard checks failed:\n  ${failures.join("\n  ")}`);
  process.exit(1);
}
"##;

fn need(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run scripts/test, which installs chromium and playwright-core and sets it")
    })
}

/// What the test started, ended however the test ends (a failed assertion included): the
/// daemon, the worker processes it stopped, the state directory.
struct Cleanup {
    daemon: Option<Child>,
    stopped: Vec<String>,
    dir: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for pid in &self.stopped {
            let _ = Command::new("kill").args(["-KILL", pid]).stderr(Stdio::null()).status();
        }
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_daemon(dir: &Path, port: u16) -> Child {
    let child = nonced_in(dir)
        // The portable kernel keeps the search long enough to watch (~40 s of job A here).
        .env("NONCE_KERNEL", "portable")
        .env("NONCE_WORKER_BIN", bin("nonce-worker"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nonced starts");
    wait_for_listener(port);
    child
}

/// Runs `script` in node with playwright-core and chromium; asserts it exits 0.
fn browser(script: &Path, args: &[&str], env: &[(&str, String)], what: &str) {
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .env("NONCE_PLAYWRIGHT_DIR", need("NONCE_TEST_PLAYWRIGHT_DIR"))
        .env("NONCE_CHROMIUM", need("NONCE_TEST_CHROMIUM"))
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("node runs");
    eprintln!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser did not see {what} (above)");
}

fn job_id(started: &Value) -> String {
    started["result"]["job_id"].as_str().unwrap_or_else(|| panic!("{started}")).to_string()
}

#[test]
fn the_dashboard_shows_a_stall_a_reshard_and_the_answer_in_a_real_browser() {
    let playwright = need("NONCE_TEST_PLAYWRIGHT_DIR");
    let chromium = need("NONCE_TEST_CHROMIUM");
    assert!(
        PathBuf::from(&playwright).join("node_modules/playwright-core").exists(),
        "no playwright-core in {playwright}"
    );
    assert!(PathBuf::from(&chromium).exists(), "no chromium at {chromium}");

    let dir = std::env::temp_dir().join(format!("nonced-dashboard-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let mut cleanup = Cleanup { daemon: None, stopped: Vec::new(), dir: dir.clone() };
    let port = free_port();
    std::fs::write(
        dir.join("nonced.toml"),
        format!(
            "launcher = \"process\"\n[http]\nlisten = \"127.0.0.1:{port}\"\nplain = true\n\n\
             [[users]]\nname = \"ops\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n\n\
             [[users]]\nname = \"alice\"\nrole = \"user\"\ntoken_sha256 = \"{}\"\n",
            sha256_hex(ADMIN),
            sha256_hex(ALICE)
        ),
    )
    .expect("config");
    let checks = dir.join("checks.mjs");
    std::fs::write(&checks, CHECKS).expect("checks.mjs");
    let url = format!("http://127.0.0.1:{port}");
    cleanup.daemon = Some(start_daemon(&dir, port));

    // Before any job: the page says there is none.
    let empty = json!({"phase": "empty", "url": url, "token": ADMIN}).to_string();
    browser(&checks, &[], &[("NONCE_CHECKS", empty)], "the empty job list");

    // Job C runs a while, the daemon dies (SIGKILL) and comes back: C resumes from the journal
    // and is cancelled at once, with most of its nonces from the earlier life.
    let c = job_id(&rpc_over_http(
        port,
        ADMIN,
        "search.start",
        json!({"block": "resume-c", "difficulty": 200, "workers": 1, "launcher": "threads"}),
    ));
    // Three seconds or more of C's work journaled, then a second or so in the next life: a
    // rate of all its nonces over this life's time would be several times its worker's.
    let t = Instant::now();
    let c_rate = loop {
        let journal = std::fs::read_to_string(dir.join("state/journal.jsonl")).unwrap_or_default();
        let status = rpc_over_http(port, ADMIN, "search.status", json!({"job_id": c}));
        let rate = status["result"]["rate"].as_f64().unwrap_or(0.0);
        let journaled = journal.lines().any(|l| l.contains("\"type\":\"progress\"") && l.contains(&c));
        if journaled && rate > 0.0 && t.elapsed() > Duration::from_millis(3500) {
            break rate;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "no progress of C journaled: {status}");
        std::thread::sleep(Duration::from_millis(200));
    };
    if let Some(mut d) = cleanup.daemon.take() {
        d.kill().expect("SIGKILL");
        let _ = d.wait();
    }
    std::fs::remove_file(dir.join("nonced.sock")).ok(); // a crash leaves the socket behind
    cleanup.daemon = Some(start_daemon(&dir, port));
    let resumed = rpc_over_http(port, ADMIN, "search.status", json!({"job_id": c}));
    let resumed = resumed["result"]["searched"].as_u64().unwrap_or_else(|| panic!("{resumed}"));
    assert!(resumed > 0, "C resumed from the journal");
    let t = Instant::now();
    while rpc_over_http(port, ADMIN, "search.status", json!({"job_id": c}))["result"]["searched"]
        .as_u64()
        .unwrap_or(0)
        <= resumed
        || t.elapsed() < Duration::from_millis(800)
    {
        assert!(t.elapsed() < Duration::from_secs(20), "C made no progress after the restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cancel = rpc_over_http(port, ADMIN, "search.cancel", json!({"job_id": c}));
    assert_eq!(cancel["result"]["cancelling"], json!(true), "{cancel}");
    let r = rpc_over_http(port, ADMIN, "search.wait", json!({"job_id": c, "timeout_s": 30}));
    assert_eq!(r["result"]["result"]["outcome"], json!("cancelled"), "{r}");
    let c_result_rate = r["result"]["result"]["rate"].as_f64().unwrap_or(0.0);

    // Job B: alice's, over a 64-bit range, done in a moment.
    let b = job_id(&rpc_over_http(
        port,
        ALICE,
        "search.start",
        json!({"block": "wide-b", "encoding": "be64", "difficulty": 2, "mode": "lowest",
            "range": format!("{WIDE_START}..{WIDE_END}"), "workers": 1, "launcher": "threads"}),
    ));
    let r = rpc_over_http(port, ALICE, "search.wait", json!({"job_id": b, "timeout_s": 30}));
    assert_eq!(r["result"]["result"]["outcome"], json!("found"), "{r}");
    let b_nonce = r["result"]["result"]["nonce"].as_u64().unwrap_or_else(|| panic!("{r}")).to_string();

    // Job A: the long one, on three worker processes.
    let a = job_id(&rpc_over_http(
        port,
        ADMIN,
        "search.start",
        json!({"block": "sup-a", "difficulty": 27, "mode": "lowest", "range": format!("{A_START}.."),
            "workers": 3, "threads": 1, "heartbeat": "1s", "stall_timeout": "4s"}),
    ));
    let daemon_pid = cleanup.daemon.as_ref().map_or(0, Child::id);
    let pids = worker_pids(daemon_pid, 3);
    assert_eq!(pids.len(), 3, "three worker processes");
    cleanup.stopped = vec![pids[0].clone(), pids[1].clone()];

    let main = json!({"phase": "main", "url": url, "token": ADMIN, "a": a, "b": b, "c": c,
        "stop_pid": pids[0].parse::<u32>().expect("a pid"), "b_nonce": b_nonce, "a_start": A_START,
        "wide_start": WIDE_START, "wide_end": WIDE_END, "c_rate": c_rate, "c_result_rate": c_result_rate,
        // What the daemon's threshold is for A (1.5 x its 1 s heartbeat): the page must take it
        // from search.map; the script only judges what the page did with it.
        "stale_after": 1.5});
    browser(
        &checks,
        &[],
        &[("NONCE_CHECKS", main.to_string())],
        "the owners, axes, zoom, staleness, cost and the rest",
    );

    // The worker stopped above dies, so the next script's stall is the one it makes itself.
    let _ = Command::new("kill").args(["-KILL", &pids[0]]).status();

    let screenshot = std::env::var("NONCE_DASHBOARD_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| dir.join("dashboard.png"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("browser/dashboard.mjs");
    let shot = screenshot.to_str().expect("a UTF-8 screenshot path");
    let nonce = REFERENCE.to_string();
    browser(
        &script,
        &["--url", &url, "--token", ADMIN, "--stop-pid", &pids[1], "--nonce", &nonce, "--screenshot", shot],
        &[],
        "the stall, the re-shard and the answer",
    );
    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real screenshot");
    // The daemon agrees with what the page showed.
    let r = rpc_over_http(port, ADMIN, "search.wait", json!({"job_id": a, "timeout_s": 30}));
    assert_eq!(r["result"]["result"]["nonce"], json!(REFERENCE), "{r}");
    assert!(r["result"]["result"]["reshards"].as_u64().unwrap_or(0) >= 1, "{r}");
}
