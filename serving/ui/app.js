// The marketers' page: pick or paste a lead, POST it to /score, show the answer.
// Plain DOM, no framework, no build step, no network beyond this service (works offline).
// Every piece of data goes in through textContent or SVG text nodes, never innerHTML:
// lead fields and reason sentences are data, and data must not become markup.
"use strict";

const KEY_STORE = "leadscore.apiKey"; // sessionStorage only: the key leaves with the tab
const SVG_NS = "http://www.w3.org/2000/svg";
const FALLBACK_TEXT = {
  no_model: "no model is loaded, so the points rules answered",
  cold_start: "the lead has too little history for the model, so the points rules answered",
  model_error: "the model failed on this lead, so the points rules answered",
};
const TREND_TEXT = { improving: "improving ↑", steady: "steady →", declining: "declining ↓" };

const $ = (id) => document.getElementById(id);
let samples = [];

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

async function loadSamples() {
  const select = $("sample");
  clear(select);
  try {
    const r = await fetch("samples.json", { cache: "no-store" });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    samples = (await r.json()).samples || [];
  } catch (err) {
    samples = [];
    showError(`Could not load the sample leads (${err.message}); paste a lead as JSON instead.`);
  }
  const none = new Option("— paste your own below —", "");
  select.add(none);
  samples.forEach((s, i) => select.add(new Option(s.label, String(i))));
  if (samples.length) {
    select.value = "0";
    fillFromSample();
  }
}

function fillFromSample() {
  const i = $("sample").value;
  if (i === "") return;
  $("lead-json").value = JSON.stringify(samples[Number(i)].lead, null, 2);
}

function parseLead() {
  let parsed;
  try {
    parsed = JSON.parse($("lead-json").value);
  } catch (err) {
    throw new Error(`The lead is not valid JSON: ${err.message}`);
  }
  // Accept a bare lead, or a whole /score request body pasted from elsewhere.
  if (parsed && Array.isArray(parsed.leads)) return parsed;
  if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return { leads: [parsed] };
  throw new Error("Paste one lead as a JSON object (with lead_id, created_at and activities).");
}

async function score() {
  showError("");
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(KEY_STORE, key);
  let body;
  try {
    body = parseLead();
  } catch (err) {
    showError(err.message);
    return;
  }
  const button = $("score-btn");
  button.disabled = true;
  try {
    const headers = { "Content-Type": "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    const r = await fetch("../score", { method: "POST", headers, body: JSON.stringify(body) });
    const answer = await r.json().catch(() => ({}));
    if (r.status === 401) throw new Error("The API key is missing or wrong. Paste the key your admin gave you.");
    if (!r.ok) {
      const detail = (answer.detail || []).join("\n");
      throw new Error(`${answer.error || `HTTP ${r.status}`}${detail ? `\n${detail}` : ""}`);
    }
    render(answer.results[0]);
  } catch (err) {
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

function render(result) {
  $("result").hidden = false;
  $("score").textContent = String(result.score);
  $("grade").textContent = result.grade;
  $("route").textContent = result.route === "sales" ? "sales (call now)" : "nurture";
  $("lead-id").textContent = result.lead_id;
  $("model").textContent = result.model_name
    ? `${result.model_name} version ${result.model_version}`
    : "none loaded";
  $("rules-version").textContent = result.rules_version;
  $("as-of").textContent = new Date(result.as_of).toUTCString();

  const answered = $("answered-by");
  if (result.scored_by === "rules") {
    const why = FALLBACK_TEXT[result.fallback_reason] || `fallback: ${result.fallback_reason}`;
    answered.textContent = `Answered by the rules (${result.fallback_reason}): ${why}.`;
    answered.className = "answered rules";
  } else {
    answered.textContent = "Answered by the model.";
    answered.className = "answered";
  }

  // A trend is shown only when the service sends one (from the batch score history);
  // without history there is nothing to show, and the page does not guess.
  const trend = TREND_TEXT[result.trend];
  $("trend-row").hidden = !trend;
  $("trend").textContent = trend || "";

  drawReasons($("chart"), result.reasons || []);
}

function svg(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

// A horizontal bar per reason around a centre axis: positive impact to the right in
// green, negative to the left in red, the reason's sentence written above its bar.
function drawReasons(container, reasons) {
  clear(container);
  if (!reasons.length) {
    const p = document.createElement("p");
    p.className = "hint";
    p.textContent = "No reasons were given for this score.";
    container.appendChild(p);
    return;
  }
  const width = 640, row = 46, top = 6, half = width / 2 - 10;
  const height = top + row * reasons.length;
  const maxImpact = Math.max(...reasons.map((r) => Math.abs(r.impact))) || 1;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
                             "aria-label": "Reasons for the score" });
  reasons.forEach((reason, i) => {
    const y = top + i * row;
    const len = Math.max(2, (Math.abs(reason.impact) / maxImpact) * half);
    const positive = reason.impact >= 0;
    const g = svg("g", { class: "reason" });
    g.appendChild(svg("text", { x: 4, y: y + 14, class: "label" }, reason.sentence));
    const bar = svg("rect", {
      x: positive ? width / 2 : width / 2 - len, y: y + 20, width: len, height: 16, rx: 2,
      class: positive ? "bar-pos" : "bar-neg",
    });
    bar.appendChild(svg("title", {}, `${reason.label}: ${reason.value ?? "none"} (impact ${reason.impact.toFixed(2)})`));
    g.appendChild(bar);
    chart.appendChild(g);
  });
  chart.appendChild(svg("line", { x1: width / 2, x2: width / 2, y1: top + 16, y2: height, class: "axis" }));
  container.appendChild(chart);
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem(KEY_STORE) || "";
  $("sample").addEventListener("change", fillFromSample);
  $("score-btn").addEventListener("click", score);
  loadSamples();
});
