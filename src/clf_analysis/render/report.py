"""The build report: one PDF per analysed build, drawn from its published outputs.

Pages, in order: a summary (build, package checksum, parameters, the parts table with
their metrics), the warnings and invalid loops when there are any, the plate at each
holes-view height (vector, redrawn from the path data by nesting, as the holes views
are), and one page per part (its footprint view, its measures and its holes over
height).

Everything comes from the files of a build's `clf_analysis/` folder, read through the
`read` function the caller passes (the API and the CLI open the share without following
links); nothing is analysed again. matplotlib's PDF backend with `Figure` objects only,
as everywhere in this package.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import FigureCanvasPdf, PdfPages
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from clf_analysis.geometry.loops import (
    REASON_FEW_VERTICES,
    REASON_NON_FINITE,
    REASON_ZERO_AREA,
)
from clf_analysis.layout import PLATFORM_INFO, mm
from clf_analysis.render import figures as F
from clf_analysis.render.items import PartName, PlateLoop
from clf_analysis.render.plate import Plate

ReadFile = Callable[[str], bytes]
"""Bytes of a file below clf_analysis/ by its relative path; FileNotFoundError if none."""

PAGE_IN = F.FIGURE_SIZE_IN  # every page has the size of the plate figures
# Loops that take no part in nesting: drawn as lines, never filled.
_NOT_NESTED = {REASON_FEW_VERTICES, REASON_NON_FINITE, REASON_ZERO_AREA}
TABLE_PT = 7.0
ROW_PX = 15.0
MAX_LISTED_INVALID = 60
MAX_CHART_TRACKS = 24


class ReportError(Exception):
    """The published results cannot make a report (platform_info.json unusable)."""


def build_report(read: ReadFile, plate: Plate | None = None) -> bytes:
    """The PDF report of one analysed build from its published outputs.

    `plate` is the plate the images were drawn on (the service's PLATE_SIZE_MM). Raises
    FileNotFoundError when platform_info.json, or a file it lists, is missing (no
    results, or results being replaced), ReportError when it is not a summary.
    """
    info = _platform_info(read)
    plate = plate or Plate()
    out = io.BytesIO()
    build = info.get("build") or {}
    metadata = {
        "Title": f"Build report {build.get('id', '')}",
        "Creator": f"clf-abp-path-analysis {info.get('generator', {}).get('version', '')}",
        # No creation date: the same results give the same bytes.
        "CreationDate": None,
    }
    with PdfPages(out, metadata=metadata) as pdf:
        for page in _pages(info, read, plate):
            pdf.savefig(page)
    return out.getvalue()


def _platform_info(read: ReadFile) -> dict[str, Any]:
    raw = read(PLATFORM_INFO)
    try:
        info = json.loads(raw)
    except ValueError as exc:
        raise ReportError(f"{PLATFORM_INFO} is not JSON: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("parts"), list):
        raise ReportError(f"{PLATFORM_INFO} is not an analysis summary (no parts list)")
    return info


def _pages(info: dict[str, Any], read: ReadFile, plate: Plate) -> Iterator[Figure]:
    yield from _summary_pages(info)
    if info.get("warnings") or info.get("invalid_loops"):
        yield _defects_page(info)
    for view in (info.get("holes_views_interval") or {}).get("views", []):
        yield _plate_page(info, view, read, plate)
    views = {
        tuple(v.get("key", ())): v.get("filename")
        for v in info.get("identifier_platform_views", [])
    }
    for number, part in enumerate(info["parts"], 1):
        yield _part_page(info, number, part, views.get(tuple(part.get("key", ()))), read)


# ---------------------------------------------------------------------------- pages


def _page(title: str, subtitle: str = "") -> Figure:
    fig = Figure(figsize=PAGE_IN, dpi=F.FIGURE_DPI, facecolor="white")
    FigureCanvasPdf(fig)
    fig.text(
        0.05, 0.955, F.fit(title, 900, 15, bold=True), fontsize=15, fontweight="bold", va="center"
    )
    if subtitle:
        fig.text(
            0.05, 0.915, F.wrap(subtitle, 900, 10, 2), fontsize=10, color="#444444", va="center"
        )
    return fig


def _text_block(fig: Figure, x: float, top: float, lines: Sequence[str], size: float = 8.5) -> None:
    fig.text(x, top, "\n".join(lines), fontsize=size, va="top", color=F.INK, linespacing=1.4)


def _part_name(part: dict[str, Any]) -> PartName:
    return PartName(
        str(part.get("folder", "")),
        str(part.get("file", "")),
        int(part.get("model_id", 0)),
        str(part.get("model_name") or ""),
    )


def _invalid_by_part(info: dict[str, Any]) -> Counter[tuple[str, int]]:
    return Counter((str(i.get("file")), int(i.get("model_id", -1))) for i in info["invalid_loops"])


def _summary_pages(info: dict[str, Any]) -> Iterator[Figure]:
    build = info.get("build") or {}
    heights = info.get("global_height_info") or {}
    summary = info.get("analysis_summary") or {}
    parts = info["parts"]
    fig = _page(
        f"Build report — build {build.get('id', '?')}",
        f"analysed {info.get('generated_at', '?')} by clf-abp-path-analysis "
        f"{(info.get('generator') or {}).get('version', '?')}, run {info.get('run_id', '?')}"
        + (f", job {info['job_id']}" if info.get("job_id") else ""),
    )
    params = info.get("parameters") or {}
    left = [
        f"package       {build.get('archive', '?')} ({_size(build.get('size_bytes'))})",
        f"sha256        {build.get('sha256', '?')}",
        f"layers        {heights.get('layer_count', '?')} of "
        f"{heights.get('layer_thickness', '?')} mm, top at "
        f"{heights.get('top_layer_height', '?')} mm",
        f"parts         {len(parts)} in "
        f"{F.plural(len(info.get('files_analyzed', [])), 'file')} "
        f"({(info.get('exclusion_info') or {}).get('files_excluded', 0)} excluded by folder)",
        f"holes         {sum(p.get('hole_count', 0) for p in parts)} "
        "(per part the most on one layer, summed)",
        f"invalid loops {info.get('invalid_loops_total', summary.get('invalid_loops_total', 0))}"
        f"   warnings {len(info.get('warnings', []))}",
        "parameters    " + ", ".join(f"{k}={_value(v)}" for k, v in sorted(params.items())),
    ]
    fig.text(
        0.05,
        0.875,
        "\n".join(F.fit(line, 920, 8.5) for line in left),
        fontsize=8.5,
        va="top",
        family="monospace",
        color=F.INK,
        linespacing=1.45,
    )
    rows = _part_rows(info)
    first, rest = rows[:34], rows[34:]
    _parts_table(fig, first, top=0.62, title=f"Parts ({len(parts)})")
    yield fig
    page = 2
    while rest:
        chunk, rest = rest[:46], rest[46:]
        more = _page(f"Build report — build {build.get('id', '?')}", f"parts, continued ({page})")
        _parts_table(more, chunk, top=0.88, title="Parts (continued)")
        page += 1
        yield more


# Header, alignment; the part column takes the width the others leave.
_COLUMNS = (
    ("#", "right"),
    ("part: folder/file #model id name", "left"),
    ("z range\n(mm)", "left"),
    ("layers", "right"),
    ("volume\n(mm³)", "right"),
    ("max area\n(mm²)", "right"),
    ("holes on\na layer", "right"),
    ("hole\ntracks", "right"),
    ("opening/closing\ninside", "right"),
    ("invalid\nloops", "right"),
)
TABLE_LEFT_PX, TABLE_RIGHT_PX, GAP_PX = 50.0, 975.0, 12.0


def _part_rows(info: dict[str, Any]) -> list[list[str]]:
    invalid = _invalid_by_part(info)
    rows = []
    for number, part in enumerate(info["parts"], 1):
        name = _part_name(part)
        z = part.get("z_range") or [None, None]
        holes = part.get("holes") or {}
        rows.append(
            [
                str(number),
                name.label,
                f"{z[0]:g}–{z[1]:g}" if z[0] is not None else "—",
                str(part.get("layer_count", 0)),
                f"{part.get('volume_mm3', 0):,.1f}",
                f"{part.get('max_area_mm2', 0):,.1f}",
                str(part.get("hole_count", 0)),
                str(holes.get("tracks", "—")),
                f"{holes.get('opening_inside', '—')}/{holes.get('closing_inside', '—')}",
                str(invalid.get((name.path, name.model_id), 0)),
            ]
        )
    return rows


def _parts_table(fig: Figure, rows: list[list[str]], *, top: float, title: str) -> None:
    """The parts table from `top` (figure fraction) down: columns as wide as their
    widest cell, the part's name in what is left (cut at its end if it must be)."""
    width_px, height_px = fig.bbox.width, fig.bbox.height
    widths = [
        max([F.text_px(h, TABLE_PT)] + [F.text_px(row[i], TABLE_PT) for row in rows])
        for i, (h, _) in enumerate(_COLUMNS)
    ]
    widths[1] = 0.0
    widths[1] = TABLE_RIGHT_PX - TABLE_LEFT_PX - sum(widths) - GAP_PX * (len(widths) - 1)
    lefts = list(np.cumsum([TABLE_LEFT_PX] + [w + GAP_PX for w in widths[:-1]]))
    fig.text(TABLE_LEFT_PX / width_px, top, title, fontsize=10, fontweight="bold", va="bottom")
    row_h = ROW_PX / height_px
    y = top - 0.01
    for (header, align), left, width in zip(_COLUMNS, lefts, widths, strict=True):
        x = (left if align == "left" else left + width) / width_px
        fig.text(x, y, header, fontsize=TABLE_PT, fontweight="bold", va="top", ha=align)
    y -= row_h * 2.1
    fig.add_artist(
        Rectangle(
            (TABLE_LEFT_PX / width_px, y + row_h * 0.3),
            (TABLE_RIGHT_PX - TABLE_LEFT_PX) / width_px,
            0.0012,
            transform=fig.transFigure,
            color=F.INK,
        )
    )
    for index, row in enumerate(rows):
        if index % 2:
            fig.add_artist(
                Rectangle(
                    (TABLE_LEFT_PX / width_px, y - row_h * 0.8),
                    (TABLE_RIGHT_PX - TABLE_LEFT_PX) / width_px,
                    row_h,
                    transform=fig.transFigure,
                    color="#f0f3f7",
                    zorder=-1,
                )
            )
        for value, (_, align), left, width in zip(row, _COLUMNS, lefts, widths, strict=True):
            x = (left if align == "left" else left + width) / width_px
            fig.text(x, y, F.fit(value, width, TABLE_PT), fontsize=TABLE_PT, va="top", ha=align)
        y -= row_h


def _defects_page(info: dict[str, Any]) -> Figure:
    build = info.get("build") or {}
    warnings = list(info.get("warnings", []))
    invalid = list(info.get("invalid_loops", []))
    total = info.get("invalid_loops_total", len(invalid))
    fig = _page(
        f"Build {build.get('id', '?')} — warnings and invalid loops",
        f"{F.plural(len(warnings), 'warning')} · {F.plural(int(total), 'invalid loop')}",
    )
    lines = [F.wrap(f"• {w}", 880, 8.5, 3) for w in warnings[:20]] or ["none"]
    if len(warnings) > 20:
        lines.append(f"… and {len(warnings) - 20} more in platform_info.json")
    fig.text(0.05, 0.87, "Warnings", fontsize=8.5, va="top", fontweight="bold")
    _text_block(fig, 0.05, 0.84, lines)
    listed = [
        f"{F.fit(str(i.get('file')), 330, 8):<60} z {i.get('z'):<8g} model {i.get('model_id')}"
        f"  shape {i.get('shape_index')} loop {i.get('path_index')}  {i.get('reason')}"
        + (f" at ({i['at'][0]:g}, {i['at'][1]:g})" if i.get("at") else "")
        for i in invalid[:MAX_LISTED_INVALID]
    ]
    if total > len(listed):
        listed.append(f"… {total - len(listed)} more: invalid_loops in platform_info.json")
    top = 0.84 - 0.025 * (sum(line.count("\n") + 1 for line in lines) + 2)
    fig.text(0.05, top, "Invalid loops", fontsize=8.5, va="top", fontweight="bold")
    fig.text(
        0.05,
        top - 0.03,
        "\n".join(listed) or "none",
        fontsize=6.5,
        va="top",
        family="monospace",
        linespacing=1.3,
    )
    return fig


def _plate_page(info: dict[str, Any], view: dict[str, Any], read: ReadFile, plate: Plate) -> Figure:
    """The plate at a holes-view height, redrawn by nesting from the path data; the
    published PNG when the run wrote no path data."""
    build_id = str((info.get("build") or {}).get("id", "?"))
    height = float(view.get("height", 0.0))
    layer = _nearest_layer(info, height)
    if layer is None or not layer.get("filename"):
        return _image_page(
            f"Build {build_id} — holes at {F.z_text(height)}", read(view["filename"]), view
        )
    records = json.loads(read(layer["filename"]))
    stats = view.get("holes_statistics") or {}
    fig = F.holes_figure(
        build_id=build_id,
        height=height,
        loops=_loops_of(records, _invalid_at(info, float(layer["height"]))),
        layer_zs=[float(layer["height"])],
        files=int(stats.get("total_files", 0)),
        solid_shapes=stats.get("solid_shapes"),
        plate=plate,
    )
    FigureCanvasPdf(fig)
    return fig


def _image_page(title: str, png: bytes, view: dict[str, Any]) -> Figure:
    fig = _page(title, f"the published view {view.get('filename', '')} (no path data)")
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.86))
    ax.imshow(_decode(png, view.get("filename", "")), interpolation="antialiased")
    ax.set_axis_off()
    return fig


def _part_page(
    info: dict[str, Any],
    number: int,
    part: dict[str, Any],
    view_file: str | None,
    read: ReadFile,
) -> Figure:
    name = _part_name(part)
    z = part.get("z_range")
    fig = _page(
        f"Part {number}: {name.model_name or f'model {name.model_id}'}",
        f"{name.path}, model id {name.model_id}"
        + (
            f" · z {z[0]:g}–{z[1]:g} mm ({F.plural(part.get('layer_count', 0), 'layer')})"
            if z
            else " · no layers"
        ),
    )
    if view_file:
        ax = fig.add_axes((0.02, 0.34, 0.58, 0.56))
        ax.imshow(_decode(read(view_file), view_file), interpolation="antialiased")
        ax.set_axis_off()
    holes = part.get("holes") or {}
    box = part.get("bounding_box")
    invalid = _invalid_by_part(info).get((name.path, name.model_id), 0)
    facts = [
        f"part key        {F.fit(str(part.get('part_key', '')), 230, 8.5)}",
        f"layers          {part.get('layer_count', 0)}",
        f"volume          {part.get('volume_mm3', 0):,.3f} mm³",
        f"largest section {part.get('max_area_mm2', 0):,.2f} mm²",
        f"mean section    {part.get('mean_area_mm2', 0):,.2f} mm²",
        "bounding box    " + (f"{box[2] - box[0]:.2f} × {box[3] - box[1]:.2f} mm" if box else "—"),
        f"holes           up to {part.get('hole_count', 0)} on a layer, on "
        f"{part.get('layers_with_holes', 0)} layers",
        f"hole tracks     {holes.get('tracks', '—')}",
        f"  opening/closing inside  {holes.get('opening_inside', '—')}/"
        f"{holes.get('closing_inside', '—')}",
        f"  shorter than 3 layers   {holes.get('short_tracks', '—')}",
        f"invalid loops   {invalid}",
    ]
    fig.text(
        0.62,
        0.88,
        "\n".join(facts),
        fontsize=8.5,
        va="top",
        family="monospace",
        color=F.INK,
        linespacing=1.5,
    )
    _holes_chart(fig.add_axes((0.08, 0.07, 0.86, 0.22)), part)
    return fig


def _holes_chart(ax: Axes, part: dict[str, Any]) -> None:
    """Each hole track as a bar over the heights it persists, largest first."""
    holes = part.get("holes") or {}
    listed = list(holes.get("listed", []))[:MAX_CHART_TRACKS]
    z = part.get("z_range") or [0.0, 1.0]
    ax.set_xlim(z[0] - 0.02 * max(z[1] - z[0], 1), z[1] + 0.02 * max(z[1] - z[0], 1))
    ax.set_xlabel("z (mm)", fontsize=8)
    ax.tick_params(labelsize=7)
    shown = len(listed)
    total = int(holes.get("tracks", shown))
    ax.set_title(
        "holes over height: each hole followed through consecutive layers"
        + (f" (the {shown} largest of {total})" if total > shown else "")
        + "; edged in the alarm colour when it opens or closes within the part",
        fontsize=8,
        loc="left",
    )
    if not listed:
        ax.set_yticks([])
        ax.text(
            0.5,
            0.5,
            "no holes",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=10,
            color="#666666",
        )
        return
    step = float(part.get("layer_thickness", 0.0)) or 0.0
    for row, track in enumerate(listed):
        z0, z1 = track["z_range"]
        width = max(z1 - z0, step or 1e-3)
        edge = F.ALARM if track.get("opens_inside") or track.get("closes_inside") else F.HOLE_EDGE
        ax.broken_barh(
            [(z0, width)],
            (row - 0.38, 0.76),
            facecolors=F.HOLE_FACE,
            edgecolors=edge,
            linewidth=0.8,
        )
        d0, d1 = track.get("equivalent_diameter_mm", [0, 0])
        diameter = f"⌀{d0:.2f}" if abs(d1 - d0) < 5e-3 else f"⌀{d0:.2f}–{d1:.2f}"
        text = f" {diameter} mm, {track.get('layers', 0)} layers "
        # Inside a long bar, after a short one, before one that ends at the right edge.
        lo, hi = ax.get_xlim()
        if (z1 - z0) / (hi - lo) > 0.3:
            x, align = z0, "left"
        elif (z1 - lo) / (hi - lo) < 0.7:
            x, align = z0 + width, "left"
        else:
            x, align = z0, "right"
        ax.text(x, row, text, fontsize=6, va="center", ha=align)
    ax.set_ylim(len(listed) - 0.5, -0.5)
    ax.set_yticks(range(len(listed)), [f"track {t['track']}" for t in listed], fontsize=6)


# ---------------------------------------------------------------------------- data


def _nearest_layer(info: dict[str, Any], height: float) -> dict[str, Any] | None:
    """The build's layer height answering a view height (nearest; ties to the lower)."""
    layers = info.get("heights") or []
    if not layers:
        return None
    best = min(layers, key=lambda h: (abs(float(h["height"]) - height), float(h["height"])))
    thickness = float((info.get("global_height_info") or {}).get("layer_thickness") or 0.0)
    if thickness and abs(float(best["height"]) - height) > thickness + 1e-6:
        return None
    return dict(best)


def _invalid_at(info: dict[str, Any], z: float) -> dict[tuple[str, int, int], str]:
    return {
        (str(i.get("file")), int(i.get("shape_index", -1)), int(i.get("path_index", -1))): str(
            i.get("reason")
        )
        for i in info.get("invalid_loops", [])
        if mm(float(i.get("z", -1))) == mm(z)
    }


def _loops_of(
    records: list[dict[str, Any]], invalid: dict[tuple[str, int, int], str]
) -> list[PlateLoop]:
    """The path-data records of one height as plate loops with their nesting roles."""
    loops = []
    for r in records:
        points = np.asarray(r.get("points", []), dtype=np.float32).reshape(-1, 2)
        folder, name = r.get("clf_folder", ""), r.get("clf_name", "")
        file = f"{folder}/{name}"
        fmt = r.get("line_format") or ("closed" if r.get("should_close", True) else "open")
        kind = r.get("kind") or ("model" if fmt == "closed" else "open")
        if kind == "model":
            reason = invalid.get(
                (file, int(r.get("shape_index", -1)), int(r.get("path_index", -1)))
            )
            depth = r.get("nesting_depth")
            if not isinstance(depth, int):  # results of schema 2
                depth = 1 if r.get("is_hole") else 0
            nested = reason not in _NOT_NESTED
            loops.append(
                PlateLoop(
                    points, depth if nested else None, reason, area=float(r.get("area_mm2", 0))
                )
            )
        else:
            loops.append(PlateLoop(points, None, closed=fmt == "closed", dashed=fmt == "dashed"))
    return loops


def _decode(png: bytes, name: str) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ReportError(f"{name} is not a readable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _size(value: Any) -> str:
    if not isinstance(value, int):
        return "?"
    return f"{value / 1e6:.1f} MB" if value >= 1e5 else f"{value:,} bytes"


def _value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value
