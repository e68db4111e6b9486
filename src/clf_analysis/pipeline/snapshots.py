"""What the image stage keeps of a file layer it draws: loops with their nesting roles.

The file pass takes a snapshot of each layer that answers a height some image shows
(clean platforms, holes views, composites); the figures then draw by nesting without
analysing anything again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clf_analysis.clf.types import LoopArray
from clf_analysis.pipeline.pathdata import FileLayer


@dataclass(frozen=True)
class SnapshotShape:
    """A shape as the image stage draws it; per loop its nesting role (MODEL shapes).

    `depths`, `nested`, `invalid` and `areas` are given for every loop of a MODEL shape
    and are empty for line geometry: the nesting depth, whether the loop took part in
    nesting (fewer than 3 vertices or zero area do not), the reason it is invalid (None
    when it is not) and its unsigned area in mm².
    """

    model_id: int
    kind: str  # "model" or a line kind
    closed: bool
    dashed: bool
    loops: tuple[LoopArray, ...]
    holes: tuple[bool, ...]
    depths: tuple[int, ...] = ()
    nested: tuple[bool, ...] = ()
    invalid: tuple[str | None, ...] = ()
    areas: tuple[float, ...] = ()


@dataclass(frozen=True)
class LayerSnapshot:
    """One file layer as drawn: its real height and its shapes in file order."""

    z: float
    shapes: tuple[SnapshotShape, ...]


def layer_snapshot(fl: FileLayer) -> LayerSnapshot:
    """The shapes of one analysed file layer with the nesting role of each MODEL loop."""
    a = fl.analysis
    at = {(r.shape_index, r.path_index): k for k, r in enumerate(fl.model_loops)}
    shapes = []
    for s, shape in enumerate(fl.layer.shapes):
        ks = [at[(s, p)] for p in range(len(shape.loops))] if shape.kind == "model" else []
        shapes.append(
            SnapshotShape(
                model_id=shape.model_id,
                kind=shape.kind,
                closed=shape.is_closed,
                dashed=shape.is_dashed,
                loops=tuple(np.array(loop) for loop in shape.loops),
                holes=tuple(bool(a.is_hole[k]) for k in ks) or (False,) * len(shape.loops),
                depths=tuple(int(a.depth[k]) for k in ks),
                nested=tuple(bool(a.in_nesting[k]) for k in ks),
                invalid=tuple(a.invalid_reason[k] for k in ks),
                areas=tuple(float(a.area[k]) for k in ks),
            )
        )
    return LayerSnapshot(z=float(fl.layer.z), shapes=tuple(shapes))
