"""Builders shared by the CLF tests: the spec's worked example and small generated files."""

from __future__ import annotations

import struct

import numpy as np

from clf_analysis.clf import Box, Layer, Model, PolygonFormat, Shape


def f32(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


# The 188-byte worked example of spec §7, transcribed from the annotated listing.
WORKED_EXAMPLE = b"".join(
    [
        bytes.fromhex("00 20 68"),
        bytes.fromhex("00 11") + b"Arcam Layer File\x00",
        bytes.fromhex("01 02 01 00"),
        bytes.fromhex("02 01 01"),
        bytes.fromhex("03 18") + f32(0, 0, 0, 10, 10, 0.05),
        bytes.fromhex("04 20 2d"),
        bytes.fromhex("00 01 01"),
        bytes.fromhex("01 08 50 00 61 00 72 00 74 00"),
        bytes.fromhex("02 18") + f32(0, 0, 0, 10, 10, 0.05),
        bytes.fromhex("03 04 cd cc 4c 3d"),
        bytes.fromhex("05 02 20 ad"),
        bytes.fromhex("02 20 3f"),
        bytes.fromhex("00 04 cd cc 4c 3d"),
        bytes.fromhex("01 01 04"),
        bytes.fromhex("02 11"),
        bytes.fromhex("00 01 01 01 01 00"),
        bytes.fromhex("02 09 00 01 00 01 01 00 03 01 04"),
        bytes.fromhex("03 20 20") + f32(0, 0, 10, 0, 10, 10, 0, 10),
        bytes.fromhex("01 0c"),
        bytes.fromhex("00 0a 00 04 cd cc 4c 3d 01 02 20 6b"),
        bytes.fromhex("03"),
    ]
)

SQUARE = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], dtype=np.float32)
PART = Model(id=1, name="Part", box=Box(0, 0, 0, 10, 10, 0.05), thickness=0.05)


def ring(cx: float, cy: float, r: float, n: int) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1).astype(np.float32)


def sample_layers(n: int = 5, thickness: float = 0.05) -> tuple[list[Model], list[Layer]]:
    """A few layers mixing every shape kind, with holes and all line formats."""
    models = [
        Model(1, "Tube", Box(0, 0, 0, 40, 40, n * thickness), thickness),
        Model(7, "Net ü", Box(50, 0, 0, 90, 40, n * thickness), thickness * 2),
    ]
    layers = []
    for i in range(n):
        z = float(np.float32((i + 1) * thickness))
        shapes = (
            Shape(1, "model", (ring(20, 20, 15, 120), ring(20, 20, 5 + i * 0.1, 60))),
            Shape(1, "model", (ring(5, 5, 2, 30),)),
            Shape(7, "closed", (ring(70, 20, 10, 40),), PolygonFormat.CLOSED),
            Shape(7, "open", (ring(70, 20, 8, 7),), PolygonFormat.OPEN),
            Shape(7, "dashed", (ring(70, 20, 6, 8),), PolygonFormat.DASHED),
            Shape(7, "support", (ring(60, 5, 1, 4),), PolygonFormat.DASHED),
        )
        layers.append(Layer(z, shapes))
    return models, layers
