"""A run's life: publish, cancel, failure, kill, locks. Old results are never harmed."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from clf_analysis.abp.archive import open_archive
from clf_analysis.abp.exclusions import load_exclusions
from clf_analysis.layout import LOCK_FILE, RUN_LOCK_FILE
from clf_analysis.pipeline.errors import AnalysisCancelled, AnalysisError, BuildLocked
from clf_analysis.pipeline.params import AnalysisParams
from clf_analysis.pipeline.publish import LockPolicy
from clf_analysis.pipeline.run import RunOptions, run

FAST = AnalysisParams(holes_interval=50, clean_platform_heights=(1.0,))


def _publish(build, **kw):
    return run(build.build_id, FAST, midas_base_path=build.build_dir.parent, **kw)


def _published_run_id(build) -> str:
    info = json.loads((build.build_dir / "clf_analysis" / "platform_info.json").read_text())
    return info["run_id"]


def _leftovers(build) -> list[str]:
    return [p.name for p in build.build_dir.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


def test_cancel_stops_within_a_layer_and_keeps_previous_results(fresh_build):
    first = _publish(fresh_build)
    calls = 0

    def is_cancelled() -> bool:
        nonlocal calls
        calls += 1
        return calls >= 25

    with pytest.raises(AnalysisCancelled):
        _publish(fresh_build, is_cancelled=is_cancelled)
    # The first True ended the run: no layer was analysed after it.
    assert calls == 25
    assert _published_run_id(fresh_build) == first.run_id
    assert _leftovers(fresh_build) == []
    runs = json.loads((fresh_build.build_dir / "processes_run.json").read_text())
    assert [r["status"] for r in runs["clf_analysis"]["runs"]] == ["completed", "cancelled"]


def test_progress_is_monotonic_and_reaches_one(fresh_build):
    seen: list[tuple[str, float]] = []
    _publish(fresh_build, progress=lambda stage, f, msg: seen.append((stage, f)))
    fractions = [f for _, f in seen]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    stages = [s for s, _ in seen]
    assert stages.index("layers") < stages.index("pathdata") < stages.index("images")


def _corrupt_one_coordinate(build, tmp_path: Path) -> tuple[str, float]:
    """Rewrite the package with a NaN in the middle of one part file's 10th layer."""
    package = build.archive
    with open_archive(package) as archive:
        part = load_exclusions(None).split(archive.part_files())[0][0]
        data = bytearray(archive.read(part))
        from clf_analysis.clf import open_clf

        clf = open_clf(bytes(data))
        layer = clf.layer(10)
        value = layer.shapes[0].loops[0][1, 0]
        needle = np.float32(value).tobytes()
        z = layer.z
    # The layer's own bytes: between its seek offset and the next layer's.
    offsets = sorted(clf._offsets)
    start = offsets[10]
    at = data.index(needle, start)
    data[at : at + 4] = np.float32(np.nan).tobytes()
    rebuilt = tmp_path / "rebuilt.abp"
    with zipfile.ZipFile(package) as src, zipfile.ZipFile(rebuilt, "w") as dst:
        for info in src.infolist():
            payload = bytes(data) if info.filename == part.member else src.read(info)
            dst.writestr(info, payload)
    os.replace(rebuilt, package)
    return part.key, z


def test_a_failure_names_stage_file_and_layer_and_keeps_previous_results(fresh_build, tmp_path):
    first = _publish(fresh_build)
    key, z = _corrupt_one_coordinate(fresh_build, tmp_path)
    with pytest.raises(AnalysisError) as caught:
        _publish(fresh_build)
    err = caught.value
    assert err.stage == "parse" and err.file == key and err.layer == pytest.approx(z)
    assert key in str(err) and "byte" in str(err)
    problem = err.to_problem()
    assert problem["stage"] == "parse" and problem["file"] == key
    assert _published_run_id(fresh_build) == first.run_id
    assert _leftovers(fresh_build) == []


def test_a_failure_in_a_pool_process_reaches_the_parent_intact(fresh_build, tmp_path):
    key, _ = _corrupt_one_coordinate(fresh_build, tmp_path)
    with pytest.raises(AnalysisError) as caught:
        _publish(fresh_build, options=RunOptions(processes=2))
    assert caught.value.stage == "parse" and caught.value.file == key


def test_run_killed_midway_leaves_old_results_readable(fresh_build):
    first = _publish(fresh_build)
    env = {**os.environ, "MIDAS_BASE_PATH": str(fresh_build.build_dir.parent)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "clf_analysis", "analyze", fresh_build.build_id, "--quiet",
         "--processes", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not any(".tmp-" in p.name for p in fresh_build.build_dir.iterdir()):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert _published_run_id(fresh_build) == first.run_id
    info = json.loads((fresh_build.build_dir / "clf_analysis" / "platform_info.json").read_text())
    assert info["parts"]
    # The next run clears what the killed one left and publishes.
    second = _publish(fresh_build)
    assert _published_run_id(fresh_build) == second.run_id
    assert _leftovers(fresh_build) == []


def test_a_reader_holding_the_lock_makes_publish_fail_cleanly(fresh_build):
    first = _publish(fresh_build)
    lock = fresh_build.build_dir / LOCK_FILE
    fd = os.open(lock, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        with pytest.raises(BuildLocked):
            _publish(fresh_build, options=RunOptions(lock_policy=LockPolicy(2, 0.01)))
    finally:
        os.close(fd)
    assert _published_run_id(fresh_build) == first.run_id
    assert _leftovers(fresh_build) == []


def test_a_second_run_of_the_same_build_is_refused_while_one_runs(fresh_build):
    fd = os.open(fresh_build.build_dir / RUN_LOCK_FILE, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(BuildLocked, match="another analysis"):
            _publish(fresh_build, options=RunOptions(lock_policy=LockPolicy(3, 0.01)))
    finally:
        os.close(fd)


@pytest.mark.parametrize("build_id", ["../etc", "a/b", "..", "nope"])
def test_bad_or_unknown_build_ids_fail_without_creating_anything(tmp_path, build_id):
    with pytest.raises(AnalysisError) as caught:
        run(build_id, FAST, midas_base_path=tmp_path)
    assert caught.value.stage == "prepare"
    assert list(tmp_path.iterdir()) == []


def test_unsafe_archive_is_refused_before_reading(tmp_path):
    build_dir = tmp_path / "evil"
    build_dir.mkdir()
    with zipfile.ZipFile(build_dir / "evil.abp", "w") as z:
        z.writestr("Models/../../escape.clf", b"x")
    with pytest.raises(AnalysisError, match=r"\.\.") as caught:
        run("evil", FAST, midas_base_path=tmp_path)
    assert caught.value.stage == "prepare"
    assert not (build_dir / "clf_analysis").exists()


def test_two_processes_give_the_same_outputs_as_one(fresh_build, tmp_path):
    inline = _publish(fresh_build)
    inline_info = json.loads(inline.summary_path.read_text())
    layers = {p.name: p.read_bytes() for p in (inline.output_dir / "imagePathRawData-").iterdir()}
    parallel = _publish(fresh_build, options=RunOptions(processes=2))
    info = json.loads(parallel.summary_path.read_text())
    assert info["parts"] == inline_info["parts"]
    assert info["layer_stats"] == inline_info["layer_stats"]
    for legacy in ("layers", "closed_paths_summary", "file_identifier_summary", "analysis_summary"):
        assert info[legacy] == inline_info[legacy]
    again = {p.name: p.read_bytes() for p in (parallel.output_dir / "imagePathRawData-").iterdir()}
    assert again == layers


def test_archive_limits_come_from_the_settings(fresh_build):
    from clf_analysis.config import load_settings
    from clf_analysis.pipeline.job import options_for

    settings = load_settings({"ARCHIVE_MAX_MEMBERS": "3"})
    with pytest.raises(AnalysisError, match="members") as caught:
        _publish(fresh_build, options=options_for(settings))
    assert caught.value.stage == "prepare"
    assert not (fresh_build.build_dir / "clf_analysis").exists()


def test_a_full_disk_fails_the_run_as_one_clear_error_and_keeps_old_results(fresh_build, tmp_path):
    import shutil
    import subprocess

    tiny = tmp_path / "tiny"
    tiny.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(tiny)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        shutil.copytree(fresh_build.build_dir, tiny / fresh_build.build_id)
        (tiny / fresh_build.build_id / "clf_analysis").mkdir()
        (tiny / fresh_build.build_id / "clf_analysis" / "platform_info.json").write_text("{}")
        with pytest.raises(AnalysisError, match="No space left") as caught:
            run(fresh_build.build_id, FAST, midas_base_path=tiny)
        assert caught.value.stage in ("layers", "pathdata", "images")
        # Paths in the message are relative to the share, also those written through.
        assert str(tiny) not in str(caught.value) and "/proc/" not in str(caught.value)
        build_dir = tiny / fresh_build.build_id
        assert (build_dir / "clf_analysis" / "platform_info.json").read_text() == "{}"
        assert [p.name for p in build_dir.iterdir() if ".tmp-" in p.name] == []
    finally:
        subprocess.run(["umount", str(tiny)], check=False)
