// The dashboard: log in with a token (or #token=... in the URL, which never reaches the
// server), then keep the jobs table, the selected job's map, workers, chart and events live
// over one WebSocket: the job's search.progress notifications drive its redraws.
import { connect, AuthError } from "./rpc.js";
import { drawMap, drawChart, workerColor } from "./draw.js";

const $ = (sel) => document.querySelector(sel);
const STALE_S = 3; // a worker unheard for longer than this is shown stale (and "stalled" always)
let client = null, selected = null, subscription = null, lastMap = null;

function fmtRate(r) { return r >= 1e9 ? `${(r / 1e9).toFixed(2)} G/s` : `${(r / 1e6).toFixed(1)} M/s`; }
function fmtNum(n) { return Number(n).toLocaleString("en"); }
function fmtSecs(s) {
  if (!isFinite(s)) return "";
  return s < 90 ? `${s.toFixed(0)} s` : s < 5400 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
}
function cell(tr, text) { const td = document.createElement("td"); td.textContent = text ?? ""; tr.appendChild(td); return td; }

function showLogin(message) {
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
}

async function start(token) {
  try {
    client = await connect(token, onNotification, () => {
      $("#connection").textContent = "disconnected; retrying";
      client = null;
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
  const body = $("#jobs tbody");
  body.replaceChildren();
  jobs.sort((a, b) => (a.state === b.state ? 0 : a.state === "running" ? -1 : 1));
  for (const j of jobs) {
    const tr = document.createElement("tr");
    tr.dataset.job = j.job_id;
    tr.dataset.state = j.state;
    if (j.job_id === selected) tr.classList.add("selected");
    const total = Number(j.total || 0), searched = Number(j.searched || 0);
    cell(tr, j.job_id);
    cell(tr, j.puzzle);
    cell(tr, j.mode);
    cell(tr, j.state === "running" ? "running" : j.outcome);
    cell(tr, total ? `${fmtNum(searched)} / ${fmtNum(total)} (${((100 * searched) / total).toFixed(1)}%)` : fmtNum(searched));
    cell(tr, j.rate ? fmtRate(j.rate) : "");
    cell(tr, j.state === "running" && j.rate > 0 && total ? fmtSecs((total - searched) / j.rate) : "");
    cell(tr, j.workers);
    cell(tr, fmtSecs(j.elapsed_s));
    cell(tr, (j.found || (j.nonce != null ? [j.nonce] : [])).slice(0, 5).join(", "));
    tr.addEventListener("click", () => select(j.job_id));
    body.appendChild(tr);
  }
  if (!selected) {
    const running = jobs.find((j) => j.state === "running");
    if (running) select(running.job_id);
  }
}

async function select(job) {
  if (!client || job === selected) return;
  selected = job;
  for (const tr of document.querySelectorAll("#jobs tbody tr")) tr.classList.toggle("selected", tr.dataset.job === job);
  $("#detail").hidden = false;
  $("#detail-id").textContent = job;
  subscription = null;
  await redraw();
  if (lastMap && !lastMap.finished) {
    try { subscription = await client.call("search.subscribe", { job_id: job }); } catch { /* finished meanwhile */ }
  }
}

function onNotification(method, params) {
  if (method !== "search.progress" || params.subscription !== subscription) return;
  redraw();
  if (params.result && params.result.finished) refreshJobs();
}

async function redraw() {
  const job = selected;
  let map;
  try { map = await client.call("search.map", { job_id: job }); } catch { return; }
  if (job !== selected) return;
  lastMap = map;
  const workers = map.workers.map((w) => w.worker);
  const canvas = $("#map");
  drawMap(canvas, map, workers);
  // What the picture shows, for people who cannot see it and for tests.
  const lo = Number(map.range[0]), span = Number(map.range[1]) - lo || 1;
  let done = 0;
  const holders = new Set();
  for (const i of map.intervals) {
    if (i.state === "done") done += Number(i.end) - Number(i.start);
    if (i.state === "assigned") holders.add(i.worker);
  }
  canvas.dataset.done = map.finished ? "1" : (done / span).toFixed(4);
  canvas.dataset.holders = [...holders].sort().join(" ");
  canvas.dataset.intervals = String(map.intervals.length);
  canvas.setAttribute("aria-label", `${(100 * Number(canvas.dataset.done)).toFixed(1)}% searched; held by ${canvas.dataset.holders || "nobody"}`);
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
  $("#detail-state").textContent = map.finished
    ? `${map.result.outcome}${map.result.nonce != null ? `: nonce ${map.result.nonce}` : ""}`
    : `${(100 * Number(canvas.dataset.done)).toFixed(1)}% · ${fmtRate(map.status.rate)} · ${map.status.workers} workers`;
  $("#detail").dataset.outcome = map.finished ? map.result.outcome : "running";
  $("#detail").dataset.nonce = map.finished && map.result.nonce != null ? String(map.result.nonce) : "";
  const body = $("#workers tbody");
  body.replaceChildren();
  for (const w of map.workers) {
    const tr = document.createElement("tr");
    tr.dataset.worker = w.worker;
    tr.dataset.health = w.health;
    if (w.health === "stalled" || (w.health === "live" && w.silent_s > STALE_S)) tr.classList.add("stale");
    const name = cell(tr, w.worker);
    name.style.borderLeft = `6px solid ${workerColor(w.worker, workers)}`;
    cell(tr, map.launcher);
    cell(tr, w.ranges.map(([a, b]) => `${fmtNum(a)}..${fmtNum(b)}`).join(", "));
    cell(tr, fmtRate(w.rate));
    cell(tr, `${w.silent_s.toFixed(1)} s ago${w.health === "live" ? "" : ` (${w.health})`}`);
    cell(tr, w.startup_s != null ? `${w.startup_s.toFixed(1)} s` : "");
    body.appendChild(tr);
  }
  const tl = map.timeline || { samples: [], events: [] };
  drawChart($("#chart"), tl.samples);
  const events = $("#events");
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
