"""Plate-registered raster images (no axes) drawn with OpenCV.

Drawing semantics:
- No anti-aliasing. A pixel is painted with the full colour when its centre lies inside
  the shape or on its boundary (OpenCV rounds vertices to pixel centres and fills
  inclusively), else it is left as it is. Anti-aliased edges on a transparent background
  would need premultiplied blending and would make overlapping parts order-dependent;
  these images are registration masks for the alignment and defect-detection services,
  where crisp 0.1 mm pixels matter more than smooth edges.
- Painting replaces the pixel's RGBA value (no blending), also for partial alpha.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from clf_analysis.clf.types import LoopArray
from clf_analysis.render.plate import Plate
from clf_analysis.render.png import RenderError, write_png_verified

RGBA = tuple[int, int, int, int]

# Sub-pixel bits passed to OpenCV; vertices keep 1/256 px precision before rounding.
_SHIFT = 8
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def line_pieces(loop: npt.NDArray[Any], *, dashed: bool) -> list[npt.NDArray[Any]]:
    """The polylines a line geometry draws: a DASHED one is separate vertex pairs."""
    if not dashed:
        return [loop]
    return [loop[i : i + 2] for i in range(0, len(loop) - 1, 2)]


class PlateRaster:
    """A transparent `plate.px` x `plate.px` RGBA canvas registered to the plate."""

    def __init__(self, plate: Plate | None = None) -> None:
        self.plate = plate if plate is not None else Plate()
        self.rgba: npt.NDArray[np.uint8] = np.zeros(
            (self.plate.px, self.plate.px, 4), dtype=np.uint8
        )

    def _fixed(self, loop: LoopArray) -> npt.NDArray[np.int32]:
        colrow = self.plate.to_px(loop)
        # Far-away vertices would overflow int32 after the shift; the clip keeps the
        # edge direction near the plate good enough, and such loops are off-plate anyway.
        limit = 8.0 * self.plate.px
        np.clip(colrow, -limit, limit, out=colrow)
        return np.round(colrow * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)

    def fill_shape(self, loops: Sequence[LoopArray], color_rgba: RGBA) -> None:
        """Paint one shape: exterior and holes in one even-odd fill, so holes stay unpainted.

        OpenCV fills several contours passed together by parity, whatever their
        orientation: a hole is left as it was (transparent on a fresh canvas).
        Loops with fewer than 3 vertices are ignored.
        """
        contours = [self._fixed(loop) for loop in loops if len(loop) >= 3]
        if contours:
            cv2.fillPoly(self.rgba, contours, _color(color_rgba), cv2.LINE_8, _SHIFT)

    def stroke(
        self,
        loop: LoopArray,
        color_rgba: RGBA,
        *,
        closed: bool = True,
        dashed: bool = False,
        thickness_px: int = 1,
    ) -> None:
        """Draw a loop's outline (or an open polyline), centred, `thickness_px` wide.

        Widths are odd so the line stays centred on its pixels: an even width is
        drawn one pixel thinner. `dashed`: vertex pairs are separate segments.
        """
        if len(loop) < 2:
            return
        # Measured: OpenCV draws thickness 1 as 1 px and t >= 2 as 2 * ((t + 1) // 2) + 1
        # px, so an odd width w needs t = w - 1.
        width = max(1, int(thickness_px))
        width -= 1 - width % 2
        cv_thickness = max(1, width - 1)
        cv2.polylines(
            self.rgba,
            [self._fixed(piece) for piece in line_pieces(loop, dashed=dashed)],
            closed and not dashed,
            _color(color_rgba),
            cv_thickness,
            cv2.LINE_8,
            _SHIFT,
        )

    def label(
        self,
        text: str,
        xy_mm: tuple[float, float],
        color_rgba: RGBA = (255, 255, 255, 255),
        *,
        height_mm: float = 2.5,
        outline_rgba: RGBA | None = (0, 0, 0, 255),
    ) -> None:
        """Write `text` centred on `xy_mm`, `height_mm` tall, with an outline for contrast.

        Only ASCII is drawn (OpenCV's Hershey fonts); other characters become '?'.
        """
        text = text.encode("ascii", "replace").decode("ascii")
        height_px = max(height_mm * self.plate.px_per_mm, 6.0)
        (_, h1), _ = cv2.getTextSize(text, _FONT, 1.0, 1)
        scale = height_px / max(h1, 1)
        thickness = max(1, round(scale * 1.5))
        (w, h), _ = cv2.getTextSize(text, _FONT, scale, thickness)
        col, row = self.plate.to_px([xy_mm])[0]
        origin = (int(np.rint(col - w / 2)), int(np.rint(row + h / 2)))
        if outline_rgba is not None:
            cv2.putText(
                self.rgba,
                text,
                origin,
                _FONT,
                scale,
                _color(outline_rgba),
                thickness + 2,
                cv2.LINE_8,
            )
        cv2.putText(
            self.rgba, text, origin, _FONT, scale, _color(color_rgba), thickness, cv2.LINE_8
        )

    def write_png(self, path: Path) -> None:
        """Write the canvas as a verified `px` x `px` RGBA PNG."""
        write_png_verified(path, self.rgba, (self.plate.px, self.plate.px))


class FootprintMask:
    """A one-channel plate mask that accumulates the solid region of many layers.

    `add` fills all loops of one layer in a single even-odd pass: for the loops of a part
    file at one height that parity is exactly the nesting rule (solid at even depth),
    so islands inside holes come out solid. Painting only ever adds, so the result is
    the union over layers whatever their order. Same pixel rule as `PlateRaster`.

    Only a window of the plate around what was painted is kept (grown when geometry
    reaches past it): a file with hundreds of small models then holds hundreds of small
    masks, not hundreds of 2100 x 2100 ones.
    """

    # Extra pixels around a grown window, so a part widening layer by layer does not
    # reallocate at every layer.
    _SLACK = 16

    def __init__(self, plate: Plate | None = None) -> None:
        self.plate = plate if plate is not None else Plate()
        self._row0 = self._col0 = 0
        self._window: npt.NDArray[np.uint8] = np.zeros((0, 0), np.uint8)

    def _local(self, points_mm: LoopArray) -> npt.NDArray[np.int32] | None:
        """Fixed-point pixel coordinates relative to the window, grown to hold them;
        None when the points lie entirely off the plate."""
        colrow = self.plate.to_px(points_mm)
        limit = 8.0 * self.plate.px
        np.clip(colrow, -limit, limit, out=colrow)
        px = self.plate.px
        # Two pixels of margin: pixel-centre rounding and one-pixel-wide lines.
        c0 = max(0, int(np.floor(colrow[:, 0].min())) - 2)
        c1 = min(px, int(np.ceil(colrow[:, 0].max())) + 3)
        r0 = max(0, int(np.floor(colrow[:, 1].min())) - 2)
        r1 = min(px, int(np.ceil(colrow[:, 1].max())) + 3)
        if c0 >= c1 or r0 >= r1:
            return None
        self._grow(r0, r1, c0, c1)
        colrow[:, 0] -= self._col0
        colrow[:, 1] -= self._row0
        return np.round(colrow * (1 << _SHIFT)).astype(np.int32)

    def _grow(self, r0: int, r1: int, c0: int, c1: int) -> None:
        height, width = self._window.shape
        if self._window.size:
            if (
                r0 >= self._row0
                and c0 >= self._col0
                and r1 <= self._row0 + height
                and c1 <= self._col0 + width
            ):
                return
            r0, c0 = min(r0, self._row0), min(c0, self._col0)
            r1, c1 = max(r1, self._row0 + height), max(c1, self._col0 + width)
        px = self.plate.px
        r0, c0 = max(0, r0 - self._SLACK), max(0, c0 - self._SLACK)
        r1, c1 = min(px, r1 + self._SLACK), min(px, c1 + self._SLACK)
        grown = np.zeros((r1 - r0, c1 - c0), np.uint8)
        if self._window.size:
            top, left = self._row0 - r0, self._col0 - c0
            grown[top : top + height, left : left + width] = self._window
        self._window, self._row0, self._col0 = grown, r0, c0

    def add(self, loops: Sequence[LoopArray]) -> None:
        kept = [loop for loop in loops if len(loop) >= 3]
        if not kept:
            return
        fixed = self._local(np.concatenate(kept))
        if fixed is None:
            return
        ends = np.cumsum([len(loop) for loop in kept])[:-1]
        contours = [c.reshape(-1, 1, 2) for c in np.split(fixed, ends)]
        cv2.fillPoly(self._window, contours, 255, cv2.LINE_8, _SHIFT)

    def stroke(self, loop: LoopArray, *, closed: bool, dashed: bool = False) -> None:
        """Add a line geometry (support, web) one pixel wide."""
        if len(loop) < 2:
            return
        fixed = self._local(loop)
        if fixed is None:
            return
        pieces = [p.reshape(-1, 1, 2) for p in line_pieces(fixed, dashed=dashed)]
        cv2.polylines(self._window, pieces, closed and not dashed, 255, 1, cv2.LINE_8, _SHIFT)

    def full(self) -> npt.NDArray[np.uint8]:
        """The whole plate's mask (0 or 255 per pixel)."""
        out = np.zeros((self.plate.px, self.plate.px), np.uint8)
        height, width = self._window.shape
        out[self._row0 : self._row0 + height, self._col0 : self._col0 + width] = self._window
        return out

    def packed(self) -> npt.NDArray[np.uint8]:
        """The plate mask as packed bits (1/8 of the bytes), for passing between processes."""
        return np.packbits(self.full() > 0)


def _color(rgba: RGBA) -> tuple[int, int, int, int]:
    if len(rgba) != 4 or not all(0 <= int(c) <= 255 for c in rgba):
        raise RenderError(f"colour must be 4 values 0-255 (R, G, B, A), got {rgba!r}")
    return tuple(int(c) for c in rgba)  # type: ignore[return-value]
