// The build report of the results page: summary, parts table, warnings and invalid loops.

import { element, filePath, formatSize, mmText, plural, rangeText, text, volumeText } from "./format.js";

function count(value) {
  if (Array.isArray(value)) return value.length;
  if (value && typeof value === "object") return Object.keys(value).length;
  return value;
}

// A few readable lines from platform_info.json; the legacy keys hold lists, not counts.
export function summaryRows(info) {
  const rows = [];
  const add = (label, value, title) => {
    if (value !== undefined && value !== null && value !== "") rows.push([label, value, title]);
  };
  const build = info.build && typeof info.build === "object" ? info.build : null;
  if (build) {
    add("package", `${text(build.archive)} (${formatSize(build.size_bytes)})`);
    if (build.sha256) add("sha256", `${build.sha256.slice(0, 16)}…`, build.sha256);
  }
  add("files analysed", count(info.files_analyzed));
  const excluded = info.exclusion_info?.files_excluded;
  if (excluded) add("files excluded", excluded);
  const heights = info.global_height_info;
  const layers = heights?.layer_count ?? count(info.heights);
  const thickness = heights?.layer_thickness;
  add("layers", thickness ? `${layers} of ${mmText(thickness)}` : layers);
  if (heights && typeof heights === "object" && heights.min_height !== undefined) {
    // max_height may be padded up to the last legacy sample; the top layer is exact.
    const top = heights.top_layer_height ?? heights.max_height;
    add("height range", `${Number(heights.min_height)} – ${Number(top)} mm`);
  }
  add("parts", count(info.parts));
  const holesInterval = info.holes_views_interval;
  add(
    "holes views every",
    holesInterval && typeof holesInterval === "object" ? mmText(holesInterval.interval_mm) : holesInterval,
  );
  add("invalid loops", info.invalid_loops_total ?? count(info.invalid_loops));
  add("warnings", count(info.warnings));
  if (info.timings && typeof info.timings === "object") {
    const total = Object.values(info.timings).reduce((a, b) => a + (Number(b) || 0), 0);
    add("analysis time", `${total.toFixed(1)} s`);
  }
  if (info.generated_at) add("analysed at", String(info.generated_at).replace("T", " ").slice(0, 19));
  add("schema version", info.schema_version);
  return rows;
}

export function renderSummary(dl, info) {
  dl.replaceChildren();
  for (const [label, value, title] of summaryRows(info)) {
    dl.append(element("dt", { text: label }), element("dd", { text: value, title }));
  }
}

// A table cell that carries its column's name for the one-card-per-row narrow layout.
function td(label, content, className, title) {
  return element("td", { "data-label": label, className, title }, content);
}

// `invalid_loops[].file` and warning prefixes name a file as "<folder>/<name>".
const fileKey = (folder, name) => `${folder ?? ""}/${name ?? ""}`;

function partProblems(info) {
  const problems = new Map();
  const bump = (key, field) => {
    const entry = problems.get(key) ?? { invalid: 0, warnings: 0 };
    entry[field] += 1;
    problems.set(key, entry);
  };
  for (const loop of Array.isArray(info.invalid_loops) ? info.invalid_loops : []) {
    bump(`${loop.file}|${loop.model_id}`, "invalid");
  }
  const parts = Array.isArray(info.parts) ? info.parts : [];
  for (const warning of Array.isArray(info.warnings) ? info.warnings : []) {
    for (const part of parts) {
      if (String(warning).startsWith(`${fileKey(part.folder, part.file)}: `)) {
        bump(`${fileKey(part.folder, part.file)}|${part.model_id}`, "warnings");
      }
    }
  }
  return problems;
}

// `actions.openPart(part)` opens the part's view, `actions.showPart(part)` its layers.
export function renderParts(table, info, actions) {
  const tbody = table.querySelector("tbody");
  tbody.replaceChildren();
  const parts = Array.isArray(info.parts) ? info.parts : [];
  const problems = partProblems(info);
  for (const part of parts) {
    const key = `${fileKey(part.folder, part.file)}|${part.model_id}`;
    const found = problems.get(key) ?? { invalid: 0, warnings: 0 };
    const issues = [];
    if (found.invalid) issues.push(plural(found.invalid, "invalid loop"));
    if (found.warnings) issues.push(plural(found.warnings, "warning"));
    const name = part.model_name || `model ${part.model_id}`;
    const hasView = actions.hasView(part);
    const row = element(
      "tr",
      {
        className: hasView ? "jump" : "",
        dataset: { partKey: part.part_key ?? "" },
        title: hasView ? "open the part's view" : undefined,
        onclick: (e) => {
          if (hasView && !e.target.closest("button")) actions.openPart(part);
        },
      },
      td(
        "Part",
        hasView
          ? element("button", {
              type: "button",
              className: "link",
              text: name,
              onclick: () => actions.openPart(part),
            })
          : name,
      ),
      td("File", filePath(part.folder, part.file), "path"),
      td("Model id", text(part.model_id), "num"),
      td("Height", rangeText(part.z_range), "num"),
      td("Volume", volumeText(part.volume_mm3), "num"),
      td("Holes", text(part.hole_count), "num", "most holes on one layer"),
      td("Warnings", issues.join(", ") || "none", issues.length ? "alarm-text" : "muted"),
      td(
        "",
        element("button", {
          type: "button",
          className: "secondary small",
          text: "layers",
          title: "show this part on the layer canvas",
          onclick: () => actions.showPart(part),
        }),
      ),
    );
    tbody.append(row);
  }
  if (parts.length === 0) {
    const none = "No parts listed in these results (older results have no `parts`).";
    const cell = element("td", { colspan: 8, "data-label": "", className: "muted", text: none });
    tbody.append(element("tr", {}, cell));
  }
  return parts.length;
}

// A height written inside a warning ("… at z=1.2500 mm"), if there is one.
export function heightInWarning(warning) {
  const match = /\bz\s*=\s*(-?[0-9]+(?:\.[0-9]+)?)/.exec(String(warning));
  return match ? Number(match[1]) : null;
}

// `goTo(z, loop)` shows the layer at z (and the invalid loop, when given).
export function renderProblems(container, info, goTo) {
  container.replaceChildren();
  const warnings = Array.isArray(info.warnings) ? info.warnings : [];
  const invalid = Array.isArray(info.invalid_loops) ? info.invalid_loops : [];
  const total = info.invalid_loops_total ?? invalid.length;
  const goButton = (z, loop) =>
    element("button", {
      type: "button",
      className: "secondary small go-layer",
      text: "go to layer",
      dataset: { z: String(z) },
      onclick: () => goTo(z, loop),
    });

  const counted = element("span", { className: "muted", text: `(${warnings.length})` });
  container.append(element("h4", {}, "Warnings ", counted));
  if (warnings.length === 0) container.append(element("p", { className: "muted", text: "No warnings." }));
  else {
    const list = element("ul", { className: "warnings" });
    for (const warning of warnings) {
      const z = heightInWarning(warning);
      const go = z !== null ? goButton(z, null) : null;
      list.append(element("li", {}, element("span", { text: warning }), go));
    }
    container.append(list);
  }

  container.append(
    element(
      "h4",
      {},
      "Invalid loops ",
      element("span", {
        className: "muted",
        text: total > invalid.length ? `(${invalid.length} listed of ${total})` : `(${total})`,
      }),
    ),
  );
  if (invalid.length === 0) {
    container.append(element("p", { className: "muted", text: "No invalid loops." }));
    return;
  }
  const table = element(
    "table",
    { className: "cards", id: "invalid-loops" },
    element(
      "thead",
      {},
      element(
        "tr",
        {},
        ...["File", "z", "Model", "Shape / loop", "Reason", "At (mm)", ""].map((h) =>
          element("th", { text: h }),
        ),
      ),
    ),
  );
  const tbody = element("tbody");
  for (const loop of invalid) {
    const at = Array.isArray(loop.at) ? `${loop.at[0]}, ${loop.at[1]}` : "";
    tbody.append(
      element(
        "tr",
        {},
        td("File", text(loop.file), "path"),
        td("z", mmText(loop.z), "num"),
        td("Model", text(loop.model_id), "num"),
        td("Shape / loop", `${loop.shape_index} / ${loop.path_index}`, "num"),
        td("Reason", text(loop.reason), "alarm-text"),
        td("At (mm)", at, "num"),
        td("", goButton(loop.z, loop)),
      ),
    );
  }
  table.append(tbody);
  container.append(table);
}
