"""Shapes and paths counted the way the legacy fields of platform_info.json count them.

A *shape* is a CLF shape (a MODEL cluster, a WEB polygon or a SUPPORT line); a *path* is
one of its loops. Paths are typed by their vertices as the legacy path data typed its
items: `point` (1 vertex), `line` (2), `path` (3 or more: the records of the per-layer
path data); CLF has no circles, and a loop without vertices is `unknown`. A path is
closed when its shape is closed by format (MODEL clusters and CLOSED polygons) and it has
at least 3 vertices; every other path is open.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from clf_analysis.clf.types import Shape
from clf_analysis.layout import mm


@dataclass
class PathCounts:
    """Shapes and paths of one model (or one file layer), by type and closedness."""

    shapes: int = 0
    point: int = 0
    line: int = 0
    path: int = 0
    unknown: int = 0
    closed: int = 0

    @property
    def total(self) -> int:
        return self.point + self.line + self.path + self.unknown

    def add(self, shape: Shape) -> None:
        self.shapes += 1
        for loop in shape.loops:
            n = len(loop)
            if n >= 3:
                self.path += 1
                self.closed += shape.is_closed
            elif n == 2:
                self.line += 1
            elif n == 1:
                self.point += 1
            else:
                self.unknown += 1

    def merge(self, other: PathCounts) -> None:
        self.shapes += other.shapes
        self.point += other.point
        self.line += other.line
        self.path += other.path
        self.unknown += other.unknown
        self.closed += other.closed

    @classmethod
    def of(cls, shapes: Iterable[Shape]) -> PathCounts:
        counts = cls()
        for shape in shapes:
            counts.add(shape)
        return counts

    def legacy(self) -> dict[str, Any]:
        """The legacy `analysis_summary.path_counts` entry."""
        return {
            "total": self.total,
            "by_type": {
                "point": self.point,
                "line": self.line,
                "path": self.path,
                "circle": 0,
                "unknown": self.unknown,
            },
            "closed_paths": self.closed,
            "open_paths": self.total - self.closed,
        }

    def closed_summary(self) -> dict[str, Any]:
        """The legacy `closed_paths_summary` entry (percentage 0–100, 2 decimals)."""
        total = self.total
        return {
            "closed_count": self.closed,
            "total_count": total,
            "percentage_closed": round(100.0 * self.closed / total, 2) if total else 0.0,
        }


@dataclass(frozen=True)
class LayerSample:
    """One file's layer answering a legacy sample height: counts and the extent of its points."""

    height: float  # the sample height
    z: float  # the height of the file's layer that answered it
    counts: PathCounts
    bounds: tuple[float, float, float, float] | None  # x_min, x_max, y_min, y_max

    @classmethod
    def of(cls, height: float, z: float, shapes: tuple[Shape, ...]) -> LayerSample:
        loops = [loop for shape in shapes for loop in shape.loops if len(loop)]
        bounds = None
        if loops:
            points = np.concatenate(loops).astype(np.float64)
            lo = points.min(axis=0)
            hi = points.max(axis=0)
            bounds = (
                mm(lo[0]),
                mm(hi[0]),
                mm(lo[1]),
                mm(hi[1]),
            )
        return cls(height=height, z=z, counts=PathCounts.of(shapes), bounds=bounds)
