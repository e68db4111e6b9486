// The plate images of a build, grouped by kind with captions read from platform_info.json,
// and a full-size view with next/previous.

import { element, filePath, mmText, plural, rangeText } from "./format.js";

// In the order they are shown; `match` is tested against the path below clf_analysis/.
const GROUPS = [
  { id: "holes", title: "Holes views", match: (p) => p.startsWith("holes_views/") },
  {
    id: "parts",
    title: "Part views",
    match: (p) => /^identifier_views\/identifier_.*_platform_view\.png$/.test(p),
  },
  { id: "clean", title: "Clean platforms", match: (p) => p.startsWith("clean_platforms/") },
  { id: "identifiers", title: "Identifier views", match: (p) => p.startsWith("identifier_views/") },
  { id: "unclosed", title: "Unclosed shapes and invalid loops", match: (p) => p.startsWith("unclosed") },
  { id: "composites", title: "Composites", match: (p) => p.startsWith("composite_platforms/") },
  { id: "other", title: "Other images", match: () => true },
];

function heightFromName(path) {
  const match = /_(-?[0-9.]+)mm\.png$/.exec(path);
  return match ? Number(match[1]) : null;
}

function byFilename(list) {
  const map = new Map();
  for (const entry of Array.isArray(list) ? list : []) {
    if (entry && typeof entry.filename === "string") map.set(entry.filename, entry);
  }
  return map;
}

// A readable caption (title + detail) for one image, from what platform_info.json says
// about it; the file name only where it says nothing.
function captioner(info) {
  const holes = byFilename(info.holes_views_interval?.views);
  const parts = byFilename(info.identifier_platform_views);
  const clean = byFilename(info.clean_platforms);
  const composites = byFilename(info.platform_composites);
  const all = info.all_pathdata_views ?? {};
  const unclosed = info.unclosed_shapes_view ?? {};
  const combined = info.combined_identifier_view ?? {};

  return (path) => {
    const z = heightFromName(path);
    if (holes.has(path)) {
      const view = holes.get(path);
      const stats = view.holes_statistics ?? {};
      const files = `${stats.files_with_holes} of ${plural(stats.total_files, "file")}`;
      const detail =
        stats.total_holes !== undefined ? `${plural(stats.total_holes, "hole")} in ${files}` : "";
      return [`Holes at z = ${mmText(view.height)}`, detail];
    }
    if (parts.has(path)) {
      const part = parts.get(path);
      const name = part.model_name || `model ${part.model_id ?? part.identifier}`;
      const where = filePath(part.folder, part.file);
      const title = `${name} (model ${part.model_id ?? part.identifier})`;
      return [title, `${where} · ${rangeText(part.height_range)}`];
    }
    if (clean.has(path)) {
      return [`Plate at z = ${mmText(clean.get(path).height)}`, "every file at this height"];
    }
    if (composites.has(path)) {
      const c = composites.get(path);
      return [`Composite at z = ${mmText(c.height_mm ?? c.height)}`, "coloured by folder"];
    }
    if (path === all.with_ids) return ["All path data, with ids", "every layer, 2100 px for 210 mm"];
    if (path === all.without_ids) return ["All path data, no ids", "every layer, 2100 px for 210 mm"];
    if (path === combined.filename) {
      const count = combined.total_parts ?? combined.total_identifiers;
      return ["All parts by model id", count !== undefined ? plural(count, "part") : ""];
    }
    if (path === unclosed.filename) {
      const reasons = Object.entries(unclosed.by_reason ?? {})
        .map(([reason, n]) => `${n} ${reason}`)
        .join(", ");
      return ["Unclosed shapes and invalid loops", reasons || plural(unclosed.total_shapes ?? 0, "shape")];
    }
    const name = path.split("/").pop().replace(/\.png$/, "").replace(/_/g, " ");
    return [z !== null && !name.includes("mm") ? `${name} at z = ${z} mm` : name, ""];
  };
}

export class Gallery {
  constructor(container, dialog) {
    this.container = container;
    this.dialog = dialog;
    this.items = [];
    this.index = -1;
    this.bindDialog();
  }

  show(artifacts, info) {
    const caption = captioner(info);
    const grouped = new Map(GROUPS.map((g) => [g.id, []]));
    for (const artifact of artifacts) {
      if (!artifact.path.endsWith(".png")) continue;
      const group = GROUPS.find((g) => g.match(artifact.path));
      const [title, detail] = caption(artifact.path);
      grouped.get(group.id).push({ ...artifact, title, detail, group: group.title });
    }
    this.items = [];
    this.container.replaceChildren();
    for (const group of GROUPS) {
      const items = grouped.get(group.id);
      if (items.length === 0) continue;
      // Heights in numeric order (file listings sort "10.0" before "2.0").
      items.sort((a, b) => (heightFromName(a.path) ?? 0) - (heightFromName(b.path) ?? 0));
      const grid = element("div", { className: "thumbs" });
      for (const item of items) {
        const index = this.items.push(item) - 1;
        grid.append(
          element(
            "figure",
            {},
            element(
              "button",
              {
                type: "button",
                className: "thumb",
                title: `${item.title} — open full size`,
                dataset: { path: item.path },
                onclick: () => this.open(index),
              },
              element("img", { src: item.url, alt: item.title, loading: "lazy" }),
            ),
            element(
              "figcaption",
              {},
              element("span", { className: "cap-title", text: item.title }),
              item.detail ? element("span", { className: "cap-detail", text: item.detail }) : null,
            ),
          ),
        );
      }
      this.container.append(
        element(
          "h4",
          { id: `images-${group.id}` },
          `${group.title} `,
          element("span", { className: "muted", text: `(${items.length})` }),
        ),
        grid,
      );
    }
    if (this.items.length === 0) {
      this.container.append(element("p", { className: "muted", text: "No images in these results." }));
    }
    return this.items.length;
  }

  indexOf(path) {
    return this.items.findIndex((item) => item.path === path);
  }

  open(index) {
    if (this.items.length === 0) return;
    this.index = (index + this.items.length) % this.items.length;
    const item = this.items[this.index];
    const $ = (sel) => this.dialog.querySelector(sel);
    const img = $("img");
    img.classList.remove("actual");
    img.src = item.url;
    img.alt = item.title;
    $(".lb-group").textContent = item.group;
    $(".lb-title").textContent = item.title;
    $(".lb-detail").textContent = item.detail;
    $(".lb-count").textContent = `${this.index + 1} / ${this.items.length}`;
    $(".lb-original").href = item.url;
    if (!this.dialog.open) this.dialog.showModal();
  }

  step(delta) {
    if (this.dialog.open) this.open(this.index + delta);
  }

  bindDialog() {
    const d = this.dialog;
    d.querySelector(".lb-prev").addEventListener("click", () => this.step(-1));
    d.querySelector(".lb-next").addEventListener("click", () => this.step(1));
    d.querySelector(".lb-close").addEventListener("click", () => d.close());
    // Click toggles between fitting the window and the image's own pixels (scrollable).
    d.querySelector("img").addEventListener("click", (e) => e.target.classList.toggle("actual"));
    d.addEventListener("keydown", (e) => {
      if (e.key === "ArrowRight" || e.key === "PageDown") this.step(1);
      else if (e.key === "ArrowLeft" || e.key === "PageUp") this.step(-1);
      else return;
      e.preventDefault();
    });
    // A horizontal swipe on a touch screen steps, as the arrow keys do.
    let swipe = null;
    const body = d.querySelector(".lb-body");
    body.addEventListener("pointerdown", (e) => {
      swipe = e.pointerType === "touch" ? [e.clientX, e.clientY] : null;
    });
    body.addEventListener("pointerup", (e) => {
      if (!swipe) return;
      const [dx, dy] = [e.clientX - swipe[0], e.clientY - swipe[1]];
      swipe = null;
      if (Math.abs(dx) > 60 && Math.abs(dx) > 2 * Math.abs(dy)) this.step(dx < 0 ? 1 : -1);
    });
    // A click on the backdrop (outside the panel) closes, as Escape does.
    d.addEventListener("click", (e) => {
      if (e.target === d) d.close();
    });
  }
}
