from __future__ import annotations

import io

import numpy as np
import pytest

from clf_analysis.clf import Box, Layer, Model, Shape, open_clf, write_clf
from clf_analysis.clf.lfint import encode_lfint

from .builders import PART, SQUARE, WORKED_EXAMPLE, encode_lfint_width, sample_layers


def test_worked_example_written_byte_for_byte() -> None:
    assert len(WORKED_EXAMPLE) == 188
    data = write_clf(None, models=[PART], layers=[Layer(0.05, (Shape(1, "model", (SQUARE,)),))])
    assert data == WORKED_EXAMPLE


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(4, "04"), (31, "1f"), (104, "20 68"), (0x010203, "41 02 03"), (0, "00"), (32, "20 20")],
)
def test_lfint_shortest_form(value: int, encoded: str) -> None:
    assert encode_lfint(value) == bytes.fromhex(encoded)


def test_lfint_explicit_width_is_non_minimal() -> None:
    assert encode_lfint_width(4, 2) == bytes.fromhex("40 00 04")
    with pytest.raises(ValueError):
        encode_lfint_width(1 << 13, 1)


def test_writes_to_path_and_file_object(tmp_path) -> None:
    models, layers = sample_layers(2)
    path = tmp_path / "a.clf"
    data = write_clf(path, models=models, layers=layers, comment="hello")
    assert path.read_bytes() == data
    buf = io.BytesIO()
    write_clf(buf, models=models, layers=layers, comment="hello")
    assert buf.getvalue() == data
    assert data.endswith(b"\x03")


def test_seek_offset_fixpoint_across_width_boundary() -> None:
    # Grow the layer section until the seek-table offset needs a wider lf_int; the
    # header's child 5 must still name the byte where the seek table starts.
    for n in (1, 2, 3, 200, 1000, 2100):
        pts = np.zeros((n, 2), dtype=np.float32)
        pts[:, 0] = np.arange(n)
        data = write_clf(None, models=[PART], layers=[Layer(0.05, (Shape(1, "model", (pts,)),))])
        clf = open_clf(data)
        assert len(clf) == 1
        assert np.array_equal(clf.layer(0).shapes[0].loops[0], pts)


@pytest.mark.parametrize(
    "bad_layer",
    [
        Layer(0.05, (Shape(2, "model", (SQUARE,)),)),  # undeclared model
        Layer(0.05, (Shape(1, "model", (np.zeros((3, 3)),)),)),  # not (n, 2)
        Layer(0.05, (Shape(1, "model", (np.array([[0, np.nan]]),)),)),  # NaN
        Layer(0.05, (Shape(1, "model", (np.array([[0, 1e39]]),)),)),  # overflows float32
        Layer(float("inf"), (Shape(1, "model", (SQUARE,)),)),  # infinite z
        Layer(0.05, (Shape(1, "model", ()),)),  # model without outer loop
        Layer(0.05, (Shape(1, "open", (SQUARE, SQUARE)),)),  # web shape with two loops
    ],
)
def test_invalid_input_is_value_error(bad_layer: Layer) -> None:
    with pytest.raises(ValueError):
        write_clf(None, models=[PART], layers=[bad_layer])


def test_duplicate_model_ids_rejected() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        write_clf(None, models=[PART, PART], layers=[])


def test_default_box_covers_points_and_layers() -> None:
    m = Model(3, "M", Box(0, 0, 0, 1, 1, 1), 0.1)
    sq = SQUARE + np.float32(5)
    data = write_clf(None, models=[m], layers=[Layer(0.3, (Shape(3, "model", (sq,)),))])
    box = open_clf(data).box
    assert box.as_list() == pytest.approx([5, 5, 0.2, 15, 15, 0.3], abs=1e-6)


def test_empty_file_has_header_seek_table_and_end() -> None:
    clf = open_clf(write_clf(None, models=[], layers=[]))
    assert len(clf) == 0
    assert list(clf) == []
