"""Attacks through the build share's file system on a run (issue 16, defects 1 and 2).

Each test plants what someone with write access to the share could plant, runs a real
analysis and checks that nothing outside the build folder was written, created or
deleted, and that the run says clearly what it refused.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from clf_analysis.jobs.store import JobStore
from clf_analysis.layout import LOCK_FILE, OUTPUT_DIR, RUN_LOCK_FILE
from clf_analysis.pipeline.errors import AnalysisError
from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.run import RunOptions, run
from clf_analysis.render.plate import Plate
from clf_analysis.synth import GeneratedBuild, generate_build

FAST = AnalysisParams(holes_interval=50, clean_platform_heights=(1.0,))
# Small plate images: these tests are about where files go, not what they show.
OPTIONS = RunOptions(plate=Plate(210, 1))


def _build(base: Path, build_id: str) -> GeneratedBuild:
    return generate_build(base, build_id=build_id, parts=1, height_mm=1.0, seed=1)


def _run(base: Path, build_id: str) -> dict[str, object]:
    return run(build_id, FAST, midas_base_path=base, options=OPTIONS).to_legacy()


def _job_store_file(path: Path) -> bytes:
    """A real SQLite job store holding one job; returns its bytes."""
    store = JobStore.connect(f"sqlite:///{path}")
    store.submit("271360", {"holes_interval": 10.0})
    store.close()
    return path.read_bytes()


# Defect 1: lock files


def test_a_lock_file_linked_to_the_job_store_is_refused_and_the_store_untouched(tmp_path):
    base = tmp_path / "midas"
    build = _build(base, "b-1")
    state = tmp_path / "state"
    state.mkdir()
    db = state / "jobs.db"
    before = _job_store_file(db)
    (build.build_dir / LOCK_FILE).symlink_to(db)
    with pytest.raises(AnalysisError) as caught:
        _run(base, "b-1")
    err = caught.value
    assert (err.kind, err.stage) == ("unsafe_share", "publish")
    assert "b-1/.clf_analysis.lock is a symbolic link" in str(err)
    assert str(tmp_path) not in str(err)
    assert db.read_bytes() == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = JobStore.connect(f"sqlite:///{db}")
    try:
        assert [job.build_id for job in store.list_jobs()[0]] == ["271360"]
    finally:
        store.close()
    assert not (build.build_dir / OUTPUT_DIR).exists()


def test_a_lock_file_hard_linked_to_another_file_is_never_truncated(tmp_path):
    base = tmp_path / "midas"
    build = _build(base, "b-1")
    other = _build(base, "b-2")
    os.link(other.archive, build.build_dir / LOCK_FILE)
    package = other.archive.read_bytes()
    with pytest.raises(AnalysisError, match=r"b-1/\.clf_analysis\.lock has 2 hard links"):
        _run(base, "b-1")
    assert other.archive.read_bytes() == package


def test_a_dangling_run_lock_link_creates_nothing_outside_the_build(tmp_path):
    base = tmp_path / "midas"
    build = _build(base, "b-1")
    outside = tmp_path / "outside"
    outside.mkdir()
    (build.build_dir / RUN_LOCK_FILE).symlink_to(outside / "created.lock")
    with pytest.raises(AnalysisError) as caught:
        _run(base, "b-1")
    assert (caught.value.kind, caught.value.stage) == ("unsafe_share", "prepare")
    assert "b-1/.clf_analysis.run.lock is a symbolic link" in str(caught.value)
    assert list(outside.iterdir()) == []


# Defect 2: packages that are links


def test_a_package_linked_to_another_build_publishes_nowhere(tmp_path):
    base = tmp_path / "midas"
    good = _build(base, "good2")
    _run(base, "good2")
    published = (good.build_dir / OUTPUT_DIR / "platform_info.json").read_bytes()
    crosslink = base / "crosslink"
    crosslink.mkdir()
    (crosslink / "crosslink.abp").symlink_to(good.archive)
    with pytest.raises(AnalysisError) as caught:
        _run(base, "crosslink")
    err = caught.value
    assert (err.kind, err.stage) == ("unsafe_share", "prepare")
    assert "build 'crosslink': package crosslink/crosslink.abp is a symbolic link" in str(err)
    assert (good.build_dir / OUTPUT_DIR / "platform_info.json").read_bytes() == published
    assert sorted(p.name for p in crosslink.iterdir()) == ["crosslink.abp"]


def test_a_package_linked_to_the_base_root_writes_and_deletes_nothing_there(tmp_path):
    base = tmp_path / "midas"
    source = _build(tmp_path / "elsewhere", "root")
    base.mkdir()
    os.replace(source.archive, base / "root.abp")
    # A build whose name looks like a dead run's temp folder, with notes in it.
    lookalike = base / f"{OUTPUT_DIR}.tmp-{uuid.uuid4().hex}"
    lookalike.mkdir()
    (lookalike / "notes.txt").write_text("keep me")
    (lookalike / "x.abp").write_bytes(b"PK")
    build_dir = base / "b-1"
    build_dir.mkdir()
    (build_dir / "b-1.abp").symlink_to(base / "root.abp")
    with pytest.raises(AnalysisError, match=r"b-1/b-1\.abp is a symbolic link"):
        _run(base, "b-1")
    assert sorted(p.name for p in base.iterdir()) == sorted(["b-1", "root.abp", lookalike.name])
    assert (lookalike / "notes.txt").read_text() == "keep me"


def test_a_package_link_to_a_file_beside_it_is_analysed_into_its_own_build(tmp_path):
    base = tmp_path / "midas"
    build = _build(base, "b-1")
    real = build.archive.rename(build.build_dir / "b-1_v2.abp")
    (build.build_dir / "b-1.abp").symlink_to(real.name)
    result = _run(base, "b-1")
    assert result["output_dir"] == str(build.build_dir / OUTPUT_DIR)
    assert result["output_relpath"] == "b-1/clf_analysis"
    assert result["summary_relpath"] == "b-1/clf_analysis/platform_info.json"
    info = json.loads((build.build_dir / OUTPUT_DIR / "platform_info.json").read_text())
    assert info["build"]["id"] == "b-1" and info["build"]["archive"] == "b-1_v2.abp"


def test_the_output_folder_comes_from_the_build_id_not_the_package_location(tmp_path):
    base = tmp_path / "midas"
    build = _build(base, "b-1")
    result = _run(base, "b-1")
    assert result["output_dir"] == str(base.resolve() / "b-1" / OUTPUT_DIR)
    assert result["summary_path"] == str(base.resolve() / "b-1" / OUTPUT_DIR / "platform_info.json")
    assert Path(str(result["summary_path"])).is_file()
    assert build.build_dir.is_dir()


def test_a_live_output_folder_that_is_a_link_is_refused_before_the_analysis(tmp_path):
    base = tmp_path / "midas"
    build = _build(base, "b-1")
    other = _build(base, "b-2")
    _run(base, "b-2")
    before = sorted(p.name for p in (other.build_dir / OUTPUT_DIR).rglob("*"))
    (build.build_dir / OUTPUT_DIR).symlink_to(other.build_dir / OUTPUT_DIR)
    with pytest.raises(AnalysisError, match="b-1/clf_analysis is a symbolic link") as caught:
        _run(base, "b-1")
    assert caught.value.stage == "prepare"
    assert sorted(p.name for p in (other.build_dir / OUTPUT_DIR).rglob("*")) == before


def test_a_broken_package_error_names_it_relative_to_the_share(tmp_path):
    base = tmp_path / "midas"
    build = _build(base, "b-1")
    build.archive.write_bytes(b"not a zip at all")
    with pytest.raises(AnalysisError) as caught:
        _run(base, "b-1")
    message = str(caught.value)
    assert f"b-1/{build.archive.name}: not a readable ZIP archive" in message
    assert str(tmp_path) not in message and "/proc/" not in message


def test_analyze_path_puts_results_beside_the_package_in_the_folder_the_user_named(tmp_path):
    folder = _build(tmp_path / "mine", "b-1").build_dir
    via = tmp_path / "via"
    via.symlink_to(folder)  # the user's own link to their folder
    result = run(str(via / next(folder.glob("*.abp")).name), FAST, options=OPTIONS)
    assert result.output_dir == folder / OUTPUT_DIR
    assert result.summary_relpath == "b-1/clf_analysis/platform_info.json"
    assert (folder / OUTPUT_DIR / "platform_info.json").is_file()


def test_the_analyze_command_on_a_package_path_reports_the_results_beside_it(tmp_path):
    build = _build(tmp_path / "mine", "b-1")
    env = {**os.environ, "PLATE_PX_PER_MM": "1", "MIDAS_BASE_PATH": str(tmp_path / "none")}
    done = subprocess.run(
        [sys.executable, "-m", "clf_analysis", "analyze", str(build.archive), "--quiet",
         "--processes", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"output       {build.build_dir / OUTPUT_DIR}" in done.stdout
    assert (build.build_dir / OUTPUT_DIR / "platform_info.json").is_file()


# A later review: deep trees, files the service may not open, errors nobody foresaw

# Python's recursion limit is 1000 frames: shutil.rmtree failed on this.
DEEPER_THAN_RECURSION = 1200


def _runs_logged(build: GeneratedBuild) -> list[str]:
    log = json.loads((build.build_dir / "processes_run.json").read_text())
    return [r["status"] for r in log["clf_analysis"]["runs"]]


def test_a_deep_tree_in_the_results_neither_fails_the_publish_nor_later_runs(tmp_path, deep_tree):
    base = tmp_path / "midas"
    build = _build(base, "b-1")
    _run(base, "b-1")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    bottom = deep_tree(build.build_dir / OUTPUT_DIR, DEEPER_THAN_RECURSION)
    (bottom / "link").symlink_to(outside)  # unlinked, never followed
    assert _run(base, "b-1")["success"]  # the swap deletes the previous results
    assert _run(base, "b-1")["success"]
    assert _runs_logged(build) == ["completed"] * 3
    leftovers = [n for n in os.listdir(build.build_dir) if n.startswith(f"{OUTPUT_DIR}.")]
    assert leftovers == []
    assert (outside / "keep.txt").read_text() == "keep"


def test_a_deep_leftover_of_a_dead_run_is_deleted_by_the_next_run(tmp_path, deep_tree):
    base = tmp_path / "midas"
    build = _build(base, "b-1")
    _run(base, "b-1")
    leftover = build.build_dir / f"clf_analysis.old-{uuid.uuid4().hex}"
    leftover.mkdir()
    deep_tree(leftover, DEEPER_THAN_RECURSION)
    assert _run(base, "b-1")["success"]
    assert not leftover.exists()


def test_an_error_nobody_foresaw_fails_the_run_with_a_problem(tmp_path):
    # The job's progress channel breaking, say: before, the job's error was the bare
    # exception's type name.
    base = tmp_path / "midas"
    _build(base, "b-1")

    def progress(stage: str, fraction: float, message: str) -> None:
        raise BrokenPipeError(f"progress report lost ({base / 'b-1'})")

    with pytest.raises(AnalysisError) as caught:
        run("b-1", FAST, midas_base_path=base, options=OPTIONS, progress=progress)
    problem = caught.value.to_problem()
    assert (problem["type"], problem["stage"]) == ("internal", "prepare")
    assert "BrokenPipeError: progress report lost (b-1)" in str(problem["message"])


def test_a_build_folder_the_service_may_not_write_fails_the_run_naming_it(
    tmp_path, without_root_file_access
):
    base = tmp_path / "midas"
    build = _build(base, "b-1")
    build.build_dir.chmod(0o555)
    env = {**os.environ, "PLATE_PX_PER_MM": "1", "MIDAS_BASE_PATH": str(base)}
    try:
        done = subprocess.run(
            [*without_root_file_access, sys.executable, "-m", "clf_analysis", "analyze",
             "b-1", "--quiet", "--processes", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )  # fmt: skip
    finally:
        build.build_dir.chmod(0o755)
    assert done.returncode == 1, done.stderr
    assert (
        "failed: b-1/.clf_analysis.run.lock: permission denied to the service's user "
        "(stage prepare)" in done.stderr
    )
    assert "Traceback" not in done.stderr
    assert str(tmp_path) not in done.stderr


def test_a_package_behind_a_sparse_gap_fails_the_run_before_it_is_hashed(tmp_path):
    base = tmp_path / "midas"
    build = _build(base, "b-1")
    content = build.archive.read_bytes()
    with build.archive.open("wb") as fh:  # 2 GiB of nothing, then the package
        fh.seek(2 * 1024**3)
        fh.write(content)
    with pytest.raises(AnalysisError) as caught:
        _run(base, "b-1")
    assert (caught.value.kind, caught.value.stage) == ("bad_package", "prepare")
    assert "belong to no member (the first member starts at byte 2147483648)" in str(caught.value)
    assert not (build.build_dir / OUTPUT_DIR).exists()


def test_holes_views_are_capped_per_run_and_the_summary_says_so(tmp_path):
    # holes_interval 0.5 up a 210 mm build asks for 421 views (the 100-height cap on
    # requested heights does not limit it); every other one is drawn, and said to be.
    base = tmp_path / "midas"
    generate_build(base, build_id="tall", parts=1, height_mm=210.0, layer_mm=5.0, seed=1)
    params = AnalysisParams(holes_interval=0.5, clean_platform_heights=(1.0,), pathdata=False)
    result = run("tall", params, midas_base_path=base, options=OPTIONS)
    info = json.loads(result.summary_path.read_text())
    views = info["holes_views_interval"]
    assert views["interval_mm"] == 1.0 and views["total_views"] == 211
    assert len(list((result.output_dir / "holes_views").iterdir())) == 211
    assert (
        "holes_interval 0.5 mm from 0 to 210 mm asks for 421 holes views, more than 400: "
        "drawn every 1 mm instead (211 views)" in info["warnings"]
    )
    assert info["parameters"]["holes_interval"] == 0.5  # what was asked stays on record
