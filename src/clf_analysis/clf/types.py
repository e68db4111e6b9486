"""Value types of the CLF format: what a reader yields and a writer takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

import numpy as np
import numpy.typing as npt

# An (n, 2) float32 array of x, y vertices in millimetres. For closed loops the first
# vertex is NOT repeated at the end (the format closes loops implicitly).
LoopArray = npt.NDArray[np.float32]

ShapeKind = Literal["model", "closed", "open", "dashed", "support"]
SHAPE_KINDS: tuple[ShapeKind, ...] = ("model", "closed", "open", "dashed", "support")


class ClusterType(IntEnum):
    MODEL = 0
    SUPPORT = 1
    WEB = 2


class PolygonType(IntEnum):
    OUTLOOP = 0
    INLOOP = 1
    SUPPORT = 2


class PolygonFormat(IntEnum):
    CLOSED = 0
    OPEN = 1
    DASHED = 2


@dataclass(frozen=True)
class Box:
    """Axis-aligned box: min x, min y, min z, max x, max y, max z (mm)."""

    min_x: float
    min_y: float
    min_z: float
    max_x: float
    max_y: float
    max_z: float

    def as_list(self) -> list[float]:
        return [self.min_x, self.min_y, self.min_z, self.max_x, self.max_y, self.max_z]


@dataclass(frozen=True)
class Model:
    """One model (a part) declared in the header; ids are unique only within a file."""

    id: int
    name: str
    box: Box
    thickness: float


_IMPLIED_FORMAT: dict[str, PolygonFormat] = {
    "model": PolygonFormat.CLOSED,
    "closed": PolygonFormat.CLOSED,
    "open": PolygonFormat.OPEN,
    "dashed": PolygonFormat.DASHED,
}


@dataclass(frozen=True, eq=False)
class Shape:
    """One shape of a layer.

    A MODEL cluster is one shape of kind "model": loops[0] is the outer boundary, the
    rest are its holes, in file order. Every WEB or SUPPORT polygon is its own shape
    with a single loop: kind "closed" | "open" | "dashed" for WEB, "support" for SUPPORT
    clusters, whose line format is kept in `line_format`.
    """

    model_id: int
    kind: ShapeKind
    loops: tuple[LoopArray, ...]
    line_format: PolygonFormat = PolygonFormat.CLOSED

    def __post_init__(self) -> None:
        # For WEB shapes the kind *is* the line format and model loops are closed, so a
        # Shape(m, "open", loops) built without line_format must not claim CLOSED: keep
        # the two consistent (as the reader produces them) so is_closed and == hold.
        implied = _IMPLIED_FORMAT.get(self.kind)
        if implied is not None and self.line_format != implied:
            object.__setattr__(self, "line_format", implied)

    @property
    def is_closed(self) -> bool:
        """Loops of MODEL clusters and CLOSED polygons are closed by definition."""
        return self.kind == "model" or self.line_format == PolygonFormat.CLOSED

    @property
    def is_dashed(self) -> bool:
        """DASHED line geometry: consecutive vertex pairs are separate segments."""
        return self.kind != "model" and self.line_format == PolygonFormat.DASHED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Shape):
            return NotImplemented
        return (
            self.model_id == other.model_id
            and self.kind == other.kind
            and self.line_format == other.line_format
            and len(self.loops) == len(other.loops)
            and all(np.array_equal(a, b) for a, b in zip(self.loops, other.loops, strict=True))
        )

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True)
class Layer:
    """One layer: its height z (mm, float32 value) and its shapes in file order."""

    z: float
    shapes: tuple[Shape, ...] = field(default_factory=tuple)


EMPTY_LAYER_SHAPES: tuple[Shape, ...] = ()
