"""The routes that hand out an analysis's outputs return them whole, legacy fields included."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import run
from clf_analysis.synth import generate_build

SCHEMAS = resources.files("clf_analysis.pipeline") / "schemas"


@pytest.fixture
def analysed(midas: Path) -> Path:
    """A synthetic build in the MIDAS folder, analysed by the pipeline: its summary path."""
    generate_build(midas, build_id="synth-1", parts=3, height_mm=3.0, seed=1)
    return run("synth-1", AnalysisParams(), midas_base_path=midas).summary_path


def test_results_embed_platform_info_whole(client: FlaskClient, analysed: Path) -> None:
    on_disk = json.loads(analysed.read_bytes())
    body = client.get("/api/builds/synth-1/results").get_json()
    assert body["platform_info"] == on_disk
    legacy = json.loads((SCHEMAS / "platform_info.legacy.schema.json").read_text())
    assert list(Draft202012Validator(legacy).iter_errors(body["platform_info"])) == []
    # The legacy per-file samples and the per-height list both arrive, every entry.
    assert len(body["platform_info"]["layers"]) == len(on_disk["layers"]) > 0
    assert len(body["platform_info"]["heights"]) == body["layer_count"] == 60


def test_the_artifact_route_serves_platform_info_byte_for_byte(
    client: FlaskClient, analysed: Path
) -> None:
    response = client.get("/api/builds/synth-1/artifacts/platform_info.json")
    assert response.status_code == 200
    assert response.get_data() == analysed.read_bytes()


def test_layer_records_keep_the_legacy_fill_closed_string(
    client: FlaskClient, analysed: Path
) -> None:
    record_schema = json.loads((SCHEMAS / "pathdata_record.schema.json").read_text())
    records = client.get("/api/builds/synth-1/layers/1.0").get_json()
    assert records and all(r["fill_closed"] == "y" for r in records)
    for record in records:
        assert list(Draft202012Validator(record_schema).iter_errors(record)) == []
