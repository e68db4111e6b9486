"""Reading CLF files (docs/FORMAT.md): lazy open, layers by index or height, z-order iteration.

Opening parses the header and the seek table only; each layer is decoded when asked for,
its point buffer in one `np.frombuffer` call, its loops as views of that buffer. Paths are
memory-mapped, so a layer costs only the pages it touches.

Two decoders, one answer: a layer laid out exactly as the writer emits it is decoded by
the compiled walker (`_layerwalk.c`, built at install where a C compiler exists); every
other layer, and every layer the walker declines for any reason, by `_read_layer` here,
which alone raises errors and reports warnings.

Index decision: the seek table (header child 5) is the index. A header without child 5,
or `open_clf(..., scan=True)`, builds the index by walking the top-level sections by
their lengths instead (layers indexed, seek tables ignored, end marker required); a
child 5 whose offset is wrong is an error, not a reason to fall back, because it means
the file is damaged.

Every malformed byte string ends in `CLFFormatError`; lengths are checked against the
bytes present before anything is sliced, so no length field can make the reader
allocate more than the input holds, and every loop advances by at least one byte.
"""

from __future__ import annotations

import contextlib
import math
import mmap
import os
import re
import struct
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

from clf_analysis.clf.errors import CLFFormatError
from clf_analysis.clf.lookup import layer_indices, z_tolerance
from clf_analysis.clf.types import (
    Box,
    ClusterType,
    Layer,
    LoopArray,
    Model,
    PolygonFormat,
    PolygonType,
    Shape,
    ShapeKind,
)

_F32 = struct.Struct("<f")
_BOX = struct.Struct("<6f")
_WEB_KINDS: tuple[ShapeKind, ...] = ("closed", "open", "dashed")
_FORMATS = tuple(PolygonFormat)
_CLOSED = PolygonFormat.CLOSED
# Polygon sections as the writer emits them: `2 9|10`, `0 1 type`, `1 1 format`, `3 1|2 count`
# with type and format 0-2 and no compression child.
_POLYGON_RE = (
    rb"\x02(?:\x09\x00\x01[\x00-\x02]\x01\x01[\x00-\x02]\x03\x01[\x00-\x1f]"
    rb"|\x0a\x00\x01[\x00-\x02]\x01\x01[\x00-\x02]\x03\x02[\x20-\x3f].)"
)
# A cluster body in the writer's shortest form: model id (1 or 2 bytes), type 0-2, then
# one or more polygons as above.
_MINIMAL_CLUSTER = re.compile(
    rb"\x00(?:\x01[\x00-\x1f]|\x02[\x20-\x3f].)\x01\x01[\x00-\x02](?:" + _POLYGON_RE + rb")+",
    re.DOTALL,
)
# A seek entry as the writer emits it: `0 len`, z (`0 4` + float), offset (`1 w` + an
# lf_int of w = 1-4 bytes in the form its first byte announces); len is always 8 + w.
_SEEK_TABLE = re.compile(
    rb"(?:\x00(?:\x09\x00\x04....\x01\x01[\x00-\x1f]|\x0a\x00\x04....\x01\x02[\x20-\x3f]."
    rb"|\x0b\x00\x04....\x01\x03[\x40-\x5f]..|\x0c\x00\x04....\x01\x04[\x60-\x7f]...))*",
    re.DOTALL,
)
_SEEK_FIELDS = re.compile(
    rb"\x00[\x09-\x0c]\x00\x04(....)\x01[\x01-\x04]"
    rb"([\x00-\x1f]|[\x20-\x3f].|[\x40-\x5f]..|[\x60-\x7f]...)",
    re.DOTALL,
)
_POLYGON_CHILDREN = ("polygon type", "polygon format", "polygon compression", "polygon point count")
_EMPTY_POINTS: LoopArray = np.empty((0, 2), dtype=np.float32)
_EMPTY_POINTS.flags.writeable = False

Source = str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO


def _shape(
    model_id: int, kind: ShapeKind, loops: tuple[LoopArray, ...], line_format: PolygonFormat
) -> Shape:
    """A Shape without the frozen-dataclass __init__ (per-field object.__setattr__ plus
    __post_init__), the costly part of making one, and every layer makes many (the
    measured figures are in bench/parse.py).

    The instance is handed a ready `__dict__`. The fields are exactly Shape's (a test
    checks), the values already consistent as __post_init__ would make them, so
    equality, repr and immutability are unchanged.
    """
    shape = _new_object(Shape)
    _set_attribute(
        shape,
        "__dict__",
        {"model_id": model_id, "kind": kind, "loops": loops, "line_format": line_format},
    )
    return shape


_new_object = object.__new__
_set_attribute = object.__setattr__  # bypasses the frozen dataclass's __setattr__


def _points(data: bytes | mmap.mmap, offset: int, count: int) -> LoopArray:
    """A layer's `count` points at `offset` as an (n, 2) float32 view of the file's bytes."""
    if not count:
        return _EMPTY_POINTS
    return np.frombuffer(data, dtype="<f4", count=2 * count, offset=offset).reshape(-1, 2)


# What a layer decoder returns: z, declared point count, points used, shapes in file order.
_DecodedLayer = tuple[float, int, int, list[Shape]]
_Walker = Callable[[bytes | mmap.mmap, int, dict[int, Model]], _DecodedLayer | None]


def _load_walker() -> _Walker | None:
    """The compiled decoder of writer-layout layers, configured; None where the package
    was installed without a C compiler (every layer then takes the general path)."""
    try:
        from clf_analysis.clf import _layerwalk
    except ImportError:
        return None
    _layerwalk.configure(Shape, _points, _WEB_KINDS, "support", "model", _FORMATS)
    return _layerwalk.read_layer


_walk_layer = _load_walker()
# Whether layers in the writer's layout are decoded by the compiled walker (the service
# logs a warning at worker start when they are not).
COMPILED_WALKER = _walk_layer is not None


MAX_WARNINGS = 100


class _Buffer:
    """The bytes of one file plus the helpers that read primitives from them safely."""

    __slots__ = ("data", "size", "source")

    def __init__(self, data: bytes | mmap.mmap, source: str) -> None:
        self.data = data
        self.size = len(data)
        self.source = source

    def error(self, offset: int, expected: str) -> CLFFormatError:
        return CLFFormatError(self.source, offset, expected)

    def lfint(self, pos: int, end: int, what: str) -> tuple[int, int]:
        """Decode one lf_int at `pos` that must end by `end`; returns (value, next pos)."""
        if pos >= end:
            raise self.error(pos, f"expected {what} (lf_int), found the end of its section")
        b0 = self.data[pos]
        n = b0 >> 5
        if n == 0:
            return b0, pos + 1
        stop = pos + 1 + n
        if stop > end:
            raise self.error(
                pos, f"expected {what}: an lf_int of {n + 1} bytes, only {end - pos} remain"
            )
        return ((b0 & 0x1F) << (8 * n)) | int.from_bytes(self.data[pos + 1 : stop], "big"), stop

    def head(self, pos: int, end: int) -> tuple[int, int, int] | None:
        """`section` for the usual head, a one-byte id and a length of any width, when it
        and its body lie within `end`; None for anything else. Never raises."""
        data = self.data
        if pos + 1 < end and data[pos] < 32:
            b0 = data[pos + 1]
            n = b0 >> 5
            body = pos + 2 + n
            if body <= end:
                rest = int.from_bytes(data[pos + 2 : body], "big") if n else 0
                length = ((b0 & 0x1F) << (8 * n)) | rest
                if body + length <= end:
                    return data[pos], body, body + length
        return None

    def section(self, pos: int, end: int, what: str) -> tuple[int, int, int]:
        """Read a section head at `pos` inside a parent ending at `end`: (id, body, body end)."""
        # The usual head first: the general code below formats two message strings per
        # call, which at ~4 sections per seek entry was most of this method's time.
        found = self.head(pos, end)
        if found is not None:
            return found
        sid, p = self.lfint(pos, end, f"{what} id")
        length, body = self.lfint(p, end, f"length of {what} section {sid}")
        body_end = body + length
        if body_end > end:
            raise self.error(
                p,
                f"{what} section {sid} of length {length} to end within its parent "
                f"(byte {end}), but it runs to byte {body_end}",
            )
        return sid, body, body_end

    def lfint_body(self, body: int, end: int, what: str) -> int:
        value, p = self.lfint(body, end, what)
        if p != end:
            raise self.error(
                p, f"{what}: one lf_int filling its section, found {end - p} more bytes"
            )
        return value

    def float_body(self, body: int, end: int, what: str) -> float:
        if end - body != 4:
            raise self.error(body, f"{what}: a 4-byte float, section has {end - body} bytes")
        (value,) = _F32.unpack_from(self.data, body)
        if not math.isfinite(value):
            raise self.error(body, f"{what}: a finite float, found {value}")
        return float(value)

    def box_body(self, body: int, end: int, what: str) -> Box:
        if end - body != 24:
            raise self.error(body, f"{what}: 6 floats (24 bytes), section has {end - body} bytes")
        values = _BOX.unpack_from(self.data, body)
        for i, v in enumerate(values):
            if not math.isfinite(v):
                raise self.error(body + 4 * i, f"{what}: finite floats, found {v}")
        return Box(*(float(v) for v in values))


def _decode_text(raw: bytes, utf16: bool, what: str, offset: int, warn: list[str]) -> str:
    """Names and comments are informational: bad encodings become U+FFFD plus a warning."""
    if utf16:
        codec = "utf-16-le"
        if raw[:2] == b"\xff\xfe":
            raw = raw[2:]
        elif raw[:2] == b"\xfe\xff":
            raw, codec = raw[2:], "utf-16-be"
    else:
        codec = "utf-8"
    try:
        return raw.decode(codec)
    except UnicodeDecodeError:
        warn.append(f"byte {offset}: {what} is not valid {codec}; undecodable bytes replaced")
        return raw.decode(codec, errors="replace")


class CLFFile:
    """An open CLF file: header values, a z-ordered layer index, layers decoded on demand.

    Layers come back in z order (stable for equal heights). `thickness` is the smallest
    model thickness, 0.0 when the file declares no models (then `find` only returns
    layers at the exact height, within float32 tolerance).
    """

    source_name: str
    name: str
    version: tuple[int, int]
    declared_layer_count: int | None
    box: Box
    models: dict[int, Model]
    comment: str | None
    thickness: float
    zs: npt.NDArray[np.float32]

    def __init__(self, buf: _Buffer, *, scan: bool = False, closer: mmap.mmap | None = None):
        self._buf = buf
        self._closer = closer
        self._warnings: list[str] = []
        self._warned: set[str] = set()
        self._suppressed = 0
        self._seek_offset_at = 0
        self.source_name = buf.source
        header_end, seek_offset = self._parse_header()
        if seek_offset is None or scan:
            if seek_offset is None:
                self._warn("header has no seek-table offset (id 5); layers indexed by scanning")
            entries = self._scan(header_end)
        else:
            entries = self._parse_seek_table(seek_offset, header_end)
        if self.declared_layer_count is not None and self.declared_layer_count != len(entries):
            self._warn(
                f"header declares {self.declared_layer_count} layers, "
                f"the index holds {len(entries)}"
            )
        zs = np.array([z for z, _ in entries], dtype=np.float32)
        order = np.argsort(zs, kind="stable")
        self.zs = zs[order]
        self.zs.flags.writeable = False
        self._zs64 = self.zs.astype(np.float64)
        self._offsets = [entries[i][1] for i in order.tolist()]
        self.thickness = min((m.thickness for m in self.models.values()), default=0.0)

    # -- header and index -------------------------------------------------------------

    def _warn(self, message: str) -> None:
        if message in self._warned:
            return
        if len(self._warnings) >= MAX_WARNINGS:
            # A file of nothing but unknown sections must not grow an unbounded list.
            self._suppressed += 1
            return
        self._warned.add(message)
        self._warnings.append(message)

    @property
    def warnings(self) -> list[str]:
        """Things the reader skipped or tolerated (unknown sections, count mismatches…).

        Distinct messages, at most MAX_WARNINGS of them plus a count of the rest.
        """
        more = [f"... and {self._suppressed} more warnings"] if self._suppressed else []
        return self._warnings + more

    def _parse_header(self) -> tuple[int, int | None]:
        buf = self._buf
        sid, body, end = buf.section(0, buf.size, "file header")
        if sid != 0:
            raise buf.error(0, f"a header section (id 0) at the start of the file, found id {sid}")
        name: str | None = None
        version: tuple[int, int] | None = None
        box: Box | None = None
        seek_offset: int | None = None
        text_warnings: list[str] = []
        self.declared_layer_count = None
        self.comment = None
        models: dict[int, Model] = {}
        pos = body
        while pos < end:
            cid, cbody, cend = buf.section(pos, end, "header child")
            if cid == 0:
                raw = bytes(buf.data[cbody:cend])
                if raw.endswith(b"\x00"):
                    raw = raw[:-1]
                else:
                    self._warn(f"byte {cbody}: file name lacks its NUL terminator")
                name = _decode_text(raw, False, "file name", cbody, text_warnings)
            elif cid == 1:
                major, p = buf.lfint(cbody, cend, "major version")
                minor = buf.lfint_body(p, cend, "minor version")
                version = (major, minor)
            elif cid == 2:
                self.declared_layer_count = buf.lfint_body(cbody, cend, "layer count")
            elif cid == 3:
                box = buf.box_body(cbody, cend, "file bounding box")
            elif cid == 4:
                model = self._parse_model(cbody, cend, text_warnings)
                if model.id in models:
                    raise buf.error(cbody, f"unique model ids, model {model.id} is declared twice")
                models[model.id] = model
            elif cid == 5:
                seek_offset = buf.lfint_body(cbody, cend, "seek-table offset")
                self._seek_offset_at = cbody
            elif cid == 6:
                raw = bytes(buf.data[cbody:cend])
                self.comment = _decode_text(raw, True, "comment", cbody, text_warnings)
            else:
                self._warn(f"byte {pos}: unknown header section {cid} skipped")
            pos = cend
        for w in text_warnings:
            self._warn(w)
        if box is None:
            raise buf.error(body, "a file bounding box (header child 3), none found")
        if name is None:
            self._warn("header has no file name (id 0)")
        if version is None:
            self._warn("header has no version (id 1)")
        self.name = name or ""
        self.version = version or (0, 0)
        self.box = box
        self.models = dict(sorted(models.items()))
        return end, seek_offset

    def _parse_model(self, body: int, end: int, text_warnings: list[str]) -> Model:
        buf = self._buf
        mid: int | None = None
        name = ""
        box: Box | None = None
        thickness: float | None = None
        pos = body
        while pos < end:
            cid, cbody, cend = buf.section(pos, end, "model info child")
            if cid == 0:
                mid = buf.lfint_body(cbody, cend, "model id")
            elif cid == 1:
                raw = bytes(buf.data[cbody:cend])
                name = _decode_text(raw, True, "model name", cbody, text_warnings)
            elif cid == 2:
                box = buf.box_body(cbody, cend, "model bounding box")
            elif cid == 3:
                thickness = buf.float_body(cbody, cend, "model layer thickness")
            else:
                self._warn(f"byte {pos}: unknown model info section {cid} skipped")
            pos = cend
        if mid is None:
            raise buf.error(body, "a model id (model info child 0), none found")
        if box is None:
            raise buf.error(body, f"a bounding box for model {mid} (child 2), none found")
        if thickness is None:
            raise buf.error(body, f"a layer thickness for model {mid} (child 3), none found")
        return Model(id=mid, name=name, box=box, thickness=thickness)

    def _check_layer_offset(self, offset: int, header_end: int, entry: int) -> None:
        buf = self._buf
        if not header_end <= offset < buf.size:
            raise buf.error(
                entry,
                f"a layer offset between the header end ({header_end}) and the file end "
                f"({buf.size}), found {offset}",
            )
        sid, _ = buf.lfint(offset, buf.size, "layer id")
        if sid != 2:
            raise buf.error(
                offset, f"a layer section (id 2) as the seek entry says, found id {sid}"
            )
        buf.section(offset, buf.size, "layer")

    def _parse_seek_table(self, offset: int, header_end: int) -> list[tuple[float, int]]:
        buf = self._buf
        if not header_end <= offset < buf.size:
            raise buf.error(
                self._seek_offset_at,
                f"a seek-table offset after the header (byte {header_end}) and inside the "
                f"file ({buf.size} bytes), found {offset}",
            )
        sid, body, end = buf.section(offset, buf.size, "seek table")
        if sid != 1:
            raise buf.error(offset, f"a seek table (id 1) as header child 5 says, found id {sid}")
        # Layers may follow the seek table, but something must: at least the end marker.
        buf.lfint(end, buf.size, "the end-of-file marker (3) or a section after the seek table")
        entries = self._read_writer_seek_entries(body, end, header_end)
        if entries is not None:
            return entries
        entries = []
        pos = body
        while pos < end:
            eid, ebody, eend = buf.section(pos, end, "seek table entry")
            if eid != 0:
                self._warn(f"byte {pos}: unknown seek table section {eid} skipped")
                pos = eend
                continue
            z: float | None = None
            layer_offset: int | None = None
            p = ebody
            while p < eend:
                cid, cbody, cend = buf.section(p, eend, "seek entry child")
                if cid == 0:
                    z = buf.float_body(cbody, cend, "seek entry layer z")
                elif cid == 1:
                    layer_offset = buf.lfint_body(cbody, cend, "seek entry layer offset")
                else:
                    self._warn(f"byte {p}: unknown seek entry section {cid} skipped")
                p = cend
            if z is None or layer_offset is None:
                raise buf.error(pos, "a seek entry with a layer z (0) and a layer offset (1)")
            self._check_layer_offset(layer_offset, header_end, pos)
            entries.append((z, layer_offset))
            pos = eend
        return entries

    def _read_writer_seek_entries(
        self, body: int, end: int, header_end: int
    ) -> list[tuple[float, int]] | None:
        """The seek entries of a table written as the writer does, or None for any other
        table or any entry that `_parse_seek_table` would reject or warn about.

        One regex match validates the whole table and one `findall` extracts the fields,
        instead of a Python loop per entry (figures in bench/parse.py). Nothing here
        raises or warns; None sends the table through the general code, which does.
        """
        buf = self._buf
        data = buf.data
        if not _SEEK_TABLE.fullmatch(data, body, end):
            return None
        # The table matched entry by entry, so this laxer pattern, which needs no lengths
        # to agree, finds exactly those entries.
        fields = _SEEK_FIELDS.findall(data, body, end)
        zs = np.frombuffer(b"".join([z for z, _ in fields]), dtype="<f4")
        if not np.isfinite(zs).all():
            return None
        size = buf.size
        head = buf.head
        entries: list[tuple[float, int]] = []
        for z, (_, raw) in zip(zs.tolist(), fields, strict=True):
            # An lf_int of w bytes keeps 8w - 3 value bits below its 3-bit width prefix.
            offset = int.from_bytes(raw, "big") & ((1 << (8 * len(raw) - 3)) - 1)
            # What _check_layer_offset checks, with a one-byte id 2.
            if not header_end <= offset < size or data[offset] != 2 or not head(offset, size):
                return None
            entries.append((z, offset))
        return entries

    def _scan(self, header_end: int) -> list[tuple[float, int]]:
        buf = self._buf
        entries: list[tuple[float, int]] = []
        pos = header_end
        while True:
            if pos >= buf.size:
                raise buf.error(pos, "the end-of-file marker (3), the file ends before it")
            sid, p = buf.lfint(pos, buf.size, "top-level section id")
            if sid == 3:
                if p != buf.size:
                    self._warn(f"byte {p}: {buf.size - p} bytes after the end-of-file marker")
                return entries
            sid, body, end = buf.section(pos, buf.size, "top-level")
            if sid == 2:
                entries.append((self._layer_z(body, end), pos))
            elif sid != 1:
                self._warn(f"byte {pos}: unknown top-level section {sid} skipped")
            pos = end

    def _layer_z(self, body: int, end: int) -> float:
        buf = self._buf
        pos = body
        while pos < end:
            cid, cbody, cend = buf.section(pos, end, "layer child")
            if cid == 0:
                return buf.float_body(cbody, cend, "layer z")
            pos = cend
        raise buf.error(body, "a layer z (layer child 0), none found")

    # -- layers -----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._offsets)

    def layer(self, i: int) -> Layer:
        """The i-th layer in z order (negative indices count from the top)."""
        return self._parse_layer(self._offsets[i], float(self._zs64[i]))

    def __iter__(self) -> Iterator[Layer]:
        for offset, z in zip(self._offsets, self._zs64.tolist(), strict=True):
            yield self._parse_layer(offset, z)

    def find(self, z: float) -> Layer:
        """The layer at height z (docs/FORMAT.md#finding-the-layer-at-a-height); an empty
        Layer where there is none.

        Outside the file box's z range (inclusive) or farther than `thickness` from every
        layer: empty. Otherwise the nearest layer; equal distances (within float32
        tolerance, see `z_tolerance`) choose the lower layer.
        """
        index = self.index_at(z)
        if index is None:
            with np.errstate(over="ignore"):
                return Layer(z=float(np.float32(z)), shapes=())
        return self._parse_layer(self._offsets[index], float(self._zs64[index]))

    def index_at(self, z: float) -> int | None:
        """Index (in z order) of the layer `find(z)` returns, None where it is empty."""
        found = layer_indices(
            self._zs64,
            [z],
            min_z=self.box.min_z,
            max_z=self.box.max_z,
            thickness=self.thickness,
        )
        return None if found[0] < 0 else int(found[0])

    def _parse_layer(self, offset: int, indexed_z: float) -> Layer:
        read = self._read_writer_layer(offset)
        if read is None:
            read = self._read_layer(offset)
        z, count, used, shapes = read
        if used != count:
            where = f"(layer at byte {offset})"
            self._warn(f"byte {offset}: polygons use {used} of the layer's {count} points {where}")
        if z != indexed_z and abs(z - indexed_z) > float(z_tolerance(z)):
            # The index orders by its own z; a layer that disagrees is served as it says.
            self._warn(
                f"byte {offset}: layer z {z:.4f} differs from its index entry {indexed_z:.4f}"
            )
        return Layer(z=z, shapes=tuple(shapes))

    def _read_writer_layer(self, offset: int) -> _DecodedLayer | None:
        """Decode a layer laid out exactly as the writer emits it, in one pass of compiled
        code (`_layerwalk.c`); None if it is laid out in any other way, anything about it
        is wrong, or the extension is not built.

        Nothing here raises or warns: None sends the layer through `_read_layer`, which
        produces every error and warning, so both paths agree on everything this one
        accepts (tests compare them on mutated files).
        """
        if _walk_layer is None:
            return None
        return _walk_layer(self._buf.data, offset, self.models)

    def _read_layer(self, offset: int) -> _DecodedLayer:
        """Decode a layer in any layout the format allows, or raise the error that it breaks."""
        buf = self._buf
        data = buf.data
        section = buf.section
        _, body, end = section(offset, buf.size, "layer")
        where = f"(layer at byte {offset})"
        z: float | None = None
        count: int | None = None
        points_at: int | None = None
        clusters: list[tuple[int, int, int]] = []  # (offset, body, end) of each cluster
        pos = body
        while pos < end:
            # Clusters usually have one- or two-byte lengths: decode those inline.
            if pos + 2 < end and data[pos] < 32 and data[pos + 1] < 64:
                cid = data[pos]
                if data[pos + 1] < 32:
                    cbody = pos + 2
                    cend = cbody + data[pos + 1]
                else:
                    cbody = pos + 3
                    cend = cbody + (((data[pos + 1] & 0x1F) << 8) | data[pos + 2])
                if cend > end:
                    section(pos, end, "layer child")  # raises the detailed error
            else:
                cid, cbody, cend = section(pos, end, "layer child")
            if cid == 2:
                clusters.append((pos, cbody, cend))
            elif cid == 3:
                if count is None:
                    raise buf.error(
                        pos, f"the point count (layer child 1) before the points {where}"
                    )
                if points_at is not None:
                    raise buf.error(pos, f"one point buffer per layer, found a second {where}")
                if cend - cbody != 8 * count:
                    raise buf.error(
                        cbody,
                        f"a point buffer of 8 x {count} = {8 * count} bytes, "
                        f"found {cend - cbody} {where}",
                    )
                points_at = cbody
            elif cid == 0:
                z = buf.float_body(cbody, cend, f"layer z {where}")
            elif cid == 1:
                count = buf.lfint_body(cbody, cend, f"layer point count {where}")
            else:
                self._warn(f"byte {pos}: unknown layer section {cid} skipped {where}")
            pos = cend
        if z is None:
            raise buf.error(body, f"a layer z (layer child 0) {where}")
        if points_at is None:
            if count:
                raise buf.error(body, f"a point buffer for the {count} points declared {where}")
            count, points_at = 0, body  # no buffer and no points to view
        assert count is not None
        points = _points(data, points_at, count)
        finite = np.isfinite(points.ravel())
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            raise buf.error(points_at + 4 * bad, f"finite coordinates, found NaN or inf {where}")
        shapes: list[Shape] = []
        append = shapes.append
        used = 0
        models = self.models
        for cluster in clusters:
            # Fast path: a whole cluster in the writer's shortest form, recognised by one
            # regex call over exactly its body (so its length is consistent by
            # construction); its polygons are then read at fixed offsets. Anything else,
            # and every error, goes through `_parse_cluster`.
            _, p, stop_at = cluster
            if not _MINIMAL_CLUSTER.fullmatch(data, p, stop_at):
                used = self._parse_cluster(*cluster, points, count, used, shapes, where)
                continue
            # Matched: model id at +2 (one byte) or +2..+3 (two), type two bytes later.
            if data[p + 1] == 1:
                model_id, ctype, p = data[p + 2], data[p + 5], p + 6
            else:
                model_id = ((data[p + 2] & 0x1F) << 8) | data[p + 3]
                ctype, p = data[p + 6], p + 7
            if model_id not in models or (ctype == 0 and data[p + 4] != 0):
                used = self._parse_cluster(*cluster, points, count, used, shapes, where)
                continue
            loops: list[LoopArray] = []
            while p < stop_at:
                if data[p + 1] == 9:
                    stop, nxt = used + data[p + 10], p + 11
                else:
                    stop = used + (((data[p + 10] & 0x1F) << 8) | data[p + 11])
                    nxt = p + 12
                if stop > count:
                    raise self._overrun(p, used, stop, count, where)
                loop = points[used:stop]
                if ctype:
                    fmt = data[p + 7]
                    kind = _WEB_KINDS[fmt] if ctype == 2 else "support"
                    append(_shape(model_id, kind, (loop,), _FORMATS[fmt]))
                else:
                    loops.append(loop)
                used, p = stop, nxt
            if not ctype:
                append(_shape(model_id, "model", tuple(loops), _CLOSED))
        return z, count, used, shapes

    def _parse_cluster(
        self,
        offset: int,
        body: int,
        end: int,
        points: LoopArray,
        count: int,
        used: int,
        shapes: list[Shape],
        where: str,
    ) -> int:
        """Decode one cluster into `shapes`; its loops start at point `used`. Returns the new
        number of points used."""
        # The general path (any lf_int width, optional and unknown children) and the one
        # that produces every cluster error; the shortest form is handled in _parse_layer.
        buf = self._buf
        data = buf.data
        section = buf.section
        lfint_body = buf.lfint_body
        model_id: int | None = None
        ctype: int | None = None
        loops: list[LoopArray] = []
        formats: list[int] = []
        pos = body
        while pos < end:
            if pos + 1 < end and data[pos] < 32 and data[pos + 1] < 32:
                cid, cbody = data[pos], pos + 2
                cend = cbody + data[pos + 1]
                if cend > end:
                    section(pos, end, "cluster child")  # raises the detailed error
            else:
                cid, cbody, cend = section(pos, end, "cluster child")
            if cid == 2:
                if model_id is None or ctype is None:
                    raise buf.error(pos, f"the cluster's model id (0) and type (1) first {where}")
                ptype = fmt = npoints = -1
                p = cbody
                while p < cend:
                    if p + 1 < cend and data[p] < 32 and data[p + 1] < 32:
                        pid, pbody = data[p], p + 2
                        pend = pbody + data[p + 1]
                        if pend > cend:
                            section(p, cend, "polygon child")
                    else:
                        pid, pbody, pend = section(p, cend, "polygon child")
                    if pid > 3:
                        self._warn(f"byte {p}: unknown polygon section {pid} skipped {where}")
                        p = pend
                        continue
                    value = lfint_body(pbody, pend, _POLYGON_CHILDREN[pid])
                    if pid == 3:
                        npoints = value
                    elif pid == 0:
                        if value > 2:
                            raise buf.error(pbody, f"polygon type 0, 1 or 2, found {value} {where}")
                        ptype = value
                    elif pid == 1:
                        if value > 2:
                            raise buf.error(
                                pbody, f"polygon format 0, 1 or 2, found {value} {where}"
                            )
                        fmt = value
                    elif value != 0:
                        raise buf.error(
                            pbody,
                            f"compression 0 (no other value is known), found {value} {where}",
                        )
                    p = pend
                if ptype < 0 or fmt < 0 or npoints < 0:
                    raise buf.error(
                        pos, f"a polygon with type (0), format (1) and point count (3) {where}"
                    )
                if not loops and ctype == ClusterType.MODEL and ptype != PolygonType.OUTLOOP:
                    raise buf.error(
                        pos,
                        f"an OUTLOOP as the first polygon of a MODEL cluster, found "
                        f"{PolygonType(ptype).name} {where}",
                    )
                stop = used + npoints
                if stop > count:
                    raise self._overrun(pos, used, stop, count, where)
                loops.append(points[used:stop])
                formats.append(fmt)
                used = stop
            elif cid == 0:
                if cend - cbody == 1 and data[cbody] < 32:
                    model_id = data[cbody]
                elif cend - cbody == 2 and data[cbody] >> 5 == 1:
                    model_id = ((data[cbody] & 0x1F) << 8) | data[cbody + 1]
                else:
                    model_id = lfint_body(cbody, cend, "cluster model id")
                if model_id not in self.models:
                    raise buf.error(
                        offset,
                        f"a cluster naming a model of the header, model {model_id} is unknown "
                        f"{where}",
                    )
            elif cid == 1:
                if cend - cbody == 1 and data[cbody] < 32:
                    ctype = data[cbody]
                else:
                    ctype = lfint_body(cbody, cend, "cluster type")
                if ctype > 2:
                    raise buf.error(cbody, f"cluster type 0, 1 or 2, found {ctype} {where}")
            else:
                self._warn(f"byte {pos}: unknown cluster section {cid} skipped {where}")
            pos = cend
        if model_id is None or ctype is None:
            raise buf.error(offset, f"a cluster with a model id (0) and a type (1) {where}")
        if ctype == ClusterType.MODEL:
            shapes.append(_shape(model_id, "model", tuple(loops), _CLOSED))
        else:
            for fmt, loop in zip(formats, loops, strict=True):
                kind = _WEB_KINDS[fmt] if ctype == ClusterType.WEB else "support"
                shapes.append(_shape(model_id, kind, (loop,), _FORMATS[fmt]))
        return used

    def _overrun(self, pos: int, used: int, stop: int, count: int, where: str) -> CLFFormatError:
        return self._buf.error(
            pos,
            f"polygons within the layer's {count} points, this one needs points "
            f"{used}..{stop - 1} {where}",
        )

    # -- resources --------------------------------------------------------------------

    def close(self) -> None:
        """Release the memory map of a file opened by path (layers already read stay valid)."""
        closer, self._closer = self._closer, None
        if closer is not None:
            # Loops handed out are views of the map; it is unmapped when the last one goes.
            with contextlib.suppress(BufferError):
                closer.close()

    def __enter__(self) -> CLFFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CLFFile {self.source_name!r}: {len(self)} layers, {len(self.models)} models>"


def open_clf(source: Source, *, name: str | None = None, scan: bool = False) -> CLFFile:
    """Open a CLF file from a path, bytes-like object or binary file; parses header + index.

    `name` is what error messages and `source_name` call the file (default: the path, the
    file object's name, or "<bytes>"). `scan=True` ignores the seek table and indexes the
    layers by walking the whole file. Only `CLFFormatError` comes from malformed bytes;
    an unreadable path raises the usual OSError.
    """
    closer: mmap.mmap | None = None
    data: bytes | mmap.mmap
    if isinstance(source, bytes):
        data, default = source, "<bytes>"
    elif isinstance(source, bytearray | memoryview):
        # A private copy: the caller may mutate the original while layers are still read.
        data, default = bytes(source), "<bytes>"
    elif isinstance(source, str | os.PathLike):
        default = os.fspath(source)
        with open(source, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size == 0:
                data = b""
            else:
                data = closer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    elif hasattr(source, "read"):
        raw = source.read()
        if not isinstance(raw, bytes | bytearray):
            raise TypeError("open_clf needs a binary file object")
        data, default = bytes(raw), str(getattr(source, "name", "<stream>"))
    else:
        raise TypeError(f"cannot open a CLF file from {type(source).__name__}")
    try:
        return CLFFile(_Buffer(data, name or default), scan=scan, closer=closer)
    except BaseException:
        if closer is not None:
            closer.close()
        raise
