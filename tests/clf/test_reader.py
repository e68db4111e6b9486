from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from clf_analysis.clf import (
    Box,
    CLFFormatError,
    Layer,
    Model,
    PolygonFormat,
    Shape,
    open_clf,
    write_clf,
)

from .builders import PART, SQUARE, WORKED_EXAMPLE, Raw, f32, sample_layers


def test_worked_example_read_values() -> None:
    clf = open_clf(WORKED_EXAMPLE, name="example.clf")
    assert clf.source_name == "example.clf"
    assert clf.name == "Arcam Layer File"
    assert clf.version == (1, 0)
    assert clf.declared_layer_count == 1
    assert clf.box == Box(0, 0, 0, 10, 10, float(np.float32(0.05)))
    assert list(clf.models) == [1]
    model = clf.models[1]
    assert (model.name, model.thickness) == ("Part", float(np.float32(0.05)))
    assert clf.comment is None
    assert clf.thickness == float(np.float32(0.05))
    assert clf.zs.dtype == np.float32 and clf.zs.tolist() == [np.float32(0.05)]
    assert len(clf) == 1 and clf.warnings == []
    layer = clf.layer(0)
    assert layer.z == float(np.float32(0.05))
    (shape,) = layer.shapes
    assert (shape.model_id, shape.kind, shape.is_closed) == (1, "model", True)
    assert shape.loops[0].dtype == np.float32
    assert shape.loops[0].tolist() == [[0, 0], [10, 0], [10, 10], [0, 10]]


def test_loops_are_views_of_the_layer_buffer() -> None:
    models, layers = sample_layers(1)
    layer = open_clf(write_clf(None, models=models, layers=layers)).layer(0)
    loops = [loop for shape in layer.shapes for loop in shape.loops]
    base = loops[0].base
    assert base is not None
    assert all(np.shares_memory(loops[0], loop) or loop.base is base for loop in loops)
    assert not loops[0].flags.writeable


def test_round_trip_generated_file() -> None:
    models, layers = sample_layers(6)
    data = write_clf(None, models=models, layers=layers, comment="Kommentar ✓", layer_count=6)
    clf = open_clf(data)
    assert list(clf) == layers
    assert clf.models == {m.id: m for m in models}
    assert clf.comment == "Kommentar ✓"
    assert clf.thickness == float(np.float32(0.05))
    assert clf.warnings == []


def test_layers_come_back_in_z_order_whatever_the_file_order() -> None:
    models, layers = sample_layers(5)
    shuffled = [layers[i] for i in (3, 0, 4, 1, 2)]
    clf = open_clf(write_clf(None, models=models, layers=shuffled))
    assert [layer.z for layer in clf] == [layer.z for layer in layers]
    assert clf.zs.tolist() == sorted(clf.zs.tolist())


def test_sources_path_bytes_memoryview_and_stream_agree(tmp_path) -> None:
    models, layers = sample_layers(3)
    path = tmp_path / "part.clf"
    data = write_clf(path, models=models, layers=layers)
    with open_clf(path) as from_path:
        assert from_path.source_name == str(path)
        expected = list(from_path)
    assert expected == layers
    assert list(open_clf(bytearray(data))) == layers
    assert list(open_clf(memoryview(data))) == layers
    with open(path, "rb") as fh:
        stream = open_clf(fh)
        assert stream.source_name == str(path)
        assert list(stream) == layers
    assert list(open_clf(io.BytesIO(data), name="x.clf")) == layers


def test_closing_a_path_file_keeps_read_loops_valid(tmp_path) -> None:
    models, layers = sample_layers(2)
    path = tmp_path / "part.clf"
    write_clf(path, models=models, layers=layers)
    clf = open_clf(path)
    layer = clf.layer(0)
    clf.close()
    assert layer == layers[0]


def test_lazy_access_agrees_with_full_scan() -> None:
    models, layers = sample_layers(8)
    data = write_clf(None, models=models, layers=layers[::-1])
    lazy = open_clf(data)
    full = open_clf(data, scan=True)
    assert lazy.zs.tolist() == full.zs.tolist()
    everything = list(full)
    assert [lazy.layer(i) for i in range(len(lazy))] == everything
    assert [lazy.find(z) for z in lazy.zs.tolist()] == everything
    assert list(lazy) == everything


def test_missing_seek_offset_builds_index_by_scanning_with_warning() -> None:
    r = Raw()
    body = r.layer(0.05, SQUARE, (r.cluster(polygons=(r.polygon(),)),))
    clf = open_clf(r.file([(0.05, body)], seek=False))
    assert len(clf) == 1
    assert clf.layer(0).shapes[0].loops[0].tolist() == SQUARE.tolist()
    assert any("seek-table offset" in w for w in clf.warnings)


def test_layer_count_mismatch_is_a_warning() -> None:
    models, layers = sample_layers(2)
    clf = open_clf(write_clf(None, models=models, layers=layers, layer_count=5))
    assert clf.declared_layer_count == 5 and len(clf) == 2
    assert any("declares 5 layers" in w for w in clf.warnings)


def test_unknown_sections_skipped_with_warning() -> None:
    r = Raw()
    poly = r.sec(2, r.lfsec(0, 0) + r.lfsec(1, 0) + r.sec(9, b"xyz") + r.lfsec(3, 4))
    cluster = r.sec(2, r.lfsec(0, 1) + r.lfsec(1, 0) + r.sec(5, b"") + poly)
    body = r.layer(0.05, SQUARE, (cluster,), extra=r.sec(12, b"\x01\x02"))
    data = r.file([(0.05, body)], header_extra=r.sec(17, b"?" * 40), top_extra=r.sec(9, b"junk"))
    for clf in (open_clf(data), open_clf(data, scan=True)):
        layer = clf.layer(0)
        assert layer.shapes[0].loops[0].tolist() == SQUARE.tolist()
        text = " | ".join(clf.warnings)
        for sid in (
            "header section 17",
            "layer section 12",
            "cluster section 5",
            "polygon section 9",
        ):
            assert sid in text
    assert "top-level section 9" in " | ".join(open_clf(data, scan=True).warnings)


def test_support_clusters_are_read_and_layer_kept() -> None:
    r = Raw()
    line = np.array([[1, 1], [2, 2], [3, 1], [4, 2]], dtype=np.float32)
    clusters = (
        r.cluster(polygons=(r.polygon(),)),
        r.cluster(ctype=1, polygons=(r.polygon(2, 2, 4),)),
    )
    clf = open_clf(r.file([(0.05, r.layer(0.05, np.concatenate([SQUARE, line]), clusters))]))
    model, support = clf.layer(0).shapes
    assert model.kind == "model"
    assert (support.kind, support.line_format) == ("support", PolygonFormat.DASHED)
    assert support.loops[0].tolist() == line.tolist()
    assert not support.is_closed


def test_web_polygons_become_one_shape_each() -> None:
    r = Raw()
    polys = tuple(r.polygon(0, fmt, 2) for fmt in (0, 1, 2))
    pts = np.arange(12, dtype=np.float32).reshape(6, 2)
    clf = open_clf(r.file([(0.05, r.layer(0.05, pts, (r.cluster(ctype=2, polygons=polys),)))]))
    shapes = clf.layer(0).shapes
    assert [s.kind for s in shapes] == ["closed", "open", "dashed"]
    assert [s.loops[0].tolist() for s in shapes] == [
        pts[0:2].tolist(),
        pts[2:4].tolist(),
        pts[4:6].tolist(),
    ]


def test_compression_zero_is_accepted() -> None:
    r = Raw()
    cluster = r.cluster(polygons=(r.polygon(compression=0),))
    clf = open_clf(r.file([(0.05, r.layer(0.05, SQUARE, (cluster,)))]))
    assert clf.layer(0).shapes[0].loops[0].tolist() == SQUARE.tolist()


@pytest.mark.parametrize("width", [1, 2, 7])
def test_non_minimal_lfint_widths_accepted(width: int) -> None:
    results = []
    for r in (Raw(), Raw(width)):
        cluster = r.cluster(polygons=(r.polygon(), r.polygon(1, 0, 3)))
        pts = np.concatenate([SQUARE, SQUARE[:3] * 0.5])
        data = r.file([(0.05, r.layer(0.05, pts, (cluster,)))])
        clf = open_clf(data)
        results.append((clf.name, clf.version, clf.models, list(clf), clf.warnings))
    assert results[0] == results[1]


def test_empty_layer_and_no_models() -> None:
    clf = open_clf(write_clf(None, models=[], layers=[Layer(0.5), Layer(1.0)]))
    assert clf.thickness == 0.0
    assert clf.find(0.5).z == 0.5 and clf.find(0.5).shapes == ()
    assert len(clf) == 2


def _find_file() -> tuple[list[Model], list[Layer], bytes]:
    # Layers at 0.05, 0.10, 0.15 and a gap up to 0.50; thickness 0.05; box z 0..0.5.
    model = Model(1, "P", Box(0, 0, 0, 10, 10, 0.5), 0.05)
    zs = [0.05, 0.1, 0.15, 0.5]
    layers = [
        Layer(float(np.float32(z)), (Shape(1, "model", (SQUARE + np.float32(i),)),))
        for i, z in enumerate(zs)
    ]
    return [model], layers, write_clf(None, models=[model], layers=layers)


def test_find_exact_and_nearest() -> None:
    _, layers, data = _find_file()
    clf = open_clf(data)
    assert clf.find(0.1) == layers[1]
    assert clf.find(0.11) == layers[1]
    assert clf.find(0.14) == layers[2]
    assert clf.find(0.5) == layers[3]


def test_find_tie_chooses_lower_layer() -> None:
    _, layers, data = _find_file()
    clf = open_clf(data)
    # 0.075 is halfway between 0.05 and 0.1 up to float32 rounding of the layer heights.
    assert clf.find(0.075) == layers[0]
    assert clf.find(0.125) == layers[1]


def test_find_tolerates_float32_rounding_at_the_thickness_limit() -> None:
    _, layers, data = _find_file()
    clf = open_clf(data)
    # 0.45 is exactly one thickness below 0.5 in decimal, not in float32.
    assert clf.find(0.45) == layers[3]
    assert clf.find(0.2) == layers[2]
    assert clf.find(0.3).shapes == ()
    assert clf.find(0.3).z == float(np.float32(0.3))


def test_find_outside_box_z_range_is_empty_inclusive_at_the_ends() -> None:
    _, layers, data = _find_file()
    clf = open_clf(data)
    assert clf.find(-0.01).shapes == ()
    assert clf.find(0.51).shapes == ()
    assert clf.find(0.0) == layers[0]
    assert clf.find(float("nan")).shapes == ()


def test_thickness_is_smallest_model_thickness() -> None:
    models, layers = sample_layers(1)
    assert open_clf(write_clf(None, models=models[::-1], layers=layers)).thickness == float(
        np.float32(0.05)
    )


def test_utf16_names_with_bom_and_bad_encodings() -> None:
    r = Raw()
    be = r.sec(
        4,
        r.lfsec(0, 1)
        + r.sec(1, b"\xfe\xff\x00P\x00x")
        + r.sec(2, f32(0, 0, 0, 1, 1, 1))
        + r.sec(3, f32(0.05)),
    )
    odd = r.sec(
        4,
        r.lfsec(0, 2) + r.sec(1, b"A\x00B") + r.sec(2, f32(0, 0, 0, 1, 1, 1)) + r.sec(3, f32(0.05)),
    )
    clf = open_clf(r.file([], models=(be, odd)))
    assert clf.models[1].name == "Px"
    assert clf.models[2].name.startswith("A")
    assert any("model name" in w for w in clf.warnings)


finite32 = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False, width=32)


def loops(min_size: int) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(
        np.float32, st.tuples(st.integers(min_size, 12), st.just(2)), elements=finite32
    )


shapes = st.one_of(
    st.builds(
        lambda mid, ls: Shape(mid, "model", tuple(ls)),
        st.sampled_from([0, 3, 1000]),
        st.lists(loops(1), min_size=1, max_size=4),
    ),
    st.builds(
        lambda mid, fmt, lp: Shape(
            mid, ("closed", "open", "dashed")[fmt], (lp,), PolygonFormat(fmt)
        ),
        st.sampled_from([0, 3, 1000]),
        st.integers(0, 2),
        loops(0),
    ),
    st.builds(
        lambda mid, fmt, lp: Shape(mid, "support", (lp,), PolygonFormat(fmt)),
        st.sampled_from([0, 3, 1000]),
        st.integers(0, 2),
        loops(0),
    ),
)
layers_strategy = st.lists(
    st.builds(
        lambda z, s: Layer(float(z), tuple(s)),
        st.floats(0, 500, width=32),
        st.lists(shapes, max_size=5),
    ),
    max_size=5,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layers=layers_strategy, comment=st.one_of(st.none(), st.text(max_size=20)))
def test_round_trip_hypothesis_geometry(layers: list[Layer], comment: str | None) -> None:
    models = [
        Model(mid, f"m{mid}", Box(-1, -1, 0, 1, 1, 500), t)
        for mid, t in ((0, 0.05), (3, 0.1), (1000, 0.07))
    ]
    try:
        data = write_clf(None, models=models, layers=layers, comment=comment)
    except ValueError:
        # Lone surrogates in the comment cannot be stored as UTF-16.
        assert comment is not None
        return
    clf = open_clf(data)
    order = sorted(range(len(layers)), key=lambda i: np.float32(layers[i].z))
    assert list(clf) == [layers[i] for i in order]
    assert clf.comment == comment
    assert list(open_clf(data, scan=True)) == list(clf)
    assert clf.warnings == []


def test_error_type_carries_source_and_offset() -> None:
    with pytest.raises(CLFFormatError) as info:
        open_clf(WORKED_EXAMPLE[:150], name="cut.clf")
    assert info.value.source == "cut.clf"
    assert isinstance(info.value.offset, int)
    assert str(info.value).startswith(f"cut.clf: byte {info.value.offset}: ")


def test_decoded_shapes_are_complete_shape_values() -> None:
    # The reader fills Shape.__dict__ directly for speed; it must set every field.
    import dataclasses

    clf = open_clf(WORKED_EXAMPLE)
    shape = clf.layer(0).shapes[0]
    for f in dataclasses.fields(Shape):
        assert f.name in vars(shape), f"reader does not set Shape.{f.name}"
    rebuilt = Shape(shape.model_id, shape.kind, shape.loops, shape.line_format)
    assert shape == rebuilt and repr(shape) == repr(rebuilt)
    with pytest.raises(dataclasses.FrozenInstanceError):
        shape.kind = "open"  # type: ignore[misc]


def test_large_counts_and_ids_take_the_general_path_and_agree() -> None:
    # 3-byte lf_ints (>= 8192) are outside the shortest-form fast path of the reader.
    big = np.stack([np.arange(9000), np.arange(9000) * 0.5], axis=1).astype(np.float32)
    models = [Model(70000, "big id", Box(0, 0, 0, 1, 1, 1), 0.05)]
    layers = [
        Layer(
            float(np.float32(0.05)),
            (Shape(70000, "model", (big, big[:5])), Shape(70000, "open", (big[:3],))),
        ),
    ]
    assert list(open_clf(write_clf(None, models=models, layers=layers))) == layers


def test_web_shape_built_without_line_format_round_trips() -> None:
    # Shape(m, "open", loops) leaves line_format at its default; the kind decides it.
    shape = Shape(1, "open", (SQUARE,))
    assert shape.line_format == PolygonFormat.OPEN and not shape.is_closed
    layer = Layer(float(np.float32(0.05)), (shape, Shape(1, "dashed", (SQUARE,))))
    assert list(open_clf(write_clf(None, models=[PART], layers=[layer]))) == [layer]


def test_warnings_are_bounded() -> None:
    r = Raw()
    junk = b"".join(r.sec(20, b"") for _ in range(500))
    clf = open_clf(r.file([], header_extra=junk))
    assert len(clf.warnings) == 101
    assert clf.warnings[-1] == "... and 400 more warnings"


def test_layer_z_disagreeing_with_seek_table_is_a_warning() -> None:
    r = Raw()
    body = r.layer(0.10, SQUARE, (r.cluster(polygons=(r.polygon(),)),))
    clf = open_clf(r.file([(0.05, body)]))
    assert clf.zs.tolist() == [np.float32(0.05)]
    assert clf.layer(0).z == float(np.float32(0.10))
    assert any("differs from its index entry 0.0500" in w for w in clf.warnings)
    agreeing = open_clf(WORKED_EXAMPLE)
    agreeing.layer(0)
    assert agreeing.warnings == []
