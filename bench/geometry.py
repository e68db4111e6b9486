"""Micro-benchmark of geometry.analyze_loops and BuildStats on typical layer shapes.

Prints one row per case: loops and vertices per call, microseconds per call, the budget
and the ratio against it, and what 100,000 such calls (30 files x 3,500 layers) would cost.
Budgets: 200 us for 1-3 loops and 2 ms for ~30 loops (the brief, so that geometry takes a
small share of the 60 s build on 2 cores); larger layers scaled from those.
Run: .venv/bin/python bench/geometry.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from clf_analysis.clf.types import LoopArray
from clf_analysis.geometry import BuildStats, analyze_loops


def circle(n: int, r: float, cx: float = 0.0, cy: float = 0.0, cw: bool = False) -> LoopArray:
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    if cw:
        t = -t
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)]).astype(np.float32)


def plate(parts: int, vertices: int, holes: int) -> list[LoopArray]:
    """`parts` separate discs on a grid, each with `holes` small holes."""
    loops = []
    side = int(np.ceil(np.sqrt(parts)))
    for p in range(parts):
        cx, cy = (p % side) * 30.0 - 90.0, (p // side) * 30.0 - 90.0
        loops.append(circle(vertices, 12.0, cx, cy))
        for h in range(holes):
            a = 2 * np.pi * h / max(holes, 1)
            loops.append(circle(vertices // 4, 1.5, cx + 7 * np.cos(a), cy + 7 * np.sin(a), True))
    return loops


def per_call_us(fn: Callable[[], object], batch_time: float = 0.1, repeats: int = 5) -> float:
    """CPU microseconds per call, best of `repeats` batches.

    CPU time (not wall time) because the machine is shared: other processes then cost
    cache misses at most, not whole preempted time slices.
    """
    fn()
    calls, start = 0, time.process_time()
    while time.process_time() - start < batch_time:
        fn()
        calls += 1
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time() - start) / calls)
    return best * 1e6


def main() -> None:
    cases = [
        ("1 loop, 100 v", [circle(100, 10)], 200.0),
        ("1 loop, 400 v", [circle(400, 10)], 200.0),
        ("tube (2 loops, 400 v)", [circle(400, 10), circle(400, 8, cw=True)], 200.0),
        ("3 nested, 400 v", [circle(400, 10), circle(400, 8, cw=True), circle(400, 4)], 200.0),
        ("1 part, 5 holes", plate(1, 400, 5), 2000.0),
        ("10 parts, 2 holes", plate(10, 200, 2), 2000.0),
        ("30 parts, 0 holes", plate(30, 300, 0), 2000.0),
        ("30 parts, 2 holes", plate(30, 200, 2), 5000.0),
        ("300 lattice loops", plate(300, 40, 0), 20000.0),
    ]
    print(
        f"{'case':28} {'loops':>6} {'vertices':>9} {'us/call':>9} {'budget us':>10} "
        f"{'ratio':>6} {'s/100k':>7}"
    )
    for name, loops, budget in cases:
        us = per_call_us(lambda loops=loops: analyze_loops(loops))
        vertices = sum(len(loop) for loop in loops)
        print(
            f"{name:28} {len(loops):6d} {vertices:9d} {us:9.1f} {budget:10.0f} "
            f"{us / budget:6.2f} {us * 0.1:7.1f}"
        )

    loops = plate(10, 200, 2)
    analysis = analyze_loops(loops)
    owners = np.repeat(np.arange(10), 3)
    names = {i: f"model {i}" for i in range(10)}
    stats = BuildStats()
    z = [0.05]

    def add() -> None:
        z[0] += 0.05
        stats.add_layer("Models/A", "Part.clf", z[0], 0.05, analysis, owners, names)

    us = per_call_us(add)
    name = "BuildStats.add_layer 10 parts"
    print(f"{name:28} {len(loops):6d} {'':9} {us:9.1f} {200:10.0f} {us / 200:6.2f} {us * 0.1:7.1f}")


if __name__ == "__main__":
    main()
