"""Digest of every published file of a few synthetic analyses: a refactoring's byte check.

Analyses synthetic builds like the ones the tests use (several designs and parameters,
composite and holes views, one run with 2 processes, one hand-made package with repeated
heights and open lines) and prints one sha256 per published file. Run it before and
after a change that must not change outputs, and diff the two listings:

    python bench/outputs_digest.py > before.txt
    ... change the code ...
    python bench/outputs_digest.py > after.txt && diff before.txt after.txt

Fields that differ on every run are blanked before hashing, and only those:
- platform_info.json: `run_id`, `job_id`, `generated_at`, `timings`, and `seconds` of each
  `files_analyzed` entry (wall-clock time);
- processes_run.json (beside the outputs): each run's `run_id`, `start_time`, `end_time`
  and `duration_seconds`.
Every other file (PNG images, layer path data) is hashed byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clf_analysis.clf import Box, Layer, Model, PolygonFormat, Shape, write_clf
from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import RunOptions, run
from clf_analysis.synth import generate_build

PER_RUN_INFO_KEYS = ("run_id", "job_id", "generated_at", "timings")
PER_RUN_LOG_KEYS = ("run_id", "start_time", "end_time", "duration_seconds")
BLANK = "<per run>"


@dataclass(frozen=True)
class Case:
    build_id: str
    build: dict[str, Any]  # generate_build keywords; empty for the hand-made package
    params: AnalysisParams
    processes: int


CASES = (
    # The pipeline tests' session build: composites, a holes interval and an extra height.
    Case(
        "271360",
        {"height_mm": 12.0, "seed": 3},
        AnalysisParams(holes_interval=5, create_composite_views=True, hole_heights=(7.3,)),
        1,
    ),
    # The small build of the API and legacy tests, on 2 processes, requested heights.
    Case(
        "b-1",
        {"parts": 3, "height_mm": 3.0, "seed": 1},
        AnalysisParams(
            holes_interval=1.5,
            create_composite_views=True,
            clean_platform_heights=(0.5, 2.0),
            hole_heights=(0.75,),
        ),
        2,
    ),
    # Every design (nine parts cycle past the eight), a finer layer, no path data.
    Case(
        "nine",
        {"parts": 9, "height_mm": 2.0, "layer_mm": 0.04, "seed": 2, "vertices": (12, 60)},
        AnalysisParams(holes_interval=0.5, pathdata=False),
        2,
    ),
    # Hand-made: repeated heights, a float32 top, an open line, a DASHED pair, two folders.
    Case("edge", {}, AnalysisParams(holes_interval=0.6, create_composite_views=True), 1),
)


def _square(half: float, cx: float) -> np.ndarray:
    return np.array(
        [[cx - half, -half], [cx + half, -half], [cx + half, half], [cx - half, half]],
        dtype=np.float32,
    )


def _edge_package(base: Path, build_id: str) -> None:
    zs = [round(0.05 * k, 4) for k in range(1, 37)]
    zs.insert(5, zs[4])  # one repeated height
    framed = (_square(4.0, 0.0), _square(1.0, 0.0)[::-1].copy())  # a square with a hole
    line = np.array([[10.0, 0.0], [12.0, 3.0], [14.0, 0.0]], dtype=np.float32)
    dashes = np.array([[-12.0, -8.0], [-8.0, -8.0]], dtype=np.float32)
    part = write_clf(
        None,
        models=[Model(1, "Framed", Box(-5, -5, 0, 15, 5, max(zs)), 0.05)],
        layers=[
            Layer(
                z=z,
                shapes=(
                    Shape(1, "model", framed),
                    Shape(1, "open", (line,)),
                    Shape(1, "dashed", (dashes,)),
                    Shape(1, "support", (line + 1,), PolygonFormat.OPEN),
                ),
            )
            for z in zs
        ],
    )
    other = write_clf(
        None,
        models=[Model(2, "Small", Box(20, -2, 0, 24, 2, 1.0), 0.05)],
        layers=[
            Layer(z=round(0.05 * k, 4), shapes=(Shape(2, "model", (_square(2.0, 22.0),)),))
            for k in range(1, 21)
        ],
    )
    folder = base / build_id
    folder.mkdir(parents=True)
    with zipfile.ZipFile(folder / f"preprocess build-{build_id}.abp", "w") as z:
        # A fixed member date: the package's sha256 is in platform_info.json.
        for name, data in (("Models/Framed/Part.clf", part), ("Models/Small/Part.clf", other)):
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)


def _normalised(name: str, data: bytes) -> bytes:
    if name == "platform_info.json":
        info = json.loads(data)
        for key in PER_RUN_INFO_KEYS:
            info[key] = BLANK
        for entry in info["files_analyzed"]:
            entry["seconds"] = BLANK
        return json.dumps(info, indent=2).encode()
    if name == "processes_run.json":
        log = json.loads(data)
        for entry in log["clf_analysis"]["runs"]:
            for key in PER_RUN_LOG_KEYS:
                entry[key] = BLANK
        return json.dumps(log, indent=2).encode()
    return data


def _published(folder: Path) -> Iterator[tuple[str, bytes]]:
    """(path relative to the build folder, bytes) of the outputs and the run log."""
    yield "processes_run.json", (folder / "processes_run.json").read_bytes()
    for path in sorted((folder / "clf_analysis").rglob("*")):
        if path.is_file():
            yield path.relative_to(folder).as_posix(), path.read_bytes()


def digest(case: Case, base: Path) -> list[str]:
    if case.build:
        generate_build(base, build_id=case.build_id, **case.build)
    else:
        _edge_package(base, case.build_id)
    run(
        case.build_id,
        case.params,
        midas_base_path=base,
        options=RunOptions(processes=case.processes),
    )
    lines = []
    for relative, data in _published(base / case.build_id):
        normalised = _normalised(Path(relative).name, data)
        lines.append(f"{hashlib.sha256(normalised).hexdigest()}  {case.build_id}/{relative}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--keep", type=Path, default=None, help="analyse here and keep it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        lines = [line for case in CASES for line in digest(case, base)]
    print("\n".join(lines))
    total = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    print(f"# {len(lines)} files, digest of the listing {total}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
