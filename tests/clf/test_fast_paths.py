"""The reader's one-pass decoding of files laid out as the writer emits them agrees with its
general code: on writer output, and on seeded random mutations of it, reading with the
fast paths gives the same layers, warnings and errors as reading without them."""

from __future__ import annotations

import random

import numpy as np
import pytest

from clf_analysis.clf import Box, CLFFormatError, Layer, Model, PolygonFormat, Shape, write_clf
from clf_analysis.clf.reader import CLFFile, open_clf

from .builders import ring, sample_layers
from .test_fuzz import mutate


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
