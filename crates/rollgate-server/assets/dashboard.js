// rollgate's dashboard script. The pages work without it; with it, actions
// ask for confirmation and a rollout's page moves its charts and live
// figures every few seconds without a reload.
"use strict";

document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

const POLL_MS = 3000;
const CANARY = "canary", BASELINE = "baseline";

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function pct(x) { return x == null ? null : x * 100; }

// Each chart: its series (label, arm, value of a point).
function chartSpecs(chat, triggers, withBounds) {
  const both = (label, pick) => [
    { label: `${label} canary`, arm: CANARY, value: (p) => pick(p.canary) },
    { label: `${label} baseline`, arm: BASELINE, value: (p) => pick(p.baseline) },
  ];
  const specs = {
    rate: both("req/s", (a) => a.requests_per_second),
    errors: both("errors %", (a) => pct(a.error_rate)),
    latency: ["p50", "p95", "p99"].flatMap((q) => both(q, (a) => a[`${q}_ms`])),
    quality: [...both("bad outputs %", (a) => pct(a.bad_output_rate)), ...both("complaints %", (a) => pct(a.complaint_rate))],
    // Each trigger's e-value over its own threshold: one scale for all, a rollback at 1.
    evidence: [{ label: "threshold (rollback)", arm: BASELINE, value: () => 1, dash: true }].concat(triggers.map((t) => (
      { label: t, arm: CANARY, value: (p) => toThreshold(p, t) }))),
    ratio: withBounds.flatMap((t) => [
      { label: `${t} lower`, arm: CANARY, value: (p) => eValue(p, t, "lower"), dash: true },
      { label: `${t} upper`, arm: CANARY, value: (p) => eValue(p, t, "upper") },
    ]),
  };
  if (chat) specs.ttft = both("TTFT p90", (a) => a.ttft_p90_ms);
  return specs;
}

function toThreshold(point, trigger) {
  const e = eValue(point, trigger, "e_value"), threshold = eValue(point, trigger, "threshold");
  return e == null || threshold == null ? null : e / threshold;
}

function eValue(point, trigger, key) {
  const t = point.triggers.find((x) => x.trigger === trigger);
  const v = t ? t[key] : null;
  return v == null || v <= 0 ? null : v;
}

const PALETTE = ["#d9480f", "#2457c5", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d"];

const LOG_CHARTS = ["evidence", "ratio"];
const PERCENT_CHARTS = ["errors", "quality"];

function makeChart(el, id, specs) {
  const log = LOG_CHARTS.includes(id);
  // Rates start at zero and do not stretch to 100% when nothing goes wrong.
  const y = log ? { distr: 3 } : PERCENT_CHARTS.includes(id)
    ? { range: (u, min, max) => [0, Math.max((max || 0) * 1.2, 1)] }
    : { range: (u, min, max) => [0, Math.max((max || 0) * 1.15, 1)] };
  const series = [{}].concat(specs.map((s, i) => {
    const stroke = id === "evidence" ? (i === 0 ? cssVar("--muted") : PALETTE[(i - 1) % PALETTE.length])
      : id === "ratio" ? PALETTE[Math.floor(i / 2) % PALETTE.length]
      : (s.arm === CANARY ? cssVar("--canary") : cssVar("--baseline"));
    return { label: s.label, stroke, width: 2, dash: s.dash || (!log && s.arm === BASELINE) ? [6, 4] : undefined, spanGaps: true };
  }));
  const opts = {
    width: Math.max(el.clientWidth, 280), height: 200, series,
    scales: { x: { time: true }, y },
    axes: [{ stroke: cssVar("--muted") }, { stroke: cssVar("--muted"), size: 56 }],
    legend: { live: false },
  };
  return new uPlot(opts, [[]].concat(specs.map(() => [])), el);
}

const charts = {};

function draw(live) {
  const section = document.getElementById("charts");
  const points = live.trace.points;
  section.dataset.points = String(points.length);
  const empty = document.getElementById("charts-empty");
  if (empty && points.length > 0) empty.remove();
  const last = points[points.length - 1];
  const triggers = last ? last.triggers.map((t) => t.trigger) : [];
  // Only triggers whose ratio has a bound yet get a line in the confidence-sequence chart.
  const withBounds = triggers.filter((t) => points.some((p) => eValue(p, t, "lower") != null || eValue(p, t, "upper") != null));
  const specs = chartSpecs(live.chat, triggers, withBounds);
  const xs = points.map((p) => p.unix_ms / 1000);
  for (const [id, spec] of Object.entries(specs)) {
    const el = document.getElementById(`chart-${id}`);
    if (!el || typeof uPlot === "undefined") continue;
    const key = spec.map((s) => s.label).join("|");
    if (!charts[id] || charts[id].key !== key) {
      if (charts[id]) charts[id].plot.destroy();
      charts[id] = { key, plot: makeChart(el, id, spec) };
    }
    charts[id].plot.setData([xs].concat(spec.map((s) => points.map(s.value))));
  }
}

async function poll(section) {
  const id = section.dataset.rollout;
  try {
    const response = await fetch(`/rollouts/${encodeURIComponent(id)}/live`, { headers: { accept: "application/json" } });
    if (response.redirected || !response.ok) return; // signed out or gone: the next page load says so
    const live = await response.json();
    document.getElementById("live-status").innerHTML = live.status_html;
    document.getElementById("judge-now").innerHTML = live.judge_html;
    draw(live);
  } catch (e) {
    // A missed poll is retried at the next one.
  }
}

function start() {
  const section = document.getElementById("charts");
  if (!section) return;
  poll(section);
  setInterval(() => poll(section), POLL_MS);
  window.addEventListener("resize", () => {
    for (const [id, c] of Object.entries(charts)) {
      const el = document.getElementById(`chart-${id}`);
      if (el) c.plot.setSize({ width: Math.max(el.clientWidth, 280), height: 200 });
    }
  });
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
