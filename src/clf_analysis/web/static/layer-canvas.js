// The layer canvas: one layer's path data on the 210 mm plate, drawn by nesting, with mm
// axes, zoom and pan, and a hover readout that names the loop under the pointer.

import { areaText, filePath } from "./format.js";

export const PLATE_HALF_MM = 105; // the plate is 210 mm wide, centred on (0, 0), +y up
const MARGIN = { left: 50, right: 12, top: 12, bottom: 36 }; // CSS px for the axes
const ZOOM_LIMITS = [0.5, 400]; // × the scale at which the whole plate fits
const HIT_TOLERANCE_PX = 5;
const TICK_STEPS = [0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200];

// The palette lives in style.css (one home for the legend and the canvas).
function readPalette() {
  const style = getComputedStyle(document.documentElement);
  const get = (name) => style.getPropertyValue(name).trim();
  return {
    plate: get("--plate"),
    offPlate: get("--off-plate"),
    grid: get("--grid"),
    axis: get("--fg"),
    muted: get("--muted"),
    panel: get("--panel"),
    metal: get("--metal"),
    metalEdge: get("--metal-edge"),
    hole: get("--hole"),
    holeEdge: get("--hole-edge"),
    alarm: get("--alarm"),
    highlight: get("--highlight"),
    lines: {
      blue: get("--line-part"),
      red: get("--line-support"),
      green: get("--line-net"),
      gray: get("--line-other"),
    },
  };
}

// The key under which platform_info.json lists a loop in `invalid_loops`.
export function loopKey(file, shapeIndex, pathIndex) {
  return `${file}|${shapeIndex}|${pathIndex}`;
}

function modelIdOf(record) {
  const match = /^(\d+)_path_/.exec(String(record.identifier ?? ""));
  return match ? Number(match[1]) : null;
}

// One record of the path data, made ready to draw and to hit: its role decides the colour.
function prepare(record, order, invalid) {
  const points = record.points;
  if (!Array.isArray(points) || points.length < 2) return null;
  // Older results (schema 2) lack kind/line_format/nesting_depth: should_close and
  // is_hole say the same for them.
  const lineFormat = record.line_format ?? (record.should_close === false ? "open" : "closed");
  const kind = record.kind ?? (record.should_close === false ? "open" : "model");
  const closed = lineFormat === "closed" && record.should_close !== false;
  const depth = Number.isInteger(record.nesting_depth)
    ? record.nesting_depth
    : Number(Boolean(record.is_hole));
  const key = loopKey(
    `${record.clf_folder ?? ""}/${record.clf_name ?? ""}`,
    record.shape_index,
    record.path_index,
  );
  const reason = invalid.get(key);
  let role = "line";
  if (reason !== undefined) role = "invalid";
  else if (kind === "model" && closed) role = depth % 2 === 0 ? "metal" : "hole";

  const flat = new Float64Array(points.length * 2);
  const path = new Path2D();
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  points.forEach(([x, y], i) => {
    flat[2 * i] = x;
    flat[2 * i + 1] = y;
    x0 = Math.min(x0, x);
    y0 = Math.min(y0, y);
    x1 = Math.max(x1, x);
    y1 = Math.max(y1, y);
    // DASHED geometry is separate vertex pairs, never one polyline.
    if (i === 0 || (lineFormat === "dashed" && i % 2 === 0)) path.moveTo(x, y);
    else path.lineTo(x, y);
  });
  if (closed) path.closePath();
  return {
    record,
    key,
    order,
    role,
    reason,
    depth,
    kind,
    lineFormat,
    closed,
    flat,
    path,
    bbox: [x0, y0, x1, y1],
    area: Number(record.area_mm2 ?? 0),
    modelId: modelIdOf(record),
    file: filePath(record.clf_folder, record.clf_name),
  };
}

function insidePolygon(flat, x, y) {
  let inside = false;
  const n = flat.length / 2;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const xi = flat[2 * i];
    const yi = flat[2 * i + 1];
    const xj = flat[2 * j];
    const yj = flat[2 * j + 1];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function segmentDistance(px, py, ax, ay, bx, by) {
  const dx = bx - ax;
  const dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const t = len2 === 0 ? 0 : Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / len2));
  return Math.hypot(px - (ax + t * dx), py - (ay + t * dy));
}

function nearLine(loop, x, y, tolerance) {
  const { flat, lineFormat, closed } = loop;
  const n = flat.length / 2;
  const step = lineFormat === "dashed" ? 2 : 1;
  const last = closed ? n : n - 1;
  for (let i = 0; i < last; i += step) {
    const j = (i + 1) % n;
    const d = segmentDistance(x, y, flat[2 * i], flat[2 * i + 1], flat[2 * j], flat[2 * j + 1]);
    if (d <= tolerance) return true;
  }
  return false;
}

function contains(bbox, x, y, pad = 0) {
  return x >= bbox[0] - pad && x <= bbox[2] + pad && y >= bbox[1] - pad && y <= bbox[3] + pad;
}

function tickStep(pxPerMm) {
  return TICK_STEPS.find((step) => step * pxPerMm >= 56) ?? 500;
}

function tickLabel(value, step) {
  const decimals = step < 0.1 ? 2 : step < 1 ? 1 : 0;
  return (Math.abs(value) < step / 1000 ? 0 : value).toFixed(decimals);
}

export class LayerCanvas {
  constructor(canvas, tip, coords) {
    this.canvas = canvas;
    this.tip = tip;
    this.coords = coords;
    this.ctx = canvas.getContext("2d");
    this.base = document.createElement("canvas"); // the layer without hover marks
    this.palette = readPalette();
    this.loops = [];
    this.height = null;
    this.view = null; // { cx, cy, s }: mm at the centre of the plot, CSS px per mm
    this.size = { w: 0, h: 0, dpr: 1 };
    this.hovered = null;
    this.selected = null;
    this.drag = null;
    this.frame = 0;
    this.baseDirty = true;
    new ResizeObserver(() => this.resize()).observe(canvas);
    this.listen();
  }

  // --- data -------------------------------------------------------------------------------

  setLayer(records, height, invalid) {
    this.loops = records
      .map((record, i) => prepare(record, i, invalid))
      .filter((loop) => loop !== null);
    // Deeper loops over shallower ones: an island (depth 2) covers the hole (depth 1) that
    // covers its part (depth 0). Line geometry and invalid loops go on top of all areas.
    const rank = { metal: 0, hole: 0, line: 1, invalid: 2 };
    this.loops.sort(
      (a, b) => rank[a.role] - rank[b.role] || a.depth - b.depth || a.order - b.order,
    );
    this.height = height;
    this.hovered = null;
    this.selected = null;
    this.hideTip();
    this.canvas.dataset.paths = String(this.loops.length);
    this.canvas.dataset.height = String(height);
    this.invalidate();
  }

  counts() {
    const counts = { metal: 0, hole: 0, line: 0, invalid: 0 };
    for (const loop of this.loops) counts[loop.role] += 1;
    return counts;
  }

  // Outline the loop that platform_info.json lists as invalid (after "go to layer").
  select(key) {
    this.selected = this.loops.find((loop) => loop.key === key) ?? null;
    this.request();
    return this.selected;
  }

  // --- view -------------------------------------------------------------------------------

  plot() {
    const { w, h } = this.size;
    return {
      x: MARGIN.left,
      y: MARGIN.top,
      w: Math.max(1, w - MARGIN.left - MARGIN.right),
      h: Math.max(1, h - MARGIN.top - MARGIN.bottom),
    };
  }

  fitScale() {
    const p = this.plot();
    return Math.min(p.w, p.h) / (2 * PLATE_HALF_MM + 10);
  }

  origin() {
    const p = this.plot();
    const { cx, cy, s } = this.view;
    return { ox: p.x + p.w / 2 - cx * s, oy: p.y + p.h / 2 + cy * s, s };
  }

  toMm(px, py) {
    const { ox, oy, s } = this.origin();
    return [(px - ox) / s, (oy - py) / s];
  }

  fitPlate() {
    this.view = { cx: 0, cy: 0, s: this.fitScale() };
    this.invalidate();
  }

  fitBox([x0, y0, x1, y1], padMm = 3) {
    const p = this.plot();
    const w = Math.max(x1 - x0 + 2 * padMm, 1);
    const h = Math.max(y1 - y0 + 2 * padMm, 1);
    this.setScale((x0 + x1) / 2, (y0 + y1) / 2, Math.min(p.w / w, p.h / h));
  }

  fitContent() {
    if (this.loops.length === 0) return this.fitPlate();
    const box = [Infinity, Infinity, -Infinity, -Infinity];
    for (const { bbox } of this.loops) {
      box[0] = Math.min(box[0], bbox[0]);
      box[1] = Math.min(box[1], bbox[1]);
      box[2] = Math.max(box[2], bbox[2]);
      box[3] = Math.max(box[3], bbox[3]);
    }
    this.fitBox(box);
  }

  setScale(cx, cy, s) {
    const fit = this.fitScale();
    const clamped = Math.min(fit * ZOOM_LIMITS[1], Math.max(fit * ZOOM_LIMITS[0], s));
    this.view = { cx, cy, s: clamped };
    this.invalidate();
  }

  // Zoom by `factor`, keeping the mm point under (px, py) — the plot centre by default — still.
  zoom(factor, px, py) {
    if (!this.view) return;
    const p = this.plot();
    const at = [px ?? p.x + p.w / 2, py ?? p.y + p.h / 2];
    const [mx, my] = this.toMm(...at);
    const { cx, cy, s } = this.view;
    this.setScale(cx, cy, s * factor);
    const s2 = this.view.s;
    this.view.cx = mx - (at[0] - (p.x + p.w / 2)) / s2;
    this.view.cy = my + (at[1] - (p.y + p.h / 2)) / s2;
    this.invalidate();
  }

  pan(dx, dy) {
    this.view.cx -= dx / this.view.s;
    this.view.cy += dy / this.view.s;
    this.invalidate();
  }

  resize() {
    const rect = this.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    if (rect.width < 1 || rect.height < 1) return;
    const old = this.size;
    this.size = { w: rect.width, h: rect.height, dpr };
    for (const c of [this.canvas, this.base]) {
      c.width = Math.round(rect.width * dpr);
      c.height = Math.round(rect.height * dpr);
    }
    // Keep the same mm span visible when the page is resized; fit on the first layout.
    if (!this.view || old.w < 1) this.fitPlate();
    else {
      this.view.s *= Math.min(rect.width, rect.height) / Math.min(old.w, old.h);
      this.invalidate();
    }
  }

  // --- drawing ----------------------------------------------------------------------------

  invalidate() {
    this.baseDirty = true;
    this.request();
  }

  request() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.paint();
    });
  }

  // Draw now (tests and screenshots read the canvas right after a layer is shown).
  paint() {
    if (!this.view || this.size.w < 1) return;
    if (this.baseDirty) {
      this.drawBase();
      this.baseDirty = false;
    }
    const { ctx } = this;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    ctx.drawImage(this.base, 0, 0);
    this.drawMarks(ctx);
    const { ox, oy, s } = this.origin();
    this.canvas.dataset.pxPerMm = String(s);
    this.canvas.dataset.originX = String(ox);
    this.canvas.dataset.originY = String(oy);
  }

  mmTransform(ctx) {
    const { dpr } = this.size;
    const { ox, oy, s } = this.origin();
    ctx.setTransform(dpr * s, 0, 0, -dpr * s, dpr * ox, dpr * oy);
  }

  clipPlot(ctx) {
    const p = this.plot();
    const { dpr } = this.size;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.beginPath();
    ctx.rect(p.x, p.y, p.w, p.h);
    ctx.clip();
  }

  drawBase() {
    const ctx = this.base.getContext("2d");
    const pal = this.palette;
    const { dpr, w, h } = this.size;
    const { s } = this.view;
    ctx.save();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = pal.panel;
    ctx.fillRect(0, 0, w, h);
    this.clipPlot(ctx);
    ctx.fillStyle = pal.offPlate;
    ctx.fillRect(0, 0, w, h);

    this.mmTransform(ctx);
    const px = 1 / s; // one CSS pixel in mm
    ctx.fillStyle = pal.plate;
    ctx.fillRect(-PLATE_HALF_MM, -PLATE_HALF_MM, 2 * PLATE_HALF_MM, 2 * PLATE_HALF_MM);
    this.drawGrid(ctx, px);

    for (const loop of this.loops) {
      if (loop.role === "metal" || loop.role === "hole") {
        ctx.fillStyle = loop.role === "metal" ? pal.metal : pal.hole;
        ctx.fill(loop.path);
        ctx.strokeStyle = loop.role === "metal" ? pal.metalEdge : pal.holeEdge;
        ctx.lineWidth = px;
        ctx.stroke(loop.path);
      } else if (loop.role === "line") {
        // Open, dashed, support and web lines are stroked only: they enclose no metal.
        ctx.strokeStyle = pal.lines[loop.record.color] ?? pal.lines.gray;
        ctx.lineWidth = px;
        ctx.stroke(loop.path);
      } else {
        ctx.fillStyle = pal.alarm;
        ctx.fill(loop.path, "evenodd");
        ctx.strokeStyle = pal.alarm;
        ctx.lineWidth = 2 * px;
        ctx.stroke(loop.path);
      }
    }

    ctx.strokeStyle = pal.axis;
    ctx.lineWidth = px;
    ctx.setLineDash([6 * px, 4 * px]);
    ctx.strokeRect(-PLATE_HALF_MM, -PLATE_HALF_MM, 2 * PLATE_HALF_MM, 2 * PLATE_HALF_MM);
    ctx.setLineDash([]);

    // A ring around every invalid loop: a defect of 1 mm must be seen on the whole plate.
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const { ox, oy } = this.origin();
    ctx.strokeStyle = pal.alarm;
    ctx.lineWidth = 2;
    for (const loop of this.loops) {
      if (loop.role !== "invalid") continue;
      const [x0, y0, x1, y1] = loop.bbox;
      const r = Math.max(10, (Math.hypot(x1 - x0, y1 - y0) / 2) * s + 6);
      ctx.beginPath();
      ctx.arc(ox + ((x0 + x1) / 2) * s, oy - ((y0 + y1) / 2) * s, r, 0, 2 * Math.PI);
      ctx.stroke();
    }
    const corner = [ox - PLATE_HALF_MM * s, oy - PLATE_HALF_MM * s];
    ctx.fillStyle = pal.muted;
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "top";
    ctx.fillText("plate 210 × 210 mm", corner[0] + 4, corner[1] + 4);
    ctx.restore();
    this.drawAxes(ctx);
  }

  drawGrid(ctx, px) {
    const p = this.plot();
    const step = tickStep(this.view.s);
    const [xa, ya] = this.toMm(p.x, p.y + p.h);
    const [xb, yb] = this.toMm(p.x + p.w, p.y);
    ctx.strokeStyle = this.palette.grid;
    ctx.lineWidth = px;
    ctx.beginPath();
    for (let x = Math.ceil(xa / step) * step; x <= xb; x += step) {
      ctx.moveTo(x, ya);
      ctx.lineTo(x, yb);
    }
    for (let y = Math.ceil(ya / step) * step; y <= yb; y += step) {
      ctx.moveTo(xa, y);
      ctx.lineTo(xb, y);
    }
    ctx.stroke();
  }

  drawAxes(ctx) {
    const p = this.plot();
    const pal = this.palette;
    const { dpr } = this.size;
    const { ox, oy, s } = this.origin();
    const step = tickStep(s);
    const [xa, ya] = this.toMm(p.x, p.y + p.h);
    const [xb, yb] = this.toMm(p.x + p.w, p.y);
    ctx.save();
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.strokeStyle = pal.axis;
    ctx.fillStyle = pal.axis;
    ctx.lineWidth = 1;
    ctx.strokeRect(p.x - 0.5, p.y - 0.5, p.w + 1, p.h + 1);
    ctx.font = "11px system-ui, sans-serif";
    ctx.beginPath();
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let x = Math.ceil(xa / step) * step; x <= xb; x += step) {
      const X = Math.round(ox + x * s) + 0.5;
      ctx.moveTo(X, p.y + p.h);
      ctx.lineTo(X, p.y + p.h + 4);
      ctx.fillText(tickLabel(x, step), X, p.y + p.h + 6);
    }
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let y = Math.ceil(ya / step) * step; y <= yb; y += step) {
      const Y = Math.round(oy - y * s) + 0.5;
      ctx.moveTo(p.x - 4, Y);
      ctx.lineTo(p.x, Y);
      ctx.fillText(tickLabel(y, step), p.x - 6, Y);
    }
    ctx.stroke();
    ctx.fillStyle = pal.muted;
    ctx.textAlign = "right";
    ctx.textBaseline = "bottom";
    ctx.fillText("x mm", p.x + p.w, this.size.h - 2);
    ctx.save();
    ctx.translate(12, p.y);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.fillText("y mm", 0, 0);
    ctx.restore();
    ctx.restore();
  }

  drawMarks(ctx) {
    if (!this.selected && !this.hovered) return;
    ctx.save();
    this.clipPlot(ctx);
    const { dpr } = this.size;
    if (this.selected) {
      // A dashed frame around the loop, not over it: the loop keeps its own colour.
      const { ox, oy, s } = this.origin();
      const [x0, y0, x1, y1] = this.selected.bbox;
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      ctx.strokeStyle = this.palette.highlight;
      ctx.lineWidth = 1.5;
      ctx.setLineDash([5, 3]);
      ctx.strokeRect(ox + x0 * s - 5, oy - y1 * s - 5, (x1 - x0) * s + 10, (y1 - y0) * s + 10);
      ctx.setLineDash([]);
    }
    if (this.hovered) {
      this.mmTransform(ctx);
      ctx.strokeStyle = this.palette.highlight;
      ctx.lineWidth = 2.5 / this.view.s;
      ctx.stroke(this.hovered.path);
    }
    ctx.restore();
  }

  // --- hover ------------------------------------------------------------------------------

  // The loop under a point in mm: an invalid loop first, else the deepest closed loop
  // containing it (an island before its hole before its part), else a line near it.
  hit(x, y) {
    const tolerance = HIT_TOLERANCE_PX / this.view.s;
    let best = null;
    for (const loop of this.loops) {
      if (loop.role === "line" || !contains(loop.bbox, x, y, tolerance)) continue;
      const inside = insidePolygon(loop.flat, x, y);
      if (!inside && !(loop.role === "invalid" && nearLine(loop, x, y, tolerance))) continue;
      if (
        best === null ||
        (loop.role === "invalid") > (best.role === "invalid") ||
        ((loop.role === "invalid") === (best.role === "invalid") &&
          (loop.depth > best.depth || (loop.depth === best.depth && loop.area < best.area)))
      ) {
        best = loop;
      }
    }
    if (best) return best;
    for (let i = this.loops.length - 1; i >= 0; i--) {
      const loop = this.loops[i];
      if (loop.role !== "line" || !contains(loop.bbox, x, y, tolerance)) continue;
      if (nearLine(loop, x, y, tolerance)) return loop;
    }
    return null;
  }

  describe(loop) {
    const r = loop.record;
    const model = `model ${loop.modelId ?? "?"}`;
    const parent = r.parent_shape_id ? ` in ${r.parent_shape_id}` : "";
    const family = loop.kind === "support" ? "support" : "web";
    const role = {
      metal: `metal (nesting depth ${loop.depth})`,
      hole: `hole (nesting depth ${loop.depth})${parent}`,
      line: `${loop.lineFormat} ${family} line — stroked, not filled`,
      invalid: `invalid loop: ${loop.reason}`,
    }[loop.role];
    const where = `shape ${r.shape_index ?? "?"}, loop ${r.path_index ?? "?"}`;
    return [
      ["strong", r.model_name ? `${r.model_name} · ${model}` : model],
      ["", loop.file],
      [loop.role, role],
      loop.closed ? ["", `area ${areaText(loop.area)}`] : null,
      ["muted", `loop ${r.identifier ?? "?"} · ${where} · ${r.points.length} vertices`],
    ].filter(Boolean);
  }

  hoverAt(px, py) {
    const p = this.plot();
    const insidePlot = px >= p.x && px <= p.x + p.w && py >= p.y && py <= p.y + p.h;
    if (!this.view || !insidePlot) {
      this.hideTip();
      return;
    }
    const [x, y] = this.toMm(px, py);
    this.coords.textContent = `x ${x.toFixed(2)} mm, y ${y.toFixed(2)} mm`;
    const loop = this.hit(x, y);
    if (loop !== this.hovered) {
      this.hovered = loop;
      this.request();
    }
    if (!loop) {
      this.tip.hidden = true;
      return;
    }
    this.tip.replaceChildren(
      ...this.describe(loop).map(([cls, line]) => {
        const div = document.createElement("div");
        if (cls) div.className = cls;
        div.textContent = line;
        return div;
      }),
    );
    this.tip.hidden = false;
    // Beside the pointer, flipped to stay inside the canvas.
    const { w, h } = this.size;
    const tw = this.tip.offsetWidth;
    const th = this.tip.offsetHeight;
    const left = px + 16 + tw > w ? Math.max(0, px - 16 - tw) : px + 16;
    const top = py + 16 + th > h ? Math.max(0, py - 16 - th) : py + 16;
    this.tip.style.left = `${left}px`;
    this.tip.style.top = `${top}px`;
  }

  hideTip() {
    this.tip.hidden = true;
    this.coords.textContent = "";
    if (this.hovered) {
      this.hovered = null;
      this.request();
    }
  }

  // --- input ------------------------------------------------------------------------------

  listen() {
    const c = this.canvas;
    const local = (e) => {
      const rect = c.getBoundingClientRect();
      return [e.clientX - rect.left, e.clientY - rect.top];
    };
    // Pointers down on the canvas: one drags (pans), two pinch (zoom about their middle).
    const down = new Map();
    const pinch = () => {
      const [a, b] = [...down.values()];
      return { gap: Math.hypot(a[0] - b[0], a[1] - b[1]), mid: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2] };
    };
    c.addEventListener("pointerdown", (e) => {
      if (e.button !== 0) return;
      c.setPointerCapture(e.pointerId);
      down.set(e.pointerId, local(e));
      this.drag = down.size === 1 ? { at: local(e), moved: false } : { pinch: pinch(), moved: true };
    });
    c.addEventListener("pointermove", (e) => {
      const at = local(e);
      if (down.has(e.pointerId)) down.set(e.pointerId, at);
      if (this.drag?.pinch && down.size === 2) {
        const now = pinch();
        this.zoom(now.gap / Math.max(this.drag.pinch.gap, 1), ...now.mid);
        this.pan(now.mid[0] - this.drag.pinch.mid[0], now.mid[1] - this.drag.pinch.mid[1]);
        this.drag.pinch = now;
        return;
      }
      if (this.drag && !this.drag.pinch) {
        const [dx, dy] = [at[0] - this.drag.at[0], at[1] - this.drag.at[1]];
        if (this.drag.moved || Math.hypot(dx, dy) > 3) {
          this.drag.moved = true;
          this.drag.at = at;
          this.hideTip();
          this.pan(dx, dy);
          return;
        }
      }
      if (!this.drag) this.hoverAt(...at);
    });
    const end = (e) => {
      // A tap (touch) shows what is under the finger, as hovering does with a mouse.
      if (this.drag && !this.drag.moved) this.hoverAt(...local(e));
      down.delete(e.pointerId);
      // The finger left on the glass after a pinch goes on panning from where it is.
      const [rest] = [...down.values()];
      this.drag = rest ? { at: rest, moved: true } : null;
    };
    c.addEventListener("pointerup", end);
    c.addEventListener("pointercancel", (e) => {
      down.delete(e.pointerId);
      this.drag = null;
    });
    c.addEventListener("pointerleave", () => {
      if (!this.drag) this.hideTip();
    });
    c.addEventListener(
      "wheel",
      (e) => {
        e.preventDefault();
        const unit = e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? 400 : 1;
        this.zoom(Math.exp(-e.deltaY * unit * 0.0015), ...local(e));
      },
      { passive: false },
    );
    c.addEventListener("dblclick", (e) => this.zoom(2, ...local(e)));
  }
}
