"""The canonical JSON description of a CLF file (`clf-analysis inspect --json`).

Other tools of the stack diff this structure, so it is fixed:
{"name", "version": "major.minor", "nlayers", "comment", "box": [6],
 "models": [{"id", "name", "thickness", "box": [6]}] (sorted by id),
 "layers": [{"z", "shapes": [{"model", "kind", "rings": [[[x, y], ...], ...]}]}]}.

Floats: every number is a float32 value of the file, written as the shortest decimal that
reads back as the same float32 (numpy's float32 `str`), e.g. 0.05 rather than the float64
expansion 0.05000000074505806. The returned dict holds those as Python floats, whose own
repr (json, orjson) prints the same digits.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from clf_analysis.clf.reader import CLFFile
from clf_analysis.clf.types import Box, Layer, LoopArray, Shape


def f32(value: float) -> float:
    """The Python float whose repr is the shortest decimal naming float32(value)."""
    return float(str(np.float32(value)))


def _box(box: Box) -> list[float]:
    return [f32(v) for v in box.as_list()]


def _ring(loop: LoopArray) -> list[list[float]]:
    # Iterating a float32 array yields np.float32 scalars, whose str is float32-shortest.
    flat = [float(str(v)) for v in np.asarray(loop, dtype=np.float32).ravel()]
    return [[x, y] for x, y in zip(flat[::2], flat[1::2], strict=True)]


def describe_shape(shape: Shape) -> dict[str, Any]:
    return {
        "model": shape.model_id,
        "kind": shape.kind,
        "rings": [_ring(loop) for loop in shape.loops],
    }


def describe_layer(layer: Layer) -> dict[str, Any]:
    return {"z": f32(layer.z), "shapes": [describe_shape(s) for s in layer.shapes]}


def describe(clf: CLFFile, layers: Iterable[Layer] | None = None) -> dict[str, Any]:
    """The canonical dict of `clf`: all its layers in z order, or just `layers` if given.

    `nlayers` is always the size of the file's layer index, whatever `layers` holds.
    """
    major, minor = clf.version
    return {
        "name": clf.name,
        "version": f"{major}.{minor}",
        "nlayers": len(clf),
        "comment": clf.comment,
        "box": _box(clf.box),
        "models": [
            {"id": m.id, "name": m.name, "thickness": f32(m.thickness), "box": _box(m.box)}
            for m in clf.models.values()
        ],
        "layers": [describe_layer(layer) for layer in (clf if layers is None else layers)],
    }
