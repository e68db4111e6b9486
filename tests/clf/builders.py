"""Builders shared by the CLF tests: the worked example of docs/FORMAT.md and small
generated files."""

from __future__ import annotations

import struct

import numpy as np

from clf_analysis.clf import Box, Layer, Model, PolygonFormat, Shape
from clf_analysis.clf.lfint import encode_lfint


def encode_lfint_width(value: int, following: int) -> bytes:
    """Encode `value` with exactly `following` bytes after the first (non-minimal forms,
    which the writer never produces and readers must still accept)."""
    if not 0 <= following <= 7 or value < 0 or value >> (5 + 8 * following):
        raise ValueError(f"lf_int {value} does not fit {following} following bytes")
    head = (following << 5) | (value >> (8 * following))
    return bytes((head,)) + (value & ((1 << (8 * following)) - 1)).to_bytes(following, "big")


def f32(*values: float) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


# The 188-byte file of docs/FORMAT.md#worked-example (its listing without the WEB cluster).
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
    # Header values are stored as float32: keep them float32-exact so round trips compare.
    top = float(np.float32(n * thickness))
    models = [
        Model(1, "Tube", Box(0, 0, 0, 40, 40, top), float(np.float32(thickness))),
        Model(7, "Net ü", Box(50, 0, 0, 90, 40, top), float(np.float32(thickness * 2))),
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


class Raw:
    """Hand-assembles CLF bytes, including things the writer refuses to produce.

    `width` forces every lf_int to that many following bytes (non-minimal forms).
    """

    def __init__(self, width: int | None = None) -> None:
        self.width = width

    def lf(self, value: int) -> bytes:
        if self.width is None:
            return encode_lfint(value)
        return encode_lfint_width(value, self.width)

    def sec(self, sid: int, body: bytes) -> bytes:
        return self.lf(sid) + self.lf(len(body)) + body

    def lfsec(self, sid: int, value: int) -> bytes:
        return self.sec(sid, self.lf(value))

    def polygon(
        self, ptype: int = 0, fmt: int = 0, n: int = 4, compression: int | None = None
    ) -> bytes:
        body = self.lfsec(0, ptype) + self.lfsec(1, fmt)
        if compression is not None:
            body += self.lfsec(2, compression)
        return self.sec(2, body + self.lfsec(3, n))

    def cluster(self, model: int = 1, ctype: int = 0, polygons: tuple[bytes, ...] = ()) -> bytes:
        return self.sec(2, self.lfsec(0, model) + self.lfsec(1, ctype) + b"".join(polygons))

    def layer(
        self,
        z: float,
        points: np.ndarray,
        clusters: tuple[bytes, ...],
        count: int | None = None,
        extra: bytes = b"",
    ) -> bytes:
        """A layer body; `count` overrides the declared point count."""
        pts = np.asarray(points, dtype="<f4").reshape(-1, 2)
        n = len(pts) if count is None else count
        return (
            self.sec(0, f32(z))
            + self.lfsec(1, n)
            + b"".join(clusters)
            + extra
            + self.sec(3, pts.tobytes())
        )

    def model(self, mid: int = 1, name: str = "Part", thickness: float = 0.05) -> bytes:
        body = (
            self.lfsec(0, mid)
            + self.sec(1, name.encode("utf-16-le"))
            + self.sec(2, f32(0, 0, 0, 10, 10, 1))
            + self.sec(3, f32(thickness))
        )
        return self.sec(4, body)

    def file(
        self,
        layers: list[tuple[float, bytes]],
        *,
        models: tuple[bytes, ...] | None = None,
        header_extra: bytes = b"",
        top_extra: bytes = b"",
        seek: bool = True,
        layer_count: int | None = None,
        box: tuple[float, ...] = (0, 0, 0, 10, 10, 1),
    ) -> bytes:
        """A whole file: header, layers, `top_extra`, seek table (if `seek`), end marker."""
        fixed = (
            self.sec(0, b"Arcam Layer File\x00")
            + self.sec(1, self.lf(1) + self.lf(0))
            + self.lfsec(2, len(layers) if layer_count is None else layer_count)
            + self.sec(3, f32(*box))
            + b"".join(models if models is not None else (self.model(),))
            + header_extra
        )
        blobs = [self.sec(2, body) for _, body in layers]
        tail = sum(map(len, blobs)) + len(top_extra)
        offset = 0
        for _ in range(16):
            header = self.sec(0, fixed + (self.lfsec(5, offset) if seek else b""))
            if len(header) + tail == offset or not seek:
                break
            offset = len(header) + tail
        entries = b""
        pos = len(header)
        for (z, _), blob in zip(layers, blobs, strict=True):
            entries += self.sec(0, self.sec(0, f32(z)) + self.lfsec(1, pos))
            pos += len(blob)
        return header + b"".join(blobs) + top_extra + self.sec(1, entries) + self.lf(3)
