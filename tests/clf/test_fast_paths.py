"""The reader's one-pass decoding of files laid out as the writer emits them (the compiled
layer walker, `_layerwalk.c`, and the seek-table pattern) agrees with its general code:
on writer output, and on seeded random mutations of it, reading with the fast paths gives
the same layers, warnings and errors as reading without them. The walker also keeps no
references, lets exceptions through, and builds complete Shape values."""

from __future__ import annotations

import dataclasses
import gc
import os
import random
import sys
import tracemalloc

import numpy as np
import pytest

from clf_analysis.clf import (
    Box,
    CLFFormatError,
    Layer,
    Model,
    PolygonFormat,
    Shape,
    reader,
    write_clf,
)
from clf_analysis.clf.reader import CLFFile, open_clf

from .builders import ring, sample_layers
from .test_fuzz import mutate

needs_walker = pytest.mark.skipif(
    reader._walk_layer is None, reason="the compiled layer walker is not built"
)


def _writer_files() -> list[bytes]:
    models, layers = sample_layers(3)
    top = float(np.float32(0.2))
    # Model ids of one and two lf_int bytes, counts of one and two bytes, an empty layer,
    # a layer of lines only.
    wide = [Model(m, f"m{m}", Box(0, 0, 0, 90, 90, top), 0.05) for m in (3, 100, 5000)]
    shapes_a = (
        Shape(3, "model", (ring(20, 20, 15, 31), ring(20, 20, 5, 32), ring(20, 20, 2, 5))),
        Shape(5000, "model", (ring(50, 50, 9, 300),)),
        Shape(100, "support", (ring(60, 5, 1, 4),), PolygonFormat.OPEN),
        Shape(100, "dashed", (ring(70, 20, 6, 8),)),
    )
    shapes_b = (
        Shape(100, "closed", (ring(70, 20, 10, 40),)),
        Shape(3, "open", (ring(1, 1, 1, 9),)),
    )
    wide_layers = [
        Layer(float(np.float32(0.05)), shapes_a),
        Layer(float(np.float32(0.10)), ()),
        Layer(float(np.float32(0.15)), shapes_b),
        Layer(float(np.float32(0.20)), shapes_a[2:]),
    ]
    return [
        write_clf(None, models=models, layers=layers),
        write_clf(None, models=wide, layers=wide_layers),
    ]


def _three_byte_count_file() -> bytes:
    # 9000 points need a 3-byte count, which the shortest-form patterns do not cover.
    layers = [
        Layer(float(np.float32(0.05)), (Shape(1, "model", (ring(20, 20, 15, 9000),)),)),
        Layer(float(np.float32(0.10)), (Shape(1, "model", (ring(20, 20, 15, 90),)),)),
    ]
    model = Model(1, "big", Box(0, 0, 0, 40, 40, float(np.float32(0.1))), 0.05)
    return write_clf(None, models=[model], layers=layers)


def _outcome(data: bytes) -> tuple[object, ...]:
    try:
        clf = open_clf(data, name="f.clf")
        layers = list(clf)
        kinds = [
            [(type(s.line_format), [loop.dtype for loop in s.loops]) for s in layer.shapes]
            for layer in layers
        ]
        return ("ok", clf.zs.tolist(), layers, kinds, clf.warnings)
    except CLFFormatError as err:
        return ("error", str(err))


def _general_outcome(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[object, ...]:
    with monkeypatch.context() as m:
        m.setattr(CLFFile, "_read_writer_layer", lambda self, offset: None)
        m.setattr(CLFFile, "_read_writer_seek_entries", lambda self, body, end, header_end: None)
        return _outcome(data)


def test_the_compiled_walker_is_built() -> None:
    if reader._walk_layer is None:
        message = "clf_analysis.clf._layerwalk is not built (no C compiler at install?)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI measures and tests the walker; a skip would hide that
        pytest.skip(message)


@needs_walker
def test_writer_output_takes_the_fast_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    declined: list[str] = []
    layer_fast = CLFFile._read_writer_layer
    seek_fast = CLFFile._read_writer_seek_entries

    def spy_layer(self: CLFFile, offset: int) -> object:
        result = layer_fast(self, offset)
        if result is None:
            declined.append(f"layer at {offset}")
        return result

    def spy_seek(self: CLFFile, body: int, end: int, header_end: int) -> object:
        result = seek_fast(self, body, end, header_end)
        if result is None:
            declined.append("seek table")
        return result

    monkeypatch.setattr(CLFFile, "_read_writer_layer", spy_layer)
    monkeypatch.setattr(CLFFile, "_read_writer_seek_entries", spy_seek)
    for data in _writer_files():
        list(open_clf(data))
    assert declined == []
    list(open_clf(_three_byte_count_file()))
    assert len(declined) == 1 and declined[0].startswith("layer")


def test_fast_paths_agree_with_the_general_code(monkeypatch: pytest.MonkeyPatch) -> None:
    files = _writer_files()
    for data in [*files, _three_byte_count_file()]:
        assert _outcome(data) == _general_outcome(data, monkeypatch)
    rng = random.Random(11)
    for _ in range(1500):
        data = mutate(rng, rng.choice(files))
        assert _outcome(data) == _general_outcome(data, monkeypatch)


def test_every_change_to_a_layers_structure_is_read_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    # Every byte of one small layer's sections, except its point buffer, replaced by values
    # near the ones that matter to the patterns (section ids, lengths 9-17, lf_int widths),
    # deleted, or preceded by an inserted byte: the cases random mutation rarely hits.
    models = [Model(m, f"m{m}", Box(0, 0, 0, 90, 90, 0.05), 0.05) for m in (3, 100)]
    shapes = (
        Shape(3, "model", (ring(20, 20, 15, 40), ring(20, 20, 5, 3))),
        Shape(100, "open", (ring(70, 20, 8, 7),)),
        Shape(100, "dashed", (ring(70, 20, 6, 8),)),
        Shape(3, "support", (ring(60, 5, 1, 4),), PolygonFormat.CLOSED),
        Shape(100, "model", (ring(50, 50, 9, 5),)),
    )
    data = write_clf(None, models=models, layers=[Layer(float(np.float32(0.05)), shapes)])
    clf = open_clf(data)
    start = clf._offsets[0]
    stop = data.index(np.asarray(shapes[0].loops[0], dtype="<f4").tobytes())
    values = {0, 1, 2, 3, 4, 8, 9, 10, 11, 12, 16, 17, 0x1F, 0x20, 0x21, 0x3F, 0x40, 0x80, 0xFF}
    for i in range(start, stop):
        variants = [data[:i] + data[i + 1 :]]
        variants += [data[:i] + bytes([v]) + data[i:] for v in (2, 9, 10)]
        for v in values | {(data[i] + d) % 256 for d in (-12, -11, -1, 1, 11, 12)}:
            if v != data[i]:
                variants.append(data[:i] + bytes([v]) + data[i + 1 :])
        for variant in variants:
            assert _outcome(variant) == _general_outcome(variant, monkeypatch), i
    z_at = data.index(b"\x00\x04" + np.float32(0.05).tobytes(), start) + 2
    for bad in (np.inf, -np.inf, np.nan):
        variant = data[:z_at] + np.float32(bad).tobytes() + data[z_at + 4 :]
        assert _outcome(variant)[0] == "error"
        assert _outcome(variant) == _general_outcome(variant, monkeypatch)


@needs_walker
def test_walker_shapes_are_complete_values_of_every_kind() -> None:
    # The walker fills Shape.__dict__ from C, as reader._shape does in Python.
    data = _writer_files()[1]
    clf = open_clf(data)
    shapes = [s for layer in clf for s in layer.shapes]
    assert {s.kind for s in shapes} == {"model", "closed", "open", "dashed", "support"}
    names = [f.name for f in dataclasses.fields(Shape)]
    for shape in shapes:
        assert list(vars(shape)) == names
        assert type(shape.model_id) is int and type(shape.loops) is tuple
        assert type(shape.line_format) is PolygonFormat
        assert all(loop.dtype == np.float32 and loop.shape[1:] == (2,) for loop in shape.loops)
        assert not any(loop.flags.writeable for loop in shape.loops)
        rebuilt = Shape(shape.model_id, shape.kind, shape.loops, shape.line_format)
        assert shape == rebuilt and repr(shape) == repr(rebuilt)
        with pytest.raises(dataclasses.FrozenInstanceError):
            shape.kind = "open"  # type: ignore[misc]
    # Loops are views of one point array per layer, in file order.
    layer = clf.layer(0)
    loops = [loop for s in layer.shapes for loop in s.loops]
    base = loops[0].base
    assert all(loop.base is base for loop in loops)


@needs_walker
def test_walker_keeps_no_references_and_leaks_no_memory() -> None:
    files = _writer_files()
    rng = random.Random(5)
    # Accepted layers and declined ones (mutations), both through the walker.
    cases = []
    for data in [*files, *(mutate(rng, files[1]) for _ in range(40))]:
        try:
            clf = open_clf(data)
        except CLFFormatError:
            continue
        cases.extend((data, offset, clf.models) for offset in clf._offsets)
    walk = reader._walk_layer
    assert walk is not None
    watched = [Shape, *reader._WEB_KINDS, *PolygonFormat, *{id(c[2]): c[2] for c in cases}.values()]

    def run() -> int:
        accepted = 0
        for data, offset, models in cases:
            accepted += walk(data, offset, models) is not None
        return accepted

    assert run() > 0
    gc.collect()
    before = [sys.getrefcount(o) for o in watched]
    tracemalloc.start()
    try:
        run()
        gc.collect()
        start, _ = tracemalloc.get_traced_memory()
        for _ in range(20):
            run()
        gc.collect()
        end, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [sys.getrefcount(o) for o in watched] == before
    assert end - start < 4096, f"{end - start} bytes kept over 20 runs"


@needs_walker
def test_walker_lets_exceptions_through_and_checks_its_arguments() -> None:
    data = _writer_files()[0]
    clf = open_clf(data)
    offset = clf._offsets[0]
    walk = reader._walk_layer
    assert walk is not None

    class Exploding(dict[int, Model]):
        def __contains__(self, key: object) -> bool:
            raise RuntimeError("lookup failed")

    with pytest.raises(RuntimeError, match="lookup failed"):
        walk(data, offset, Exploding(clf.models))
    assert walk(data, offset, {}) is None  # an unknown model: the general path names it
    for bad_offset in (-1, len(data), len(data) + 10, offset + 1):
        assert walk(data, bad_offset, clf.models) is None
    with pytest.raises(TypeError):
        walk("not bytes", offset, clf.models)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        walk(data, offset)  # type: ignore[call-arg]


@needs_walker
def test_walker_survives_bytes_changing_while_it_walks() -> None:
    # Python code runs inside the walk (the model lookup): a buffer whose bytes change
    # then, as a file rewritten under its memory map would, must never make the walker
    # use an unchecked value (it once indexed a 3-entry table with a rewritten byte).
    models = [Model(m, f"m{m}", Box(0, 0, 0, 9, 9, 0.05), 0.05) for m in (1, 2, 300)]
    square = ring(4, 4, 2, 4)
    shapes = (
        Shape(1, "open", (square,)),
        Shape(300, "model", (square, ring(4, 4, 1, 3))),
        Shape(2, "support", (square,), PolygonFormat.DASHED),
    )
    data = write_clf(None, models=models, layers=[Layer(float(np.float32(0.05)), shapes)])
    offset = open_clf(data)._offsets[0]
    points_at = data.index(np.asarray(square, dtype="<f4").tobytes(), offset)
    walk = reader._walk_layer
    assert walk is not None
    known = {m.id: m for m in models}
    kinds = {"model", "closed", "open", "dashed", "support"}
    for at in range(offset, points_at):
        for value in (0x00, 0x02, 0x0A, 0x1F, 0x3F, 0xC8, 0xFF):
            buf = bytearray(data)

            class Rewriting(dict[int, Model]):
                def __contains__(self, key: object) -> bool:
                    buf[at] = value  # noqa: B023 - the buffer of this iteration
                    return super().__contains__(key)

            result = walk(buf, offset, Rewriting(known))
            if result is None:
                continue
            z, count, used, found = result
            assert used <= count and z == pytest.approx(0.05)
            for shape in found:
                assert shape.kind in kinds and shape.model_id in known
                assert type(shape.line_format) is PolygonFormat
                assert all(loop.shape[1:] == (2,) for loop in shape.loops)
