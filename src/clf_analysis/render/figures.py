"""Annotated plate figures (PNG) drawn with matplotlib's object API.

Only `matplotlib.figure.Figure` with an Agg canvas is used — never `pyplot`, never a
global rcParams change — so figures can be drawn in worker processes and threads
without shared plotting state. Every figure has the same layout and pixel size
(`FIGURE_PX`): the plate with mm axes on the left, legend and notes on the right.

Colours speak the viewer's language (web/static/style.css): metal, hole and one alarm
colour for every invalid loop. Loops are drawn by nesting: each loop is filled with the
colour of its role, deeper loops over shallower ones, so an island in a hole in a part
reads as metal at any depth. Line geometry (open, dashed, web and support lines) is
stroked, never filled.

Geometry comes in as plain arrays: a loop is an (n, 2) float32 array in mm (first vertex
not repeated); a layer is a sequence of `PlateLoop`s; a part footprint is either a
sequence of shapes (loops, exterior first) or a plate-registered boolean mask of
`plate.px` x `plate.px` pixels (the unpacked bits of a `FootprintMask`).

Text never runs out of its column: long names are wrapped, or cut at the end with "…",
and a legend that would not fit ends with how many entries it left out (every figure's
full lists are in platform_info.json).
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from matplotlib import font_manager, patheffects
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ft2font import FT2Font, LoadFlags
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, PathPatch, Rectangle
from matplotlib.path import Path as MplPath

from clf_analysis.clf.types import LoopArray
from clf_analysis.geometry.holes import equivalent_diameter
from clf_analysis.geometry.loops import signed_area
from clf_analysis.layout import mm
from clf_analysis.render.items import PartName, PlateLoop, UnclosedItem
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
AXES_BOX = (0.075, 0.075, 0.62, 0.80)  # left, bottom, width, height (figure fractions)

# The viewer's colours (web/static/style.css): one language for the whole product.
METAL_FACE = "#4f78b8"
METAL_EDGE = "#24487f"
HOLE_FACE = "#fbe3a6"
HOLE_EDGE = "#b7791f"
ALARM = "#e6007e"
LINE_FAINT = "#9aa3ad"
FAINT = "#c9ced6"
PLATE_FACE = "#f6f7f9"
INK = "#333333"
# Colour cycle for folders / parts: tab20 without its light greys, which vanish on the
# plate, and without the pinks that could pass for the alarm colour.
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#bcbd22",
    "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
    "#dbdb8d", "#9edae5",
)  # fmt: skip

# Labels drawn on the plate beyond this count would cover the geometry they name.
MAX_PLATE_LABELS = 40
# Holes narrower than this get a ring: a 1 mm hole is 3 px on the plate.
RING_BELOW_MM = 4.0
# Widths (figure pixels) of the text columns: title and subtitle above the plate; on the
# right, the legend's text (right of its colour keys) and the notes below it.
TITLE_PX = 915
LEGEND_PX = 236
NOTE_PX = 262
LEGEND_PT = 8
LABEL_PT = 6.5
LABEL_OFFSET = (7.0, 4.0)  # display pixels from a hole's centre to its label's corner
# Lines of legend text the right-hand column holds (8 pt) above the notes.
LEGEND_LINES = 34
MAX_DEFECT_RINGS = 500

_OUTLINE = [patheffects.withStroke(linewidth=2.2, foreground="white")]


def palette_color(index: int) -> str:
    """The `index`-th colour of the figure palette (cycles)."""
    return PALETTE[index % len(PALETTE)]


# ---------------------------------------------------------------------------- text


def plural(count: int, noun: str, many: str | None = None) -> str:
    """'1 hole', '2 holes', '0 holes' (`many` for irregular plurals)."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


@functools.cache
def _advances(bold: bool) -> Callable[[str], float]:
    """Advance width of a character at 1 pt, in points, of the figures' font."""
    font = FT2Font(font_manager.findfont(FontProperties(weight="bold" if bold else "normal")))
    font.set_size(100, 72)

    @functools.cache
    def advance(char: str) -> float:
        glyph = font.load_char(ord(char), flags=LoadFlags.NO_HINTING)
        return float(glyph.linearHoriAdvance) / 65536 / 100

    return advance


def text_px(text: str, size: float, bold: bool = False) -> float:
    """Width in figure pixels of the longest line of `text` at `size` pt (no kerning,
    a few per cent generous)."""
    advance = _advances(bold)
    longest = max((sum(map(advance, line)) for line in text.split("\n")), default=0.0)
    return 1.03 * longest * size * FIGURE_DPI / 72


def fit(text: str, px: float, size: float = 8, bold: bool = False) -> str:
    """`text` cut at the end to `px` pixels wide at `size` pt, with '…' where it was cut."""
    if text_px(text, size, bold) <= px:
        return text
    while text and text_px(text + "…", size, bold) > px:
        text = text[:-1]
    return text.rstrip() + "…"


def wrap(text: str, px: float, size: float = 8, lines: int = 3) -> str:
    """`text` wrapped at spaces to `px` pixels a line at `size` pt, at most `lines` lines
    (the last cut at its end with '…'); a word wider than a line is broken."""
    rows: list[str] = []
    row = ""
    for word in text.split(" "):
        candidate = f"{row} {word}" if row else word
        if text_px(candidate, size) <= px:
            row = candidate
            continue
        if row:
            rows.append(row)
        while text_px(word, size) > px:
            cut = len(word)
            while cut > 1 and text_px(word[:cut], size) > px:
                cut -= 1
            rows.append(word[:cut])
            word = word[cut:]
        row = word
    rows.append(row)
    if len(rows) > lines:
        rows = [*rows[: lines - 1], fit(" ".join(rows[lines - 1 :]), px, size)]
    return "\n".join(rows)


def z_text(z: float) -> str:
    return f"{mm(z):g} mm"


def z_span(zs: Iterable[float]) -> str:
    """'0.05 mm' or '0.05–0.1 mm' for the heights of the file layers drawn."""
    values = sorted({mm(z) for z in zs})
    if not values:
        return "—"
    if len(values) == 1:
        return z_text(values[0])
    return f"{values[0]:g}–{values[-1]:g} mm"


def hole_label(area: float) -> str:
    """A hole's label: its area and equivalent diameter, '12.6 mm² ⌀4.00' (no break
    inside: the spaces are non-breaking)."""
    return f"{_number(area)}\u00a0mm²\u00a0⌀{_number(float(equivalent_diameter(area)))}"


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


# ---------------------------------------------------------------------------- geometry


def _rings_path(loops: Iterable[npt.ArrayLike]) -> MplPath | None:
    """One compound path of many loops, each its own filled region (their union).

    Every loop is made counter-clockwise, so under the nonzero rule overlapping loops
    of one path add up instead of cancelling; holes come from drawing deeper loops on
    top, never from the path itself.
    """
    vertices: list[npt.NDArray[np.float64]] = []
    codes: list[npt.NDArray[np.uint8]] = []
    for raw in loops:
        loop = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
        if len(loop) < 3:
            continue
        if signed_area(loop) < 0:
            loop = loop[::-1]
        vertices.append(np.vstack([loop, loop[:1]]))
        c = np.full(len(loop) + 1, MplPath.LINETO, dtype=np.uint8)
        c[0], c[-1] = MplPath.MOVETO, MplPath.CLOSEPOLY
        codes.append(c)
    if not vertices:
        return None
    return MplPath(np.concatenate(vertices), np.concatenate(codes))


def _shapes_as_loops(shapes: Sequence[ShapeLoops]) -> list[PlateLoop]:
    """Shapes (exterior first, then its holes) as plate loops of depth 0 and 1."""
    return [
        PlateLoop(loop, 0 if index == 0 else 1)
        for shape in shapes
        for index, loop in enumerate(shape)
        if len(loop) >= 3
    ]


def _centre(loop: LoopArray) -> tuple[float, float]:
    a = np.asarray(loop, dtype=np.float64).reshape(-1, 2)
    return float(a[:, 0].mean()), float(a[:, 1].mean())


def _extent(loop: LoopArray) -> float:
    a = np.asarray(loop, dtype=np.float64).reshape(-1, 2)
    return float(np.ptp(a, axis=0).max()) if len(a) else 0.0


def _add_geometry(ax: Axes, artist: Any) -> None:
    """Add plate geometry to axes whose limits are set explicitly.

    Not `add_patch` / `add_collection`, which also grow the data limits by walking the
    path segment by segment in Python: a quarter of a second for a holes view of a few
    thousand vertices, for limits that every axes here sets itself.
    """
    ax.add_artist(artist)


def _draw_nested(
    ax: Axes,
    loops: Sequence[PlateLoop],
    *,
    metal: Sequence[str] = (METAL_FACE,),
    zorder: float = 2.0,
) -> None:
    """Fill loops by nesting: depth by depth, deeper over shallower; even depth in the
    metal colour of the loop's group (`metal[group]`), odd depth in the hole colour."""
    filled = [p for p in loops if p.depth is not None]
    if not filled:
        return
    depths = sorted({p.depth for p in filled if p.depth is not None})
    for level, depth in enumerate(depths):
        hole = depth % 2 == 1
        groups = [0] if hole else sorted({p.group for p in filled if p.depth == depth})
        for group in groups:
            chosen = [p.loop for p in filled if p.depth == depth and (hole or p.group == group)]
            path = _rings_path(chosen)
            if path is None:
                continue
            face = HOLE_FACE if hole else metal[group % len(metal)]
            edge = HOLE_EDGE if hole else (METAL_EDGE if len(metal) == 1 else face)
            _add_geometry(
                ax,
                PathPatch(
                    path, facecolor=face, edgecolor=edge, lw=0.6, zorder=zorder + 0.01 * level
                ),
            )


def _line_segments(loops: Iterable[PlateLoop | UnclosedItem]) -> list[npt.NDArray[Any]]:
    segments: list[npt.NDArray[Any]] = []
    for item in loops:
        loop = np.asarray(item.loop, dtype=np.float64).reshape(-1, 2)
        if len(loop) < 2:
            continue
        if item.dashed:
            segments.extend(line_pieces(loop, dashed=True))
        else:
            segments.append(np.vstack([loop, loop[:1]]) if item.closed else loop)
    return segments


def _draw_lines(
    ax: Axes,
    loops: Iterable[PlateLoop | UnclosedItem],
    *,
    color: str,
    lw: float,
    alpha: float = 1.0,
    zorder: float = 3.0,
) -> int:
    """Stroke line geometry (dashed: vertex pairs apart); returns how many were drawn."""
    segments = _line_segments(loops)
    if segments:
        _add_geometry(
            ax,
            LineCollection(segments, colors=[to_rgba(color, alpha)], linewidths=lw, zorder=zorder),
        )
    return len(segments)


def _draw_alarm(ax: Axes, loops: Sequence[PlateLoop | UnclosedItem], zorder: float = 6.0) -> None:
    """Invalid loops in the alarm colour: filled where they enclose something, outlined,
    and ringed so that a defect of a millimetre shows on the whole plate."""
    closed = [item.loop for item in loops if item.closed and len(item.loop) >= 3]
    path = _rings_path(closed)
    if path is not None:
        _add_geometry(ax, PathPatch(path, facecolor=ALARM, edgecolor=ALARM, lw=1.2, zorder=zorder))
    _draw_lines(ax, loops, color=ALARM, lw=1.8, zorder=zorder + 0.1)
    centres = np.array([_centre(item.loop) for item in loops[:MAX_DEFECT_RINGS] if len(item.loop)])
    if len(centres):
        ax.scatter(
            centres[:, 0],
            centres[:, 1],
            s=260,
            facecolors="none",
            edgecolors=ALARM,
            linewidths=1.6,
            zorder=zorder + 0.2,
        )


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
        # A footprint is the union over layers: its loops are drawn by nesting, each
        # shape's exterior as metal in the part's colour and its holes open.
        loops = _shapes_as_loops(footprint)
        for depth in (0, 1):
            path = _rings_path(p.loop for p in loops if p.depth == depth)
            if path is None:
                continue
            face = to_rgba(color, alpha) if depth == 0 else PLATE_FACE
            _add_geometry(
                ax,
                PathPatch(
                    path,
                    facecolor=face,
                    edgecolor=color,
                    lw=0.6,
                    zorder=zorder + 0.1 + 0.01 * depth,
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
    image[crop.astype(bool)] = np.round(np.array(to_rgba(color, 1.0)) * 255).astype(np.uint8)
    (left, top), (right, bottom) = plate.to_mm([[c0 - 0.5, r0 - 0.5], [c1 - 0.5, r1 - 0.5]])
    ax.imshow(
        image, extent=(left, right, bottom, top), origin="upper", interpolation="nearest", zorder=2
    )


# ---------------------------------------------------------------------------- layout


def _plate_figure(plate: Plate, title: str, subtitle: str) -> tuple[Figure, Axes]:
    fig = Figure(figsize=FIGURE_SIZE_IN, dpi=FIGURE_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes(AXES_BOX)
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
            edgecolor=INK,
            lw=1.4,
            zorder=0.5,
        )
    )
    ax.plot([0], [0], marker="+", color="#888888", ms=8, zorder=0.6)
    fig.text(
        0.075,
        0.955,
        fit(title, TITLE_PX, 15, bold=True),
        fontsize=15,
        fontweight="bold",
        va="center",
    )
    fig.text(
        0.075, 0.905, wrap(subtitle, TITLE_PX, 10, 2), fontsize=10, color="#444444", va="center"
    )
    return fig, ax


def plate_pixel(xy_mm: tuple[float, float], plate: Plate | None = None) -> tuple[int, int]:
    """(column, row) of the figure pixel that shows plate point `xy_mm` (row 0 at the top),
    for every plate figure of this module (they share one layout)."""
    plate = plate or Plate()
    _, ax = _plate_figure(plate, "", "")
    ax.apply_aspect()
    x, y = ax.transData.transform(xy_mm)
    return math.floor(x), math.floor(FIGURE_PX[1] - y)


def _place_labels(
    ax: Axes, items: Sequence[tuple[tuple[float, float], str]]
) -> list[tuple[tuple[float, float], str, tuple[float, float]]]:
    """Offsets (display pixels) that keep labels off each other: for each (point, text),
    the first of a few places around the point whose box meets no label placed before.
    A label with no free place is left out."""
    ax.apply_aspect()
    to_px = ax.transData
    frame = ax.get_window_extent()
    char, height = LABEL_PT * 0.62 * FIGURE_DPI / 72, LABEL_PT * 1.35 * FIGURE_DPI / 72
    placed: list[tuple[float, float, float, float]] = []
    out = []
    for xy, text in items:
        px, py = to_px.transform(xy)
        width = len(text) * char
        for dx, dy in (
            LABEL_OFFSET,
            (7, -4 - height),
            (-7 - width, 4),
            (-7 - width, -4 - height),
            (7, 4 + height),
            (7, -4 - 2 * height),
            (-7 - width, 4 + height),
            (-7 - width, -4 - 2 * height),
        ):
            box = (px + dx, py + dy, px + dx + width, py + dy + height)
            inside = (
                frame.x0 <= box[0]
                and box[2] <= frame.x1
                and frame.y0 <= box[1]
                and box[3] <= frame.y1
            )
            if inside and not any(
                box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed
            ):
                placed.append(box)
                out.append((xy, text, (dx, dy)))
                break
    return out


def _legend(
    ax: Axes,
    entries: Sequence[tuple[Patch | Line2D, str]],
    *,
    title: str | None = None,
    lines: int = LEGEND_LINES,
    left_out: str = "more",
) -> int:
    """The legend at the right of the plate, as many entries as fit in `lines` text
    lines; the last says how many were left out. Returns the lines used."""
    if not entries:
        return 0
    handles: list[Patch | Line2D] = []
    used = 1 if title else 0
    for index, (handle, label) in enumerate(entries):
        height = label.count("\n") + 1
        rest = len(entries) - index
        if used + height > lines - (1 if rest > 1 else 0) and index:
            handles.append(
                Line2D([], [], ls="none", label=f"… and {rest} {left_out} (platform_info.json)")
            )
            used += 1
            break
        handle.set_label(label)
        handles.append(handle)
        used += height
    ax.legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.03, 1.0),
        borderaxespad=0.0,
        fontsize=LEGEND_PT,
        title=title,
        title_fontsize=8.5,
        alignment="left",
        frameon=True,
    )
    return used


def _empty_note(ax: Axes, text: str) -> None:
    """Say in the middle of the plate why there is nothing to see."""
    ax.text(0, 0, text, ha="center", va="center", fontsize=14, color="#666666", zorder=5)


def _side_note(fig: Figure, lines: Sequence[str], *, top: float) -> None:
    """Notes in the right-hand column, from `top` (figure fraction) down."""
    if lines:
        fig.text(0.725, top, "\n".join(lines), fontsize=8, va="top", color=INK, linespacing=1.35)


def _legend_bottom(used_lines: int, title: bool = False) -> float:
    """Where (figure fraction) a legend of `used_lines` text lines ends, roughly."""
    top = AXES_BOX[1] + AXES_BOX[3]
    return top - (used_lines * 16.5 + (14 if title else 0) + 14) / FIGURE_PX[1]


def save(fig: Figure, path: Path) -> None:
    """Write a figure of this module to `path`: a PNG of exactly FIGURE_PX, verified and
    renamed into place (never a half-written file)."""

    def write(temp: Path) -> None:
        fig.savefig(temp, format="png", dpi=FIGURE_DPI, facecolor="white")

    write_atomically_verified(Path(path), write, FIGURE_PX)


# ---------------------------------------------------------------------------- figures


def holes_figure(
    *,
    build_id: str,
    height: float,
    loops: Sequence[PlateLoop],
    layer_zs: Sequence[float] = (),
    files: int = 0,
    solid_shapes: int | None = None,
    plate: Plate | None = None,
) -> Figure:
    """The holes view of one height: every file's loops drawn by nesting.

    `height` is the height the view was asked for, `layer_zs` the heights of the file
    layers that answer it (the title gives those). Holes (odd depth) are labelled with
    their area and equivalent diameter, the largest first up to MAX_PLATE_LABELS; small
    ones get a ring so that they show at plate scale; invalid loops are in the alarm
    colour; line geometry is stroked faint.
    """
    plate = plate or Plate()
    holes = [p for p in loops if p.depth is not None and p.depth % 2 == 1]
    metal = [p for p in loops if p.depth is not None and p.depth % 2 == 0]
    lines = [p for p in loops if p.depth is None and p.invalid is None]
    invalid = [p for p in loops if p.invalid is not None]
    solids = len(metal) if solid_shapes is None else solid_shapes
    z_real = z_span(layer_zs) if layer_zs else z_text(height)
    facts = [plural(solids, "solid shape"), plural(len(holes), "hole")]
    if files:
        facts.insert(0, plural(files, "file"))
    if invalid:
        facts.append(plural(len(invalid), "invalid loop"))
    if layer_zs and z_span(layer_zs) != z_text(height):
        facts.append(f"view for {z_text(height)}: each file's nearest layer")
    fig, ax = _plate_figure(plate, f"Build {build_id} — holes at z = {z_real}", " · ".join(facts))

    _draw_nested(ax, loops)
    _draw_lines(ax, lines, color=LINE_FAINT, lw=0.5, alpha=0.8, zorder=2.5)
    small = [h for h in holes if _extent(h.loop) < RING_BELOW_MM]
    if small:
        centres = np.array([_centre(h.loop) for h in small])
        ax.scatter(
            centres[:, 0],
            centres[:, 1],
            s=110,
            facecolors="none",
            edgecolors=HOLE_EDGE,
            linewidths=1.0,
            zorder=4,
        )
    largest = sorted(holes, key=lambda h: -h.area)[:MAX_PLATE_LABELS]
    labelled = _place_labels(ax, [(_centre(h.loop), hole_label(h.area)) for h in largest])
    for xy, text, offset in labelled:
        # A label moved away from its first place points back at its hole.
        moved = offset != LABEL_OFFSET
        ax.annotate(
            text,
            xy,
            xytext=offset,
            textcoords="offset pixels",
            fontsize=LABEL_PT,
            color="#5c3d00",
            zorder=7,
            path_effects=_OUTLINE,
            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": HOLE_EDGE} if moved else None,
        )
    if invalid:
        _draw_alarm(ax, invalid)

    entries: list[tuple[Patch | Line2D, str]] = [
        (
            Patch(facecolor=METAL_FACE, edgecolor=METAL_EDGE),
            f"metal: even nesting depth ({len(metal)})",
        ),
        (
            Patch(facecolor=HOLE_FACE, edgecolor=HOLE_EDGE),
            f"hole: odd nesting depth ({len(holes)})",
        ),
    ]
    if small:
        entries.append(
            (
                Line2D([], [], marker="o", ls="none", mfc="none", mec=HOLE_EDGE, ms=9),
                f"ring: hole under {RING_BELOW_MM:g} mm",
            )
        )
    for reason, n in sorted(Counter(p.invalid for p in invalid).items()):
        entries.append((Patch(facecolor=ALARM, edgecolor=ALARM), f"invalid: {reason} ({n})"))
    if lines:
        entries.append(
            (Line2D([], [], color=LINE_FAINT, lw=1), f"line geometry, stroked ({len(lines)})")
        )
    used = _legend(ax, entries)
    if holes:
        which = (
            "every hole"
            if len(labelled) == len(holes)
            else f"{len(labelled)} of the {len(holes)} holes (the largest where labels fit)"
        )
        note = wrap(
            f"Labels, on {which}: area (mm²) and equivalent diameter ⌀ = 2√(A/π) (mm), "
            f"e.g. {hole_label(largest[0].area)}",
            NOTE_PX,
            lines=4,
        )
        _side_note(fig, [note], top=_legend_bottom(used) - 0.02)
    if not loops:
        _empty_note(ax, "no geometry at this height")
    return fig


def identifier_figure(
    *,
    build_id: str,
    part: PartName | str,
    footprint: Footprint,
    bbox: BBox | None = None,
    others: Sequence[Footprint] = (),
    other_count: int | None = None,
    z_range: tuple[float, float] | None = None,
    layer_count: int | None = None,
    facts: Sequence[str] = (),
    plate: Plate | None = None,
) -> Figure:
    """One part's footprint over all layers, highlighted, the other parts faint.

    `others` are footprints drawn faint (one mask of all of them will do);
    `other_count` is how many parts they hold (default: their number). A zoomed inset
    of the part's bounding box is drawn beside the plate, because most parts are a few
    mm wide on a 210 mm plate; `facts` are lines of text for the side column.
    """
    plate = plate or Plate()
    name = part if isinstance(part, PartName) else None
    label = name.label if name is not None else str(part)
    if bbox is None:
        bbox = _footprint_bbox(footprint, plate)
    size = f"{bbox[2] - bbox[0]:.1f} × {bbox[3] - bbox[1]:.1f} mm" if bbox else "empty footprint"
    over = "footprint over all layers"
    if z_range is not None:
        over += f", z {z_range[0]:g}–{z_range[1]:g} mm"
    if layer_count is not None:
        over += f" ({plural(layer_count, 'layer')})"
    if name is not None:
        title = f"Build {build_id} — part {name.model_name or f'model {name.model_id}'}"
        subtitle = f"{name.path}, model id {name.model_id} · {over} · {size}"
    else:
        title, subtitle = f"Build {build_id} — part {label}", f"{over} · {size}"
    fig, ax = _plate_figure(plate, title, subtitle)
    main = _prepare(footprint, plate)
    items = [(_prepare(f, plate), FAINT, 1.0) for f in others] + [(main, METAL_FACE, 1.0)]
    _draw_footprints(ax, items, plate, zorder=2)
    entries: list[tuple[Patch | Line2D, str]] = [
        (Patch(facecolor=METAL_FACE), wrap(label, LEGEND_PX, lines=3))
    ]
    count = len(others) if other_count is None else other_count
    if count:
        entries.append((Patch(facecolor=FAINT), f"other parts ({count})"))
    if bbox is not None:
        ax.add_patch(_bbox_rectangle(bbox))
        entries.append((Line2D([], [], color=HOLE_EDGE, ls="--"), f"bounding box, {size}"))
    used = _legend(ax, entries, title="footprint over all layers")
    _side_note(
        fig, [wrap(f, NOTE_PX, lines=2) for f in facts], top=_legend_bottom(used, True) - 0.02
    )
    if bbox is not None:
        inset = fig.add_axes((0.75, 0.08, 0.23, 0.30))
        pad = max(bbox[2] - bbox[0], bbox[3] - bbox[1], 1.0) * 0.15
        if isinstance(footprint, np.ndarray):
            _draw_mask_crop(inset, footprint, bbox, pad, METAL_FACE, plate)
        else:
            _draw_footprints(inset, [(footprint, METAL_FACE, 1.0)], plate, zorder=2)
        inset.add_patch(_bbox_rectangle(bbox))
        inset.set_xlim(bbox[0] - pad, bbox[2] + pad)
        inset.set_ylim(bbox[1] - pad, bbox[3] + pad)
        inset.set_aspect("equal")
        inset.set_title("zoom on the part (mm)", fontsize=8.5)
        inset.tick_params(labelsize=7)
        inset.set_facecolor(PLATE_FACE)
    return fig


def combined_identifiers_figure(
    *,
    build_id: str,
    parts: Sequence[tuple[PartName | str, Footprint, str | None]],
    plate: Plate | None = None,
) -> Figure:
    """Every part's footprint in its own colour, numbered on the plate and named
    in the legend by folder, file, model id and model name.

    `parts` are (name, footprint, colour); a None colour takes the next palette colour.
    Folders that every part shares are said once, in the subtitle.
    """
    plate = plate or Plate()
    names = [p if isinstance(p, PartName) else None for p, _, _ in parts]
    known = [n for n in names if n is not None]
    prefix = _common_folder([n.folder for n in known]) if len(known) == len(names) else ""
    files = {n.file for n in known}
    same_file = files.pop() if len(known) == len(names) > 1 and len(files) == 1 else ""
    subtitle = f"{plural(len(parts), 'part')}, footprints over all layers"
    if prefix:
        subtitle += f" · every part in {prefix}/"
    if same_file:
        subtitle += f" · every file is {same_file}"
    fig, ax = _plate_figure(plate, f"Build {build_id} — all parts", subtitle)
    colors = [c if c is not None else palette_color(i) for i, (_, _, c) in enumerate(parts)]
    drawables = [_prepare(f, plate) for _, f, _ in parts]
    _draw_footprints(
        ax, [(f, c, 1.0) for f, c in zip(drawables, colors, strict=True)], plate, zorder=2
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
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": color, "alpha": 0.9},
                )
    one_line = len(parts) > LEGEND_LINES // 2
    entries: list[tuple[Patch | Line2D, str]] = []
    for number, ((part, _, _), color) in enumerate(zip(parts, colors, strict=True), 1):
        text = _part_text(part, prefix, same_file)
        number_text = f"{number:>2}  "
        width = LEGEND_PX - text_px(number_text, LEGEND_PT)
        shown = fit(text, width) if one_line else wrap(text, width, lines=2)
        indent = "\n" + " " * (len(number_text) + 1)
        entries.append((Patch(facecolor=color), number_text + shown.replace("\n", indent)))
    key = "folder" if same_file else "folder/file"
    _legend(ax, entries, title=f"part: {key} #model id name", left_out="more parts")
    if not parts:
        _empty_note(ax, "no parts analysed")
    return fig


def _part_text(part: PartName | str, prefix: str, same_file: str) -> str:
    """A part's legend text without what every part shares (said in the subtitle)."""
    if not isinstance(part, PartName):
        return str(part)
    folder = part.folder[len(prefix) :].lstrip("/") if prefix else part.folder
    where = folder if same_file and folder else part._replace(folder=folder).path
    name = f" {part.model_name}" if part.model_name else ""
    return f"{where} #{part.model_id}{name}"


def _common_folder(folders: Sequence[str]) -> str:
    """The leading folders every one of `folders` lies in ('' when none or only one)."""
    if len(folders) < 2:
        return ""
    split = [f.split("/") for f in folders]
    common: list[str] = []
    for level in zip(*split, strict=False):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    # A part's own folder is never the prefix: a label keeps at least one folder.
    if any(len(s) <= len(common) for s in split):
        common = common[: min(len(s) for s in split) - 1]
    return "/".join(common)


def unclosed_figure(
    *,
    build_id: str,
    items: Sequence[UnclosedItem | tuple[LoopArray, str, float, str]],
    totals: dict[str, int] | None = None,
    plate: Plate | None = None,
) -> Figure:
    """The defects (invalid loops, unexpected open shapes) in the alarm colour
    over the open-by-design line geometry (lattice, net and support lines), drawn faint.

    `totals` are the counts per reason over everything found (the items may be a
    capped selection); the legend counts from it. The side column lists the defects by
    file and reason, with their heights.
    """
    plate = plate or Plate()
    entries = [UnclosedItem(*item) for item in items]
    defects = [e for e in entries if not e.by_design]
    by_design = [e for e in entries if e.by_design]
    design_reasons = {e.reason for e in by_design}
    counts = Counter(e.reason for e in entries) if totals is None else Counter(totals)
    defect_counts = {r: n for r, n in sorted(counts.items()) if r not in design_reasons}
    design_counts = {r: n for r, n in sorted(counts.items()) if r in design_reasons}
    n_defects, n_lines = sum(defect_counts.values()), sum(design_counts.values())
    facts = [plural(n_defects, "defect") if n_defects else "no defects"]
    if n_defects:
        files = {e.file for e in defects}
        zs = [float(e.z) for e in defects]
        facts.append(f"in {plural(len(files), 'file')}, z {z_text(min(zs))} – {z_text(max(zs))}")
    facts.append(f"{plural(n_lines, 'open line')} by design (lattice, net, support), drawn faint")
    fig, ax = _plate_figure(
        plate, f"Build {build_id} — invalid loops and open shapes", " · ".join(facts)
    )
    _draw_lines(ax, by_design, color=LINE_FAINT, lw=0.5, alpha=0.6, zorder=2)
    if defects:
        _draw_alarm(ax, defects, zorder=4)
    legend: list[tuple[Patch | Line2D, str]] = [
        (Patch(facecolor=ALARM, edgecolor=ALARM), f"defect: {reason} ({n})")
        for reason, n in defect_counts.items()
    ] + [
        (Line2D([], [], color=LINE_FAINT, lw=1), f"by design: {reason} ({n})")
        for reason, n in design_counts.items()
    ]
    used = _legend(ax, legend, title="what (count)")
    if defects:
        _side_note(fig, _defect_list(defects, n_defects), top=_legend_bottom(used, True) - 0.02)
    else:
        ax.text(
            0,
            0,
            "No invalid loops or unexpected open shapes",
            ha="center",
            va="center",
            fontsize=14,
            color="#1b7a2f",
            fontweight="bold",
            zorder=5,
            bbox={"boxstyle": "round,pad=0.6", "fc": "#e6f4ea", "ec": "#1b7a2f"},
        )
    return fig


def _defect_list(defects: Sequence[UnclosedItem], total: int, lines: int = 22) -> list[str]:
    """Defects grouped by file and reason, each with its heights, within `lines` lines."""
    groups: dict[tuple[str, str], list[float]] = {}
    for e in defects:
        groups.setdefault((e.file, e.reason), []).append(mm(float(e.z)))
    out = ["defects by file:"]
    used = 1
    for index, ((file, reason), zs) in enumerate(groups.items()):
        heights = ", ".join(f"{z:g}" for z in zs[:6]) + (", …" if len(zs) > 6 else "")
        block = [
            wrap(file, NOTE_PX, lines=2),
            wrap(f"  {reason} ×{len(zs)} at z {heights} mm", NOTE_PX, lines=2),
        ]
        height = sum(b.count("\n") + 1 for b in block)
        if used + height > lines - 1:
            out.append(f"… {len(groups) - index} more: invalid_loops in platform_info.json")
            break
        out.extend(block)
        used += height
    if total > len(defects):
        out.append(f"({len(defects)} of {total} drawn)")
    return out


def composite_figure(
    *,
    build_id: str,
    height: float,
    folders: Sequence[tuple[str, Sequence[PlateLoop], int]],
    layer_zs: Sequence[float] = (),
    plate: Plate | None = None,
) -> Figure:
    """Every folder's loops at one height by nesting, metal in the folder's colour.

    `folders` are (folder, loops, shape count) in colour order; holes are in the hole
    colour, line geometry is stroked faint.
    """
    plate = plate or Plate()
    total = sum(n for _, _, n in folders)
    z_real = z_span(layer_zs) if layer_zs else z_text(height)
    subtitle = f"{plural(len(folders), 'folder')}, {plural(total, 'shape')}"
    if layer_zs and z_real != z_text(height):
        subtitle += f" · view for {z_text(height)}: each file's nearest layer"
    fig, ax = _plate_figure(plate, f"Build {build_id} — all folders at z = {z_real}", subtitle)
    colors = [palette_color(i) for i in range(len(folders))]
    loops = [p._replace(group=i) for i, (_, group, _) in enumerate(folders) for p in group]
    _draw_nested(ax, loops, metal=colors or (METAL_FACE,))
    for index, color in enumerate(colors):
        lines = [p for p in loops if p.depth is None and p.group == index]
        _draw_lines(ax, lines, color=color, lw=0.5, alpha=0.8, zorder=2.5)
    invalid = [p for p in loops if p.invalid is not None]
    if invalid:
        _draw_alarm(ax, invalid)
    entries: list[tuple[Patch | Line2D, str]] = [
        (Patch(facecolor=c), wrap(f"{folder or '(Models)'} ({n})", LEGEND_PX, lines=2))
        for (folder, _, n), c in zip(folders, colors, strict=True)
    ]
    entries.append((Patch(facecolor=HOLE_FACE, edgecolor=HOLE_EDGE), "hole"))
    if invalid:
        entries.append((Patch(facecolor=ALARM), f"invalid loop ({len(invalid)})"))
    _legend(ax, entries, title="folder (shapes)", left_out="more folders")
    if total == 0:
        _empty_note(ax, "no geometry at this height")
    return fig


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
