"""Writing CLF files (docs/FORMAT.md#file-layout): header, layers, seek table, end marker."""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from os import PathLike
from typing import BinaryIO

import numpy as np

from clf_analysis.clf.lfint import encode_lfint
from clf_analysis.clf.types import (
    Box,
    ClusterType,
    Layer,
    Model,
    PolygonFormat,
    PolygonType,
    Shape,
)

_F32 = struct.Struct("<f")
_BOX = struct.Struct("<6f")

_WEB_FORMATS: dict[str, PolygonFormat] = {
    "closed": PolygonFormat.CLOSED,
    "open": PolygonFormat.OPEN,
    "dashed": PolygonFormat.DASHED,
}

# The header's seek-table offset changes the header's own length (lf_int width), so the
# writer iterates to a fix-point; offsets only grow, so a handful of rounds is plenty.
_MAX_FIXPOINT_ROUNDS = 16


def _section(section_id: int, body: bytes) -> bytes:
    return encode_lfint(section_id) + encode_lfint(len(body)) + body


def _lfint_section(section_id: int, value: int) -> bytes:
    return _section(section_id, encode_lfint(value))


def _f32(value: float, what: str) -> bytes:
    try:
        packed = _F32.pack(value)
    except (OverflowError, TypeError, struct.error):
        packed = b""
    if not packed or not math.isfinite(_F32.unpack(packed)[0]):
        raise ValueError(f"{what} must be a finite float32 value, got {value!r}")
    return packed


def _box(box: Box, what: str) -> bytes:
    values = box.as_list()
    for v in values:
        _f32(v, what)
    return _BOX.pack(*values)


def _utf16(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-16-le")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} cannot be encoded as UTF-16: {exc}") from None


def _loop_array(loop: object, what: str) -> np.ndarray:
    arr = np.asarray(loop)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{what} must be an (n, 2) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{what} must hold real numbers, got dtype {arr.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):
        f32 = arr.astype("<f4")
    if not np.isfinite(f32).all():
        raise ValueError(f"{what} has NaN or infinite (or float32-overflowing) coordinates")
    return f32


def _polygon(ptype: PolygonType, fmt: PolygonFormat, count: int) -> bytes:
    body = _lfint_section(0, int(ptype)) + _lfint_section(1, int(fmt)) + _lfint_section(3, count)
    return _section(2, body)


def _clusters(shape: Shape, where: str) -> tuple[bytes, list[np.ndarray]]:
    """One cluster for the shape plus its loops as float32 arrays in point-buffer order."""
    loops = [_loop_array(loop, f"{where} loop {i}") for i, loop in enumerate(shape.loops)]
    if shape.kind == "model":
        if not loops:
            raise ValueError(f"{where}: a model shape needs at least its outer loop")
        ctype = ClusterType.MODEL
        polys = [
            _polygon(
                PolygonType.OUTLOOP if i == 0 else PolygonType.INLOOP, PolygonFormat.CLOSED, len(a)
            )
            for i, a in enumerate(loops)
        ]
    else:
        if len(loops) != 1:
            # The reader yields every WEB/SUPPORT polygon as its own shape; accepting several
            # loops here would make write -> read silently change the shape list.
            raise ValueError(f"{where}: a {shape.kind!r} shape has exactly one loop")
        if shape.kind == "support":
            ctype = ClusterType.SUPPORT
            fmt = PolygonFormat(shape.line_format)
            polys = [_polygon(PolygonType.SUPPORT, fmt, len(loops[0]))]
        elif shape.kind in _WEB_FORMATS:
            ctype = ClusterType.WEB
            polys = [_polygon(PolygonType.OUTLOOP, _WEB_FORMATS[shape.kind], len(loops[0]))]
        else:
            raise ValueError(f"{where}: unknown shape kind {shape.kind!r}")
    body = _lfint_section(0, shape.model_id) + _lfint_section(1, int(ctype)) + b"".join(polys)
    return _section(2, body), loops


def _layer(layer: Layer, model_ids: set[int], where: str) -> tuple[bytes, float, list[np.ndarray]]:
    z = _f32(layer.z, f"{where} z")
    clusters: list[bytes] = []
    loops: list[np.ndarray] = []
    for s, shape in enumerate(layer.shapes):
        if shape.model_id not in model_ids:
            raise ValueError(f"{where} shape {s}: model id {shape.model_id} is not declared")
        cluster, shape_loops = _clusters(shape, f"{where} shape {s}")
        clusters.append(cluster)
        loops.extend(shape_loops)
    points = np.concatenate(loops) if loops else np.empty((0, 2), dtype="<f4")
    body = (
        _section(0, z)
        + _lfint_section(1, len(points))
        + b"".join(clusters)
        + _section(3, points.astype("<f4", copy=False).tobytes())
    )
    return _section(2, body), _F32.unpack(z)[0], loops


def _model(model: Model) -> bytes:
    where = f"model {model.id}"
    body = (
        _lfint_section(0, model.id)
        + _section(1, _utf16(model.name, f"{where} name"))
        + _section(2, _box(model.box, f"{where} box"))
        + _section(3, _f32(model.thickness, f"{where} thickness"))
    )
    return _section(4, body)


def _default_box(zs: list[float], loops: list[np.ndarray], thickness: float) -> Box:
    """Bounding box of all points; z spans from one thickness below the lowest layer."""
    if loops and any(len(a) for a in loops):
        pts = np.concatenate(loops)
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        x0, y0, x1, y1 = float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])
    else:
        x0 = y0 = x1 = y1 = 0.0
    if zs:
        # A layer at z covers (z - thickness, z], as in docs/FORMAT.md#worked-example.
        z0 = float(np.float32(min(zs)) - np.float32(thickness))
        z1 = max(zs)
    else:
        z0 = z1 = 0.0
    return Box(x0, y0, z0, x1, y1, z1)


def write_clf(
    dest: str | PathLike[str] | BinaryIO | None,
    *,
    models: Sequence[Model],
    layers: Sequence[Layer],
    name: str = "Arcam Layer File",
    version: tuple[int, int] = (1, 0),
    comment: str | None = None,
    box: Box | None = None,
    layer_count: int | None = None,
) -> bytes:
    """Encode a CLF file and write it to `dest` (a path, a binary file, or None); return the bytes.

    Shortest lf_ints throughout; header children in the order 0, 1, 2, 3, 4..., 6, 5;
    layers in the given order, then the seek table, then the end marker. A model shape
    becomes one MODEL cluster, every other shape one WEB or SUPPORT cluster. Without
    `box`, the file box is computed from the points and layer heights. Invalid input
    (undeclared model ids, non-(n, 2) or non-finite loops, duplicate ids) is a ValueError.
    """
    model_ids: set[int] = set()
    for model in models:
        if not isinstance(model.id, int) or model.id < 0:
            raise ValueError(f"model id must be a non-negative int, got {model.id!r}")
        if model.id in model_ids:
            raise ValueError(f"duplicate model id {model.id}")
        model_ids.add(model.id)
    major, minor = version
    if layer_count is None:
        layer_count = len(layers)

    layer_blobs: list[bytes] = []
    zs: list[float] = []
    all_loops: list[np.ndarray] = []
    for i, layer in enumerate(layers):
        blob, z, loops = _layer(layer, model_ids, f"layer {i}")
        layer_blobs.append(blob)
        zs.append(z)
        if box is None:
            all_loops.extend(loops)
    if box is None:
        thickness = min((m.thickness for m in models), default=0.0)
        box = _default_box(zs, all_loops, thickness)

    fixed = (
        _section(0, name.encode("utf-8") + b"\x00")
        + _section(1, encode_lfint(major) + encode_lfint(minor))
        + _lfint_section(2, layer_count)
        + _section(3, _box(box, "file box"))
        + b"".join(_model(m) for m in models)
        + (_section(6, _utf16(comment, "comment")) if comment is not None else b"")
    )
    layers_len = sum(len(b) for b in layer_blobs)
    seek_offset = 0
    for _ in range(_MAX_FIXPOINT_ROUNDS):
        header = _section(0, fixed + _lfint_section(5, seek_offset))
        if len(header) + layers_len == seek_offset:
            break
        seek_offset = len(header) + layers_len
    else:  # pragma: no cover - offsets grow monotonically, so this cannot happen
        raise RuntimeError("seek-table offset did not converge")

    entries: list[bytes] = []
    pos = len(header)
    for z, blob in zip(zs, layer_blobs, strict=True):
        entries.append(_section(0, _section(0, _F32.pack(z)) + _lfint_section(1, pos)))
        pos += len(blob)
    data = b"".join([header, *layer_blobs, _section(1, b"".join(entries)), encode_lfint(3)])

    if dest is not None:
        if hasattr(dest, "write"):
            dest.write(data)  # type: ignore[union-attr]
        else:
            with open(dest, "wb") as fh:  # type: ignore[arg-type]
                fh.write(data)
    return data
