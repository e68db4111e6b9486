from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clf_analysis.clf.types import LoopArray
from clf_analysis.geometry import LoopAnalysis, analyze_loops, signed_area
from clf_analysis.geometry import loops as loops_module
from clf_analysis.geometry.loops import (
    REASON_DUPLICATE,
    REASON_FEW_VERTICES,
    REASON_NON_FINITE,
    REASON_SELF_INTERSECTION,
    REASON_SELF_TOUCHING,
    REASON_ZERO_AREA,
    _analyze_one,
)

from .shapes import rect, regular, regular_area, rotate_start, square

BOW_TIE = np.array([[0, 0], [2, 2], [2, 0], [0, 1]], dtype=np.float32)
SYMMETRIC_BOW_TIE = np.array([[0, 0], [1, 1], [1, 0], [0, 1]], dtype=np.float32)


def content_view(loops: list[LoopArray], a: LoopAnalysis) -> list[tuple[object, ...]]:
    """Per-loop results with loop references replaced by the referenced loop's bytes.

    Two runs over permutations of the same loops must give the same view per loop.
    """

    def ref(i: int) -> bytes | None:
        return None if i < 0 else loops[i].tobytes()

    return [
        (
            int(a.depth[i]),
            bool(a.is_hole[i]),
            bool(a.valid[i]),
            a.invalid_reason[i],
            ref(int(a.parent[i])),
            ref(int(a.duplicate_of[i])),
            bool(a.winding_mismatch[i]),
            bool(a.in_nesting[i]),
            float(f"{a.area[i]:.9g}"),
        )
        for i in range(len(loops))
    ]


def assert_order_independent(loops: list[LoopArray], perm: tuple[int, ...] | list[int]) -> None:
    """Each loop gets the same result whatever the order.

    Compared as a multiset of (loop bytes, result): byte-identical loops cannot be told
    apart, so only the set of results they get together is defined.
    """
    shuffled = [loops[p] for p in perm]
    base = content_view(loops, analyze_loops(loops))
    view = content_view(shuffled, analyze_loops(shuffled))
    assert Counter(zip((s.tobytes() for s in shuffled), view, strict=True)) == Counter(
        zip((s.tobytes() for s in loops), base, strict=True)
    )


# --- nesting ------------------------------------------------------------------------------


def test_nested_squares_alternate_solid_and_hole_with_chain_of_parents() -> None:
    loops = [square(-8, -8, 16), square(-6, -6, 12, cw=True), square(-4, -4, 8), square(-2, -2, 4)]
    a = analyze_loops(loops)
    assert a.depth.tolist() == [0, 1, 2, 3]
    assert a.parent.tolist() == [-1, 0, 1, 2]
    assert a.is_hole.tolist() == [False, True, False, True]


def test_tube_inner_loop_is_the_hole_of_the_outer() -> None:
    a = analyze_loops([regular(200, 10), regular(200, 8, cw=True)])
    assert a.is_hole.tolist() == [False, True]
    assert a.parent.tolist() == [-1, 0]
    assert a.valid.all()
    assert not a.winding_mismatch.any()


def test_block_with_three_holes_has_three_holes_of_the_block() -> None:
    loops = [
        square(0, 0, 30),
        square(2, 2, 5, True),
        square(12, 2, 5, True),
        square(2, 20, 5, True),
    ]
    a = analyze_loops(loops)
    assert a.is_hole.tolist() == [False, True, True, True]
    assert a.parent.tolist() == [-1, 0, 0, 0]
    assert int(a.is_hole.sum()) == 3


def test_island_inside_a_hole_is_solid_with_the_hole_as_parent() -> None:
    loops = [square(0, 0, 20), square(5, 5, 10, cw=True), square(8, 8, 4)]
    a = analyze_loops(loops)
    assert a.depth.tolist() == [0, 1, 2]
    assert a.is_hole.tolist() == [False, True, False]
    assert a.parent.tolist() == [-1, 0, 1]


def test_two_islands_in_one_hole_are_two_solids() -> None:
    loops = [square(0, 0, 30), square(5, 5, 20, cw=True), square(7, 7, 4), square(15, 15, 4)]
    a = analyze_loops(loops)
    assert a.is_hole.tolist() == [False, True, False, False]
    assert a.parent.tolist() == [-1, 0, 1, 1]


def test_solids_that_touch_along_an_edge_stay_two_solids() -> None:
    # Two parts whose outlines meet (islands that merge in the melt) are not nested.
    a = analyze_loops([square(0, 0, 10), square(10, 0, 10), square(0, 10, 5)])
    assert a.depth.tolist() == [0, 0, 0]
    assert a.parent.tolist() == [-1, -1, -1]
    assert not a.is_hole.any()


def test_hole_touching_its_parents_boundary_is_still_inside() -> None:
    # A notch: the hole's left edge lies on the outer boundary, two vertices on it.
    outer = square(0, 0, 10)
    notch = rect(0, 3, 4, 2, cw=True)
    a = analyze_loops([outer, notch])
    assert a.parent.tolist() == [-1, 0]
    assert a.is_hole.tolist() == [False, True]


def test_loop_with_every_vertex_on_its_parents_boundary_is_inside() -> None:
    # A diamond whose four vertices are the midpoints of the square's sides: testing
    # vertices against the parent says "boundary" for all of them.
    outer = square(0, 0, 10)
    diamond = np.array([[5, 0], [10, 5], [5, 10], [0, 5]], dtype=np.float32)[::-1].copy()
    a = analyze_loops([diamond, outer])
    assert a.parent.tolist() == [1, -1]
    assert a.is_hole.tolist() == [True, False]


def test_loop_sharing_three_vertices_with_its_parent_is_inside() -> None:
    outer = square(0, 0, 10)
    triangle = np.array([[0, 0], [10, 10], [10, 0]], dtype=np.float32)  # clockwise
    a = analyze_loops([outer, triangle])
    assert a.is_hole.tolist() == [False, True]
    assert not a.winding_mismatch.any()


def test_parent_is_the_smallest_container_not_the_first() -> None:
    loops = [square(-1, -1, 12), square(4, 4, 2), square(0, 0, 10, cw=True), square(3, 3, 4)]
    a = analyze_loops(loops)
    assert a.parent.tolist() == [-1, 3, 0, 2]
    assert a.depth.tolist() == [0, 3, 1, 2]


def test_nesting_spans_separate_parts() -> None:
    a = analyze_loops([square(0, 0, 10), square(2, 2, 2, True), square(50, 50, 10)])
    assert a.parent.tolist() == [-1, 0, -1]
    assert a.is_hole.tolist() == [False, True, False]


def test_empty_layer_gives_empty_arrays() -> None:
    a = analyze_loops([])
    assert len(a) == 0
    assert a.bounds.shape == (0, 4)
    assert a.invalid_reason == []


# --- closed vs open, validity -------------------------------------------------------------


def test_rectangle_is_closed_valid_and_exact() -> None:
    a = analyze_loops([rect(-5, -2, 10, 4)])
    assert a.valid.tolist() == [True]
    assert a.in_nesting.tolist() == [True]
    assert a.invalid_reason == [None]
    assert a.area[0] == 40.0
    assert a.signed_area[0] == 40.0
    assert a.bounds[0].tolist() == [-5.0, -2.0, 5.0, 2.0]


def test_bow_tie_is_a_self_intersection_located_at_the_crossing() -> None:
    a = analyze_loops([BOW_TIE, square(50, 50, 1)])
    assert a.valid.tolist() == [False, True]
    assert a.invalid_reason == [REASON_SELF_INTERSECTION, None]
    assert a.invalid_point[0] == pytest.approx([2 / 3, 2 / 3])  # y = x meets y = 1 - x / 2
    assert np.isnan(a.invalid_point[1]).all()


def test_symmetric_bow_tie_is_a_self_intersection_not_zero_area() -> None:
    # Its lobes cancel in the shoelace sum; it still encloses two triangles.
    a = analyze_loops([SYMMETRIC_BOW_TIE])
    assert a.invalid_reason == [REASON_SELF_INTERSECTION]
    assert a.signed_area[0] == 0.0
    assert not a.winding_mismatch[0]


def test_self_touching_loop_is_reported_separately() -> None:
    # Two triangles pinched at one vertex (1, 0).
    pinched = np.array([[0, 0], [2, 0], [2, 2], [1, 0], [0, 2]], dtype=np.float32)
    a = analyze_loops([pinched])
    assert a.invalid_reason == [REASON_SELF_TOUCHING]
    assert a.invalid_point[0].tolist() == [1.0, 0.0]


def test_self_intersecting_outline_keeps_its_holes() -> None:
    # A spike crossing the outline must not turn the part's hole into metal.
    spiky = np.array([[0, 0], [10, 0], [10, 10], [11, 12], [12, 9], [0, 10]], np.float32)
    a = analyze_loops([spiky, square(3, 3, 2, cw=True)])
    assert a.invalid_reason[0] == REASON_SELF_INTERSECTION
    assert a.is_hole.tolist() == [False, True]
    assert a.parent.tolist() == [-1, 0]


@pytest.mark.parametrize("count", [0, 1, 2])
def test_fewer_than_three_vertices_is_reported_and_left_out_of_nesting(count: int) -> None:
    short = np.array([[4, 4], [5, 5]][:count], dtype=np.float32).reshape(-1, 2)
    a = analyze_loops([square(0, 0, 10), short])
    assert a.invalid_reason == [None, REASON_FEW_VERTICES]
    assert a.valid.tolist() == [True, False]
    assert a.depth[1] == 0 and a.parent[1] == -1 and not a.is_hole[1]
    assert not a.in_nesting[1]
    assert a.area[1] == 0.0


def test_collinear_float32_loop_is_zero_area_and_left_out() -> None:
    # Vertices along a diagonal, rounded to float32: not exactly collinear.
    t = np.linspace(0.0, 1.0, 50)
    there = np.column_stack([1.1 + 7.3 * t, 2.3 + 3.7 * t])
    line = np.vstack([there, there[::-1][1:-1]]).astype(np.float32)
    a = analyze_loops([square(0, 0, 10), line])
    assert a.invalid_reason == [None, REASON_ZERO_AREA]
    assert not a.in_nesting[1] and a.parent[1] == -1


def test_thin_but_real_sliver_is_valid() -> None:
    a = analyze_loops([rect(0, 0, 100, 0.001)])
    assert a.valid.tolist() == [True]
    assert a.area[0] == pytest.approx(0.1, rel=1e-3)


def test_non_finite_coordinate_is_reported_and_area_zero() -> None:
    bad = square(0, 0, 1)
    bad[2, 0] = np.nan
    a = analyze_loops([bad, square(5, 5, 1)])
    assert a.invalid_reason == [REASON_NON_FINITE, None]
    assert a.area[0] == 0.0 and a.signed_area[0] == 0.0
    assert not a.in_nesting[0]


def test_repeated_vertices_do_not_make_a_loop_invalid() -> None:
    loop = np.array([[0, 0], [1, 0], [1, 0], [1, 1], [0, 1], [0, 1]], dtype=np.float32)
    a = analyze_loops([loop])
    assert a.valid.tolist() == [True]
    assert a.area[0] == 1.0


def test_winding_mismatch_is_flagged_and_nesting_unchanged() -> None:
    right = analyze_loops([square(0, 0, 10), square(2, 2, 6, cw=True), square(4, 4, 2)])
    wrong = analyze_loops([square(0, 0, 10, cw=True), square(2, 2, 6), square(4, 4, 2)])
    assert not right.winding_mismatch.any()
    assert wrong.winding_mismatch.tolist() == [True, True, False]
    assert wrong.is_hole.tolist() == right.is_hole.tolist()
    assert wrong.parent.tolist() == right.parent.tolist()
    assert wrong.valid.all()
    assert wrong.area.tolist() == right.area.tolist()


# --- duplicates ---------------------------------------------------------------------------


def test_duplicate_outline_does_not_turn_the_hole_into_metal() -> None:
    outer = regular(40, 10)
    twin = rotate_start(outer, 7)[::-1].copy()  # same region, other start and direction
    loops = [outer, twin, regular(40, 5, cw=True)]
    a = analyze_loops(loops)
    kept = 0 if a.duplicate_of[0] < 0 else 1
    dropped = 1 - kept
    assert a.duplicate_of[dropped] == kept and a.duplicate_of[kept] == -1
    assert a.invalid_reason[dropped] == REASON_DUPLICATE and a.valid[kept]
    assert a.is_hole.tolist() == [False, False, True]
    assert a.parent.tolist() == [-1, -1, kept]
    assert a.depth[2] == 1


def test_kept_duplicate_is_chosen_by_content_not_by_order() -> None:
    outer = regular(40, 10)
    twin = rotate_start(outer, 3)
    kept_bytes = set()
    for loops in ([outer, twin], [twin, outer]):
        a = analyze_loops(loops)
        kept_bytes.add(loops[int(np.flatnonzero(a.duplicate_of < 0)[0])].tobytes())
    assert len(kept_bytes) == 1


def test_identical_duplicates_give_one_duplicate_and_take_their_twins_nesting() -> None:
    hole = square(2, 2, 2, cw=True)
    a = analyze_loops([square(0, 0, 10), hole, hole.copy()])
    assert a.duplicate_of.tolist() == [-1, -1, 1]
    assert a.is_hole.tolist() == [False, True, True]
    assert a.parent.tolist() == [-1, 0, 0]
    assert a.counted.tolist() == [True, True, False]
    assert a.signed_by_nesting.tolist() == [100.0, -4.0, 0.0]


# --- order independence -------------------------------------------------------------------

SMALL_CASES = {
    "nested squares": [square(0, 0, 20), square(2, 2, 16, True), square(4, 4, 12), square(6, 6, 8)],
    "island in hole": [
        square(0, 0, 30),
        square(5, 5, 20, True),
        square(7, 7, 4),
        square(15, 15, 4),
        square(40, 0, 5),
    ],
    "touching": [
        square(0, 0, 10),
        rect(0, 3, 4, 2, True),
        square(10, 0, 10),
        square(2, 6, 2, True),
    ],
    "duplicates": [
        regular(12, 10),
        rotate_start(regular(12, 10), 5),
        regular(12, 5, cw=True),
        regular(12, 5, cw=True),
        regular(12, 2),
    ],
    "invalid mixed": [square(0, 0, 10), BOW_TIE + 3, np.zeros((2, 2), np.float32), square(1, 1, 1)],
}


@pytest.mark.parametrize("name", sorted(SMALL_CASES))
def test_result_does_not_depend_on_loop_order_for_all_permutations(name: str) -> None:
    loops = SMALL_CASES[name]
    for perm in itertools.permutations(range(len(loops))):
        assert_order_independent(loops, perm)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[list[LoopArray], list[int], list[int]]:
    """Separate cells of concentric loops: loops, expected depth, expected parent.

    Some cells repeat their outer loop (other start vertex, maybe reversed): then the
    expected parent of the next level is either copy.
    """
    loops: list[LoopArray] = []
    depth: list[int] = []
    parent: list[int] = []
    for cell in range(draw(st.integers(1, 7))):
        levels = draw(st.integers(1, 4))
        vertices = draw(st.integers(3, 24))
        duplicate = draw(st.booleans())
        previous = -1
        for level in range(levels):
            r = 10.0 - 2.0 * level
            loop = regular(vertices, r, cx=25.0 * cell, cy=0.0, cw=level % 2 == 1)
            loop = rotate_start(loop, draw(st.integers(0, vertices - 1)))
            loops.append(loop)
            depth.append(level)
            parent.append(previous)
            previous = len(loops) - 1
            if duplicate and level == 0:
                twin = rotate_start(loop, draw(st.integers(1, vertices)))
                loops.append(twin[::-1].copy() if draw(st.booleans()) else twin)
                depth.append(0)
                parent.append(-2)  # marks the twin
    return loops, depth, parent


@settings(max_examples=60, deadline=None)
@given(layouts(), st.randoms(use_true_random=False))
def test_shuffled_layouts_nest_as_built(
    layout: tuple[list[LoopArray], list[int], list[int]], rnd: object
) -> None:
    loops, depth, parent = layout
    perm = list(range(len(loops)))
    rnd.shuffle(perm)  # type: ignore[attr-defined]
    assert_order_independent(loops, perm)

    a = analyze_loops(loops)
    assert a.depth.tolist() == depth
    assert a.is_hole.tolist() == [d % 2 == 1 for d in depth]
    for i, expected in enumerate(parent):
        if expected == -2:  # a twin and its original: exactly one is dropped
            assert a.duplicate_of[[i - 1, i]].tolist() in ([-1, i - 1], [i, -1])
        elif expected >= 0 and parent[expected + 1 : expected + 2] == [-2]:
            assert a.parent[i] in (expected, expected + 1)
            assert a.duplicate_of[a.parent[i]] == -1
        else:
            assert a.parent[i] == expected


def test_r_tree_path_agrees_with_the_bounds_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    loops = [*SMALL_CASES["island in hole"], *SMALL_CASES["duplicates"], *SMALL_CASES["touching"]]
    loops = [loop + np.float32(40 * (i // 5)) for i, loop in enumerate(loops)]
    matrix = content_view(loops, analyze_loops(loops))
    monkeypatch.setattr(loops_module, "STRTREE_MIN_LOOPS", 2)
    assert content_view(loops, analyze_loops(loops)) == matrix


def test_many_loops_take_the_r_tree_path_and_nest_correctly() -> None:
    loops = []
    for k in range(200):  # 400 loops: above STRTREE_MIN_LOOPS
        cx, cy = 3.0 * (k % 20), 3.0 * (k // 20)
        loops += [regular(8, 1.2, cx, cy), regular(8, 0.6, cx, cy, cw=True)]
    assert len(loops) > loops_module.STRTREE_MIN_LOOPS
    a = analyze_loops(loops)
    assert a.is_hole.tolist() == [False, True] * 200
    assert a.parent.tolist() == [p for k in range(200) for p in (-1, 2 * k)]


# --- areas --------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [100, 150, 256, 400])
@pytest.mark.parametrize("r", [0.5, 12.0, 70.0])
def test_polygon_areas_match_the_formula_and_the_circle(n: int, r: float) -> None:
    a = analyze_loops([regular(n, r, cx=30.0, cy=-20.0), regular(n, r / 2, 30.0, -20.0, cw=True)])
    assert a.area[0] == pytest.approx(regular_area(n, r), rel=1e-5)
    assert a.area[1] == pytest.approx(regular_area(n, r / 2), rel=1e-5)
    assert a.area[0] == pytest.approx(math.pi * r * r, rel=1e-3)
    assert a.signed_area[1] < 0 < a.signed_area[0]


def test_square_areas_are_exact_even_far_from_the_origin() -> None:
    loops = [square(-100, -100, 8), square(99.5, 99.5, 0.5), square(-3, 4, 2, cw=True)]
    a = analyze_loops(loops)
    assert a.area.tolist() == [64.0, 0.25, 4.0]
    assert a.signed_area.tolist() == [64.0, 0.25, -4.0]


def test_bounds_are_per_loop_min_and_max() -> None:
    a = analyze_loops([regular(4, 2, 1, 1), rect(-3, 5, 1, 2)])
    assert a.bounds[0] == pytest.approx([-1, -1, 3, 3], abs=1e-6)
    assert a.bounds[1].tolist() == [-3, 5, -2, 7]


# --- single-loop fast path ----------------------------------------------------------------

ONE_LOOP_CASES = {
    "ccw square": square(0, 0, 3),
    "cw circle": regular(300, 9, 5, 5, cw=True),
    "bow-tie": BOW_TIE,
    "pinched": np.array([[0, 0], [2, 0], [2, 2], [1, 0], [0, 2]], dtype=np.float32),
    "two vertices": np.array([[0, 0], [1, 1]], dtype=np.float32),
    "no vertices": np.zeros((0, 2), dtype=np.float32),
    "collinear": np.array([[0, 0], [1, 1], [3, 3]], dtype=np.float32),
    "nan": np.array([[0, 0], [1, np.nan], [1, 1]], dtype=np.float32),
}


@pytest.mark.parametrize("name", sorted(ONE_LOOP_CASES))
def test_single_loop_fast_path_agrees_with_the_general_path(name: str) -> None:
    loop = ONE_LOOP_CASES[name]
    fast = _analyze_one(loop)
    assert analyze_loops([loop]).invalid_reason == fast.invalid_reason
    # Far away and bigger: neither contains nor is contained in the loop.
    general = analyze_loops([loop, square(500, 500, 50)])
    for field in (
        "vertex_count",
        "area",
        "signed_area",
        "bounds",
        "in_nesting",
        "depth",
        "parent",
        "is_hole",
        "valid",
        "invalid_point",
        "duplicate_of",
        "winding_mismatch",
    ):
        np.testing.assert_allclose(
            getattr(fast, field)[0], getattr(general, field)[0], rtol=1e-12, err_msg=field
        )
    assert fast.invalid_reason[0] == general.invalid_reason[0]


grid_loops = st.lists(
    st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), min_size=0, max_size=9).map(
        lambda pts: np.array(pts, dtype=np.float32).reshape(-1, 2)
    ),
    min_size=1,
    max_size=7,
)


@settings(max_examples=150, deadline=None)
@given(grid_loops, st.randoms(use_true_random=False))
def test_arbitrary_loops_on_a_coarse_grid_keep_the_invariants(
    loops: list[LoopArray], rnd: object
) -> None:
    # Small integer grids make crossings, touching, collinear and repeated loops common.
    a = analyze_loops(loops)
    n = len(loops)
    assert a.bounds.shape == (n, 4) and len(a.invalid_reason) == n
    assert a.valid.tolist() == [r is None for r in a.invalid_reason]
    assert (a.is_hole == (a.in_nesting & (a.depth % 2 == 1))).all()
    assert (a.depth[~a.in_nesting] == 0).all() and (a.parent[~a.in_nesting] == -1).all()
    for i in range(n):
        if a.parent[i] >= 0:
            assert a.in_nesting[a.parent[i]] and a.duplicate_of[a.parent[i]] == -1
            assert a.area[a.parent[i]] >= a.area[i]
        assert (a.depth[i] > 0) == (a.parent[i] >= 0)
    perm = list(range(n))
    rnd.shuffle(perm)  # type: ignore[attr-defined]
    assert_order_independent(loops, perm)


def test_signed_area_of_one_loop_is_positive_counter_clockwise_and_zero_below_three() -> None:
    assert signed_area(square(1000, -2000, 3)) == 9.0
    assert signed_area(square(1000, -2000, 3, cw=True)) == -9.0
    assert signed_area(np.array([[0, 0], [5, 5]], dtype=np.float32)) == 0.0


def test_signed_area_agrees_with_the_nesting_analysis() -> None:
    loops = [regular(7, 30.0, 5, 5), square(0, 0, 4, cw=True), BOW_TIE]
    analysis = analyze_loops(loops)
    assert [signed_area(loop) for loop in loops] == pytest.approx(analysis.signed_area.tolist())
