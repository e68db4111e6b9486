"""Benchmark: a full analysis of a generated build of realistic size.

Prints total and per-stage time, layers/s, output MB/s and the peak memory of the whole
process tree (parent + pool processes, sampled from /proc), against the goals of issue 3
(< 60 s, < 2 GiB on 2 cores) and the legacy service (~25 min for a build of that size).

    python bench/analysis.py [--parts 24] [--height 150] [--processes 2] [--out bench-out]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import RunOptions, run
from clf_analysis.synth import generate_build

LEGACY_SECONDS = 25 * 60
GOAL_SECONDS = 60.0
GOAL_BYTES = 2 * 1024**3


def _tree_rss(root: int) -> int:
    """Resident bytes of `root` and all its descendants (Linux /proc)."""
    total = 0
    stack = [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as fh:
                    stack.extend(int(c) for c in fh.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


class PeakMemory:
    def __init__(self, interval: float = 0.05) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)

    def _sample(self, interval: float) -> None:
        pid = os.getpid()
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss(pid))
            time.sleep(interval)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", type=int, default=24)
    parser.add_argument("--height", type=float, default=150.0)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=Path("bench-out"))
    args = parser.parse_args()

    build_id = f"bench-{args.parts}x{int(args.height)}"
    build_dir = args.out / build_id
    if not (build_dir / "ground_truth.json").exists():
        t0 = time.perf_counter()
        generate_build(args.out, build_id=build_id, parts=args.parts, height_mm=args.height)
        print(f"generated {build_id} in {time.perf_counter() - t0:.1f} s")

    with PeakMemory() as memory:
        t0 = time.perf_counter()
        result = run(
            build_id,
            AnalysisParams(),
            midas_base_path=args.out,
            options=RunOptions(processes=args.processes),
        )
        seconds = time.perf_counter() - t0
    out_bytes = _dir_bytes(result.output_dir)
    pathdata_bytes = _dir_bytes(result.output_dir / "imagePathRawData-")
    files = len(list((result.output_dir / "imagePathRawData-").iterdir()))
    import json

    info = json.loads(result.summary_path.read_text())
    file_layers = sum(f["layers_indexed"] for f in info["files_analyzed"])

    rows = [
        ("analysed part files", f"{len(info['files_analyzed'])}", ""),
        ("layer heights / file layers", f"{result.layers} / {file_layers}", ""),
        ("processes", str(args.processes), ""),
        ("total time", f"{seconds:.1f} s", f"goal < {GOAL_SECONDS:.0f} s: "
         f"{'met' if seconds < GOAL_SECONDS else 'MISSED'}; "
         f"{LEGACY_SECONDS / seconds:.0f}x faster than legacy ~25 min"),
        *((f"  stage {k}", f"{v:.2f} s", "") for k, v in result.timings.items()),
        ("file layers / s", f"{file_layers / result.timings['layers']:.0f}", "layer stage"),
        ("path data written", f"{pathdata_bytes / 1e6:.0f} MB in {files} files", ""),
        ("output MB/s", f"{out_bytes / 1e6 / seconds:.1f}", f"{out_bytes / 1e6:.0f} MB in all"),
        ("peak memory (tree RSS)", f"{memory.peak / 2**20:.0f} MiB",
         f"goal < 2048 MiB: {'met' if memory.peak < GOAL_BYTES else 'MISSED'}"),
    ]  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"\nanalysis of {build_id} ({result.output_dir})")
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>22}  {note}")
    return 0 if seconds < GOAL_SECONDS and memory.peak < GOAL_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
