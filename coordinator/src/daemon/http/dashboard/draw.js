// Pictures: the nonce space of a job (one strip per row, left to right, top to bottom) and
// its rate over time. Plain canvas, no library.

const COLORS = { done: "#34a853", free: "#e5e7eb" };
const PALETTE = ["#4285f4", "#fbbc04", "#a142f4", "#ff6d01", "#46bdc6", "#e8710a", "#7baaf7", "#f06292"];

export function workerColor(worker, workers) {
  const i = workers.indexOf(worker);
  return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
}

// The space as ROWS strips; intervals as [start, end) fractions of the range.
export function drawMap(canvas, map, workers) {
  const ROWS = 4;
  const ctx = canvas.getContext("2d");
  const w = canvas.width, rowH = canvas.height / ROWS;
  ctx.clearRect(0, 0, w, canvas.height);
  const lo = Number(map.range[0]), span = Number(map.range[1]) - lo || 1;
  const paint = (a, b, color) => {
    // a, b in [0, 1]; a strip of the picture is 1/ROWS of the space.
    for (let r = 0; r < ROWS; r++) {
      const s = Math.max(a, r / ROWS), e = Math.min(b, (r + 1) / ROWS);
      if (e <= s) continue;
      const x0 = (s * ROWS - r) * w, x1 = (e * ROWS - r) * w;
      ctx.fillStyle = color;
      ctx.fillRect(x0, r * rowH + 1, Math.max(1, x1 - x0), rowH - 2);
    }
  };
  if (map.finished) {
    paint(0, 1, COLORS.done);
    return;
  }
  paint(0, 1, COLORS.free);
  for (const i of map.intervals) {
    const a = (Number(i.start) - lo) / span, b = (Number(i.end) - lo) / span;
    paint(a, b, i.state === "assigned" ? workerColor(i.worker, workers) : COLORS[i.state]);
  }
}

export function drawChart(canvas, samples) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 28;
  ctx.clearRect(0, 0, w, h);
  ctx.strokeStyle = "#9ca3af";
  ctx.strokeRect(pad, 4, w - pad - 4, h - pad);
  if (!samples || samples.length < 2) return;
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
