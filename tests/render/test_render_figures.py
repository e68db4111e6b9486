"""Annotated plate figures: size, visible content, and no pyplot."""

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

from clf_analysis.render import (
    FIGURE_PX,
    Plate,
    PlateRaster,
    RenderError,
    UnclosedItem,
    combined_identifiers_view,
    composite_view,
    figures,
    holes_view,
    identifier_view,
    read_png_size,
    unclosed_view,
)


def square(x0: float, y0: float, side: float) -> np.ndarray:
    return np.array(
        [(x0, y0), (x0 + side, y0), (x0 + side, y0 + side), (x0, y0 + side)], dtype=np.float32
    )


def rgb_image(path: Path) -> np.ndarray:
    assert read_png_size(path) == FIGURE_PX
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def count_color(image: np.ndarray, color: str, alpha: float = 1.0, tol: int = 6) -> int:
    """Pixels showing `color` drawn with `alpha` over the plate face."""
    face = np.array(to_rgb(figures.PLATE_FACE))
    want = np.round((alpha * np.array(to_rgb(color)) + (1 - alpha) * face) * 255)
    return int((np.abs(image.astype(int) - want).max(axis=-1) <= tol).sum())


def shape_with_hole(x: float, y: float) -> list[np.ndarray]:
    return [square(x, y, 30), square(x + 10, y + 10, 10)]


def test_holes_view_shows_metal_and_holes(tmp_path: Path) -> None:
    solids = [shape_with_hole(-60, -20), shape_with_hole(20, 20)]
    holes = [solids[0][1], solids[1][1]]
    out = tmp_path / "holes.png"
    holes_view(out, build_id="77", z=12.5, solids=solids, holes=holes, hole_labels=["a", "b"])
    image = rgb_image(out)
    assert count_color(image, figures.SOLID_FACE) > 2000
    assert count_color(image, figures.HOLE_FACE) > 300


def test_holes_are_cut_out_of_solids_whatever_their_orientation(tmp_path: Path) -> None:
    def solid_pixels(shape: list[np.ndarray]) -> int:
        out = tmp_path / "solid.png"
        holes_view(out, build_id="1", z=1.0, solids=[shape], holes=[])
        return count_color(rgb_image(out), figures.SOLID_FACE)

    full = solid_pixels([square(-30, -30, 60)])
    hole = square(-15, -15, 30)
    for oriented in (hole, hole[::-1].copy()):
        # A 30 mm hole in a 60 mm square leaves 3/4 of the metal.
        assert solid_pixels([square(-30, -30, 60), oriented]) / full == pytest.approx(
            0.75, abs=0.03
        )


def test_identifier_view_from_loops_and_from_a_mask(tmp_path: Path) -> None:
    canvas = PlateRaster()
    canvas.fill_shape(shape_with_hole(-40, -40), (0, 0, 0, 255))
    other = PlateRaster()
    other.fill_shape([square(40, 40, 30)], (0, 0, 0, 255))
    for name, footprint, others in (
        ("loops", [shape_with_hole(-40, -40)], [[[square(40, 40, 30)]]]),
        ("mask", painted(canvas), [painted(other)]),
    ):
        out = tmp_path / f"{name}.png"
        identifier_view(
            out,
            build_id="77",
            part_label="Gear/Part.clf #3 Gear",
            footprint=footprint,
            others=others,
        )
        image = rgb_image(out)
        assert count_color(image, figures.HIGHLIGHT, 0.85, tol=10) > 2000, name
        assert count_color(image, figures.FAINT) > 1000, name


def test_mask_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="footprint mask"):
        identifier_view(
            tmp_path / "x.png",
            build_id="1",
            part_label="p",
            footprint=np.zeros((100, 100), bool),
            bbox=(0, 0, 1, 1),
        )
    assert not (tmp_path / "x.png").exists()


def test_combined_view_gives_each_part_its_colour(tmp_path: Path) -> None:
    masks = []
    for i in range(3):
        canvas = PlateRaster()
        canvas.fill_shape([square(-90 + 60 * i, 0, 30)], (0, 0, 0, 255))
        masks.append(painted(canvas))
    parts = [(f"P{i}/Part.clf #1", m, None) for i, m in enumerate(masks)]
    parts.append(("loops/Part.clf #2", [[square(0, -80, 30)]], "#8c564b"))
    out = tmp_path / "combined.png"
    combined_identifiers_view(out, build_id="77", parts=parts)
    image = rgb_image(out)
    for color in (*figures.PALETTE[:3], "#8c564b"):
        assert count_color(image, color, 0.85, tol=10) > 1000, color


def test_unclosed_view_draws_each_reason(tmp_path: Path) -> None:
    items = [
        UnclosedItem(np.array([(-80, 0), (80, 0)], np.float32), "open", 3.0, "Net/Net.clf"),
        (np.array([(0, -80), (0, 80)], np.float32), "dashed", 4.0, "A/Part.clf"),
        UnclosedItem(square(30, 30, 40), "zero area", 5.0, "B/Part.clf", True),
    ]
    out = tmp_path / "unclosed.png"
    unclosed_view(out, build_id="77", items=items)
    image = rgb_image(out)
    for color in figures.REASON_COLORS[:3]:
        assert count_color(image, color, tol=30) > 100, color


def test_unclosed_view_says_none_found_when_empty(tmp_path: Path) -> None:
    out = tmp_path / "none.png"
    unclosed_view(out, build_id="77", items=[])
    image = rgb_image(out)
    box = np.round(np.array(to_rgb("#e6f4ea")) * 255)
    assert int((np.abs(image.astype(int) - box).max(axis=-1) <= 3).sum()) > 5000


def test_composite_view_colours_folders(tmp_path: Path) -> None:
    out = tmp_path / "composite.png"
    composite_view(
        out,
        build_id="77",
        z=1.0,
        shapes_by_folder={
            "A": [shape_with_hole(-80, -80)],
            "B b/c": [[square(20, 20, 40)]],
            "": [],
        },
    )
    image = rgb_image(out)
    for color in figures.PALETTE[:2]:
        assert count_color(image, color, 0.8, tol=10) > 1500, color


def test_figures_honour_another_plate(tmp_path: Path) -> None:
    plate = Plate(size_mm=300, px_per_mm=5)
    canvas = PlateRaster(plate)
    canvas.fill_shape([square(100, 100, 30)], (0, 0, 0, 255))
    out = tmp_path / "big.png"
    identifier_view(out, build_id="1", part_label="p", footprint=painted(canvas), plate=plate)
    assert count_color(rgb_image(out), figures.HIGHLIGHT, 0.85, tol=10) > 500


def test_rendering_never_imports_pyplot(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        import numpy as np
        from clf_analysis.render import holes_view, unclosed_view, composite_view
        sq = np.array([(0, 0), (10, 0), (10, 10), (0, 10)], np.float32)
        out = Path({str(tmp_path)!r})
        holes_view(out / "h.png", build_id="1", z=1.0, solids=[[sq]], holes=[])
        unclosed_view(out / "u.png", build_id="1", items=[])
        composite_view(out / "c.png", build_id="1", z=1.0, shapes_by_folder={{"a": [[sq]]}})
        print("matplotlib.pyplot" in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False"
    assert (tmp_path / "c.png").exists()
