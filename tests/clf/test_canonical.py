from __future__ import annotations

import json

import numpy as np

from clf_analysis.clf import Box, Layer, Model, Shape, describe, open_clf, write_clf
from clf_analysis.clf.canonical import f32

from .builders import WORKED_EXAMPLE, sample_layers

EXAMPLE_JSON = {
    "name": "Arcam Layer File",
    "version": "1.0",
    "nlayers": 1,
    "comment": None,
    "box": [0.0, 0.0, 0.0, 10.0, 10.0, 0.05],
    "models": [
        {"id": 1, "name": "Part", "thickness": 0.05, "box": [0.0, 0.0, 0.0, 10.0, 10.0, 0.05]}
    ],
    "layers": [
        {
            "z": 0.05,
            "shapes": [
                {"model": 1, "kind": "model", "rings": [[[0, 0], [10, 0], [10, 10], [0, 10]]]}
            ],
        }
    ],
}


def test_worked_example_canonical_structure() -> None:
    assert describe(open_clf(WORKED_EXAMPLE)) == EXAMPLE_JSON


def test_float32_values_print_shortest() -> None:
    text = json.dumps(describe(open_clf(WORKED_EXAMPLE)))
    assert "0.05," in text and "0.0500000007" not in text
    assert f32(0.1) == 0.1 and f32(1 / 3) == 0.33333334
    # Every printed number reads back as the exact float32 of the file.
    assert np.float32(f32(1 / 3)) == np.float32(1 / 3)


def test_shape_kinds_rings_and_order() -> None:
    models, layers = sample_layers(2)
    clf = open_clf(write_clf(None, models=models, layers=layers[::-1], comment="c"))
    d = describe(clf)
    assert d["nlayers"] == 2 and d["comment"] == "c"
    assert [m["id"] for m in d["models"]] == [1, 7]
    assert [layer["z"] for layer in d["layers"]] == [0.05, 0.1]
    shapes = d["layers"][0]["shapes"]
    assert [s["kind"] for s in shapes] == ["model", "model", "closed", "open", "dashed", "support"]
    assert [len(s["rings"]) for s in shapes] == [2, 1, 1, 1, 1, 1]
    ring = np.array(shapes[0]["rings"][1], dtype=np.float32)
    assert np.array_equal(ring, layers[0].shapes[0].loops[1])
    assert json.loads(json.dumps(d)) == d


def test_selected_layers_keep_nlayers_of_file() -> None:
    models, layers = sample_layers(4)
    clf = open_clf(write_clf(None, models=models, layers=layers))
    d = describe(clf, [clf.layer(2)])
    assert d["nlayers"] == 4 and len(d["layers"]) == 1 and d["layers"][0]["z"] == 0.15
    empty = describe(clf, [clf.find(99.0)])
    assert empty["layers"] == [{"z": 99.0, "shapes": []}]


def test_model_ids_sorted_whatever_the_header_order() -> None:
    models = [Model(i, f"m{i}", Box(0, 0, 0, 1, 1, 1), 0.05) for i in (9, 2, 5)]
    layer = Layer(0.05, (Shape(5, "model", (np.zeros((3, 2), np.float32),)),))
    d = describe(open_clf(write_clf(None, models=models, layers=[layer])))
    assert [m["id"] for m in d["models"]] == [2, 5, 9]
