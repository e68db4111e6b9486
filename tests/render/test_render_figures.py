"""Annotated plate figures: drawn by nesting, self-explanatory text, size, and no pyplot."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from canvases import painted
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.text import Text

from clf_analysis.render import (
    FIGURE_PX,
    PartName,
    Plate,
    PlateLoop,
    PlateRaster,
    RenderError,
    UnclosedItem,
    combined_identifiers_figure,
    composite_figure,
    figures,
    holes_figure,
    identifier_figure,
    read_png_size,
    save,
    unclosed_figure,
)


def square(x0: float, y0: float, side: float) -> np.ndarray:
    return np.array(
        [(x0, y0), (x0 + side, y0), (x0 + side, y0 + side), (x0, y0 + side)], dtype=np.float32
    )


def circle(cx: float, cy: float, r: float, n: int = 96) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)]).astype(np.float32)


def png(fig: Figure, tmp_path: Path, name: str = "figure.png") -> np.ndarray:
    out = tmp_path / name
    save(fig, out)
    assert read_png_size(out) == FIGURE_PX
    return cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def at(image: np.ndarray, xy_mm: tuple[float, float], plate: Plate | None = None) -> np.ndarray:
    col, row = figures.plate_pixel(xy_mm, plate)
    return image[row, col].astype(int)


def drawn_near(image: np.ndarray, xy_mm: tuple[float, float]) -> bool:
    """Whether a pixel within one of the one showing `xy_mm` differs from the plate (a
    thin line may fall on either side of the pixel the point rounds to)."""
    col, row = figures.plate_pixel(xy_mm)
    block = image[row - 1 : row + 2, col - 1 : col + 2].astype(int)
    face = np.round(np.array(to_rgb(figures.PLATE_FACE)) * 255)
    return bool((np.abs(block - face).max(axis=-1) > 20).any())


def is_color(rgb: np.ndarray, color: str, tol: int = 4) -> bool:
    want = np.round(np.array(to_rgb(color)) * 255)
    return bool(np.abs(rgb - want).max() <= tol)


def count_color(image: np.ndarray, color: str, tol: int = 6) -> int:
    want = np.round(np.array(to_rgb(color)) * 255)
    return int((np.abs(image.astype(int) - want).max(axis=-1) <= tol).sum())


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(Text) if t.get_text()]


def joined(fig: Figure) -> str:
    """Every text of the figure, wrapped lines joined again."""
    return " ".join(" ".join(t.split()) for t in texts(fig))


def assert_text_inside(fig: Figure) -> None:
    """No text of the figure runs past its edges (nothing cut off)."""
    fig.canvas.draw()  # type: ignore[attr-defined]  # lays out the axis labels
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    # Tick numbers are matplotlib's own, and it keeps (undrawn) ones beyond the limits.
    ticks = {
        id(label)
        for ax in fig.axes
        for axis in (ax.xaxis, ax.yaxis)
        for tick in axis.get_major_ticks() + axis.get_minor_ticks()
        for label in (tick.label1, tick.label2)
    }
    for t in fig.findobj(Text):
        if not t.get_text() or not t.get_visible() or id(t) in ticks:
            continue
        box = t.get_window_extent(renderer)
        assert box.x0 >= 0 and box.x1 <= FIGURE_PX[0], (t.get_text(), box)
        assert box.y0 >= 0 and box.y1 <= FIGURE_PX[1], (t.get_text(), box)


def island_in_hole(cx: float, cy: float) -> list[PlateLoop]:
    """A ring (outer r 20, hole r 14) whose hole holds an island (r 7): depths 0, 1, 2."""
    return [
        PlateLoop(circle(cx, cy, 20), 0, area=np.pi * 400),
        PlateLoop(circle(cx, cy, 14)[::-1].copy(), 1, area=np.pi * 196),
        PlateLoop(circle(cx, cy, 7), 2, area=np.pi * 49),
    ]


# ------------------------------------------------------------------------ holes view


@pytest.mark.parametrize("order", ["file order", "reversed"])
def test_holes_view_draws_the_island_in_a_hole_as_metal(tmp_path: Path, order: str) -> None:
    loops = island_in_hole(30, 40)
    if order == "reversed":
        loops = loops[::-1]
    image = png(holes_figure(build_id="1", height=1.0, loops=loops), tmp_path)
    assert is_color(at(image, (30, 40)), figures.METAL_FACE)  # the island
    assert is_color(at(image, (30 + 10.5, 40)), figures.HOLE_FACE)  # inside the hole ring
    assert is_color(at(image, (30, 40 - 10.5)), figures.HOLE_FACE)
    assert is_color(at(image, (30 - 17, 40)), figures.METAL_FACE)  # the ring's metal
    assert is_color(at(image, (30 + 25, 40)), figures.PLATE_FACE)  # the plate beside it


def test_an_invalid_loop_shows_the_alarm_colour_with_its_reason(tmp_path: Path) -> None:
    bow_tie = np.array([(-40, -40), (-20, -20), (-20, -40), (-40, -20)], np.float32)
    loops = [
        PlateLoop(square(10, 10, 30), 0, area=900),
        PlateLoop(bow_tie, 0, invalid="self-intersection"),
    ]
    fig = holes_figure(build_id="1", height=1.0, loops=loops)
    image = png(fig, tmp_path)
    # The middle of the bow-tie's left lobe, and the metal beside it untouched.
    assert is_color(at(image, (-36, -30)), figures.ALARM)
    assert is_color(at(image, (25, 25)), figures.METAL_FACE)
    assert "invalid: self-intersection (1)" in texts(fig)
    assert "1 invalid loop" in joined(fig)


def test_line_geometry_is_stroked_never_filled(tmp_path: Path) -> None:
    frame = PlateLoop(square(-60, -60, 40), None, closed=True)
    dashed = PlateLoop(
        np.array([(20, 20), (60, 20), (20, 40), (60, 40)], np.float32), None, dashed=True
    )
    fig = holes_figure(build_id="1", height=1.0, loops=[frame, dashed])
    image = png(fig, tmp_path)
    assert is_color(at(image, (-40, -40)), figures.PLATE_FACE)  # inside the frame: empty
    assert drawn_near(image, (-60, -40))  # its edge
    assert drawn_near(image, (40, 20))  # a dash
    # A polyline would join the pairs with a diagonal through (40, 30): dashes do not.
    assert not drawn_near(image, (40, 30))
    assert "line geometry, stroked (2)" in texts(fig)


def test_holes_view_title_has_the_layer_height_drawn_and_right_plurals() -> None:
    fig = holes_figure(
        build_id="B7",
        height=0.0,
        loops=[PlateLoop(square(0, 0, 10), 0, area=100)],
        layer_zs=[0.05],
        files=1,
        solid_shapes=1,
    )
    text = texts(fig)
    assert "Build B7 — holes at z = 0.05 mm" in text
    subtitle = next(t for t in text if "solid shape" in t)
    assert subtitle == "1 file · 1 solid shape · 0 holes · view for 0 mm: each file's nearest layer"


def test_files_answering_a_height_at_different_layers_give_the_span() -> None:
    fig = holes_figure(build_id="1", height=5.0, loops=[], layer_zs=[5.0, 4.98, 5.02])
    assert "Build 1 — holes at z = 4.98–5.02 mm" in texts(fig)


def test_each_hole_is_labelled_with_its_area_and_equivalent_diameter(tmp_path: Path) -> None:
    loops = [
        PlateLoop(square(-80, -80, 100), 0, area=10_000),
        PlateLoop(square(-70, -70, 10), 1, area=100),
        PlateLoop(circle(0, 0, 1.5), 1, area=np.pi * 2.25),
    ]
    fig = holes_figure(build_id="1", height=1.0, loops=loops)
    assert "100\u00a0mm²\u00a0⌀11.3" in texts(fig)
    assert "7.07\u00a0mm²\u00a0⌀3.00" in texts(fig)
    legend = joined(fig)
    assert "Labels, on every hole: area (mm²) and equivalent diameter ⌀ = 2√(A/π) (mm)" in legend
    assert "ring: hole under 4 mm" in legend  # the 3 mm hole is ringed
    assert_text_inside(fig)


def test_hole_labels_never_overlap_and_say_how_many_are_shown() -> None:
    holes = [PlateLoop(square(-60 + 3 * i, 0, 2), 1, area=4.0) for i in range(30)]
    fig = holes_figure(
        build_id="1", height=1.0, loops=[PlateLoop(square(-70, -10, 120), 0, area=1), *holes]
    )
    fig.canvas.draw()  # type: ignore[attr-defined]
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    labels = [t for t in fig.axes[0].texts if "mm²" in t.get_text()]
    # The text's own box: an annotation's would include the leader line to its hole.
    boxes = [Text.get_window_extent(t, renderer) for t in labels]
    assert 4 <= len(boxes) < 30
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), (a, b)
    assert f"on {len(labels)} of the 30 holes" in joined(fig)


# ------------------------------------------------------------------------ part views

LONG = PartName(
    "Customer Order 4711 Rev C/Lattice Implants Tray 3/Acetabular Cup Left Side 02",
    "Part.clf",
    12,
    "AcetabularCup_Left_Lattice_Variant_With_A_Very_Long_Name",
)


def test_identifier_view_names_the_part_and_counts_the_other_parts(tmp_path: Path) -> None:
    canvas = PlateRaster()
    canvas.fill_shape([square(-40, -40, 30), square(-30, -30, 10)], (0, 0, 0, 255))
    others = PlateRaster()
    others.fill_shape([square(40, 40, 30)], (0, 0, 0, 255))
    fig = identifier_figure(
        build_id="77",
        part=LONG,
        footprint=painted(canvas),
        others=[painted(others)],
        other_count=8,
        z_range=(0.05, 11.45),
        layer_count=229,
        facts=["volume 3,571.7 mm³, largest section 311.9 mm²"],
    )
    image = png(fig, tmp_path)
    assert is_color(at(image, (-35, -35)), figures.METAL_FACE)
    assert is_color(at(image, (-23, -23)), figures.PLATE_FACE)  # a hole through all layers
    assert is_color(at(image, (55, 55)), figures.FAINT)
    text = joined(fig)
    assert "other parts (8)" in text
    assert "footprint over all layers, z 0.05–11.45 mm (229 layers)" in text
    # The full name is in the legend, wrapped or cut only at its end.
    assert LONG.path in text and f"#{LONG.model_id}" in text
    assert "AcetabularCup" in text
    assert_text_inside(fig)


def test_identifier_view_from_loops(tmp_path: Path) -> None:
    fig = identifier_figure(
        build_id="77",
        part=PartName("Gear", "Part.clf", 3, "Gear"),
        footprint=[[square(-40, -40, 30), square(-30, -30, 10)]],
        others=[[[square(40, 40, 30)]]],
    )
    image = png(fig, tmp_path)
    assert is_color(at(image, (-35, -35)), figures.METAL_FACE)
    assert is_color(at(image, (-23, -23)), figures.PLATE_FACE)
    assert "other parts (1)" in texts(fig)


def test_mask_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(RenderError, match="footprint mask"):
        identifier_figure(
            build_id="1", part="p", footprint=np.zeros((100, 100), bool), bbox=(0, 0, 1, 1)
        )


def test_combined_view_gives_each_part_its_colour_and_its_name(tmp_path: Path) -> None:
    masks = []
    for i in range(3):
        canvas = PlateRaster()
        canvas.fill_shape([square(-90 + 60 * i, 0, 30)], (0, 0, 0, 255))
        masks.append(painted(canvas))
    parts: list[tuple[PartName | str, object, str | None]] = [
        (PartName(f"Plate/Tube {i:02d}", "Part.clf", 1, f"Tube_{i}"), m, None)
        for i, m in enumerate(masks)
    ]
    parts.append((PartName("Plate/Pairs", "Twin.clf", 2, ""), [[square(0, -80, 30)]], "#8c564b"))
    fig = combined_identifiers_figure(build_id="77", parts=parts)  # type: ignore[arg-type]
    image = png(fig, tmp_path)
    for color in (*figures.PALETTE[:3], "#8c564b"):
        assert count_color(image, color, tol=14) > 1000, color
    text = joined(fig)
    assert "1 Tube 00/Part.clf #1 Tube_0" in text
    assert "4 Pairs/Twin.clf #2" in text
    assert "every part in Plate/" in text  # the folder every part shares, said once


def test_combined_legend_of_many_parts_fits_and_says_what_it_left_out() -> None:
    parts = [
        (LONG._replace(model_id=i), [[square(-100 + 4 * (i % 50), -100 + 4 * (i // 50), 3)]], None)
        for i in range(60)
    ]
    fig = combined_identifiers_figure(build_id="77", parts=parts)  # type: ignore[arg-type]
    text = texts(fig)
    assert any(t.startswith("… and ") and "more parts (platform_info.json)" in t for t in text)
    # What every part shares is said once: the legend keeps what tells them apart.
    assert (
        "60 parts, footprints over all layers · every part in Customer Order 4711 Rev C/"
        "Lattice Implants Tray 3/ · every file is Part.clf" in joined(fig)
    )
    assert " 2  Acetabular Cup Left Side 02 #1 Ace…" in text  # cut at the end only
    assert_text_inside(fig)


# ------------------------------------------------------------------------ unclosed view


def test_unclosed_view_puts_defects_in_the_alarm_colour_over_faint_lines(tmp_path: Path) -> None:
    items = [
        UnclosedItem(np.array([(-80, 0), (80, 0)], np.float32), "open line", 3.0, "Net/Net.clf"),
        UnclosedItem(
            np.array([(0, -80), (0, -60), (10, -80), (10, -60)], np.float32),
            "dashed line",
            4.0,
            "Net/Net.clf",
            dashed=True,
            by_design=True,
        ),
        UnclosedItem(square(30, 30, 40), "zero area", 5.0, f"{LONG.path}", True),
    ]
    items[0] = items[0]._replace(by_design=True)
    fig = unclosed_figure(
        build_id="77", items=items, totals={"open line": 240, "dashed line": 1, "zero area": 1}
    )
    image = png(fig, tmp_path)
    assert is_color(at(image, (50, 50)), figures.ALARM)
    assert count_color(image, figures.ALARM) > 1000
    text = joined(fig)
    assert "defect: zero area (1)" in text
    assert "by design: open line (240)" in text
    assert "1 defect · in 1 file, z 5 mm – 5 mm · 241 open lines by design" in text
    assert LONG.path in text  # the defect's file, whole
    assert_text_inside(fig)


def test_unclosed_view_says_no_defects_when_only_lines_are_open(tmp_path: Path) -> None:
    line = UnclosedItem(
        np.array([(-80, 0), (80, 0)], np.float32), "open line", 3.0, "N/Net.clf", by_design=True
    )
    image = png(unclosed_figure(build_id="77", items=[line]), tmp_path)
    box = np.round(np.array(to_rgb("#e6f4ea")) * 255)
    assert int((np.abs(image.astype(int) - box).max(axis=-1) <= 3).sum()) > 5000
    assert count_color(image, figures.ALARM) == 0


# ------------------------------------------------------------------------ composite


def test_composite_view_colours_folders_and_keeps_holes_and_islands(tmp_path: Path) -> None:
    fig = composite_figure(
        build_id="77",
        height=1.0,
        folders=[
            ("A", island_in_hole(-50, -50), 2),
            ("B b/c", [PlateLoop(square(20, 20, 40), 0)], 1),
            ("", [], 0),
        ],
    )
    image = png(fig, tmp_path)
    assert is_color(at(image, (-50, -50)), figures.PALETTE[0])  # the island, folder A
    assert is_color(at(image, (-50 + 10.5, -50)), figures.HOLE_FACE)
    assert is_color(at(image, (40, 40)), figures.PALETTE[1])
    assert "3 folders, 3 shapes" in texts(fig)


def test_figures_honour_another_plate(tmp_path: Path) -> None:
    plate = Plate(size_mm=300, px_per_mm=5)
    canvas = PlateRaster(plate)
    canvas.fill_shape([square(100, 100, 30)], (0, 0, 0, 255))
    fig = identifier_figure(build_id="1", part="p", footprint=painted(canvas), plate=plate)
    image = png(fig, tmp_path)
    assert is_color(at(image, (115, 115), plate), figures.METAL_FACE)


def test_text_helpers() -> None:
    assert figures.plural(1, "solid shape") == "1 solid shape"
    assert figures.plural(0, "hole") == "0 holes"
    assert figures.fit("abcdef" * 20, 60).endswith("…")
    assert figures.text_px(figures.fit("abcdef" * 20, 60), 8) <= 60
    wrapped = figures.wrap("one two three four five six seven eight", 60, lines=2)
    assert len(wrapped.split("\n")) == 2 and wrapped.endswith("…")
    assert figures.z_span([0.05, 0.05]) == "0.05 mm"


def test_rendering_never_imports_pyplot(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import numpy as np
        from clf_analysis.render import (
            PlateLoop, composite_figure, holes_figure, save, unclosed_figure,
        )
        sq = np.array([(0, 0), (10, 0), (10, 10), (0, 10)], np.float32)
        out = Path({str(tmp_path)!r})
        save(holes_figure(build_id="1", height=1.0, loops=[PlateLoop(sq, 0)]), out / "h.png")
        save(unclosed_figure(build_id="1", items=[]), out / "u.png")
        save(composite_figure(build_id="1", height=1.0, folders=[("a", [PlateLoop(sq, 0)], 1)]),
             out / "c.png")
        print("matplotlib.pyplot" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False"
    assert (tmp_path / "c.png").exists()
