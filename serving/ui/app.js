// The marketers' page: pick or paste a lead, POST it to /score, show the answer.
// Plain DOM, no framework, no build step, no network beyond this service (works offline).
// Every piece of data goes in through textContent, never innerHTML: lead fields and
// reason sentences are data, and data must not become markup.
"use strict";

const KEY_STORE = "leadscore.apiKey"; // sessionStorage only: the key leaves with the tab
const FALLBACK_TEXT = {
  no_model: "no model is loaded, so the points rules answered",
  cold_start: "the lead has too little history for the model, so the points rules answered",
  model_error: "the model failed on this lead, so the points rules answered",
};
const TREND_TEXT = { improving: "improving ↑", steady: "steady →", declining: "declining ↓" };

const $ = (id) => document.getElementById(id);
let samples = [];
let servedModel = null; // the last GET /model answer: its grading says what a grade means

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
  // Accept a bare lead, or a whole /score request body pasted from elsewhere. The page
  // asks for the next actions and the decay line too (a pasted body may say otherwise).
  const extras = { actions: 3, decay: true };
  if (parsed && Array.isArray(parsed.leads)) return { ...extras, ...parsed };
  if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return { ...extras, leads: [parsed] };
  throw new Error("Paste one lead as a JSON object (with lead_id, created_at and activities).");
}

async function score() {
  showError("");
  // Whatever was on screen belonged to the previous lead: it goes before anything else,
  // so a refused request never leaves another lead's answer under its error.
  clearResult();
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
    const result = answer.results[0];
    render(result, await gradingFor(result, headers));
  } catch (err) {
    clearResult();
    showError(err.message);
  } finally {
    button.disabled = false;
  }
}

// The grading the model that answered was cut with (GET /model), or null: when the
// rules answered, when /model cannot be read, or when it already serves another version
// (a swap in between), the page says the grade and nothing it cannot back.
async function gradingFor(result, headers) {
  if (result.scored_by !== "model") return null;
  if (!servedModel || servedModel.model_version !== result.model_version) {
    try {
      const auth = headers.Authorization ? { Authorization: headers.Authorization } : {};
      const r = await fetch("../model", { headers: auth });
      servedModel = r.ok ? await r.json() : null;
    } catch (err) {
      servedModel = null;
    }
  }
  if (!servedModel || servedModel.model_version !== result.model_version) return null;
  return servedModel.grading || null;
}

function clearResult() {
  $("result").hidden = true;
  for (const id of ["score", "standing", "grade", "route", "route-why", "trend", "grade-legend",
                    "answered-by", "lead-id", "model", "rules-version", "as-of", "chart-hint",
                    "parts", "decay", "decay-points"]) {
    $(id).textContent = "";
  }
  for (const id of ["matrix-box", "actions-box", "decay-box"]) $(id).hidden = true;
  clear($("actions"));
  document.querySelectorAll("#matrix td").forEach((cell) => cell.classList.remove("here"));
  $("standing-sep").hidden = true;
  $("trend-row").hidden = true;
  clear($("chart"));
}

const percent = (share) => `${Number((share * 100).toFixed(1))}%`;

// "top 25% of open leads" for a grade: the shares of every grade down to this one, as
// the model cut them on its validation leads. D is the rest: the bottom share.
function standingText(grade, shares) {
  if (!shares) return "";
  const order = ["A", "B", "C", "D"];
  if (grade === "D") return `bottom ${percent(shares.D)} of open leads`;
  const upTo = order.slice(0, order.indexOf(grade) + 1);
  return `top ${percent(upTo.reduce((sum, g) => sum + shares[g], 0))} of open leads`;
}

function legendText(grading) {
  const s = grading && grading.shares;
  if (!s) return "";
  return `The percentage is this lead's own chance. The grade ranks it among the model's `
    + `validation leads: A is the top ${percent(s.A)}, B the next ${percent(s.B)}, `
    + `C the next ${percent(s.C)}, D the other ${percent(s.D)}.`;
}

function render(result, grading) {
  $("result").hidden = false;
  $("score").textContent = String(result.score);
  // The model's probability is calibrated on its training label (converted within its
  // horizon); the rules' is their points mapped to a probability.
  $("likely").textContent = result.scored_by === "rules"
    ? "likely to convert (the points rules' estimate)"
    : "likely to convert within the model's horizon";
  $("grade").textContent = result.grade;
  const standing = standingText(result.grade, grading && grading.shares);
  $("standing").textContent = standing;
  $("standing-sep").hidden = !standing;
  $("route").textContent = result.route === "sales" ? "sales (call now)" : "nurture";
  if (result.scored_by === "rules") {
    $("route-why").textContent = "(the rules' fixed score thresholds set the grade)";
  } else if (grading) {
    const grades = grading.sales_grades.join(" and ");
    $("route-why").textContent = `(grade${grading.sales_grades.length > 1 ? "s" : ""} ${grades} go to sales)`;
  }
  $("grade-legend").textContent = legendText(grading);
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

  drawMatrix(result);
  drawActions(result.actions);
  drawDecay(result.decay);

  const unit = result.scored_by === "rules" ? "points of the rules" : "log-odds of the model";
  $("chart-hint").textContent = "Green bars raise the chance, red bars lower it; "
    + `each number is the reason's signed impact (${unit}).`;
  drawReasons($("chart"), result.reasons || [], result.scored_by === "rules");
}

const LEVEL = { high: "high", low: "low" };

// The two parts of the score and the lead's cell of the fit x engagement matrix.
function drawMatrix(result) {
  const { fit, engagement } = result;
  if (!fit || !engagement || fit.score === null || engagement.score === null) return;
  $("matrix-box").hidden = false;
  const of = result.scored_by === "rules" ? "of what the rules can give" : "percentile among training leads";
  $("parts").textContent = `Fit ${fit.score} (${LEVEL[fit.level]}) · Engagement `
    + `${engagement.score} (${LEVEL[engagement.level]}), each 0-100 (${of}).`;
  const cell = document.querySelector(`#matrix td[data-route="${result.matrix_route}"]`);
  if (cell) cell.classList.add("here");
}

function drawActions(actions) {
  if (!actions || !actions.length) return;
  $("actions-box").hidden = false;
  actions.forEach((action) => $("actions").appendChild(el("li", "action", action.sentence)));
}

function drawDecay(decay) {
  if (!decay) return;
  $("decay-box").hidden = false;
  $("decay").textContent = decay.sentence;
  $("decay-points").textContent = decay.points
    .map((p) => `+${p.days} days: ${p.score}% (grade ${p.grade})`).join(" · ");
}

const MINUS = "\u2212";

// "+0.17", "−0.08"; the rules' points as "+10 pts". Small model impacts keep one
// significant digit rather than read as a signed zero.
function impactText(impact, rules) {
  const sign = impact < 0 ? MINUS : "+";
  const size = Math.abs(impact);
  if (rules) return `${sign}${Number(size.toFixed(1))} pts`;
  return `${sign}${size >= 0.005 || size === 0 ? size.toFixed(2) : size.toPrecision(1)}`;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// One row per reason: its sentence on a line of its own (it wraps on a narrow screen),
// then a bar around a centre axis, positive to the right in green, negative to the left
// in red, with the signed impact written at the bar's end. Plain HTML, so text stays
// at its own size at any width instead of shrinking with a scaled drawing.
function drawReasons(container, reasons, rules) {
  clear(container);
  if (!reasons.length) {
    container.appendChild(el("p", "hint", "No reasons were given for this score."));
    return;
  }
  const maxImpact = Math.max(...reasons.map((r) => Math.abs(r.impact))) || 1;
  const list = el("ol", "reasons");
  list.setAttribute("aria-label", "Reasons for the score");
  reasons.forEach((reason) => {
    const positive = reason.impact >= 0;
    const item = el("li", `reason ${positive ? "pos" : "neg"}`);
    item.appendChild(el("div", "label", reason.sentence));
    const track = el("div", "track");
    const left = el("div", "side left");
    const right = el("div", "side right");
    const bar = el("div", positive ? "bar bar-pos" : "bar bar-neg");
    // The bar's share of its half, leaving room for the value beside it.
    const share = Math.abs(reason.impact) / maxImpact;
    bar.style.width = `max(2px, calc((100% - 5em) * ${share.toFixed(4)}))`;
    bar.title = `${reason.label}: ${reason.value ?? "none"} (impact ${reason.impact.toFixed(2)})`;
    const value = el("span", "value", impactText(reason.impact, rules));
    if (positive) right.append(bar, value); else left.append(value, bar);
    track.append(left, right);
    item.appendChild(track);
    list.appendChild(item);
  });
  container.appendChild(list);
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem(KEY_STORE) || "";
  $("sample").addEventListener("change", fillFromSample);
  $("score-btn").addEventListener("click", score);
  loadSamples();
});
