"""Annotated plate figures (PNG) drawn with matplotlib's object API.

Only `matplotlib.figure.Figure` with an Agg canvas is used — never `pyplot`, never a
global rcParams change — so figures can be drawn in worker processes and threads
without shared plotting state. Every figure has the same layout and pixel size
(`FIGURE_PX`): the plate with mm axes on the left, legend and notes on the right.

Geometry comes in as plain arrays: a loop is an (n, 2) float32 array in mm (first vertex
not repeated), a shape is a sequence of loops (exterior first, then its holes), and a
part footprint is either a sequence of shapes or a plate-registered boolean mask of
`plate.px` x `plate.px` pixels (the unpacked bits of a `FootprintMask`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch, Rectangle
from matplotlib.path import Path as MplPath

from clf_analysis.clf.types import LoopArray
from clf_analysis.geometry.loops import signed_area
from clf_analysis.layout import mm
from clf_analysis.render.items import UnclosedItem
from clf_analysis.render.plate import Plate
from clf_analysis.render.png import RenderError, write_atomically_verified
from clf_analysis.render.raster import line_pieces

ShapeLoops = Sequence[LoopArray]
Mask = npt.NDArray[np.bool_]
Footprint = Sequence[ShapeLoops] | Mask
BBox = tuple[float, float, float, float]  # min x, min y, max x, max y (mm)

FIGURE_SIZE_IN = (10.0, 8.0)
FIGURE_DPI = 100
FIGURE_PX = (1000, 800)  # width, height of every figure PNG

SOLID_FACE = "#9fb3c8"
SOLID_EDGE = "#2f4b66"
HOLE_FACE = "#ff7f0e"
HOLE_EDGE = "#b30000"
HIGHLIGHT = "#1f5fbf"
FAINT = "#c9ced6"
PLATE_FACE = "#f6f7f9"
# Colour cycle for folders / parts: tab20 without its light greys, which vanish on the plate.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5",
    "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5",
)  # fmt: skip

# Green is kept for "nothing found", so reasons never use it.
REASON_COLORS = tuple(c for c in PALETTE[:10] if c not in ("#2ca02c", "#98df8a"))

# Labels drawn on the plate beyond this count would cover the geometry they name.
MAX_PLATE_LABELS = 40


def palette_color(index: int) -> str:
    """The `index`-th colour of the figure palette (cycles)."""
    return PALETTE[index % len(PALETTE)]


# ---------------------------------------------------------------------------- helpers


def _shapes_path(shapes: Sequence[ShapeLoops]) -> MplPath | None:
    """One compound path for many shapes; holes cut out under the nonzero fill rule.

    Agg fills by winding number, so exteriors are made counter-clockwise and holes
    clockwise whatever the file's orientation.
    """
    vertices: list[npt.NDArray[np.float64]] = []
    codes: list[npt.NDArray[np.uint8]] = []
    for shape in shapes:
        for index, raw in enumerate(shape):
            loop = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
            if len(loop) < 3:
                continue
            ccw = signed_area(loop) > 0
            if ccw != (index == 0):
                loop = loop[::-1]
            vertices.append(np.vstack([loop, loop[:1]]))
            c = np.full(len(loop) + 1, MplPath.LINETO, dtype=np.uint8)
            c[0], c[-1] = MplPath.MOVETO, MplPath.CLOSEPOLY
            codes.append(c)
    if not vertices:
        return None
    return MplPath(np.concatenate(vertices), np.concatenate(codes))


def _loops_path(loops: Sequence[LoopArray]) -> MplPath | None:
    """Every loop as its own filled island (used for holes, drawn on top)."""
    return _shapes_path([[loop] for loop in loops])


def _centre(loop: LoopArray) -> tuple[float, float]:
    a = np.asarray(loop, dtype=np.float64).reshape(-1, 2)
    return float(a[:, 0].mean()), float(a[:, 1].mean())


@dataclass(frozen=True)
class _SmallMask:
    """A footprint mask reduced for display; `factor` plate pixels per figure pixel."""

    mask: Mask
    factor: int


def _reduce(mask: Mask, plate: Plate) -> _SmallMask:
    if mask.shape != (plate.px, plate.px):
        raise RenderError(
            f"footprint mask is {mask.shape}, expected ({plate.px}, {plate.px}) for {plate}"
        )
    # The plate is ~600 px wide in a figure; reducing first makes imshow and centroids
    # cheap. Area averaging of 0/255 keeps any painted pixel (a block-OR), so thin parts
    # stay visible; it is ~15x faster than numpy's reshape().any().
    factor = max(1, plate.px // 700)
    while plate.px % factor:
        factor -= 1
    if factor == 1:
        return _SmallMask(mask.astype(bool, copy=False), 1)
    n = plate.px // factor
    scaled = mask.view(np.uint8) * np.uint8(255) if mask.dtype == np.bool_ else (mask != 0) * 255
    small = cv2.resize(scaled.astype(np.uint8), (n, n), interpolation=cv2.INTER_AREA) > 0
    return _SmallMask(small, factor)


_Drawable = Sequence[ShapeLoops] | _SmallMask


def _prepare(footprint: Footprint, plate: Plate) -> _Drawable:
    return _reduce(footprint, plate) if isinstance(footprint, np.ndarray) else footprint


def _mask_overlay(masks: Sequence[tuple[_SmallMask, str, float]]) -> npt.NDArray[np.uint8]:
    """One RGBA image for several reduced masks; later masks on top."""
    image = np.zeros((*masks[0][0].mask.shape, 4), dtype=np.uint8)
    for small, color, alpha in masks:
        image[small.mask] = np.round(np.array(to_rgba(color, alpha)) * 255).astype(np.uint8)
    return image


def _footprint_centre(footprint: _Drawable, plate: Plate) -> tuple[float, float] | None:
    if isinstance(footprint, _SmallMask):
        rows, cols = np.nonzero(footprint.mask)
        if len(rows) == 0:
            return None
        f = footprint.factor
        colrow = [[(cols.mean() + 0.5) * f - 0.5, (rows.mean() + 0.5) * f - 0.5]]
        x, y = plate.to_mm(colrow)[0]
        return float(x), float(y)
    exteriors = [shape[0] for shape in footprint if len(shape) and len(shape[0]) >= 3]
    if not exteriors:
        return None
    points = np.concatenate([np.asarray(e, dtype=np.float64) for e in exteriors])
    return float(points[:, 0].mean()), float(points[:, 1].mean())


def _add_geometry(ax: Axes, patch: PathPatch) -> None:
    """Add a patch of plate geometry to axes whose limits are set explicitly.

    Not `add_patch`, which also grows the data limits by walking the path segment by
    segment in Python: a quarter of a second for a holes view of a few thousand vertices,
    for limits that every axes here sets itself. Otherwise the two add the same way.
    """
    ax.add_artist(patch)


def _draw_footprints(
    ax: Axes, items: Sequence[tuple[_Drawable, str, float]], plate: Plate, zorder: float
) -> None:
    """Draw footprints (loops or masks) in order; masks are merged into one image."""
    masks = [(f, c, a) for f, c, a in items if isinstance(f, _SmallMask)]
    if masks:
        ax.imshow(
            _mask_overlay(masks),
            extent=plate.extent_mm,
            origin="upper",
            interpolation="nearest",
            zorder=zorder,
        )
    for footprint, color, alpha in items:
        if isinstance(footprint, _SmallMask):
            continue
        path = _shapes_path(footprint)
        if path is not None:
            _add_geometry(
                ax,
                PathPatch(
                    path,
                    facecolor=to_rgba(color, alpha),
                    edgecolor=color,
                    lw=0.6,
                    zorder=zorder + 0.1,
                ),
            )


def _draw_mask_crop(ax: Axes, mask: Mask, bbox: BBox, pad: float, color: str, plate: Plate) -> None:
    """Full-resolution crop of a mask around `bbox`, for the zoomed inset."""
    lo = plate.to_px([[bbox[0] - pad, bbox[3] + pad]])[0]
    hi = plate.to_px([[bbox[2] + pad, bbox[1] - pad]])[0]
    c0, r0 = (max(0, int(np.floor(v))) for v in lo)
    c1, r1 = (min(plate.px, int(np.ceil(v)) + 1) for v in hi)
    if c1 <= c0 or r1 <= r0:
        return
    crop = mask[r0:r1, c0:c1]
    image = np.zeros((*crop.shape, 4), dtype=np.uint8)
    image[crop.astype(bool)] = np.round(np.array(to_rgba(color, 0.85)) * 255).astype(np.uint8)
    (left, top), (right, bottom) = plate.to_mm([[c0 - 0.5, r0 - 0.5], [c1 - 0.5, r1 - 0.5]])
    ax.imshow(
        image, extent=(left, right, bottom, top), origin="upper", interpolation="nearest", zorder=2
    )


def _plate_figure(plate: Plate, title: str, subtitle: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.075, 0.075, 0.62, 0.80))
    half = plate.half_mm
    margin = plate.size_mm * 0.02
    ax.set_xlim(-half - margin, half + margin)
    ax.set_ylim(-half - margin, half + margin)
    ax.set_aspect("equal")
    ax.set_xlabel("x (mm)")
    ax.set_ylabel("y (mm)")
    ax.grid(True, color="#d0d4da", lw=0.5, ls=":", zorder=0)
    ax.set_axisbelow(True)
    ax.add_patch(
        Rectangle(
            (-half, -half),
            plate.size_mm,
            plate.size_mm,
            facecolor=PLATE_FACE,
            edgecolor="#333333",
            lw=1.4,
            zorder=0.5,
        )
    )
    ax.plot([0], [0], marker="+", color="#888888", ms=8, zorder=0.6)
    fig.text(0.075, 0.955, title, fontsize=15, fontweight="bold", va="center")
    fig.text(0.075, 0.915, subtitle, fontsize=10.5, color="#444444", va="center")
    return fig, ax


def _legend(ax: Axes, handles: Sequence[Patch | Line2D], title: str | None = None) -> None:
    if not handles:
        return
    fontsize = 9 if len(handles) <= 18 else 7
    ax.legend(
        handles=list(handles),
        loc="upper left",
        bbox_to_anchor=(1.03, 1.0),
        borderaxespad=0.0,
        fontsize=fontsize,
        title=title,
        title_fontsize=9.5,
        frameon=True,
    )


def _empty_note(ax: Axes, text: str) -> None:
    """Say in the middle of the plate why there is nothing to see."""
    ax.text(0, 0, text, ha="center", va="center", fontsize=14, color="#666666", zorder=5)


def _side_note(fig: Figure, lines: Sequence[str], y: float = 0.10) -> None:
    if lines:
        fig.text(
            0.725,
            y,
            "\n".join(lines),
            fontsize=8.5,
            va="bottom",
            family="monospace",
            color="#333333",
        )


def _save(fig: Figure, path: Path) -> None:
    def write(temp: Path) -> None:
        fig.savefig(temp, format="png", dpi=FIGURE_DPI, facecolor="white")

    write_atomically_verified(Path(path), write, FIGURE_PX)


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def _z_text(z: float) -> str:
    return f"{mm(z):g} mm"


# ---------------------------------------------------------------------------- figures


def holes_view(
    path: Path,
    *,
    build_id: str,
    z: float,
    solids: Sequence[ShapeLoops],
    holes: Sequence[LoopArray],
    hole_labels: Sequence[str] | None = None,
    solid_labels: Sequence[str] | None = None,
    plate: Plate | None = None,
) -> None:
    """Write the holes view at height `z`: metal in grey-blue, holes in orange with rings.

    `solids` are shapes (exterior first; their own holes are cut out), `holes` the hole
    loops found by nesting, drawn on top in the contrasting colour and circled so that
    millimetre-sized holes are visible at plate scale. Labels (one per hole / solid)
    are drawn only up to MAX_PLATE_LABELS.
    """
    plate = plate or Plate()
    fig, ax = _plate_figure(
        plate,
        f"Build {build_id} — holes at z = {_z_text(z)}",
        f"{len(solids)} solid shapes, {len(holes)} holes",
    )
    solid_path = _shapes_path(solids)
    if solid_path is not None:
        _add_geometry(
            ax, PathPatch(solid_path, facecolor=SOLID_FACE, edgecolor=SOLID_EDGE, lw=0.6, zorder=2)
        )
    hole_path = _loops_path(holes)
    if hole_path is not None:
        _add_geometry(
            ax, PathPatch(hole_path, facecolor=HOLE_FACE, edgecolor=HOLE_EDGE, lw=0.8, zorder=3)
        )
        centres = np.array([_centre(h) for h in holes if len(h)])
        ax.scatter(
            centres[:, 0],
            centres[:, 1],
            s=90,
            facecolors="none",
            edgecolors=HOLE_EDGE,
            linewidths=1.0,
            zorder=4,
        )
    if hole_labels is not None and len(hole_labels) <= MAX_PLATE_LABELS:
        for hole, text in zip(holes, hole_labels, strict=False):
            x, y = _centre(hole)
            ax.annotate(
                text,
                (x, y),
                xytext=(6, 6),
                textcoords="offset points",
                fontsize=7,
                color=HOLE_EDGE,
                zorder=5,
            )
    if solid_labels is not None and len(solid_labels) <= MAX_PLATE_LABELS:
        for shape, text in zip(solids, solid_labels, strict=False):
            if len(shape):
                x, y = _centre(shape[0])
                ax.text(
                    x, y, text, fontsize=7, color=SOLID_EDGE, ha="center", va="center", zorder=5
                )
    _legend(
        ax,
        [
            Patch(facecolor=SOLID_FACE, edgecolor=SOLID_EDGE, label=f"solid ({len(solids)})"),
            Patch(facecolor=HOLE_FACE, edgecolor=HOLE_EDGE, label=f"hole ({len(holes)})"),
            Line2D(
                [], [], marker="o", ls="none", mfc="none", mec=HOLE_EDGE, ms=9, label="hole marker"
            ),
        ],
    )
    if not solids and not holes:
        _empty_note(ax, "no geometry at this height")
    _save(fig, path)


def identifier_view(
    path: Path,
    *,
    build_id: str,
    part_label: str,
    footprint: Footprint,
    bbox: BBox | None = None,
    others: Sequence[Footprint] = (),
    plate: Plate | None = None,
) -> None:
    """Write one part's footprint (all layers) highlighted on the plate, others faint.

    A zoomed inset of the part's bounding box (given, or taken from the footprint) is
    drawn beside the plate, because most parts are a few mm wide on a 210 mm plate.
    """
    plate = plate or Plate()
    if bbox is None:
        bbox = _footprint_bbox(footprint, plate)
    size = f"{bbox[2] - bbox[0]:.1f} × {bbox[3] - bbox[1]:.1f} mm" if bbox else "empty footprint"
    fig, ax = _plate_figure(plate, f"Build {build_id} — part {_shorten(part_label, 50)}", size)
    main = _prepare(footprint, plate)
    items = [(_prepare(f, plate), FAINT, 1.0) for f in others] + [(main, HIGHLIGHT, 0.85)]
    _draw_footprints(ax, items, plate, zorder=2)
    handles: list[Patch | Line2D] = [Patch(facecolor=HIGHLIGHT, label=_shorten(part_label, 34))]
    if others:
        handles.append(Patch(facecolor=FAINT, label=f"other parts ({len(others)})"))
    if bbox is not None:
        ax.add_patch(_bbox_rectangle(bbox))
        handles.append(Line2D([], [], color=HOLE_EDGE, ls="--", label="bounding box"))
        inset = fig.add_axes((0.73, 0.09, 0.25, 0.36))
        pad = max(bbox[2] - bbox[0], bbox[3] - bbox[1], 1.0) * 0.15
        if isinstance(footprint, np.ndarray):
            _draw_mask_crop(inset, footprint, bbox, pad, HIGHLIGHT, plate)
        else:
            _draw_footprints(inset, [(footprint, HIGHLIGHT, 0.85)], plate, zorder=2)
        inset.add_patch(_bbox_rectangle(bbox))
        inset.set_xlim(bbox[0] - pad, bbox[2] + pad)
        inset.set_ylim(bbox[1] - pad, bbox[3] + pad)
        inset.set_aspect("equal")
        inset.set_title("zoom on the part (mm)", fontsize=9)
        inset.tick_params(labelsize=7)
        inset.set_facecolor(PLATE_FACE)
    _legend(ax, handles)
    _save(fig, path)


def combined_identifiers_view(
    path: Path,
    *,
    build_id: str,
    parts: Sequence[tuple[str, Footprint, str | None]],
    plate: Plate | None = None,
) -> None:
    """Write every part's footprint in its own colour, labelled on the plate.

    `parts` are (label, footprint, colour); a None colour takes the next palette colour.
    """
    plate = plate or Plate()
    fig, ax = _plate_figure(
        plate, f"Build {build_id} — all parts", f"{len(parts)} parts, footprints over all layers"
    )
    colors = [c if c is not None else palette_color(i) for i, (_, _, c) in enumerate(parts)]
    drawables = [_prepare(f, plate) for _, f, _ in parts]
    _draw_footprints(
        ax, [(f, c, 0.85) for f, c in zip(drawables, colors, strict=True)], plate, zorder=2
    )
    if len(parts) <= MAX_PLATE_LABELS:
        # Numbers on the plate, names in the legend: full names would cover the parts.
        for number, (drawable, color) in enumerate(zip(drawables, colors, strict=True), 1):
            centre = _footprint_centre(drawable, plate)
            if centre is not None:
                ax.text(
                    *centre,
                    str(number),
                    fontsize=7,
                    ha="center",
                    va="center",
                    zorder=5,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": color, "alpha": 0.85},
                )
    _legend(
        ax,
        [
            Patch(facecolor=c, label=f"{number}  {_shorten(label, 30)}")
            for number, ((label, _, _), c) in enumerate(zip(parts, colors, strict=True), 1)
        ][:40],
    )
    if not parts:
        _empty_note(ax, "no parts analysed")
    _save(fig, path)


def unclosed_view(
    path: Path,
    *,
    build_id: str,
    items: Sequence[UnclosedItem | tuple[LoopArray, str, float, str]],
    plate: Plate | None = None,
) -> None:
    """Write OPEN/DASHED lines and invalid loops, one colour per reason, or "none found".

    Open lines get a dot at their first vertex. A side list names the first items
    (file and height); the legend counts items per reason.
    """
    plate = plate or Plate()
    entries = [UnclosedItem(*item) for item in items]
    if entries:
        zs = [float(e.z) for e in entries]
        files = {e.file for e in entries}
        subtitle = (
            f"{len(entries)} items in {len(files)} files, z {_z_text(min(zs))} – {_z_text(max(zs))}"
        )
    else:
        subtitle = "all loops are closed and valid"
    fig, ax = _plate_figure(plate, f"Build {build_id} — unclosed and invalid loops", subtitle)
    reasons = sorted({e.reason for e in entries})
    handles: list[Patch | Line2D] = []
    for index, reason in enumerate(reasons):
        color = REASON_COLORS[index % len(REASON_COLORS)]
        group = [e for e in entries if e.reason == reason]
        segments: list[npt.NDArray[Any]] = []
        starts = []
        for e in group:
            loop = np.asarray(e.loop, dtype=np.float64).reshape(-1, 2)
            if len(loop) == 0:
                continue
            if e.dashed:
                segments.extend(line_pieces(loop, dashed=True))
            else:
                segments.append(np.vstack([loop, loop[:1]]) if e.closed else loop)
            if not e.closed:
                starts.append(loop[0])
        ax.add_collection(LineCollection(segments, colors=color, linewidths=1.4, zorder=3))
        if starts:
            s = np.array(starts)
            ax.scatter(s[:, 0], s[:, 1], s=14, color=color, zorder=4)
        handles.append(Line2D([], [], color=color, lw=2, label=f"{reason} ({len(group)})"))
    _legend(ax, handles, title="reason (count)" if handles else None)
    if entries:
        shown = entries[:14]
        lines = ["first items:"] + [f"{_shorten(e.file, 26):26s} z={mm(e.z):g}" for e in shown]
        if len(entries) > len(shown):
            lines.append(f"… and {len(entries) - len(shown)} more")
        _side_note(fig, lines)
    else:
        ax.text(
            0,
            0,
            "No unclosed or invalid loops found",
            ha="center",
            va="center",
            fontsize=16,
            color="#1b7a2f",
            fontweight="bold",
            zorder=5,
            bbox={"boxstyle": "round,pad=0.6", "fc": "#e6f4ea", "ec": "#1b7a2f"},
        )
    _save(fig, path)


def composite_view(
    path: Path,
    *,
    build_id: str,
    z: float,
    shapes_by_folder: Mapping[str, Sequence[ShapeLoops]],
    plate: Plate | None = None,
) -> None:
    """Write every folder's shapes at height `z`, one colour per folder (in mapping order)."""
    plate = plate or Plate()
    total = sum(len(s) for s in shapes_by_folder.values())
    fig, ax = _plate_figure(
        plate,
        f"Build {build_id} — all folders at z = {_z_text(z)}",
        f"{len(shapes_by_folder)} folders, {total} shapes",
    )
    handles: list[Patch | Line2D] = []
    for index, (folder, shapes) in enumerate(shapes_by_folder.items()):
        color = palette_color(index)
        shape_path = _shapes_path(shapes)
        if shape_path is not None:
            _add_geometry(
                ax,
                PathPatch(
                    shape_path, facecolor=to_rgba(color, 0.8), edgecolor=color, lw=0.6, zorder=2
                ),
            )
        handles.append(
            Patch(facecolor=color, label=f"{_shorten(folder or '(Models)', 26)} ({len(shapes)})")
        )
    _legend(ax, handles[:40], title="folder (shapes)")
    if total == 0:
        _empty_note(ax, "no geometry at this height")
    _save(fig, path)


def _bbox_rectangle(bbox: BBox) -> Rectangle:
    return Rectangle(
        (bbox[0], bbox[1]),
        bbox[2] - bbox[0],
        bbox[3] - bbox[1],
        fill=False,
        edgecolor=HOLE_EDGE,
        ls="--",
        lw=1.0,
        zorder=4,
    )


def _footprint_bbox(footprint: Footprint, plate: Plate) -> BBox | None:
    if isinstance(footprint, np.ndarray):
        if footprint.shape != (plate.px, plate.px):
            raise RenderError(f"footprint mask is {footprint.shape}, expected {plate.px} square")
        rows = np.flatnonzero(footprint.any(axis=1))
        cols = np.flatnonzero(footprint.any(axis=0))
        if len(rows) == 0:
            return None
        (x0, y1), (x1, y0) = plate.to_mm([[cols[0], rows[0]], [cols[-1], rows[-1]]])
        return float(x0), float(y0), float(x1), float(y1)
    loops = [np.asarray(s[0], dtype=np.float64) for s in footprint if len(s) and len(s[0])]
    if not loops:
        return None
    points = np.concatenate(loops)
    lo, hi = points.min(axis=0), points.max(axis=0)
    return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])
