"""Part designs of the synthetic build: what each CLF file holds, layer range by layer range.

A design returns the file's models and its `Segment`s: runs of consecutive layers whose
section does not change with z. The shapes of a segment are built once and shared by all
its layers, which is what makes a 3,000-layer build cheap to generate. Nesting is known
by construction (`Cluster.inside`), so the ground truth never depends on the geometry
code that the analysis itself uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from clf_analysis.clf import LoopArray, PolygonFormat, Shape
from clf_analysis.synth import geometry as g

SELF_INTERSECTION = "self-intersection"


@dataclass(frozen=True)
class Cluster:
    """One MODEL cluster: loops[0] the outer boundary, the rest its holes.

    `inside` is (cluster index, loop index) within the same segment of the loop that
    directly encloses this cluster's outer loop (an island in a hole), or None.
    `invalid` names the defect of a deliberately broken single-loop cluster.
    """

    model_id: int
    loops: tuple[LoopArray, ...]
    inside: tuple[int, int] | None = None
    invalid: str | None = None


@dataclass(frozen=True)
class Segment:
    """Layers k_from..k_to (z = k × thickness) share these clusters and line shapes."""

    k_from: int
    k_to: int
    clusters: tuple[Cluster, ...] = ()
    lines: tuple[Shape, ...] = ()

    @property
    def layer_count(self) -> int:
        return self.k_to - self.k_from + 1

    @cached_property
    def shapes(self) -> tuple[Shape, ...]:
        """The layer's shapes in file order: MODEL clusters first, then line geometry."""
        models = tuple(Shape(c.model_id, "model", c.loops) for c in self.clusters)
        return models + self.lines


@dataclass(frozen=True)
class Placement:
    """Where a file's geometry sits: the square of side `size` centred on (cx, cy)."""

    cx: float
    cy: float
    size: float


@dataclass(frozen=True)
class FileDesign:
    """The content of one CLF file: its models (id, name) and its segments in z order."""

    design: str
    models: tuple[tuple[int, str], ...]
    segments: tuple[Segment, ...]


class Sampler:
    """Vertex counts for sampled curves, drawn from the build's seeded generator."""

    def __init__(self, rng: np.random.Generator, vertices: tuple[int, int]) -> None:
        self.rng = rng
        self.lo, self.hi = vertices

    def n(self) -> int:
        return int(self.rng.integers(self.lo, self.hi + 1))

    def uniform(self, lo: float, hi: float) -> float:
        return float(self.rng.uniform(lo, hi))


def split(k0: int, k1: int, fractions: Sequence[float]) -> list[tuple[int, int]]:
    """Cut layers k0..k1 at the given fractions (first must be 0) into non-empty runs."""
    span = k1 - k0 + 1
    starts = sorted({k0 + min(round(f * span), span - 1) for f in fractions})
    ends = [s - 1 for s in starts[1:]] + [k1]
    return list(zip(starts, ends, strict=True))


DesignFn = Callable[[Sampler, Placement, int, int, str], FileDesign]


def round_bar(s: Sampler, p: Placement, k0: int, k1: int, tag: str) -> FileDesign:
    """A solid cylinder: one loop at every height."""
    loop = g.circle(p.cx, p.cy, p.size / 2, s.n())
    return FileDesign(
        "round_bar", ((1, f"RoundBar_{tag}"),), (Segment(k0, k1, (Cluster(1, (loop,)),)),)
    )


def tube(s: Sampler, p: Placement, k0: int, k1: int, tag: str) -> FileDesign:
    """A tube: outer boundary and one hole, both circles."""
    r = p.size / 2
    outer = g.circle(p.cx, p.cy, r, s.n())
    hole = g.circle(p.cx, p.cy, r * s.uniform(0.4, 0.7), s.n(), clockwise=True)
    return FileDesign(
        "tube", ((1, f"Tube_{tag}"),), (Segment(k0, k1, (Cluster(1, (outer, hole)),)),)
    )


def block_with_holes(s: Sampler, p: Placement, k0: int, k1: int, tag: str) -> FileDesign:
    """A 4-vertex rectangle with 2-5 circular holes in a row."""
    w, h = p.size, p.size * s.uniform(0.6, 1.0)
    x0, y0 = p.cx - w / 2, p.cy - h / 2
    count = int(s.rng.integers(2, 6))
    pitch = w / count
    radius = 0.3 * min(pitch, h)
    holes = tuple(
        g.circle(x0 + pitch * (i + 0.5), p.cy, radius, s.n(), clockwise=True) for i in range(count)
    )
    block = g.rectangle(x0, y0, x0 + w, y0 + h)
    return FileDesign(
        "block_with_holes",
        ((1, f"Block_{tag}"),),
        (Segment(k0, k1, (Cluster(1, (block, *holes)),)),),
    )


def island_in_hole(s: Sampler, p: Placement, k0: int, k1: int, tag: str) -> FileDesign:
    """An outer ring whose hole holds an island: the island is a second MODEL cluster."""
    r = p.size / 2
    outer = g.circle(p.cx, p.cy, r, s.n())
    hole = g.circle(p.cx, p.cy, 0.7 * r, s.n(), clockwise=True)
    island = g.circle(p.cx, p.cy, 0.35 * r, s.n())
    clusters = (Cluster(1, (outer, hole)), Cluster(1, (island,), inside=(0, 1)))
    return FileDesign("island_in_hole", ((1, f"IslandInHole_{tag}"),), (Segment(k0, k1, clusters),))


def merging_islands(s: Sampler, p: Placement, k0: int, k1: int, tag: str) -> FileDesign:
    """Two separate round solids that become one stadium-shaped loop from mid-height up."""
    r = p.size / 2
    offset, radius = 0.55 * r, 0.4 * r
    left = g.circle(p.cx - offset, p.cy, radius, s.n())
    right = g.circle(p.cx + offset, p.cy, radius, s.n())
    merged = g.stadium(p.cx, p.cy, offset, radius, s.n())
    (a0, a1), (b0, b1) = split(k0, k1, (0.0, s.uniform(0.3, 0.6)))
    segments = (
        Segment(a0, a1, (Cluster(1, (left,)), Cluster(1, (right,)))),
        Segment(b0, b1, (Cluster(1, (merged,)),)),
    )
    return FileDesign("merging_islands", ((1, f"Merging_{tag}"),), segments)


def stepped_holes(s: Sampler, p: Placement, k0: int, k1: int, tag: str) -> FileDesign:
    """A block whose holes appear and disappear with z: 0, then 3, then 1, then 2 holes."""
    w, h = p.size, 0.7 * p.size
    x0, y0 = p.cx - w / 2, p.cy - h / 2
    block = g.rectangle(x0, y0, x0 + w, y0 + h)
    pitch = w / 3
    slots = [
        g.circle(x0 + pitch * (i + 0.5), p.cy, 0.3 * min(pitch, h), s.n(), clockwise=True)
        for i in range(3)
    ]
    big = g.circle(p.cx, p.cy, 0.35 * h, s.n(), clockwise=True)
    holes_by_step: list[tuple[LoopArray, ...]] = [(), tuple(slots), (big,), (slots[0], slots[2])]
    runs = split(k0, k1, (0.0, 0.2, 0.45, 0.7))
    segments = tuple(
        Segment(a, b, (Cluster(1, (block, *holes)),))
        for (a, b), holes in zip(runs, holes_by_step, strict=False)
    )
    return FileDesign("stepped_holes", ((1, f"SteppedHoles_{tag}"),), segments)


def twin_models(s: Sampler, p: Placement, k0: int, k1: int, tag: str) -> FileDesign:
    """One file, two models: a cylinder (id 1) and a shorter block with a hole (id 2)."""
    half = p.size / 2
    bar = g.circle(p.cx - half / 2, p.cy, 0.45 * half, s.n())
    bx, side = p.cx + half / 2, 0.85 * half
    block = g.rectangle(bx - side / 2, p.cy - side / 2, bx + side / 2, p.cy + side / 2)
    hole = g.circle(bx, p.cy, 0.25 * side, s.n(), clockwise=True)
    (a0, a1), (b0, b1) = split(k0, k1, (0.0, 0.6))
    segments = (
        Segment(a0, a1, (Cluster(1, (bar,)), Cluster(2, (block, hole)))),
        Segment(b0, b1, (Cluster(1, (bar,)),)),
    )
    return FileDesign("twin_models", ((1, f"TwinBar_{tag}"), (2, f"TwinBlock_{tag}")), segments)


def reversed_tube_with_defect(s: Sampler, p: Placement, k0: int, k1: int, tag: str) -> FileDesign:
    """A tube wound the wrong way (outer CW, hole CCW) with a bow-tie on a few layers.

    The bow-tie is a separate cluster in the corner of the footprint, outside the tube,
    so that it cannot change the nesting of the valid loops.
    """
    r = p.size / 2
    outer = g.circle(p.cx, p.cy, 0.8 * r, s.n(), clockwise=True)
    hole = g.circle(p.cx, p.cy, 0.5 * r, s.n())
    tie = g.bow_tie(p.cx + 0.7 * r, p.cy + 0.7 * r, p.cx + 0.95 * r, p.cy + 0.95 * r)
    plain = (Cluster(1, (outer, hole)),)
    broken = (*plain, Cluster(1, (tie,), invalid=SELF_INTERSECTION))
    span = k1 - k0 + 1
    # Two adjacent defective layers and one isolated one; clamped for very short parts.
    first = k0 + span // 4
    defective = sorted({first, min(first + 1, k1), k0 + (7 * span) // 10})
    segments: list[Segment] = []
    start = k0
    for k in defective:
        if k > start:
            segments.append(Segment(start, k - 1, plain))
        segments.append(Segment(k, k, broken))
        start = k + 1
    if start <= k1:
        segments.append(Segment(start, k1, plain))
    return FileDesign("reversed_tube_with_defect", ((1, f"ReversedTube_{tag}"),), tuple(segments))


# The analysed part designs, in the order they are handed out (and cycled).
PART_DESIGNS: tuple[tuple[str, str, DesignFn], ...] = (
    ("round_bar", "Build Plate/Round Bar {n:02d}", round_bar),
    ("tube", "Build Plate/Tube {n:02d}", tube),
    ("block_with_holes", "Build Plate/Block With Holes {n:02d}", block_with_holes),
    ("island_in_hole", "Build Plate/Island In Hole {n:02d}", island_in_hole),
    ("merging_islands", "Build Plate/Merging Islands {n:02d}", merging_islands),
    ("stepped_holes", "Build Plate/Stepped Holes {n:02d}", stepped_holes),
    ("twin_models", "Pairs/Twin Parts {n:02d}", twin_models),
    (
        "reversed_tube_with_defect",
        "Build Plate/Defects/Reversed Tube {n:02d}",
        reversed_tube_with_defect,
    ),
)

# Part files in folders the default exclusion list skips, with the pattern expected to
# match first (checked against the packaged list by the tests, not assumed here).
EXCLUDED_DESIGNS: tuple[tuple[str, str, str, DesignFn], ...] = (
    ("excluded_support_block", "Supports/Pillars {n:02d}", "Supports", block_with_holes),
    ("excluded_coupon", "Coupon {n}", "Coupon", round_bar),
    ("excluded_birdcage", "Birdcage {n:02d}", "Birdcage", tube),
    ("excluded_skin", "Build Plate/Skin Set {n:02d}/s_Skin", "s_Skin", tube),
)


def lattice_net(s: Sampler, p: Placement, k0: int, k1: int) -> FileDesign:
    """`Net.clf`: WEB line geometry whose pattern alternates every few layers.

    Each segment holds DASHED polygons (pairs of vertices = separate segments), OPEN
    zig-zag polylines and one CLOSED frame, like the lattices that surround real parts.
    """
    half = p.size / 2
    x0, x1, y0, y1 = p.cx - half, p.cx + half, p.cy - half, p.cy + half
    lines_per_pattern = 6
    ticks = np.linspace(-half, half, lines_per_pattern + 2)[1:-1]
    # Pattern A: segments along x; pattern B: along y. Vertex pairs, as DASHED stores them.
    along_x = np.array([[(x0, p.cy + t), (x1, p.cy + t)] for t in ticks]).reshape(-1, 2)
    along_y = np.array([[(p.cx + t, y0), (p.cx + t, y1)] for t in ticks]).reshape(-1, 2)
    zig_n = 24
    run = np.linspace(-half, half, zig_n)
    swing = np.where(np.arange(zig_n) % 2 == 0, -0.9 * half, 0.9 * half)
    zig_x = np.column_stack((p.cx + run, p.cy + swing))
    zig_y = np.column_stack((p.cx + swing, p.cy + run))
    frame = g.rectangle(x0, y0, x1, y1)

    def web(kind: str, pts: np.ndarray) -> Shape:
        return Shape(1, kind, (np.asarray(pts, dtype=np.float32),))  # type: ignore[arg-type]

    patterns = (
        (web("dashed", along_x), web("open", zig_x), web("closed", frame)),
        (web("dashed", along_y), web("open", zig_y), web("closed", frame)),
    )
    period = 20  # layers: 1 mm at 0.05 mm, the pitch of a typical lattice cell
    segments = tuple(
        Segment(a, min(a + period - 1, k1), lines=patterns[i % 2])
        for i, a in enumerate(range(k0, k1 + 1, period))
    )
    return FileDesign("lattice_net", ((1, "Net"),), segments)


def wafer_support(p: Placement, k0: int, k1: int) -> FileDesign:
    """`WaferSupport.clf`: SUPPORT clusters (thin walls as lines) under a part's footprint."""
    half = p.size / 2
    x0, x1, y0, y1 = p.cx - half, p.cx + half, p.cy - half, p.cy + half
    ticks = np.linspace(-half, half, 7)[1:-1]
    grid = np.array(
        [[(x0, p.cy + t), (x1, p.cy + t)] for t in ticks]
        + [[(p.cx + t, y0), (p.cx + t, y1)] for t in ticks]
    ).reshape(-1, 2)
    zig_n = 16
    zig = np.column_stack((np.linspace(x0, x1, zig_n), np.where(np.arange(zig_n) % 2 == 0, y0, y1)))

    def support(fmt: PolygonFormat, pts: np.ndarray) -> Shape:
        return Shape(1, "support", (np.asarray(pts, dtype=np.float32),), line_format=fmt)

    lines = (
        support(PolygonFormat.DASHED, grid),
        support(PolygonFormat.OPEN, zig),
        support(PolygonFormat.CLOSED, g.rectangle(x0, y0, x1, y1)),
    )
    return FileDesign("wafer_support", ((1, "WaferSupport"),), (Segment(k0, k1, lines=lines),))
