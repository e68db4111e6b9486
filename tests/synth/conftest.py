"""Builds shared by the synth tests: generated once per session, read-only afterwards."""

from __future__ import annotations

import pytest

from clf_analysis.synth import GeneratedBuild, GroundTruth, generate_build, load_ground_truth


@pytest.fixture(scope="session")
def demo_build(tmp_path_factory: pytest.TempPathFactory) -> GeneratedBuild:
    """The default demo build (8 part files, 20 mm, 0.05 mm layers)."""
    return generate_build(tmp_path_factory.mktemp("demo"))


@pytest.fixture(scope="session")
def demo_truth(demo_build: GeneratedBuild) -> GroundTruth:
    return load_ground_truth(demo_build.ground_truth)


@pytest.fixture(scope="session")
def crowded_build(tmp_path_factory: pytest.TempPathFactory) -> GeneratedBuild:
    """Designs cycled three times (24 part files) on a short build: layout under pressure."""
    return generate_build(
        tmp_path_factory.mktemp("crowded"), build_id="crowded-24", parts=24, height_mm=3.0, seed=7
    )
