"""Every malformed case of docs/FORMAT.md#errors ends in one CLFFormatError naming file,
offset, expectation.

Byte positions refer to the 188-byte file of docs/FORMAT.md#worked-example (the example
without its WEB cluster): layer at 107 (body 110), point count value at 118, cluster at
119 (model id value 123, type value 126), polygon at 127 (type value 131, format value
134, count value 137), point buffer body at 141, seek table at 173 (its entry's layer
offset value at 186), header child 5 value at 105-106.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from clf_analysis.clf import CLFFormatError, open_clf

from .builders import SQUARE, WORKED_EXAMPLE, Raw, f32

NAME = "broken.clf"


def patched(**at: int) -> bytes:
    data = bytearray(WORKED_EXAMPLE)
    for key, value in at.items():
        data[int(key.removeprefix("b"))] = value
    return bytes(data)


def fail(data: bytes, *, scan: bool = False, layers: bool = True) -> CLFFormatError:
    """Open (and read every layer of) `data`, expecting a CLFFormatError; return it."""
    with pytest.raises(CLFFormatError) as info:
        clf = open_clf(data, name=NAME, scan=scan)
        if layers:
            list(clf)
    err = info.value
    assert err.source == NAME
    assert str(err).startswith(f"{NAME}: byte {err.offset}: ")
    assert 0 <= err.offset <= len(data)
    return err


def test_empty_input_names_offset_zero() -> None:
    assert fail(b"").offset == 0


@pytest.mark.parametrize("cut", [1, 2, 3, 50, 106, 107, 140, 172, 173, 180, 187])
def test_truncated_file_names_offset(cut: int) -> None:
    fail(WORKED_EXAMPLE[:cut])


def test_truncated_file_without_end_marker_fails_full_scan() -> None:
    err = fail(WORKED_EXAMPLE[:-1], scan=True)
    assert err.offset == 187 and "end-of-file marker" in str(err)


def test_truncated_point_buffer_names_offset() -> None:
    err = fail(patched(b118=5))
    assert err.offset == 141
    assert "8 x 5 = 40 bytes" in str(err) and "found 32" in str(err)
    assert "layer at byte 107" in str(err)


def test_point_buffer_before_its_count_is_rejected() -> None:
    r = Raw()
    pts = r.sec(3, SQUARE.astype("<f4").tobytes())
    body = r.sec(0, f32(0.05)) + pts + r.lfsec(1, 4)
    err = fail(r.file([(0.05, body)]))
    assert "point count" in str(err)


def test_section_length_past_parent_names_offset() -> None:
    # The cluster claims 0x3f bytes; its parent layer ends long before.
    err = fail(patched(b120=0x3F))
    assert err.offset == 120 and "within its parent" in str(err)


def test_length_past_file_end_names_offset() -> None:
    err = fail(patched(b2=0xFF), layers=False)
    assert err.offset == 1 and "runs to byte" in str(err)


def test_huge_length_field_does_not_allocate() -> None:
    # A 2**61-byte layer length: must be refused from the numbers, never allocated.
    data = bytearray(WORKED_EXAMPLE)
    data[108:110] = b"\xff\xff"
    data[108:108] = b"\xff" * 6
    err = fail(bytes(data), scan=True)
    assert err.offset == 108


def test_huge_point_count_does_not_allocate() -> None:
    r = Raw()
    body = r.layer(0.05, SQUARE, (r.cluster(polygons=(r.polygon(),)),), count=(1 << 61) - 1)
    err = fail(r.file([(0.05, body)]))
    assert "point buffer of 8 x" in str(err)


def test_lfint_wider_than_remaining_bytes_names_offset() -> None:
    err = fail(b"\x00\xe0\x01", layers=False)
    assert err.offset == 1 and "8 bytes, only 2 remain" in str(err)


def test_id_without_length_cannot_be_skipped() -> None:
    # An unknown top-level id as the very last byte: no length to skip it by.
    err = fail(WORKED_EXAMPLE[:-1] + b"\x07", scan=True)
    assert err.offset == 188 and "length of top-level section 7" in str(err)


def test_seek_table_offset_outside_file_names_offset() -> None:
    err = fail(patched(b106=0xFF), layers=False)
    assert err.offset == 105 and "seek-table offset" in str(err) and "found 255" in str(err)


def test_seek_table_offset_not_at_seek_table() -> None:
    err = fail(patched(b106=0xAE), layers=False)
    assert err.offset == 174


def test_seek_entry_not_pointing_at_layer_names_offset() -> None:
    err = fail(patched(b186=0x6E), layers=False)  # byte 110: the layer's z section (id 0)
    assert err.offset == 110 and "layer section (id 2)" in str(err)


def test_seek_entry_pointing_into_header_is_rejected() -> None:
    err = fail(patched(b186=0x1A), layers=False)  # byte 26: header child 2 has id 2 too
    assert "layer offset between the header end" in str(err)


def test_polygons_consuming_more_points_than_buffer_names_offset() -> None:
    err = fail(patched(b137=5))
    assert err.offset == 127 and "points 0..4" in str(err)


def test_cluster_naming_unknown_model_names_offset() -> None:
    err = fail(patched(b123=2))
    assert err.offset == 119 and "model 2 is unknown" in str(err)


def test_model_cluster_starting_with_inloop_is_rejected() -> None:
    err = fail(patched(b131=1))
    assert err.offset == 127 and "OUTLOOP" in str(err) and "INLOOP" in str(err)


@pytest.mark.parametrize(
    ("pos", "what"), [(126, "cluster type"), (131, "polygon type"), (134, "polygon format")]
)
def test_unknown_enum_values_name_offset(pos: int, what: str) -> None:
    err = fail(patched(**{f"b{pos}": 3}))
    assert err.offset == pos and what in str(err) and "found 3" in str(err)


def test_compression_other_than_zero_names_layer_and_offset() -> None:
    r = Raw()
    cluster = r.cluster(polygons=(r.polygon(compression=1),))
    data = r.file([(0.05, r.layer(0.05, SQUARE, (cluster,)))])
    err = fail(data)
    assert "compression" in str(err) and "layer at byte 107" in str(err)
    assert data[err.offset] == 1  # the compression value itself


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nan_or_infinite_coordinates_name_offset(bad: float) -> None:
    data = bytearray(WORKED_EXAMPLE)
    data[153:157] = struct.pack("<f", bad)
    err = fail(bytes(data))
    assert err.offset == 153 and "finite" in str(err)


def test_nan_layer_height_is_rejected() -> None:
    data = bytearray(WORKED_EXAMPLE)
    data[179:183] = struct.pack("<f", math.nan)  # the seek entry's z
    assert fail(bytes(data), layers=False).offset == 179
    data = bytearray(WORKED_EXAMPLE)
    data[112:116] = struct.pack("<f", math.nan)  # the layer's own z
    assert fail(bytes(data)).offset == 112


def test_nan_in_file_box_is_rejected() -> None:
    data = bytearray(WORKED_EXAMPLE)
    data[31:35] = struct.pack("<f", math.nan)
    assert fail(bytes(data), layers=False).offset == 31


def test_header_not_first_is_rejected() -> None:
    err = fail(b"\x02\x00\x03", layers=False)
    assert err.offset == 0 and "header" in str(err)


def test_duplicate_model_ids_rejected() -> None:
    r = Raw()
    err = fail(r.file([], models=(r.model(1), r.model(1))), layers=False)
    assert "declared twice" in str(err)


def test_model_without_thickness_rejected() -> None:
    r = Raw()
    model = r.sec(4, r.lfsec(0, 1) + r.sec(2, f32(0, 0, 0, 1, 1, 1)))
    assert "thickness" in str(fail(r.file([], models=(model,)), layers=False))


def test_missing_file_box_rejected() -> None:
    data = bytearray(WORKED_EXAMPLE)
    data[29] = 9  # header child 3 becomes an unknown child 9
    assert "bounding box" in str(fail(bytes(data), layers=False))


def test_wrong_float_section_length_rejected() -> None:
    r = Raw()
    body = r.sec(0, f32(0.05) + b"\x00") + r.lfsec(1, 0) + r.sec(3, b"")
    assert "4-byte float" in str(fail(r.file([(0.05, body)]), scan=True))


def test_layer_without_points_for_declared_count_rejected() -> None:
    r = Raw()
    body = r.sec(0, f32(0.05)) + r.lfsec(1, 4) + r.cluster(polygons=(r.polygon(),))
    assert "point buffer for the 4 points" in str(fail(r.file([(0.05, body)])))


def test_errors_also_raised_by_find_and_layer() -> None:
    clf = open_clf(patched(b123=2), name=NAME)
    with pytest.raises(CLFFormatError):
        clf.layer(0)
    with pytest.raises(CLFFormatError):
        clf.find(0.05)
    assert clf.find(3.0).shapes == ()  # outside the box: nothing is decoded


def test_sanity_of_documented_positions() -> None:
    w = WORKED_EXAMPLE
    assert (w[107], w[118], w[119], w[123], w[126], w[127], w[131], w[134], w[137]) == (
        2,
        4,
        2,
        1,
        0,
        2,
        0,
        0,
        4,
    )
    assert np.frombuffer(w[141:173], "<f4").tolist() == SQUARE.ravel().tolist()
    assert (w[173], w[186], w[105:107]) == (1, 107, b"\x20\xad")
