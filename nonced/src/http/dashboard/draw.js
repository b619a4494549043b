// Pictures: the nonce space of a job (one strip per row, left to right, top to bottom) and
// its rate over time. Plain canvas, no library. Nonces are BigInt throughout: a 64-bit range
// has nonces a double cannot hold, and intervals near 2^64 would land on the wrong pixels.

const COLORS = { done: "#34a853", free: "#e5e7eb" };
const PALETTE = ["#4285f4", "#fbbc04", "#a142f4", "#ff6d01", "#46bdc6", "#e8710a", "#7baaf7", "#f06292"];
// Positions are computed to 1/2^24 of the window: far finer than any canvas.
const SCALE = 1n << 24n;

export function workerColor(worker, workers) {
  const i = workers.indexOf(worker);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

// A nonce or count as the daemon sent it (a decimal string, a Number, or a BigInt from the
// page's JSON parser) as a BigInt; 0n for nothing.
export function big(x) {
  if (typeof x === "bigint") return x;
  if (typeof x === "number") return Number.isFinite(x) ? BigInt(Math.trunc(x)) : 0n;
  if (typeof x === "string" && /^\d+$/.test(x)) return BigInt(x);
  return 0n;
}

// (x - lo) / span as a Number in [0, 1], computed in BigInt.
export function fraction(x, lo, span) {
  if (span <= 0n) return 0;
  const f = Number(((x - lo) * SCALE) / span) / Number(SCALE);
  return Math.min(1, Math.max(0, f));
}

// The nonces lo..hi of the job's space as `rows` strips of `canvas`; the intervals outside
// lo..hi are cut off. With `allDone`, the whole window is painted done (a finished job).
export function drawMap(canvas, map, workers, lo, hi, rows, allDone) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, rowH = canvas.height / rows;
  ctx.clearRect(0, 0, w, canvas.height);
  const span = hi - lo;
  const paint = (a, b, color) => {
    // a, b in [0, 1]; a strip of the picture is 1/rows of the window.
    for (let r = 0; r < rows; r++) {
      const s = Math.max(a, r / rows), e = Math.min(b, (r + 1) / rows);
      if (e <= s) continue;
      const x0 = (s * rows - r) * w, x1 = (e * rows - r) * w;
      ctx.fillStyle = color;
      ctx.fillRect(x0, r * rowH + 1, Math.max(1, x1 - x0), rowH - 2);
    }
  };
  if (allDone) {
    paint(0, 1, COLORS.done);
    return;
  }
  paint(0, 1, COLORS.free);
  for (const i of map.intervals) {
    const start = big(i.start) > lo ? big(i.start) : lo, end = big(i.end) < hi ? big(i.end) : hi;
    if (end <= start) continue;
    paint(fraction(start, lo, span), fraction(end, lo, span), i.state === "assigned" ? workerColor(i.worker, workers) : COLORS[i.state]);
  }
}

// The job's rate over time, or a line saying there is nothing to draw yet.
export function drawChart(canvas, samples, emptyText) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#9ca3af";
  ctx.strokeRect(pad, 4, w - pad - 4, h - pad);
  if (!samples || samples.length < 2) {
    ctx.fillStyle = "#6b7280";
    ctx.font = "13px system-ui";
    ctx.fillText(emptyText, pad + 12, h / 2);
    return;
  }
  const tMax = samples[samples.length - 1].t || 1;
  const rMax = Math.max(...samples.map((s) => s.rate), 1);
  ctx.strokeStyle = "#4285f4";
  ctx.lineWidth = 2;
  ctx.beginPath();
  samples.forEach((s, k) => {
    const x = pad + (s.t / tMax) * (w - pad - 4);
    const y = 4 + (1 - s.rate / rMax) * (h - pad);
    if (k === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#6b7280";
  ctx.font = "11px system-ui";
  ctx.fillText(`${(rMax / 1e6).toFixed(1)} M/s`, pad + 4, 16);
  ctx.fillText(`${tMax.toFixed(0)} s`, w - 40, h - 8);
}
