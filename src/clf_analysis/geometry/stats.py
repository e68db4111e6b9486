"""Per-part and per-layer statistics accumulated while layers stream by.

The pipeline analyses each part file layer by layer (possibly in several processes over
files or height ranges) and calls `BuildStats.add_layer` once per (file, height) with the
`LoopAnalysis` of that file's loops and the model id owning each loop. Partial results are
combined with `merge`.

Sums are kept as integers in fixed quanta (areas in 1e-6 mm², volumes in 1e-12 mm³) so
that addition is exactly associative: merging partial results gives the same numbers,
bit for bit, whatever the split. The quanta are far below anything reported (areas are
rounded to 1e-4 mm²).

Part area on a layer = Σ area of its solid loops − Σ area of its hole loops, with holes
decided by nesting over the whole file (a model lying inside another model's metal is a
hole of that file and so counts negative: overlapping models are a defect of the build).
Duplicate loops and loops left out of nesting (fewer than 3 vertices, zero area) count
for nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from clf_analysis.geometry.loops import LoopAnalysis
from clf_analysis.layout import mm


class PartKey(NamedTuple):
    """One part of a build: model ids are unique per file only."""

    folder: str  # relative to Models/, "/"-separated
    file: str
    model_id: int


AREA_QUANTUM_MM2 = 1e-6
THICKNESS_QUANTUM_MM = 1e-6
AREA_DECIMALS = 4
VOLUME_DECIMALS = 3


def _quantize(value: float, quantum: float) -> int:
    return round(value / quantum)


@dataclass
class PartStats:
    """Running statistics of one part (one model of one file) over the layers seen.

    `hole_count` is the largest number of holes on any one layer: for a block with three
    through-holes it is 3, whatever its height. `hole_loops_total` (holes summed over
    layers) and `layers_with_holes` are kept as well.
    """

    folder: str
    file: str
    model_id: int
    model_name: str
    z_min: float = math.inf
    z_max: float = -math.inf
    layer_count: int = 0
    area_sum_q: int = 0
    area_max_q: int | None = None
    volume_q: int = 0
    hole_count: int = 0
    hole_loops_total: int = 0
    layers_with_holes: int = 0
    bounds: list[float] = field(default_factory=lambda: [math.inf, math.inf, -math.inf, -math.inf])

    @property
    def key(self) -> PartKey:
        return PartKey(self.folder, self.file, self.model_id)

    def add_layer(
        self, z: float, thickness: float, area: float, holes: int, bounds: tuple[float, ...]
    ) -> None:
        """Account one layer: net area (mm²), hole loops, (min x, min y, max x, max y)."""
        area_q = _quantize(area, AREA_QUANTUM_MM2)
        zk = mm(z)  # the height as the layer files name it
        self.z_min = min(self.z_min, zk)
        self.z_max = max(self.z_max, zk)
        self.layer_count += 1
        self.area_sum_q += area_q
        self.area_max_q = area_q if self.area_max_q is None else max(self.area_max_q, area_q)
        self.volume_q += area_q * _quantize(thickness, THICKNESS_QUANTUM_MM)
        self.hole_count = max(self.hole_count, holes)
        self.hole_loops_total += holes
        self.layers_with_holes += holes > 0
        self._extend(bounds)

    def merge(self, other: PartStats) -> None:
        """Fold in the statistics of the same part over other layers."""
        if other.key != self.key:
            raise ValueError(f"cannot merge part {other.key} into {self.key}")
        if self.model_name != other.model_name:
            if self.model_name and other.model_name:
                raise ValueError(
                    f"part {self.key} named {self.model_name!r} and {other.model_name!r}"
                )
            self.model_name = self.model_name or other.model_name
        self.z_min = min(self.z_min, other.z_min)
        self.z_max = max(self.z_max, other.z_max)
        self.layer_count += other.layer_count
        self.area_sum_q += other.area_sum_q
        if other.area_max_q is not None:
            self.area_max_q = (
                other.area_max_q
                if self.area_max_q is None
                else max(self.area_max_q, other.area_max_q)
            )
        self.volume_q += other.volume_q
        self.hole_count = max(self.hole_count, other.hole_count)
        self.hole_loops_total += other.hole_loops_total
        self.layers_with_holes += other.layers_with_holes
        self._extend(tuple(other.bounds))

    def _extend(self, bounds: tuple[float, ...]) -> None:
        b = self.bounds
        b[0], b[1] = min(b[0], bounds[0]), min(b[1], bounds[1])
        b[2], b[3] = max(b[2], bounds[2]), max(b[3], bounds[3])

    @property
    def volume_mm3(self) -> float:
        return self.volume_q * AREA_QUANTUM_MM2 * THICKNESS_QUANTUM_MM

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready entry of `platform_info.json` "parts"."""
        count = self.layer_count
        return {
            "key": [self.folder, self.file, self.model_id],
            "folder": self.folder,
            "file": self.file,
            "model_id": self.model_id,
            "model_name": self.model_name,
            "z_range": [self.z_min, self.z_max] if count else None,
            "layer_count": count,
            "max_area_mm2": _area(self.area_max_q or 0),
            "mean_area_mm2": _area(self.area_sum_q / count) if count else 0.0,
            "volume_mm3": round(self.volume_mm3, VOLUME_DECIMALS),
            "hole_count": self.hole_count,
            "hole_loops_total": self.hole_loops_total,
            "layers_with_holes": self.layers_with_holes,
            "bounding_box": [mm(v) for v in self.bounds] if count else None,
        }


@dataclass
class LayerStats:
    """Totals of one height over all part files."""

    z: float
    parts: int = 0
    area_q: int = 0
    loops: int = 0
    holes: int = 0
    invalid_loops: int = 0

    def merge(self, other: LayerStats) -> None:
        """Fold in the totals of other files at the same height."""
        if other.z != self.z:
            raise ValueError(f"cannot merge layer {other.z} into {self.z}")
        self.parts += other.parts
        self.area_q += other.area_q
        self.loops += other.loops
        self.holes += other.holes
        self.invalid_loops += other.invalid_loops

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready entry of `platform_info.json` "layer_stats"."""
        return {
            "z": self.z,
            "parts": self.parts,
            "total_area_mm2": _area(self.area_q),
            "loops": self.loops,
            "holes": self.holes,
            "invalid_loops": self.invalid_loops,
        }


@dataclass
class BuildStats:
    """Per-part and per-layer statistics of a build, fed one (file, height) at a time."""

    parts: dict[PartKey, PartStats] = field(default_factory=dict)
    layers: dict[float, LayerStats] = field(default_factory=dict)

    def add_layer(
        self,
        folder: str,
        file: str,
        z: float,
        thickness: float,
        analysis: LoopAnalysis,
        model_ids: npt.ArrayLike,
        model_names: Mapping[int, str],
    ) -> None:
        """Account the analysed loops of one part file at height `z`.

        `model_ids[i]` is the model owning loop i of `analysis`; `thickness` is the layer
        thickness the volume estimate multiplies by (mm). A part is present on the layer
        when at least one of its loops took part in nesting.
        """
        owners = np.asarray(model_ids, dtype=np.int64).reshape(-1)
        if len(owners) != len(analysis):
            raise ValueError(f"{len(owners)} model ids for {len(analysis)} loops")
        zk = mm(z)
        layer = self.layers.get(zk)
        if layer is None:
            layer = self.layers[zk] = LayerStats(zk)
        counted_holes = analysis.counted & analysis.is_hole
        layer.loops += len(analysis)
        layer.holes += int(counted_holes.sum())
        layer.invalid_loops += int((~analysis.valid).sum())

        present = np.flatnonzero(analysis.in_nesting)
        if not len(present):
            return
        owners = owners[present]
        signed = analysis.signed_by_nesting[present]
        hole = counted_holes[present]
        b = analysis.bounds[present]
        if owners.min() == owners.max():
            # One model in the file's layer (common): no grouping needed.
            ids = owners[:1]
            area, holes = signed.sum(keepdims=True), hole.sum(keepdims=True)
            lo, hi = b[:, :2].min(axis=0, keepdims=True), b[:, 2:].max(axis=0, keepdims=True)
        else:
            ids, group = np.unique(owners, return_inverse=True)
            area = np.bincount(group, weights=signed, minlength=len(ids))
            holes = np.bincount(group, weights=hole, minlength=len(ids))
            lo = np.full((len(ids), 2), np.inf)
            hi = np.full((len(ids), 2), -np.inf)
            np.minimum.at(lo, group, b[:, :2])
            np.maximum.at(hi, group, b[:, 2:])

        for j, model_id in enumerate(ids.tolist()):
            key = PartKey(folder, file, model_id)
            part = self.parts.get(key)
            if part is None:
                part = self.parts[key] = PartStats(folder, file, model_id, model_names[model_id])
            area_j = float(area[j])
            layer.area_q += _quantize(area_j, AREA_QUANTUM_MM2)
            part.add_layer(
                zk,
                thickness,
                area_j,
                int(holes[j]),
                (float(lo[j, 0]), float(lo[j, 1]), float(hi[j, 0]), float(hi[j, 1])),
            )
        layer.parts += len(ids)

    def merge(self, other: BuildStats) -> None:
        """Fold in the statistics of other files or height ranges (disjoint from ours)."""
        for key, part in other.parts.items():
            mine = self.parts.get(key)
            if mine is None:
                self.parts[key] = PartStats(part.folder, part.file, part.model_id, part.model_name)
                mine = self.parts[key]
            mine.merge(part)
        for zk, layer in other.layers.items():
            mine_layer = self.layers.get(zk)
            if mine_layer is None:
                mine_layer = self.layers[zk] = LayerStats(zk)
            mine_layer.merge(layer)

    def to_dict(self) -> dict[str, list[dict[str, Any]]]:
        """`{"parts": [...], "layer_stats": [...]}`, parts by key, layers by height."""
        return {
            "parts": [self.parts[k].to_dict() for k in sorted(self.parts)],
            "layer_stats": [self.layers[z].to_dict() for z in sorted(self.layers)],
        }


def _area(quanta: float) -> float:
    return round(quanta * AREA_QUANTUM_MM2, AREA_DECIMALS)
