// lasca_jax live dashboard: follows /events (server-sent events) and draws the decisions.
"use strict";

const state = { info: {}, points: [], decided: 0, pairs: 0 };
const $ = (id) => document.getElementById(id);

function fmt(x, digits) { return x === null || x === undefined ? "\u2013" : Number(x).toFixed(digits); }

function showInfo(info) {
  // The history starts with "info": a reconnect replays it, so start over.
  Object.assign(state, { info, points: [], decided: 0, pairs: 0 });
  $("model").textContent = `${info.model_label} \u00b7 ${info.target} \u00b7 ${info.fold_models} fold models \u00b7 ${info.window_seconds} s windows`;
  $("source").textContent = `source: ${info.source}`;
  $("chart-title").textContent = `P(${info.target} increases) over time`;
  if (info.substitutes && info.substitutes.length) {
    $("substitutes").hidden = false;
    $("substitutes").textContent = "Live differs from offline here: " + info.substitutes.join("; ");
  }
  setStatus("live", "live");
}

function setStatus(text, kind) {
  const badge = $("status");
  badge.textContent = text;
  badge.className = "badge " + kind;
}

function showDecision(d) {
  const row = d.row;
  state.pairs += 1;
  $("pair-count").textContent = state.pairs;
  $("prompt").textContent = row.next_prompt || "(this model has no prompt)";
  $("latency").textContent = `${fmt(d.latency_ms.total, 1)} ms`;
  const dir = $("direction");
  if (row.status === "ok") {
    state.decided += 1;
    state.points.push({ t: row.next_start_s, p: row.p_increase, sd: row.p_increase_std });
    dir.className = "direction " + row.direction;
    dir.textContent = `${row.direction}  P = ${fmt(row.p_increase, 3)} \u00b1 ${fmt(row.p_increase_std, 3)}`;
    $("windows").textContent = `${fmt(row.start_s, 1)}\u2013${fmt(row.end_s, 1)} s \u2192 ${fmt(row.next_start_s, 1)}\u2013${fmt(row.next_end_s, 1)} s`;
    $("undecided").hidden = true;
    showCues(d.cues);
  } else {   // the last decision stays on show; the note says why this pair was not decided
    $("undecided").hidden = false;
    $("undecided").textContent = `${fmt(row.start_s, 1)}\u2013${fmt(row.next_end_s, 1)} s ${row.status}`;
  }
  $("decision-count").textContent = state.decided;
  draw();
}

function showCues(cues) {
  const box = $("cues");
  box.replaceChildren();
  const top = Math.max(1e-9, ...cues.map((c) => Math.abs(c[1])));
  for (const [name, value] of cues) {
    const row = document.createElement("div");
    row.className = "cue";
    const label = document.createElement("span");
    label.className = "name";
    label.textContent = name;
    label.title = name;
    const track = document.createElement("span");
    track.className = "track";
    const bar = document.createElement("span");
    bar.className = "bar " + (value >= 0 ? "pos" : "neg");
    bar.style.width = `${(50 * Math.abs(value)) / top}%`;
    track.appendChild(bar);
    const num = document.createElement("span");
    num.className = "value";
    num.textContent = (value >= 0 ? "+" : "") + value.toFixed(3);
    row.append(label, track, num);
    box.appendChild(row);
  }
}

function showStatus(s) {
  if (s.frames_dropped !== undefined) $("dropped").textContent = s.frames_dropped;
  if (s.effective_fps !== undefined && s.effective_fps !== null) $("fps").textContent = fmt(s.effective_fps, 1);
}

function draw() {
  const canvas = $("chart");
  const ratio = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  canvas.width = Math.round(w * ratio);
  canvas.height = Math.round(h * ratio);
  canvas.dataset.points = String(state.points.length);
  const g = canvas.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const left = 40, right = 10, top = 10, bottom = 28;
  const pts = state.points;
  const span = state.info.window_seconds || 1;
  const t1 = pts.length ? pts[pts.length - 1].t + span : span * 4;
  const t0 = pts.length ? Math.min(pts[0].t, Math.max(0, t1 - 120)) : 0;
  const x = (t) => left + ((t - t0) / Math.max(t1 - t0, 1e-9)) * (w - left - right);
  const y = (p) => top + (1 - p) * (h - top - bottom);
  g.strokeStyle = "#ccc"; g.fillStyle = "#666"; g.font = "11px system-ui, sans-serif"; g.lineWidth = 1;
  for (const p of [0, 0.25, 0.5, 0.75, 1]) {
    g.beginPath(); g.moveTo(left, y(p)); g.lineTo(w - right, y(p));
    g.setLineDash(p === 0.5 ? [4, 3] : []); g.strokeStyle = p === 0.5 ? "#888" : "#e3e3e3"; g.stroke();
    g.fillText(p.toFixed(2), 4, y(p) + 4);
  }
  g.setLineDash([]);
  const step = Math.max(span, Math.ceil((t1 - t0) / 8 / span) * span);
  for (let t = Math.ceil(t0 / step) * step; t <= t1 + 1e-9; t += step) g.fillText(`${Number.isInteger(t) ? t : t.toFixed(1)} s`, x(t) - 8, h - 8);
  const shown = pts.filter((p) => p.t >= t0);
  if (!shown.length) return;
  g.beginPath();
  shown.forEach((p, i) => { const px = x(p.t), py = y(Math.min(1, p.p + p.sd)); i ? g.lineTo(px, py) : g.moveTo(px, py); });
  for (let i = shown.length - 1; i >= 0; i--) g.lineTo(x(shown[i].t), y(Math.max(0, shown[i].p - shown[i].sd)));
  g.closePath(); g.fillStyle = "rgba(33, 102, 172, 0.18)"; g.fill();
  g.beginPath();
  shown.forEach((p, i) => (i ? g.lineTo(x(p.t), y(p.p)) : g.moveTo(x(p.t), y(p.p))));
  g.strokeStyle = "#2166ac"; g.lineWidth = 1.5; g.stroke();
  for (const p of shown) {
    g.beginPath(); g.arc(x(p.t), y(p.p), 3.5, 0, 2 * Math.PI);
    g.fillStyle = p.p >= 0.5 ? "#2e7d32" : "#c62828"; g.fill();
  }
}

let frameTimer = null;
function refreshFrame() {
  const img = $("frame");
  img.src = `/frame.jpg?n=${Date.now()}`;
}

function connect() {
  const events = new EventSource("/events");
  events.addEventListener("info", (e) => showInfo(JSON.parse(e.data)));
  events.addEventListener("decision", (e) => showDecision(JSON.parse(e.data)));
  events.addEventListener("status", (e) => showStatus(JSON.parse(e.data)));
  events.addEventListener("end", (e) => {
    const s = JSON.parse(e.data);
    showStatus(s);
    setStatus(`${s.end}${s.end_detail ? ": " + s.end_detail : ""}`, s.end === "ended" ? "ended" : "problem");
    clearInterval(frameTimer);
    events.close();
  });
  events.addEventListener("closed", () => events.close());
  events.onerror = () => { if (events.readyState === EventSource.CLOSED) return; setStatus("reconnecting", "waiting"); };
  frameTimer = setInterval(refreshFrame, 1000);
}

window.addEventListener("resize", draw);
draw();
connect();
