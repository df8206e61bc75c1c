// The article highlighter. Vanilla JS, no build step.
// All user and model text goes into the page through textContent / text nodes,
// never innerHTML, so an article cannot inject markup.
"use strict";

const PALETTE_SIZE = 8; // colour classes .c0 … .c7 in style.css; labels beyond that reuse them
const MAX_FILE_BYTES = 5_000_000; // refuse to load huge files into the text box

const state = {
  labels: [], // [{name, definition, threshold}] from GET v1/model, in model order
  thresholds: {}, // label -> current slider value
  shown: {}, // label -> filter checkbox state
  text: "", // the document as analysed
  sentences: [], // from POST v1/analyze: {start, end, text, scores, ...}
  evidence: new Map(), // sentence index -> {label: [{start, end, text, weight}]} or "pending"
  generation: 0, // bumped per analysis so late evidence for an old article is dropped
  current: -1, // the sentence last hovered or focused
};

const $ = (id) => document.getElementById(id);

// Build an element; string children become text nodes, so they are never parsed as HTML.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  node.append(...children);
  return node;
}

const display = (label) => label.replace(/_/g, " ");
const colour = (label) => `c${state.labels.findIndex((l) => l.name === label) % PALETTE_SIZE}`;
// Thresholds such as 0.475 come from tuning; show the third decimal only when it matters.
const fmt = (x) => x.toFixed(Math.abs(x * 100 - Math.round(x * 100)) > 1e-9 ? 3 : 2);

// ---------------------------------------------------------------- talking to the API

class Problem extends Error {}

// Paths are relative so the page also works behind a reverse proxy under a prefix.
async function call(path, body) {
  const headers = {};
  const key = $("api-key").value.trim();
  if (key) headers.authorization = `Bearer ${key}`;
  const init = { headers };
  if (body !== undefined) {
    init.method = "POST";
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new Problem("Could not reach the server. Check the connection and try again.");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // a proxy's HTML error page, or an empty body: handled below by status
  }
  if (response.ok && data) return data;
  throw new Problem(explainError(response.status, data && data.error && data.error.message));
}

// Turn the API's {"error": {status, code, message}} into advice a reader can act on.
function explainError(status, message) {
  if (status === 401) {
    $("key-box").open = true;
    return "This server needs an API key. Paste it in the “API key” field and try again.";
  }
  if (status === 413) {
    return `The article is too long for this server (${message || "over the size limit"}). ` +
      "Analyse it in shorter parts.";
  }
  if (status === 422 && message) return `The server could not use this text: ${message}.`;
  if (status === 429) return "The server is busy. Wait a few seconds and try again.";
  if (status >= 500 || !message) {
    return `The server had a problem (HTTP ${status}). Try again in a moment.`;
  }
  return `Request failed (HTTP ${status}): ${message}.`;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

// ---------------------------------------------------------------- labels panel

async function loadModel() {
  const model = await call("v1/model");
  state.labels = model.labels;
  for (const { name, threshold } of model.labels) {
    state.thresholds[name] = threshold;
    state.shown[name] = true;
  }
  $("model-name").textContent = `Model: ${model.name} ${model.version}`;
  renderControls();
}

// One fieldset per label: legend (chip + count), plain-language definition, filter, slider.
function renderControls() {
  const box = $("label-controls");
  box.replaceChildren();
  state.labels.forEach(({ name, definition }, i) => {
    const show = el("input", { type: "checkbox", id: `show-${i}`, "data-label": name });
    show.checked = state.shown[name];
    show.addEventListener("change", () => {
      state.shown[name] = show.checked;
      recolour();
    });
    const slider = el("input", {
      type: "range", id: `th-${i}`, min: "0", max: "1", step: "0.01", "data-label": name,
    });
    slider.value = String(state.thresholds[name]);
    const out = el("output", { for: `th-${i}`, id: `th-out-${i}` }, fmt(state.thresholds[name]));
    // The exact tuned threshold (e.g. 0.475) is kept until the user moves the slider,
    // because the slider's 0.01 step would otherwise round it and change decisions.
    slider.addEventListener("input", () => {
      state.thresholds[name] = Number(slider.value);
      out.textContent = fmt(state.thresholds[name]);
      recolour(); // scores for every label are already here: no new request
    });
    box.append(
      el("fieldset", { class: `label-ctl ${colour(name)}` },
        el("legend", {},
          el("span", { class: "chip" }, display(name)), " ",
          el("span", { class: "count", id: `count-${i}` })),
        el("p", { class: "definition" }, definition || "No definition given by the model."),
        el("div", { class: "ctl-row" }, show, el("label", { for: `show-${i}` }, "Highlight")),
        el("div", { class: "ctl-row" },
          el("label", { for: `th-${i}` }, "Threshold"), slider, out)));
  });
  recolour();
}

function resetThresholds() {
  state.labels.forEach(({ name, threshold }, i) => {
    state.thresholds[name] = threshold;
    $(`th-${i}`).value = String(threshold);
    $(`th-out-${i}`).textContent = fmt(threshold);
  });
  recolour();
}

// ---------------------------------------------------------------- the article

async function analyse(event) {
  event.preventDefault();
  clearError();
  const text = $("article").value;
  if (!text.trim()) {
    showError("The article is empty. Paste some text or open a .txt file first.");
    $("article").focus();
    return;
  }
  $("analyse").disabled = true;
  $("status").textContent = "Analysing…";
  try {
    if (!state.labels.length) await loadModel();
    const data = await call("v1/analyze", { text });
    state.generation += 1;
    state.text = text;
    state.sentences = data.sentences;
    state.evidence = new Map();
    state.current = -1;
    $("focus-note").textContent = "Hover over or Tab to a highlighted sentence.";
    renderDoc();
    $("status").textContent = `Analysed ${data.sentences.length} sentences.`;
  } catch (err) {
    $("status").textContent = "";
    showError(err instanceof Problem ? err.message : `Something went wrong: ${err}`);
  } finally {
    $("analyse").disabled = false;
  }
}

// The document is rebuilt from offsets, so the text between sentences (line breaks,
// paragraph gaps) is kept exactly and shown with white-space: pre-wrap.
function renderDoc() {
  const doc = $("doc");
  doc.replaceChildren();
  let at = 0;
  state.sentences.forEach((s, i) => {
    if (s.start > at) doc.append(state.text.slice(at, s.start));
    doc.append(
      // aria-describedby: a screen reader reads the label chips when the sentence is focused.
      el("span", { class: "sentence", "data-index": String(i), "aria-describedby": `chips-${i}` },
        s.text),
      el("span", { class: "chips", id: `chips-${i}` }));
    at = s.end;
  });
  if (at < state.text.length) doc.append(state.text.slice(at));
  recolour();
}

// Labels a sentence shows now: shown by the filter and at or above the slider, best first.
function activeLabels(s) {
  return state.labels
    .map(({ name }) => name)
    .filter((name) => state.shown[name] && s.scores[name] >= state.thresholds[name])
    .sort((a, b) => s.scores[b] - s.scores[a]);
}

// Re-colour from the scores in hand: runs on every slider move, so it does no I/O.
function recolour() {
  const counts = Object.fromEntries(state.labels.map(({ name }) => [name, 0]));
  let flagged = 0;
  document.querySelectorAll("#doc .sentence").forEach((span) => {
    const i = Number(span.dataset.index);
    const s = state.sentences[i];
    for (const { name } of state.labels) {
      if (s.scores[name] >= state.thresholds[name]) counts[name] += 1; // counts ignore the filter
    }
    const active = activeLabels(s);
    span.dataset.labels = active.join(" ");
    span.className = active.length ? `sentence flagged ${colour(active[0])}` : "sentence";
    // Only flagged sentences are Tab stops, so the keyboard goes straight to what matters.
    span.tabIndex = active.length ? 0 : -1;
    flagged += active.length > 0;
    const chips = active.map((name) => el("span", { class: `chip ${colour(name)}` },
      `${display(name)} ${s.scores[name].toFixed(2)}`));
    $(`chips-${i}`).replaceChildren(...chips);
    renderEvidence(i);
  });
  state.labels.forEach(({ name }, i) => {
    $(`count-${i}`).textContent = state.sentences.length
      ? `${counts[name]} of ${state.sentences.length}` : "";
  });
  $("summary").textContent = state.sentences.length
    ? `${state.sentences.length} sentences, ${flagged} highlighted. ` +
      "Hover over or Tab to a highlighted sentence to underline the words behind its labels."
    : "Nothing analysed yet.";
  if (state.current >= 0) describe(state.current);
}

// ---------------------------------------------------------------- evidence on hover / focus

// Evidence is fetched per sentence on first hover or focus, with every threshold at 0 so
// it covers every label: later slider moves then need no request either. Occlusion costs
// one batch per sentence, so asking only for sentences a reader looks at keeps a long
// article's analysis fast.
async function ensureEvidence(i) {
  if (state.evidence.has(i)) return;
  state.evidence.set(i, "pending");
  const generation = state.generation;
  const s = state.sentences[i];
  const zero = Object.fromEntries(state.labels.map(({ name }) => [name, 0]));
  let evidence = {};
  try {
    const body = { sentences: [s.text], thresholds: zero, explain: true };
    evidence = (await call("v1/classify", body)).results[0].evidence || {};
  } catch {
    // No underline is a tolerable failure; the labels and scores are still right.
  }
  if (generation !== state.generation) return;
  state.evidence.set(i, evidence);
  renderEvidence(i);
  if (state.current === i) describe(i);
}

// Rebuild one sentence's text with the evidence words of its active labels wrapped in
// spans; CSS underlines them only while the sentence is hovered or focused.
function renderEvidence(i) {
  const evidence = state.evidence.get(i);
  const span = document.querySelector(`#doc .sentence[data-index="${i}"]`);
  const s = state.sentences[i];
  if (!span || typeof evidence !== "object") return;
  const words = [];
  for (const name of activeLabels(s)) {
    for (const w of evidence[name] || []) words.push({ ...w, name });
  }
  words.sort((a, b) => a.start - b.start);
  const parts = [];
  let at = 0;
  for (const w of words) {
    if (w.start < at) continue; // the same word for two labels: underline it once
    parts.push(s.text.slice(at, w.start));
    parts.push(el("span", { class: `evidence ${colour(w.name)}`, "data-label": w.name },
      s.text.slice(w.start, w.end)));
    at = w.end;
  }
  parts.push(s.text.slice(at));
  span.replaceChildren(...parts);
}

// Say in words what the colours and underlines show, for screen readers and anyone unsure.
function describe(i) {
  const s = state.sentences[i];
  const evidence = state.evidence.get(i);
  const parts = activeLabels(s).map((name) => {
    const found = typeof evidence === "object" ? evidence[name] || [] : [];
    const words = found.map((w) => `“${w.text}”`).join(", ");
    return `${display(name)} ${s.scores[name].toFixed(2)}` + (words ? ` (evidence: ${words})` : "");
  });
  const note = `Sentence ${i + 1}: ` +
    (parts.length ? `${parts.join("; ")}.` : "no label at the current thresholds.");
  // Only write on change: the note is a live region, and hovering must not make it chatter.
  if ($("focus-note").textContent !== note) $("focus-note").textContent = note;
}

function onSentence(event) {
  const span = event.target.closest && event.target.closest("#doc .sentence");
  if (!span) return;
  state.current = Number(span.dataset.index);
  describe(state.current);
  // Unflagged sentences have nothing to underline; sweeping the mouse over them is free.
  if (span.dataset.labels) ensureEvidence(state.current);
}

// ---------------------------------------------------------------- files

async function loadFile(file) {
  if (!file) return;
  clearError();
  const isText = file.type.startsWith("text/") || /\.txt$/i.test(file.name);
  if (!isText) return showError(`“${file.name}” is not a plain-text file. Open a .txt file.`);
  if (file.size > MAX_FILE_BYTES) return showError(`“${file.name}” is too large to open here.`);
  $("article").value = await file.text();
  $("status").textContent = `Loaded “${file.name}”. Press Analyse.`;
}

// ---------------------------------------------------------------- wiring

function start() {
  $("article-form").addEventListener("submit", analyse);
  $("reset").addEventListener("click", resetThresholds);
  $("file").addEventListener("change", (e) => loadFile(e.target.files[0]));
  const box = $("article");
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("article-form").requestSubmit();
  });
  box.addEventListener("dragover", (e) => {
    if (e.dataTransfer.types.includes("Files")) {
      e.preventDefault(); // without this the browser would open the file instead
      box.classList.add("dropping");
    }
  });
  box.addEventListener("dragleave", () => box.classList.remove("dropping"));
  box.addEventListener("drop", (e) => {
    box.classList.remove("dropping");
    if (e.dataTransfer.files.length) {
      e.preventDefault();
      loadFile(e.dataTransfer.files[0]);
    }
  });
  $("doc").addEventListener("mouseover", onSentence);
  $("doc").addEventListener("focusin", onSentence);
  // Labels and definitions are shown before any analysis; a key error is reported but
  // the page stays usable: Analyse retries with whatever key has been pasted.
  loadModel().catch((err) => showError(err.message));
}

start();
