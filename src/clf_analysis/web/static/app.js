// Viewer of the CLF analysis service: builds, submissions, job progress, results.
// Plain browser JavaScript, no build step; talks only to its own origin.
"use strict";

const PLATE_HALF_MM = 105; // plate is 210 mm wide, centred on 0 (OUTPUTS.md)
const COLORS = { blue: "#1e63d6", red: "#d32f2f", green: "#2e7d32", gray: "#888888" };
const FINISHED = new Set(["completed", "failed", "cancelled"]);

const $ = (id) => document.getElementById(id);

let pollTimer = null;
let currentJob = null;
let layerHeights = [];
let layerBuild = null;

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    // Every error of the service is problem+json with `detail` (and legacy `message`).
    const detail = body && (body.detail || body.message);
    throw new Error(detail || `HTTP ${response.status}`);
  }
  return { body, response };
}

function text(value) {
  return value === null || value === undefined ? "" : String(value);
}

function cell(row, value, className) {
  const td = document.createElement("td");
  td.textContent = text(value);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function hashParams() {
  return new URLSearchParams(location.hash.replace(/^#/, ""));
}

function setHash(params) {
  const next = "#" + new URLSearchParams(params).toString();
  if (location.hash !== next) history.replaceState(null, "", next);
}

// --- service status ---------------------------------------------------------------------

async function loadStatus() {
  try {
    const { body } = await api("/readyz");
    $("service-status").textContent = body.status === "ready" ? "service ready" : body.status;
  } catch (err) {
    $("service-status").textContent = `service not ready: ${err.message}`;
  }
}

// --- builds -----------------------------------------------------------------------------

async function loadBuilds() {
  const tbody = $("builds").querySelector("tbody");
  try {
    const { body } = await api("/api/builds");
    tbody.replaceChildren();
    for (const build of body.builds) {
      const row = document.createElement("tr");
      row.dataset.buildId = build.build_id;
      cell(row, build.build_id);
      cell(row, build.archive);
      cell(row, formatSize(build.size_bytes), "num");
      const job = build.latest_job;
      const status = cell(row, job ? "" : "—");
      if (job) {
        const badge = document.createElement("span");
        badge.className = `badge ${job.status}`;
        badge.textContent = job.status;
        status.appendChild(badge);
      }
      cell(row, build.results_available ? "yes" : "no");
      const actions = cell(row, "");
      const analyse = document.createElement("button");
      analyse.type = "button";
      analyse.className = "secondary";
      analyse.textContent = "Analyse";
      analyse.addEventListener("click", () => {
        $("submit-build").value = build.build_id;
        $("submit-build").focus();
      });
      actions.appendChild(analyse);
      if (build.results_available) {
        const show = document.createElement("button");
        show.type = "button";
        show.textContent = "Results";
        show.addEventListener("click", () => showResults(build.build_id));
        actions.appendChild(document.createTextNode(" "));
        actions.appendChild(show);
      }
      tbody.appendChild(row);
    }
    $("builds-empty").hidden = body.builds.length > 0;
  } catch (err) {
    $("builds-empty").hidden = false;
    $("builds-empty").textContent = `Builds unavailable: ${err.message}`;
  }
}

// --- submission and progress --------------------------------------------------------------

function showError(message) {
  const el = $("submit-error");
  el.textContent = message || "";
  el.hidden = !message;
}

async function submit(event) {
  event.preventDefault();
  showError("");
  const buildId = $("submit-build").value.trim();
  const headers = { "Content-Type": "application/json" };
  const token = $("submit-token").value;
  if (token) headers.Authorization = `Bearer ${token}`;
  const params = {
    holes_interval: Number($("submit-holes").value || 10),
    create_composite_views: $("submit-composite").checked,
  };
  try {
    const { body } = await api(`/api/builds/${encodeURIComponent(buildId)}/analyze`, {
      method: "POST",
      headers,
      body: JSON.stringify(params),
    });
    watchJob(body.job_id);
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
      const { body, response } = await api(`/api/jobs/${jobId}`);
      if (currentJob !== jobId) return;
      renderJob(body.job);
      if (FINISHED.has(body.job.status)) {
        loadBuilds();
        if (body.job.status === "completed") showResults(body.job.build_id, wantedHeight);
        return;
      }
      const wait = Number(response.headers.get("Retry-After") || 2);
      pollTimer = setTimeout(poll, Math.min(wait, 2) * 1000);
    } catch (err) {
      showError(err.message);
    }
  };
  poll();
}

async function cancelJob() {
  if (!currentJob) return;
  const headers = {};
  const token = $("submit-token").value;
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const { body } = await api(`/api/jobs/${currentJob}`, { method: "DELETE", headers });
    renderJob(body.job);
  } catch (err) {
    showError(err.message);
  }
}

// --- results ------------------------------------------------------------------------------

function count(value) {
  if (Array.isArray(value)) return value.length;
  if (value && typeof value === "object") return Object.keys(value).length;
  return value;
}

// A few readable lines from platform_info.json; the legacy keys hold lists, not counts.
function summarize(info) {
  const rows = [];
  const add = (label, value) => {
    if (value !== undefined && value !== null && value !== "") rows.push([label, value]);
  };
  if (info.build && typeof info.build === "object") {
    add("package", `${text(info.build.archive)} (${formatSize(info.build.size_bytes)})`);
  }
  add("files analysed", count(info.files_analyzed));
  // `layers` is the legacy per-file sample list; `heights` has one entry per layer height.
  add("layers", count(info.heights));
  add("parts", count(info.parts));
  const heights = info.global_height_info;
  if (heights && typeof heights === "object" && heights.max_height !== undefined) {
    // max_height may be padded up to the last legacy sample; the top layer is exact.
    const top = heights.top_layer_height ?? heights.max_height;
    add("height range", `${heights.min_height} – ${top} mm`);
  }
  const holes = info.holes_views_interval;
  add("holes interval", holes && typeof holes === "object" ? `${holes.interval_mm} mm` : holes);
  add("invalid loops", info.invalid_loops_total ?? count(info.invalid_loops));
  add("warnings", count(info.warnings));
  if (info.timings && typeof info.timings === "object") {
    const total = Object.values(info.timings).reduce((a, b) => a + (Number(b) || 0), 0);
    add("analysis time", `${total.toFixed(1)} s`);
  }
  add("schema version", info.schema_version);
  return rows;
}

async function showResults(buildId, wantedHeight) {
  try {
    const { body } = await api(`/api/builds/${encodeURIComponent(buildId)}/results`);
    $("results-section").hidden = false;
    $("results-build").textContent = buildId;
    const summary = $("results-summary");
    summary.replaceChildren();
    for (const [label, value] of summarize(body.platform_info)) {
      const dt = document.createElement("dt");
      dt.textContent = label;
      const dd = document.createElement("dd");
      dd.textContent = text(value);
      summary.append(dt, dd);
    }
    const images = $("images");
    images.replaceChildren();
    for (const artifact of body.artifacts) {
      if (!artifact.path.endsWith(".png")) continue;
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = artifact.url;
      img.alt = artifact.path;
      img.loading = "lazy";
      const caption = document.createElement("figcaption");
      caption.textContent = artifact.path;
      figure.append(img, caption);
      images.appendChild(figure);
    }
    await loadLayers(buildId, wantedHeight);
    setHash(wantedHeight === undefined ? { build: buildId } : { build: buildId, layer: wantedHeight });
  } catch (err) {
    showError(`results of ${buildId}: ${err.message}`);
  }
}

async function loadLayers(buildId, wantedHeight) {
  const { body } = await api(`/api/builds/${encodeURIComponent(buildId)}/layers`);
  layerHeights = body.heights;
  layerBuild = buildId;
  const slider = $("layer-slider");
  slider.max = String(Math.max(0, layerHeights.length - 1));
  $("layer-count").textContent = `${layerHeights.length} layers`;
  if (layerHeights.length === 0) return;
  let index = Math.floor(layerHeights.length / 2);
  if (wantedHeight !== undefined) {
    const found = layerHeights.findIndex((h) => Math.abs(h - Number(wantedHeight)) < 1e-6);
    if (found >= 0) index = found;
  }
  slider.value = String(index);
  await drawLayer(index);
}

async function drawLayer(index) {
  const height = layerHeights[index];
  if (height === undefined || layerBuild === null) return;
  $("layer-height").textContent = `z = ${height} mm`;
  const { body: records } = await api(
    `/api/builds/${encodeURIComponent(layerBuild)}/layers/${height}`,
  );
  const canvas = $("layer-canvas");
  const ctx = canvas.getContext("2d");
  const scale = canvas.width / (2 * PLATE_HALF_MM);
  const toPx = ([x, y]) => [(x + PLATE_HALF_MM) * scale, (PLATE_HALF_MM - y) * scale];
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = "#d8dde3";
  ctx.strokeRect(0.5, 0.5, canvas.width - 1, canvas.height - 1);
  let drawn = 0;
  // Solids first, then holes on top: a hole is cut visually out of its parent.
  const ordered = [...records].sort((a, b) => Number(Boolean(a.is_hole)) - Number(Boolean(b.is_hole)));
  for (const record of ordered) {
    if (!Array.isArray(record.points) || record.points.length < 2) continue;
    ctx.beginPath();
    record.points.forEach((point, i) => {
      const [px, py] = toPx(point);
      if (i === 0) ctx.moveTo(px, py);
      else ctx.lineTo(px, py);
    });
    if (record.should_close !== false) ctx.closePath();
    const color = COLORS[record.color] || COLORS.gray;
    if (record.is_hole) {
      ctx.fillStyle = "#ffffff";
      ctx.fill();
      ctx.setLineDash([4, 3]);
    } else {
      ctx.globalAlpha = 0.35;
      ctx.fillStyle = color;
      ctx.fill();
      ctx.globalAlpha = 1;
      ctx.setLineDash([]);
    }
    ctx.strokeStyle = color;
    ctx.lineWidth = 1;
    ctx.stroke();
    ctx.setLineDash([]);
    drawn += 1;
  }
  // Lets tests (and curious users in devtools) see what was drawn.
  canvas.dataset.paths = String(drawn);
  canvas.dataset.height = String(height);
}

// --- start --------------------------------------------------------------------------------

function start() {
  $("refresh-builds").addEventListener("click", loadBuilds);
  $("submit-form").addEventListener("submit", submit);
  $("job-cancel").addEventListener("click", cancelJob);
  $("layer-slider").addEventListener("input", (e) => drawLayer(Number(e.target.value)));
  loadStatus();
  loadBuilds();
  const params = hashParams();
  const layer = params.get("layer") ?? undefined;
  if (params.get("job")) watchJob(params.get("job"), layer);
  else if (params.get("build")) showResults(params.get("build"), layer);
}

document.addEventListener("DOMContentLoaded", start);
