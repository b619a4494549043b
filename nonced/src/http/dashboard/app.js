// The dashboard: log in with a token (or #token=... in the URL, which never reaches the
// server), then keep the jobs table, the selected job's map, workers, chart and events live
// over one WebSocket: the job's search.progress notifications drive its redraws. What the
// daemon knows better (when a worker is stale, what a job costs, a resumed job's rate) is
// taken from search.map, not decided here.
import { connect, AuthError } from "./rpc.js";
import { drawMap, drawChart, workerColor, big } from "./draw.js";

const $ = (sel) => document.querySelector(sel);
const JOB_COLUMNS = 11;
const MAP_ROWS = 4;
// The selected job, its subscription's id (null when none is open), and the last list.
let client = null, selected = null, subscription = null, lastMap = null, jobsById = new Map();

function fmtRate(r) {
  r = Number(r) || 0;
  return r >= 1e9 ? `${(r / 1e9).toFixed(2)} G/s` : `${(r / 1e6).toFixed(1)} M/s`;
}
// Counts and nonces, exact (BigInt), grouped by thousands.
function fmtNum(n) { return big(n).toLocaleString("en"); }
function fmtSecs(s) {
  if (!isFinite(s)) return "";
  return s < 90 ? `${s.toFixed(0)} s` : s < 5400 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
}
// part / whole as a Number, computed in BigInt (both may pass 2^53).
function share(part, whole) { return whole > 0n ? Number((part * 1_000_000n) / whole) / 1e6 : 0; }
function cell(tr, text) { const td = document.createElement("td"); td.textContent = text ?? ""; tr.appendChild(td); return td; }
// A table body's one row saying why it is empty.
function emptyRow(body, columns, text) {
  const tr = document.createElement("tr");
  tr.className = "empty";
  const td = cell(tr, text);
  td.colSpan = columns;
  body.replaceChildren(tr);
}

function showLogin(message) {
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
}

async function start(token) {
  try {
    client = await connect(token, onNotification, () => {
      $("#connection").textContent = "disconnected; retrying";
      // Subscriptions belong to the connection: they ended with it.
      client = null;
      subscription = null;
      setTimeout(() => start(token), 2000);
    });
  } catch (e) {
    if (e instanceof AuthError) { sessionStorage.removeItem("nonce-token"); showLogin(e.message); return; }
    $("#connection").textContent = `cannot connect: ${e.message}; retrying`;
    setTimeout(() => start(token), 2000);
    return;
  }
  $("#connection").textContent = "live";
  $("#login").hidden = true;
  $("#app").hidden = false;
  if (selected) { const j = selected; selected = null; select(j); }
  refreshJobs();
}

async function refreshJobs() {
  if (!client) return;
  let jobs;
  try { jobs = await client.call("search.list"); } catch { return; }
  jobsById = new Map(jobs.map((j) => [j.job_id, j]));
  const body = $("#jobs tbody");
  $("#no-selection").hidden = selected !== null || jobs.length === 0;
  if (!jobs.length) {
    emptyRow(body, JOB_COLUMNS, "no jobs yet: start one with noncectl search (or search.start)");
    return;
  }
  body.replaceChildren();
  jobs.sort((a, b) => (a.state === b.state ? 0 : a.state === "running" ? -1 : 1));
  for (const j of jobs) {
    const tr = document.createElement("tr");
    tr.dataset.job = j.job_id;
    tr.dataset.state = j.state;
    if (j.job_id === selected) tr.classList.add("selected");
    const total = big(j.total), searched = big(j.searched);
    cell(tr, j.job_id);
    // Jobs journaled before jobs had owners have none (only admins see those).
    cell(tr, j.owner ?? "(unknown)").className = "owner";
    cell(tr, j.puzzle);
    cell(tr, j.mode);
    cell(tr, j.state === "running" ? "running" : j.outcome);
    cell(tr, total > 0n ? `${fmtNum(searched)} / ${fmtNum(total)} (${(100 * share(searched, total)).toFixed(1)}%)` : fmtNum(searched));
    cell(tr, j.rate ? fmtRate(j.rate) : "");
    cell(tr, j.state === "running" && j.rate > 0 && total > 0n ? fmtSecs(Number(total - searched) / j.rate) : "");
    cell(tr, j.workers);
    cell(tr, fmtSecs(j.elapsed_s));
    const found = j.found || (j.nonce != null ? [j.nonce] : []);
    cell(tr, found.length ? found.slice(0, 5).map(String).join(", ") : j.state === "running" ? "" : "none");
    tr.addEventListener("click", () => select(j.job_id));
    body.appendChild(tr);
  }
  if (!selected) {
    const running = jobs.find((j) => j.state === "running");
    if (running) select(running.job_id);
  }
}

// Ends the open subscription, if any: the server would otherwise keep notifying about a job
// nobody looks at, a wait a second, until that job ends.
function unsubscribe() {
  const id = subscription;
  subscription = null;
  if (id !== null && client) client.unsubscribe(id).catch(() => { /* the connection is gone */ });
}

async function select(job) {
  if (!client || job === selected) return;
  selected = job;
  unsubscribe();
  lastMap = null;
  for (const tr of document.querySelectorAll("#jobs tbody tr")) tr.classList.toggle("selected", tr.dataset.job === job);
  $("#no-selection").hidden = true;
  $("#detail").hidden = false;
  $("#detail-id").textContent = job;
  await redraw();
  if (job !== selected || !lastMap || lastMap.finished || !client) return;
  let id;
  try { id = await client.subscribe(job); } catch { return; /* finished meanwhile */ }
  // Another job was picked while this subscription was being opened.
  if (job !== selected) { client?.unsubscribe(id).catch(() => {}); return; }
  subscription = id;
}

function onNotification(method, params) {
  if (method !== "search.progress" || subscription === null || params.subscription !== subscription) return;
  // The last notification of a finished job: the server has ended the subscription.
  if (params.result && params.result.finished) subscription = null;
  redraw();
  if (!subscription) refreshJobs();
}

// The axis under a strip: its first nonce and its end (exclusive) exactly as the daemon sent
// them, and what the axis is.
function setAxis(axis, start, end, name) {
  axis.querySelector(".axis-start").textContent = start;
  axis.querySelector(".axis-end").textContent = end;
  axis.querySelector(".axis-name").textContent = name;
  axis.dataset.start = start;
  axis.dataset.end = end;
}

// Where the zoom ends: a little past the highest nonce done or assigned (the frontier), with
// its length rounded up to two significant digits so the label stays readable.
function zoomEnd(lo, hi, frontier) {
  let raw = ((frontier - lo) * 21n) / 20n + 1n;
  const digits = raw.toString().length;
  if (digits > 2) {
    const unit = 10n ** BigInt(digits - 2);
    raw = ((raw + unit - 1n) / unit) * unit;
  }
  return lo + raw < hi ? lo + raw : hi;
}

function drawZoom(map, workers, lo, hi) {
  const zoom = $("#zoom"), axis = $("#zoom-axis"), empty = $("#zoom-empty");
  let frontier = null;
  for (const i of map.intervals) {
    if (i.state !== "done" && i.state !== "assigned") continue;
    const end = big(i.end);
    if (frontier === null || end > frontier) frontier = end;
  }
  const why = map.finished ? "no frontier to zoom on (the job has finished)" : frontier === null ? "no frontier yet: nothing is done or assigned" : null;
  zoom.hidden = axis.hidden = why !== null;
  empty.hidden = why === null;
  $("#zoom-note").textContent = "";
  if (why !== null) {
    empty.textContent = why;
    return;
  }
  const end = zoomEnd(lo, hi, frontier);
  drawMap(zoom, map, workers, lo, end, 1, false);
  let done = 0n;
  for (const i of map.intervals) {
    if (i.state !== "done") continue;
    const a = big(i.start), b = big(i.end) < end ? big(i.end) : end;
    if (b > a) done += b - a;
  }
  zoom.dataset.start = lo.toString();
  zoom.dataset.end = end.toString();
  zoom.dataset.done = share(done, end - lo).toFixed(4);
  const of = share(end - lo, hi - lo);
  $("#zoom-note").textContent = end === hi ? "(the work spans the whole range)" : `(${(100 * of).toPrecision(2)}% of the range)`;
  setAxis(axis, lo.toString(), end.toString(), `nonce: range start to just past the frontier, the highest nonce done or assigned (${fmtNum(frontier)})`);
}

function costText(map) {
  const vcpu = `${(Number(map.vcpu_seconds) || 0).toFixed(0)} vCPU-s`;
  if (map.cost_basis === "local") return `cost: local (workers on the daemon's host, ${map.launcher} launcher; ${vcpu})`;
  const usd = Number(map.cost_usd) || 0;
  return `cost so far: $${usd < 1 ? usd.toFixed(4) : usd.toFixed(2)} (${vcpu} at $${Number(map.usd_per_vcpu_second).toPrecision(3)}/vCPU-s, Fargate list price of ${map.prices_as_of})`;
}

async function redraw() {
  const job = selected;
  if (!client || job === null) return;
  let map;
  try { map = await client.call("search.map", { job_id: job }); } catch { return; }
  if (job !== selected) return;
  lastMap = map;
  const workers = map.workers.map((w) => w.worker);
  const lo = big(map.range[0]), hi = big(map.range[1]), span = hi - lo;
  const canvas = $("#map");
  drawMap(canvas, map, workers, lo, hi, MAP_ROWS, map.finished);
  const perRow = span / BigInt(MAP_ROWS), exact = span % BigInt(MAP_ROWS) === 0n;
  setAxis($("#map-axis"), map.range[0], map.range[1],
    `nonce: left to right, then row by row; ${MAP_ROWS} rows of ${exact ? "" : "about "}${fmtNum(perRow)}; the end is exclusive`);
  drawZoom(map, workers, lo, hi);
  // What the picture shows, for people who cannot see it and for tests.
  const holders = new Set();
  for (const i of map.intervals) if (i.state === "assigned") holders.add(i.worker);
  const searched = map.finished ? span : big(map.status.searched);
  canvas.dataset.done = map.finished ? "1" : share(searched, span).toFixed(4);
  canvas.dataset.holders = [...holders].sort().join(" ");
  canvas.dataset.intervals = String(map.intervals.length);
  canvas.setAttribute("aria-label", `${(100 * Number(canvas.dataset.done)).toFixed(1)}% searched; held by ${canvas.dataset.holders || "nobody"}`);
  $("#map-note").textContent = map.truncated ? "(only the lowest intervals are drawn: there are too many to send)" : "";
  $("#legend").replaceChildren(
    ...[["done", "#34a853"], ["free", "#e5e7eb"], ...workers.map((w) => [w, workerColor(w, workers)])].map(([name, color]) => {
      const s = document.createElement("span");
      const sw = document.createElement("span");
      sw.className = "swatch";
      sw.style.background = color;
      s.append(sw, name);
      return s;
    }),
  );
  const owner = jobsById.get(job)?.owner;
  $("#detail-owner").textContent = owner ? `by ${owner} ·` : "";
  $("#detail-state").textContent = map.finished
    ? `${map.result.outcome}${map.result.nonce != null ? `: nonce ${map.result.nonce}` : ""} · ${fmtRate(map.rate)} over this run`
    : `${(100 * Number(canvas.dataset.done)).toFixed(1)}% · ${fmtRate(map.rate)} · ${map.status.workers} workers`;
  $("#detail").dataset.outcome = map.finished ? map.result.outcome : "running";
  $("#detail").dataset.nonce = map.finished && map.result.nonce != null ? String(map.result.nonce) : "";
  $("#detail").dataset.rate = String(map.rate);
  const cost = $("#detail-cost");
  cost.textContent = costText(map);
  cost.dataset.basis = map.cost_basis;
  cost.dataset.usd = String(map.cost_usd);
  const resumed = big(map.resumed_searched);
  $("#detail-resumed").hidden = resumed === 0n;
  $("#detail-resumed").textContent = resumed === 0n ? ""
    : `resumed after a daemon restart: ${fmtNum(resumed)} nonces were searched before it; the rate counts this run's nonces only`;

  // Stale is the daemon's call: 1.5 of the job's heartbeats, capped by its stall timeout.
  const staleAfter = Number(map.stale_after_s);
  // Said only where there are workers to judge by it.
  $("#stale-note").textContent = Number.isFinite(staleAfter) && map.workers.length
    ? `stale (red): silent for more than ${staleAfter} s, the daemon's threshold for this job (1.5 heartbeats, at most the stall timeout), or stalled`
    : "";
  const body = $("#workers tbody");
  if (!map.workers.length) {
    emptyRow(body, 6, map.finished ? "no workers (the job has finished)" : "no workers yet: they are starting");
  } else {
    body.replaceChildren();
  }
  for (const w of map.workers) {
    const tr = document.createElement("tr");
    tr.dataset.worker = w.worker;
    tr.dataset.health = w.health;
    tr.dataset.silent = String(w.silent_s);
    if (w.health === "stalled" || (w.health === "live" && w.silent_s > staleAfter)) tr.classList.add("stale");
    const name = cell(tr, w.worker);
    name.style.borderLeft = `6px solid ${workerColor(w.worker, workers)}`;
    cell(tr, map.launcher);
    cell(tr, w.ranges.length ? w.ranges.map(([a, b]) => `${fmtNum(a)}..${fmtNum(b)}`).join(", ") : "nothing");
    cell(tr, fmtRate(w.rate));
    cell(tr, `${w.silent_s.toFixed(1)} s ago${w.health === "live" ? "" : ` (${w.health})`}`);
    cell(tr, w.startup_s != null ? `${w.startup_s.toFixed(1)} s` : "");
    body.appendChild(tr);
  }
  const tl = map.timeline || { samples: [], events: [] };
  drawChart($("#chart"), tl.samples, !map.timeline ? "no history kept for this job" : map.finished ? "no samples: it ended within a second" : "no samples yet: one a second");
  const events = $("#events");
  if (!tl.events.length) {
    const li = document.createElement("li");
    li.className = "empty";
    li.textContent = map.finished ? "no supervision events: no stall, re-shard or steal" : "no supervision events yet: no stall, re-shard or steal";
    events.replaceChildren(li);
    return;
  }
  events.replaceChildren(
    ...tl.events.slice(-30).map((e) => {
      const li = document.createElement("li");
      li.dataset.kind = e.kind;
      li.textContent = `${e.t.toFixed(1)} s: ${e.kind}${e.count > 1 ? ` x${e.count}` : ""}`;
      return li;
    }),
  );
}

// A token in the fragment (never sent to the server) is moved to sessionStorage at once.
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) {
  sessionStorage.setItem("nonce-token", fromHash);
  history.replaceState(null, "", location.pathname);
}
$("#login").addEventListener("submit", (e) => {
  e.preventDefault();
  const token = $("#token").value.trim();
  if (!token) return;
  sessionStorage.setItem("nonce-token", token);
  $("#token").value = "";
  start(token);
});
setInterval(refreshJobs, 2000);
const saved = sessionStorage.getItem("nonce-token");
if (saved) start(saved); else showLogin();
