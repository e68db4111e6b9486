"""Builds at the edges of the format: odd thicknesses, repeated heights, float32 tops,
big machine-data members. Each one either analyses correctly or fails with one clear
AnalysisError; nothing else escapes."""

from __future__ import annotations

import json

import pytest
from package_builders import cube_clf, write_package

from clf_analysis.abp.archive import ArchiveLimits
from clf_analysis.pipeline.errors import AnalysisError
from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import RunOptions, run

PARAMS = AnalysisParams(holes_interval=0.6, clean_platform_heights=(1.0,))


def test_holes_view_at_the_top_layer_despite_float32_heights(tmp_path):
    # 1.8 is stored as 1.79999995: the top view must still be there.
    zs = [round(0.05 * k, 4) for k in range(1, 37)]
    write_package(tmp_path, "top", {"Models/Cube/Part.clf": cube_clf(zs, 0.05)})
    result = run("top", PARAMS, midas_base_path=tmp_path)
    holes = sorted(p.name for p in (result.output_dir / "holes_views").iterdir())
    assert "combined_holes_platform_view_1.8mm.png" in holes
    assert len(holes) == 4  # 0.0, 0.6, 1.2, 1.8


def test_a_repeated_layer_height_counts_once_and_is_reported(tmp_path):
    zs = [0.05, 0.1, 0.1, 0.15]
    write_package(tmp_path, "dup", {"Models/Cube/Part.clf": cube_clf(zs, 0.05)})
    result = run("dup", PARAMS, midas_base_path=tmp_path)
    info = json.loads(result.summary_path.read_text())
    (part,) = info["parts"]
    assert part["layer_count"] == 3
    assert part["volume_mm3"] == pytest.approx(3 * 16 * 0.05, rel=1e-6)
    assert any("repeat the height" in w for w in info["warnings"])
    stats = {s["z"]: s for s in info["layer_stats"]}
    assert stats[0.1]["total_area_mm2"] == pytest.approx(16.0)


def test_a_thickness_finer_than_the_height_names_is_refused_naming_the_file(tmp_path):
    write_package(tmp_path, "thin", {"Models/Thin/Part.clf": cube_clf([1e-5, 2e-5], 1e-5)})
    with pytest.raises(AnalysisError, match="thickness") as caught:
        run("thin", PARAMS, midas_base_path=tmp_path)
    assert caught.value.stage == "layers" and caught.value.file == "Thin/Part.clf"
    assert not (tmp_path / "thin" / "clf_analysis").exists()


def test_the_configured_archive_limits_hold_in_every_stage(tmp_path):
    # 4 MiB of zeros compresses ~1000x: unsafe by default, accepted when configured so.
    members = {
        "Models/Cube/Part.clf": cube_clf([0.05, 0.1], 0.05),
        "StartPlate/plate.xml": b"\0" * (4 << 20),
    }
    write_package(tmp_path, "xml", members)
    with pytest.raises(AnalysisError, match="ratio"):
        run("xml", PARAMS, midas_base_path=tmp_path)
    lenient = RunOptions(archive_limits=ArchiveLimits(max_ratio=1e6), processes=2)
    result = run("xml", PARAMS, midas_base_path=tmp_path, options=lenient)
    assert json.loads(result.summary_path.read_text())["parts"]


def test_a_corrupt_member_fails_as_an_analysis_error_naming_the_file(tmp_path):
    folder = write_package(tmp_path, "crc", {"Models/Cube/Part.clf": cube_clf([0.05, 0.1], 0.05)})
    package = next(folder.glob("*.abp"))
    raw = bytearray(package.read_bytes())
    data_at = raw.index(b"Models/Cube/Part.clf") + len("Models/Cube/Part.clf") + 10
    raw[data_at] ^= 0xFF  # inside the deflated data: the CRC no longer matches
    package.write_bytes(bytes(raw))
    with pytest.raises(AnalysisError) as caught:
        run("crc", PARAMS, midas_base_path=tmp_path)
    assert caught.value.file == "Cube/Part.clf"


def test_cancel_is_checked_for_every_layer_written(tmp_path):
    zs = [round(0.05 * k, 4) for k in range(1, 41)]
    write_package(tmp_path, "cx", {"Models/Cube/Part.clf": cube_clf(zs, 0.05)})
    stage = {"now": ""}
    checks: dict[str, int] = {}

    def progress(name: str, fraction: float, message: str) -> None:
        stage["now"] = name

    def is_cancelled() -> bool:
        checks[stage["now"]] = checks.get(stage["now"], 0) + 1
        return False

    run("cx", PARAMS, midas_base_path=tmp_path, progress=progress, is_cancelled=is_cancelled)
    assert checks["layers"] >= 40 and checks["pathdata"] >= 40
