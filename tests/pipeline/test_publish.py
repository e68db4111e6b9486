import fcntl
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from clf_analysis.pipeline.errors import BuildLocked
from clf_analysis.pipeline.publish import (
    LOCK_FILE,
    OUTPUT_DIR,
    LockPolicy,
    exclusive_build_lock,
    record_run,
    recover_interrupted_swap,
    remove_stale_temp_dirs,
    swap_into_place,
    temp_output_dir,
)


def _make_output(path, marker):
    path.mkdir()
    (path / "platform_info.json").write_text(json.dumps({"marker": marker}))


def test_swap_replaces_previous_results_and_removes_them(tmp_path):
    _make_output(tmp_path / OUTPUT_DIR, "old")
    new = temp_output_dir(tmp_path, "r2")
    _make_output(new, "new")
    swap_into_place(tmp_path, new, "r2")
    live = json.loads((tmp_path / OUTPUT_DIR / "platform_info.json").read_text())
    assert live == {"marker": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [OUTPUT_DIR]


def test_first_publish_just_renames(tmp_path):
    new = temp_output_dir(tmp_path, "r1")
    _make_output(new, "first")
    swap_into_place(tmp_path, new, "r1")
    assert (tmp_path / OUTPUT_DIR / "platform_info.json").exists()
    assert not new.exists()


def test_interrupted_two_rename_swap_is_repaired(tmp_path):
    _make_output(tmp_path / f"{OUTPUT_DIR}.old-r9", "previous")
    recover_interrupted_swap(tmp_path)
    assert json.loads((tmp_path / OUTPUT_DIR / "platform_info.json").read_text()) == {
        "marker": "previous"
    }


def test_stale_temp_dirs_are_removed_but_not_the_live_output(tmp_path):
    _make_output(tmp_path / OUTPUT_DIR, "live")
    _make_output(temp_output_dir(tmp_path, "dead"), "x")
    _make_output(temp_output_dir(tmp_path, "mine"), "y")
    removed = remove_stale_temp_dirs(tmp_path, keep=temp_output_dir(tmp_path, "mine").name)
    assert [p.name for p in removed] == [temp_output_dir(tmp_path, "dead").name]
    assert (tmp_path / OUTPUT_DIR).exists() and temp_output_dir(tmp_path, "mine").exists()


def test_lock_writes_holder_hint_outside_output_dir(tmp_path):
    with exclusive_build_lock(tmp_path, "clf-analysis job j1 started now"):
        hint = (tmp_path / LOCK_FILE).read_text(encoding="utf-8")
    assert hint.startswith("clf-analysis job j1")
    assert not (tmp_path / OUTPUT_DIR / LOCK_FILE).exists()


def test_lock_held_shared_by_a_reader_process_gives_up_after_bounded_retries(tmp_path):
    lock = tmp_path / LOCK_FILE
    lock.touch()
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl,sys,time;f=open(sys.argv[1]);fcntl.flock(f,fcntl.LOCK_SH);"
            "print('held',flush=True);time.sleep(30)",
            str(lock),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "held"
        started = time.monotonic()
        with (
            pytest.raises(BuildLocked, match="locked"),
            exclusive_build_lock(tmp_path, "x", LockPolicy(attempts=3, delay_seconds=0.05)),
        ):
            pass
        assert time.monotonic() - started < 10
    finally:
        reader.kill()
        reader.wait()
    # Once the reader is gone the lock is ours again.
    with exclusive_build_lock(tmp_path, "x", LockPolicy(attempts=1)):
        fd = os.open(lock, os.O_RDONLY)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        os.close(fd)


def test_run_log_keeps_other_services_keys_and_appends(tmp_path):
    log = tmp_path / "processes_run.json"
    log.write_text(json.dumps({"layer_alignment": {"runs": [{"run_id": "a"}]}}))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(2):
        record_run(
            tmp_path,
            run_id=f"r{i}",
            start_time=start,
            end_time=start + timedelta(seconds=2.5),
            status="completed",
        )
    data = json.loads(log.read_text())
    assert data["layer_alignment"] == {"runs": [{"run_id": "a"}]}
    runs = data["clf_analysis"]["runs"]
    assert [r["run_id"] for r in runs] == ["r0", "r1"]
    assert runs[0]["duration_seconds"] == 2.5
    assert set(runs[0]) == {
        "run_id",
        "start_time",
        "end_time",
        "duration_seconds",
        "status",
        "timestamp_folder",
    }
    assert data["clf_analysis"]["description"] == "CLF analysis and platform path processing"


def test_unreadable_run_log_is_kept_aside_not_reset(tmp_path):
    log = tmp_path / "processes_run.json"
    log.write_text("{not json")
    now = datetime.now(UTC)
    aside = record_run(tmp_path, run_id="r", start_time=now, end_time=now, status="failed")
    assert aside is not None and aside.read_text() == "{not json"
    assert json.loads(log.read_text())["clf_analysis"]["runs"][0]["status"] == "failed"


def test_a_malformed_section_of_ours_is_kept_under_its_own_key(tmp_path):
    log = tmp_path / "processes_run.json"
    log.write_text(json.dumps({"clf_analysis": {"runs": "oops"}, "other": 1}))
    now = datetime.now(UTC)
    record_run(tmp_path, run_id="r", start_time=now, end_time=now, status="completed")
    data = json.loads(log.read_text())
    (kept,) = [k for k in data if k.startswith("clf_analysis.malformed-")]
    assert data[kept] == {"runs": "oops"} and data["other"] == 1
    assert [r["run_id"] for r in data["clf_analysis"]["runs"]] == ["r"]


def test_two_unreadable_logs_in_a_row_are_both_kept(tmp_path):
    log = tmp_path / "processes_run.json"
    now = datetime.now(UTC)
    for i in range(2):
        log.write_text(f"broken {i}")
        record_run(tmp_path, run_id=f"r{i}", start_time=now, end_time=now, status="failed")
    kept = sorted(p.read_text() for p in tmp_path.glob("processes_run.json.unreadable-*"))
    assert kept == ["broken 0", "broken 1"]


def test_an_exclusions_file_broken_after_start_fails_the_job_clearly(tmp_path):
    from clf_analysis.config import load_settings
    from clf_analysis.pipeline.errors import AnalysisError
    from clf_analysis.pipeline.job import options_for

    settings = load_settings({"EXCLUSIONS_FILE": str(tmp_path / "gone.json")})
    with pytest.raises(AnalysisError, match="EXCLUSIONS_FILE") as caught:
        options_for(settings)
    assert (caught.value.stage, caught.value.kind) == ("prepare", "config")
