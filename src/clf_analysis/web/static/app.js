// Viewer of the CLF analysis service: builds, submissions, job progress, results.
// Plain browser JavaScript modules, no build step; talks only to its own origin.

import { FINISHED, api, buildPath } from "./api.js";
import { element, formatSize, mmText, plural } from "./format.js";
import { Gallery } from "./gallery.js";
import { LayerCanvas, loopKey } from "./layer-canvas.js";
import { renderParts, renderProblems, renderSummary } from "./report.js";

const $ = (id) => document.getElementById(id);
const LAYER_CACHE_SIZE = 16;
const POLL_SECONDS = 2;

let pollTimer = null;
let currentJob = null;
const buildJobPolls = new Map(); // job id → timer of a build row's live "last job"

// What the results section shows: one build, its layers, the layer on the canvas.
const results = {
  build: null,
  info: null,
  heights: [],
  index: -1,
  invalidByHeight: new Map(), // "z" → Map(loopKey → reason)
  cache: new Map(), // height → records
  request: 0,
};

let layerCanvas = null;
let gallery = null;

// --- URL state ------------------------------------------------------------------------------

function hashParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

// replaceState: stepping through layers must not fill the history, and no hashchange fires.
function setHash(params) {
  const next = "#" + new URLSearchParams(params).toString();
  if (location.hash !== next) history.replaceState(null, "", next);
}

// The hash was edited by hand (or a link followed): show what it names.
function applyHash() {
  const params = hashParams();
  const job = params.get("job");
  const build = params.get("build");
  const layer = params.get("layer") ?? undefined;
  if (job) {
    if (job !== currentJob) watchJob(job, layer);
    return;
  }
  if (!build) return;
  if (build !== results.build) showResults(build, layer);
  else if (layer !== undefined && Number.isFinite(Number(layer))) goToHeight(Number(layer));
}

// --- service status ---------------------------------------------------------------------

async function loadStatus() {
  try {
    const { body } = await api("readyz");
    $("service-status").textContent = body.status === "ready" ? "service ready" : body.status;
  } catch (err) {
    $("service-status").textContent = `service not ready: ${err.message}`;
  }
}

// --- builds -----------------------------------------------------------------------------

function jobBadge(job) {
  const active = !FINISHED.has(job.status);
  const percent = job.progress?.percent;
  const label = active && percent ? `${job.status} ${Math.round(percent)} %` : job.status;
  const title = [job.progress?.stage, job.progress?.message, job.error?.message].filter(Boolean).join(" — ");
  return element("span", { className: `badge ${job.status}`, text: label, title: title || undefined });
}

function td(label, content, className) {
  return element("td", { "data-label": label, className }, content);
}

async function loadBuilds() {
  const tbody = $("builds").querySelector("tbody");
  try {
    const { body } = await api("api/builds");
    tbody.replaceChildren();
    for (const build of body.builds) {
      const job = build.latest_job;
      const actions = element(
        "span",
        { className: "actions" },
        element("button", {
          type: "button",
          className: "secondary",
          text: "Analyse",
          onclick: () => {
            $("submit-build").value = build.build_id;
            $("submit-build").focus();
          },
        }),
        build.results_available
          ? element("button", { type: "button", text: "Results", onclick: () => showResults(build.build_id) })
          : null,
      );
      tbody.append(
        element(
          "tr",
          { dataset: { buildId: build.build_id } },
          td("Build", build.build_id, "path"),
          td("Package", build.archive, "path"),
          td("Size", formatSize(build.size_bytes), "num"),
          td("Last job", job ? jobBadge(job) : "—", "last-job"),
          td("Results", build.results_available ? "yes" : "no"),
          td("", actions),
        ),
      );
      if (job && !FINISHED.has(job.status)) followBuildJob(build.build_id, job.job_id);
    }
    $("builds-empty").hidden = body.builds.length > 0;
  } catch (err) {
    $("builds-empty").hidden = false;
    $("builds-empty").textContent = `Builds unavailable: ${err.message}`;
  }
}

// The "Last job" of a build row follows a queued or running job until it finishes.
function followBuildJob(buildId, jobId) {
  if (buildJobPolls.has(jobId)) return;
  const poll = async () => {
    let job;
    try {
      ({ body: { job } } = await api(`api/jobs/${encodeURIComponent(jobId)}`));
    } catch (_) {
      buildJobPolls.delete(jobId);
      return;
    }
    const cell = document.querySelector(`#builds tr[data-build-id="${CSS.escape(buildId)}"] .last-job`);
    if (cell) cell.replaceChildren(jobBadge(job));
    if (results.build === buildId) showResultsJob(job);
    if (FINISHED.has(job.status)) {
      buildJobPolls.delete(jobId);
      loadBuilds();
      // New results replace the ones on screen; keep the layer being looked at.
      if (results.build === buildId && job.status === "completed") {
        showResults(buildId, results.heights[results.index]);
      }
      return;
    }
    buildJobPolls.set(jobId, setTimeout(poll, POLL_SECONDS * 1000));
  };
  buildJobPolls.set(jobId, setTimeout(poll, 0));
}

// --- submission and progress --------------------------------------------------------------

function showError(message) {
  const el = $("submit-error");
  el.textContent = message || "";
  el.hidden = !message;
}

function authHeaders() {
  const token = $("submit-token").value;
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function submit(event) {
  event.preventDefault();
  showError("");
  const buildId = $("submit-build").value.trim();
  const params = {
    holes_interval: Number($("submit-holes").value || 10),
    create_composite_views: $("submit-composite").checked,
  };
  try {
    const { body } = await api(`${buildPath(buildId)}/analyze`, {
      method: "POST",
      headers: { "Content-Type": "application/json", ...authHeaders() },
      body: JSON.stringify(params),
    });
    watchJob(body.job_id);
    loadBuilds();
  } catch (err) {
    showError(err.message);
  }
}

function renderJob(job) {
  $("job-panel").hidden = false;
  $("job-id").textContent = job.job_id;
  const status = $("job-status");
  status.textContent = job.status;
  status.className = `badge ${job.status}`;
  const progress = job.progress || {};
  $("job-bar").style.width = `${Math.max(0, Math.min(100, progress.percent || 0))}%`;
  const percent = `${Math.round(progress.percent || 0)} %`;
  let stage = [percent, progress.stage, progress.message].filter(Boolean).join(" — ");
  if (job.status === "failed" && job.error) stage = `failed: ${job.error.message || ""}`;
  $("job-stage").textContent = stage;
  $("job-cancel").disabled = FINISHED.has(job.status);
}

function watchJob(jobId, wantedHeight) {
  currentJob = jobId;
  setHash({ job: jobId });
  if (pollTimer) clearTimeout(pollTimer);
  const poll = async () => {
    try {
      // The browser revalidates with If-None-Match; unchanged answers cost a 304.
      const { body, response } = await api(`api/jobs/${encodeURIComponent(jobId)}`);
      if (currentJob !== jobId) return;
      renderJob(body.job);
      if (FINISHED.has(body.job.status)) {
        loadBuilds();
        if (body.job.status === "completed") showResults(body.job.build_id, wantedHeight);
        return;
      }
      const wait = Number(response.headers.get("Retry-After") || POLL_SECONDS);
      pollTimer = setTimeout(poll, Math.min(wait, POLL_SECONDS) * 1000);
    } catch (err) {
      showError(err.message);
    }
  };
  poll();
}

async function cancelJob() {
  if (!currentJob) return;
  try {
    const { body } = await api(`api/jobs/${encodeURIComponent(currentJob)}`, {
      method: "DELETE",
      headers: authHeaders(),
    });
    renderJob(body.job);
  } catch (err) {
    showError(err.message);
  }
}

// --- results ------------------------------------------------------------------------------

function showResultsJob(job) {
  const el = $("results-job");
  if (!job) {
    el.textContent = "";
    return;
  }
  const when = job.finished_at ? ` ${String(job.finished_at).replace("T", " ").slice(0, 19)}` : "";
  const percent = FINISHED.has(job.status) ? "" : ` ${Math.round(job.progress?.percent || 0)} %`;
  el.textContent = `latest job: ${job.status}${percent}${when}`;
}

function heightKey(z) {
  return Number(z).toFixed(4);
}

function indexInvalidLoops(info) {
  const byHeight = new Map();
  for (const loop of Array.isArray(info.invalid_loops) ? info.invalid_loops : []) {
    const key = heightKey(loop.z);
    if (!byHeight.has(key)) byHeight.set(key, new Map());
    byHeight.get(key).set(loopKey(loop.file, loop.shape_index, loop.path_index), loop.reason);
  }
  return byHeight;
}

function partView(part) {
  const views = Array.isArray(results.info?.identifier_platform_views)
    ? results.info.identifier_platform_views
    : [];
  const view = views.find((v) => part.part_key && v.part_key === part.part_key);
  return view ? view.filename : null;
}

const partActions = {
  hasView: (part) => {
    const filename = partView(part);
    return filename !== null && gallery.indexOf(filename) >= 0;
  },
  openPart: (part) => gallery.open(gallery.indexOf(partView(part))),
  showPart: async (part) => {
    if (Array.isArray(part.z_range)) await goToHeight((part.z_range[0] + part.z_range[1]) / 2);
    if (Array.isArray(part.bounding_box) && part.bounding_box.length === 4) {
      layerCanvas.fitBox(part.bounding_box);
    }
    revealCanvas();
  },
};

function revealCanvas() {
  $("layer-head").scrollIntoView({ block: "start" });
  $("layer-canvas").focus({ preventScroll: true });
}

async function goToProblem(z, loop) {
  await goToHeight(z);
  if (loop) {
    const found = layerCanvas.select(loopKey(loop.file, loop.shape_index, loop.path_index));
    // Some context around a defect that may be a millimetre wide.
    if (found) layerCanvas.fitBox(found.bbox, 10);
    else if (Array.isArray(loop.at)) layerCanvas.fitBox([...loop.at, ...loop.at], 10);
  }
  revealCanvas();
}

async function showResults(buildId, wantedHeight) {
  try {
    const { body } = await api(`${buildPath(buildId)}/results`);
    const info = body.platform_info;
    Object.assign(results, {
      build: buildId,
      info,
      heights: [],
      index: -1,
      invalidByHeight: indexInvalidLoops(info),
      cache: new Map(),
    });
    $("results-section").hidden = false;
    $("results-build").textContent = buildId;
    showResultsJob(body.latest_job);
    renderSummary($("results-summary"), info);
    renderProblems($("problems"), info, goToProblem);
    const imageCount = gallery.show(body.artifacts, info);
    const partCount = renderParts($("parts"), info, partActions);
    $("parts-count").textContent = `(${partCount})`;
    $("images-head").textContent = `Images (${imageCount})`;
    await loadLayers(buildId, wantedHeight);
  } catch (err) {
    showError(`results of ${buildId}: ${err.message}`);
  }
}

async function loadLayers(buildId, wantedHeight) {
  const { body } = await api(`${buildPath(buildId)}/layers`);
  if (results.build !== buildId) return;
  results.heights = body.heights;
  const slider = $("layer-slider");
  slider.max = String(Math.max(0, results.heights.length - 1));
  $("layer-count").textContent = plural(results.heights.length, "layer");
  if (results.heights.length === 0) {
    $("layer-height").textContent = "no path data";
    setHash({ build: buildId });
    return;
  }
  const wanted = Number(wantedHeight);
  if (wantedHeight !== undefined && wantedHeight !== null && Number.isFinite(wanted)) {
    await goToHeight(wanted);
  } else {
    await goToIndex(Math.floor(results.heights.length / 2));
  }
}

// The layer nearest to z (the heights are sorted).
function nearestIndex(z) {
  const h = results.heights;
  let lo = 0;
  let hi = h.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (h[mid] < z) lo = mid + 1;
    else hi = mid;
  }
  if (lo > 0 && Math.abs(h[lo - 1] - z) <= Math.abs(h[lo] - z)) return lo - 1;
  return lo;
}

function goToHeight(z) {
  if (results.heights.length === 0) return Promise.resolve();
  return goToIndex(nearestIndex(z));
}

async function layerRecords(height) {
  if (results.cache.has(height)) {
    const records = results.cache.get(height);
    results.cache.delete(height); // most recently used last
    results.cache.set(height, records);
    return records;
  }
  const { body } = await api(`${buildPath(results.build)}/layers/${height}`);
  results.cache.set(height, body);
  while (results.cache.size > LAYER_CACHE_SIZE) results.cache.delete(results.cache.keys().next().value);
  return body;
}

async function goToIndex(index) {
  const count = results.heights.length;
  if (count === 0) return;
  index = Math.max(0, Math.min(count - 1, index));
  const height = results.heights[index];
  const request = ++results.request;
  results.index = index;
  $("layer-slider").value = String(index);
  $("layer-height").textContent = `z = ${mmText(height)}`;
  $("layer-count").textContent = `layer ${index + 1} of ${count}`;
  setHash({ build: results.build, layer: String(height) });
  let records;
  try {
    records = await layerRecords(height);
  } catch (err) {
    if (request === results.request) $("layer-info").textContent = `layer ${height} mm: ${err.message}`;
    return;
  }
  if (request !== results.request) return; // a later step won the race
  const invalid = results.invalidByHeight.get(heightKey(height)) ?? new Map();
  layerCanvas.setLayer(Array.isArray(records) ? records : [], height, invalid);
  const c = layerCanvas.counts();
  const summary = `${plural(c.metal, "metal loop")} · ${plural(c.hole, "hole")} · ${plural(c.line, "line")}`;
  $("layer-info").replaceChildren(
    summary,
    c.invalid
      ? element("span", { className: "alarm-text", text: ` · ${plural(c.invalid, "invalid loop")}` })
      : "",
  );
  // Neighbours ahead of the next key press.
  for (const next of [index + 1, index - 1]) {
    const h = results.heights[next];
    if (h !== undefined && !results.cache.has(h)) layerRecords(h).catch(() => {});
  }
}

function onLayerKey(event) {
  if (event.target.matches("input:not([type=range]), textarea, select") || results.index < 0) return;
  const steps = {
    ArrowRight: 1,
    ArrowUp: 1,
    ArrowLeft: -1,
    ArrowDown: -1,
    PageUp: 10,
    PageDown: -10,
  };
  const key = event.key;
  if (key in steps) goToIndex(results.index + steps[key]);
  else if (key === "Home") goToIndex(0);
  else if (key === "End") goToIndex(results.heights.length - 1);
  else if (key === "+" || key === "=") layerCanvas.zoom(1.5);
  else if (key === "-" || key === "_") layerCanvas.zoom(1 / 1.5);
  else if (key === "0") layerCanvas.fitPlate();
  else return;
  event.preventDefault();
}

// --- start --------------------------------------------------------------------------------

function start() {
  layerCanvas = new LayerCanvas($("layer-canvas"), $("canvas-tip"), $("canvas-coords"));
  gallery = new Gallery($("images"), $("lightbox"));
  $("refresh-builds").addEventListener("click", loadBuilds);
  $("submit-form").addEventListener("submit", submit);
  $("job-cancel").addEventListener("click", cancelJob);
  $("layer-slider").addEventListener("input", (e) => goToIndex(Number(e.target.value)));
  $("layer-prev").addEventListener("click", () => goToIndex(results.index - 1));
  $("layer-next").addEventListener("click", () => goToIndex(results.index + 1));
  $("zoom-in").addEventListener("click", () => layerCanvas.zoom(1.5));
  $("zoom-out").addEventListener("click", () => layerCanvas.zoom(1 / 1.5));
  $("zoom-plate").addEventListener("click", () => layerCanvas.fitPlate());
  $("zoom-parts").addEventListener("click", () => layerCanvas.fitContent());
  $("layer-goto-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const z = Number($("layer-goto").value);
    if ($("layer-goto").value !== "" && Number.isFinite(z)) goToHeight(z);
  });
  $("layer-panel").addEventListener("keydown", onLayerKey);
  for (const link of document.querySelectorAll(".results-nav [data-target]")) {
    link.addEventListener("click", () => $(link.dataset.target).scrollIntoView({ block: "start" }));
  }
  window.addEventListener("hashchange", applyHash);
  loadStatus();
  loadBuilds();
  applyHash();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
