"""Per-hole metrics and hole tracking across layers (geometry.holes)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clf_analysis.geometry.holes import HoleTracker, equivalent_diameter, hole_metrics
from clf_analysis.geometry.loops import analyze_loops

from .shapes import regular, square


def measured(loops):
    return hole_metrics(loops, analyze_loops(loops))


def test_square_hole_metrics():
    loops = [square(0, 0, 30), square(10, 5, 10, cw=True)]
    m = measured(loops)
    assert m.index.tolist() == [1]
    assert m.area[0] == pytest.approx(100.0)
    assert m.perimeter[0] == pytest.approx(40.0)
    assert m.circularity[0] == pytest.approx(math.pi / 4)
    assert m.equivalent_diameter[0] == pytest.approx(2 * math.sqrt(100 / math.pi))
    assert m.bounds[0].tolist() == [10, 5, 20, 15]
    assert m.centroid[0] == pytest.approx([15, 10])
    assert m.parent.tolist() == [0]
    assert m.counted.tolist() == [True]


def test_round_hole_is_nearly_circular_and_its_diameter_is_the_circle_s():
    m = measured([square(-20, -20, 40), regular(256, 5.0, 1.0, 2.0, cw=True)])
    assert m.circularity[0] == pytest.approx(1.0, abs=1e-3)
    assert m.equivalent_diameter[0] == pytest.approx(10.0, rel=1e-3)
    assert m.centroid[0] == pytest.approx([1.0, 2.0], abs=1e-5)


def test_far_from_the_origin_the_centroid_keeps_its_digits():
    m = measured([square(9000, 9000, 40), square(9010, 9010, 4)])
    assert m.centroid[0] == pytest.approx([9012, 9012], abs=1e-9)
    assert m.perimeter[0] == pytest.approx(16.0, abs=1e-9)


def test_only_odd_depth_loops_are_holes_and_an_island_names_no_metrics():
    ring = [square(0, 0, 30), square(5, 5, 20), square(12, 12, 6), square(14, 14, 2)]
    m = measured(ring)
    assert m.index.tolist() == [1, 3]  # depth 1 and 3; the island (depth 2) is metal
    assert m.parent.tolist() == [0, 2]


def test_no_holes_gives_empty_metrics():
    m = measured([square(0, 0, 10)])
    assert len(m) == 0 and m.centroid.shape == (0, 2)


def test_equivalent_diameter_of_a_circle_area():
    assert equivalent_diameter([math.pi * 4])[0] == pytest.approx(4.0)


def layer(*holes, outer=None):
    outer = square(-50, -50, 100) if outer is None else outer
    return [outer, *holes]


def track(tracker, z, loops, groups=None):
    m = measured(loops)
    return tracker.add(z, m, np.zeros(len(m), dtype=np.int64) if groups is None else groups)


def test_a_hole_through_every_layer_is_one_track():
    tracker = HoleTracker()
    loops = layer(square(0, 0, 10))
    ids = [track(tracker, 0.05 * k, loops).tolist() for k in range(1, 6)]
    assert ids == [[0]] * 5
    t = tracker.tracks
    assert len(t) == 1
    assert (t.z_first[0], t.z_last[0], t.layers[0]) == (0.05, 0.25, 5)
    assert t.area_min[0] == t.area_max[0] == pytest.approx(100)


def test_a_hole_drifting_and_growing_keeps_its_track():
    tracker = HoleTracker()
    for k in range(10):
        ids = track(tracker, k * 0.05, layer(regular(32, 2 + 0.1 * k, 0.3 * k, 0.0, cw=True)))
        assert ids.tolist() == [0]
    t = tracker.tracks
    assert t.layers[0] == 10
    assert t.area_max[0] > t.area_min[0]
    assert t.bounds[0][2] == pytest.approx(2.7 + 2.9, abs=1e-5)


def test_a_hole_that_closes_and_opens_again_is_two_tracks():
    tracker = HoleTracker()
    hole = square(0, 0, 10)
    seen = [
        track(tracker, 0.05, layer(hole)).tolist(),
        track(tracker, 0.10, layer()).tolist(),
        track(tracker, 0.15, layer(hole)).tolist(),
    ]
    assert seen == [[0], [], [1]]
    t = tracker.tracks
    assert t.z_first.tolist() == [0.05, 0.15] and t.layers.tolist() == [1, 1]


def test_holes_far_apart_are_separate_tracks_and_keep_them_when_listed_in_another_order():
    tracker = HoleTracker()
    a, b = square(-40, 0, 5), square(30, 0, 5)
    assert track(tracker, 1.0, layer(a, b)).tolist() == [0, 1]
    assert track(tracker, 1.05, layer(b, a)).tolist() == [1, 0]


def test_holes_of_different_groups_never_share_a_track():
    tracker = HoleTracker()
    loops = layer(square(0, 0, 10))
    assert track(tracker, 1.0, loops, [1]).tolist() == [0]
    assert track(tracker, 1.05, loops, [2]).tolist() == [1]


def test_a_split_keeps_the_track_in_the_nearer_branch_and_opens_one():
    tracker = HoleTracker()
    track(tracker, 1.0, layer(square(0, 0, 20)))
    ids = track(tracker, 1.05, layer(square(0.5, 0, 8), square(12, 0, 8))).tolist()
    # Both halves have their centroid inside the old hole; the first lies nearer its centroid.
    assert sorted(ids) == [0, 1]
    assert ids[0] == 0


def test_a_crescent_whose_centroid_lies_outside_it_is_followed_by_overlap():
    # A C-shaped hole: its centroid falls in the notch, outside the polygon.
    c = np.array(
        [(0, 0), (10, 0), (10, 2), (2, 2), (2, 8), (10, 8), (10, 10), (0, 10)], dtype=np.float32
    )
    shifted = c + np.array([6.0, 0.0], dtype=np.float32)  # each centroid outside the other
    assert measured(layer(c)).centroid[0] == pytest.approx([212 / 52, 5.0])
    tracker = HoleTracker()
    track(tracker, 1.0, layer(c))
    assert track(tracker, 1.05, layer(shifted)).tolist() == [0]


def test_holes_whose_area_does_not_count_get_no_track():
    bow = np.array([(0, 0), (10, 10), (10, 0), (0, 10)], dtype=np.float32)
    tracker = HoleTracker()
    assert track(tracker, 1.0, layer(bow)).tolist() == [-1]
    assert len(tracker.tracks) == 0


def test_a_layer_without_holes_ends_every_track():
    tracker = HoleTracker()
    track(tracker, 1.0, layer(square(0, 0, 4)))
    track(tracker, 1.05, [square(-50, -50, 100)])
    assert track(tracker, 1.1, layer(square(0, 0, 4))).tolist() == [1]


def test_many_holes_use_the_tree_and_match_one_to_one():
    grid = [square(-45 + 3 * i, -45 + 3 * j, 1) for i in range(30) for j in range(30)]
    tracker = HoleTracker()
    first = track(tracker, 1.0, layer(*grid))
    nudged = [g + np.float32(0.2) for g in grid]
    second = track(tracker, 1.05, layer(*nudged))
    assert first.tolist() == second.tolist() == list(range(900))
