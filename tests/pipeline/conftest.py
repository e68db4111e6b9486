"""A synthetic build analysed once per session; tests read its published outputs."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import RunOptions, RunResult, run
from clf_analysis.synth import GeneratedBuild, GroundTruth, generate_build, load_ground_truth


@dataclass(frozen=True)
class Analysed:
    build: GeneratedBuild
    truth: GroundTruth
    result: RunResult
    info: dict[str, Any]

    @property
    def out(self) -> Path:
        return self.result.output_dir

    def layer(self, z: float) -> list[dict[str, Any]]:
        name = f"platform_layer_pathdata_{round(z, 4)}mm.json"
        return json.loads((self.out / "imagePathRawData-" / name).read_text())


@pytest.fixture(scope="session")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> Analysed:
    """The default demo build analysed inline, with composite views."""
    base = tmp_path_factory.mktemp("midas")
    build = generate_build(base, build_id="271360", height_mm=12.0, seed=3)
    result = run(
        "271360",
        AnalysisParams(holes_interval=5, create_composite_views=True, hole_heights=(7.3,)),
        midas_base_path=base,
        options=RunOptions(processes=1),
    )
    info = json.loads(result.summary_path.read_text())
    return Analysed(build, load_ground_truth(build.ground_truth), result, info)


@pytest.fixture()
def fresh_build(tmp_path: Path) -> GeneratedBuild:
    """A small build of its own, for tests that change or break outputs."""
    return generate_build(tmp_path, build_id="b-1", parts=3, height_mm=3.0, seed=1)


def copy_build(build: GeneratedBuild, base: Path) -> Path:
    target = base / build.build_id
    shutil.copytree(build.build_dir, target)
    return target
