import numpy as np

from clf_analysis.clf.lookup import layer_indices

ZS = np.array([0.05, 0.1, 0.15, 0.3], dtype=np.float32)


def _one(z: float) -> int:
    return int(layer_indices(ZS, [z], min_z=0.0, max_z=0.3, thickness=0.05)[0])


def test_vectorised_lookup_equals_one_height_at_a_time():
    heights = np.linspace(-0.1, 0.45, 221)
    together = layer_indices(ZS, heights, min_z=0.0, max_z=0.3, thickness=0.05)
    assert together.tolist() == [_one(float(h)) for h in heights]


def test_lookup_rules_of_spec_section_4():
    assert _one(0.1) == 1
    assert _one(0.125) == 1  # tie: the lower layer
    assert _one(0.126) == 2
    assert _one(0.0) == 0  # inside the box, within one thickness of the first layer
    assert _one(0.225) == -1  # 0.075 from both neighbours: farther than the thickness
    assert _one(0.31) == -1  # above the box
    assert _one(float("nan")) == -1
    assert layer_indices(np.array([], np.float32), [1.0], min_z=0, max_z=1, thickness=1)[0] == -1


def test_repeated_layer_height_answers_with_the_first_of_them():
    # float64 0.35 lies just above float32 0.35: the search lands after both copies.
    zs = np.float32([0.3, 0.35, 0.35, 0.4])
    for h in (0.35, float(np.float32(0.35)), 0.3500001, 0.3499999):
        got = layer_indices(zs, [h], min_z=0.0, max_z=0.4, thickness=np.float32(0.05))
        assert got.tolist() == [1], h
