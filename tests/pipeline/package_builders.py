"""Small hand-made build packages: a few square-section parts in folders of one's choice."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from clf_analysis.clf import Box, Layer, Model, Shape, write_clf


def square(half: float, cx: float = 0.0) -> np.ndarray:
    return np.array(
        [[cx - half, -half], [cx + half, -half], [cx + half, half], [cx - half, half]],
        dtype=np.float32,
    )


def cube_clf(zs: list[float], thickness: float, half: float = 2.0, cx: float = 0.0) -> bytes:
    """One model (id 1), a square of side 2 × half centred on (cx, 0) on every layer."""
    model = Model(1, "Cube", Box(cx - 5, -5, 0, cx + 5, 5, max(zs)), thickness)
    layers = [Layer(z=z, shapes=(Shape(1, "model", (square(half, cx),)),)) for z in zs]
    return write_clf(None, models=[model], layers=layers)


def write_package(base: Path, build_id: str, members: dict[str, bytes]) -> Path:
    """`base/<build_id>/` with a package holding `members` in the given order."""
    folder = base / build_id
    folder.mkdir(parents=True)
    with zipfile.ZipFile(
        folder / f"preprocess build-{build_id}.abp", "w", zipfile.ZIP_DEFLATED
    ) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return folder
