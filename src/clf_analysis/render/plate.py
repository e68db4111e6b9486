"""The build plate and its pixel registration, shared by every plate image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class Plate:
    """A square plate centred on (0, 0) mm, rendered at `px_per_mm`, +y up.

    Registration: the centre of pixel (row r, col c) is at
    x = c / px_per_mm - size_mm / 2 and y = size_mm / 2 - r / px_per_mm, so the plate
    origin is the centre of pixel (px/2, px/2) and rows decrease as y grows. Pixel
    centres rather than pixel corners sit on the mm grid so that grid-aligned geometry
    (the common case) never lands on a rounding tie.
    """

    size_mm: float = 210.0
    px_per_mm: float = 10.0

    def __post_init__(self) -> None:
        if not (self.size_mm > 0 and self.px_per_mm > 0):
            raise ValueError(f"plate size and resolution must be > 0, got {self}")
        if abs(self.size_mm * self.px_per_mm - self.px) > 1e-6:
            raise ValueError(f"plate of {self.size_mm} mm is not a whole number of pixels")

    @property
    def px(self) -> int:
        """Width and height of a plate image in pixels (2100 for the default plate)."""
        return round(self.size_mm * self.px_per_mm)

    @property
    def half_mm(self) -> float:
        return self.size_mm / 2.0

    @property
    def extent_mm(self) -> tuple[float, float, float, float]:
        """(left, right, bottom, top) of the image's pixel edges in mm, for `imshow`."""
        h = 0.5 / self.px_per_mm
        return (
            -self.half_mm - h,
            self.half_mm - h,
            -self.half_mm + h,
            self.half_mm + h,
        )

    def to_px(self, xy_mm: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """(n, 2) x, y in mm -> (n, 2) col, row in continuous pixel units (centres on integers)."""
        xy = np.asarray(xy_mm, dtype=np.float64).reshape(-1, 2)
        out = np.empty_like(xy)
        out[:, 0] = (xy[:, 0] + self.half_mm) * self.px_per_mm
        out[:, 1] = (self.half_mm - xy[:, 1]) * self.px_per_mm
        return out

    def to_mm(self, colrow: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Inverse of `to_px`: (n, 2) col, row -> (n, 2) x, y in mm."""
        cr = np.asarray(colrow, dtype=np.float64).reshape(-1, 2)
        out = np.empty_like(cr)
        out[:, 0] = cr[:, 0] / self.px_per_mm - self.half_mm
        out[:, 1] = self.half_mm - cr[:, 1] / self.px_per_mm
        return out
