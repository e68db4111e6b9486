import fcntl
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from clf_analysis.abp.errors import UnsafeSharePath
from clf_analysis.abp.share import BuildFolder, ShareDir
from clf_analysis.layout import LOCK_FILE, OUTPUT_DIR, temp_output_name
from clf_analysis.pipeline.errors import BuildLocked
from clf_analysis.pipeline.publish import (
    RUN_LOG_MAX_BYTES,
    LockPolicy,
    exclusive_build_lock,
    record_run,
    recover_interrupted_swap,
    remove_stale_temp_dirs,
    swap_into_place,
)

R1, R2, R9 = (uuid.uuid4().hex for _ in range(3))


@pytest.fixture
def build_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "b-1"
    folder.mkdir()
    return folder


@pytest.fixture
def build(build_dir: Path) -> Iterator[ShareDir]:
    with BuildFolder(build_dir.parent, build_dir.name).open() as share:
        yield share


def _make_output(path, marker):
    path.mkdir()
    (path / "platform_info.json").write_text(json.dumps({"marker": marker}))


def test_swap_replaces_previous_results_and_removes_them(build, build_dir):
    _make_output(build_dir / OUTPUT_DIR, "old")
    _make_output(build_dir / temp_output_name(R2), "new")
    swap_into_place(build, temp_output_name(R2), R2)
    live = json.loads((build_dir / OUTPUT_DIR / "platform_info.json").read_text())
    assert live == {"marker": "new"}
    assert sorted(p.name for p in build_dir.iterdir()) == [OUTPUT_DIR]


def test_first_publish_just_renames(build, build_dir):
    _make_output(build_dir / temp_output_name(R1), "first")
    swap_into_place(build, temp_output_name(R1), R1)
    assert (build_dir / OUTPUT_DIR / "platform_info.json").exists()
    assert not (build_dir / temp_output_name(R1)).exists()


def test_interrupted_two_rename_swap_is_repaired(build, build_dir):
    _make_output(build_dir / f"{OUTPUT_DIR}.old-{R9}", "previous")
    recover_interrupted_swap(build)
    assert json.loads((build_dir / OUTPUT_DIR / "platform_info.json").read_text()) == {
        "marker": "previous"
    }


def test_stale_temp_dirs_are_removed_but_not_the_live_output(build, build_dir):
    dead, mine = temp_output_name(R1), temp_output_name(R2)
    _make_output(build_dir / OUTPUT_DIR, "live")
    _make_output(build_dir / dead, "x")
    _make_output(build_dir / mine, "y")
    assert remove_stale_temp_dirs(build, keep=mine) == [dead]
    assert (build_dir / OUTPUT_DIR).exists() and (build_dir / mine).exists()


def test_folders_named_like_temp_dirs_by_hand_are_left_alone(build, build_dir):
    by_hand = build_dir / f"{OUTPUT_DIR}.tmp-notes"
    _make_output(by_hand, "someone's")
    assert remove_stale_temp_dirs(build) == []
    assert (by_hand / "platform_info.json").exists()


def test_lock_writes_holder_hint_outside_output_dir(build, build_dir):
    with exclusive_build_lock(build, "clf-analysis job j1 started now"):
        hint = (build_dir / LOCK_FILE).read_text(encoding="utf-8")
    assert hint.startswith("clf-analysis job j1")
    assert not (build_dir / OUTPUT_DIR / LOCK_FILE).exists()


def test_lock_held_shared_by_a_reader_process_gives_up_after_bounded_retries(build, build_dir):
    lock = build_dir / LOCK_FILE
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
            exclusive_build_lock(build, "x", LockPolicy(attempts=3, delay_seconds=0.05)),
        ):
            pass
        assert time.monotonic() - started < 10
    finally:
        reader.kill()
        reader.wait()
    # Once the reader is gone the lock is ours again.
    with exclusive_build_lock(build, "x", LockPolicy(attempts=1)):
        fd = os.open(lock, os.O_RDONLY)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        os.close(fd)


def test_run_log_keeps_other_services_keys_and_appends(build, build_dir):
    log = build_dir / "processes_run.json"
    log.write_text(json.dumps({"layer_alignment": {"runs": [{"run_id": "a"}]}}))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(2):
        record_run(
            build,
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


def test_unreadable_run_log_is_kept_aside_not_reset(build, build_dir):
    log = build_dir / "processes_run.json"
    log.write_text("{not json")
    now = datetime.now(UTC)
    aside = record_run(build, run_id="r", start_time=now, end_time=now, status="failed")
    assert aside is not None and (build_dir / aside).read_text() == "{not json"
    assert json.loads(log.read_text())["clf_analysis"]["runs"][0]["status"] == "failed"


def test_a_malformed_section_of_ours_is_kept_under_its_own_key(build, build_dir):
    log = build_dir / "processes_run.json"
    log.write_text(json.dumps({"clf_analysis": {"runs": "oops"}, "other": 1}))
    now = datetime.now(UTC)
    record_run(build, run_id="r", start_time=now, end_time=now, status="completed")
    data = json.loads(log.read_text())
    (kept,) = [k for k in data if k.startswith("clf_analysis.malformed-")]
    assert data[kept] == {"runs": "oops"} and data["other"] == 1
    assert [r["run_id"] for r in data["clf_analysis"]["runs"]] == ["r"]


def test_two_unreadable_logs_in_a_row_are_both_kept(build, build_dir):
    log = build_dir / "processes_run.json"
    now = datetime.now(UTC)
    for i in range(2):
        log.write_text(f"broken {i}")
        record_run(build, run_id=f"r{i}", start_time=now, end_time=now, status="failed")
    kept = sorted(p.read_text() for p in build_dir.glob("processes_run.json.unreadable-*"))
    assert kept == ["broken 0", "broken 1"]


def test_an_exclusions_file_broken_after_start_fails_the_job_clearly(tmp_path):
    from clf_analysis.config import load_settings
    from clf_analysis.pipeline.errors import AnalysisError
    from clf_analysis.pipeline.job import options_for

    settings = load_settings({"EXCLUSIONS_FILE": str(tmp_path / "gone.json")})
    with pytest.raises(AnalysisError, match="EXCLUSIONS_FILE") as caught:
        options_for(settings)
    assert (caught.value.stage, caught.value.kind) == ("prepare", "config")


def test_a_run_log_that_is_a_link_is_set_aside_and_its_target_untouched(build, build_dir, tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text('{"not": "ours"}')
    (build_dir / "processes_run.json").symlink_to(target)
    now = datetime.now(UTC)
    aside = record_run(build, run_id="r", start_time=now, end_time=now, status="completed")
    assert aside is not None and os.readlink(build_dir / aside) == str(target)
    assert target.read_text() == '{"not": "ours"}'
    log = build_dir / "processes_run.json"
    assert not log.is_symlink()
    assert [r["run_id"] for r in json.loads(log.read_text())["clf_analysis"]["runs"]] == ["r"]


def test_a_run_log_lock_that_is_a_link_is_refused_without_touching_its_target(
    build, build_dir, tmp_path
):
    target = tmp_path / "jobs.db"
    target.write_bytes(b"SQLite format 3\x00")
    (build_dir / "processes_run.json.lock").symlink_to(target)
    now = datetime.now(UTC)
    with pytest.raises(UnsafeSharePath, match=r"b-1/processes_run\.json\.lock is a symbolic"):
        record_run(build, run_id="r", start_time=now, end_time=now, status="completed")
    assert target.read_bytes() == b"SQLite format 3\x00"
    assert not (build_dir / "processes_run.json").exists()


def test_a_run_log_larger_than_the_limit_is_kept_aside_unread(build, build_dir):
    # Valid JSON padded past the limit: read, it would have been extended in place.
    log = build_dir / "processes_run.json"
    head = '{"other": {"runs": []}}'
    log.write_text(head + " " * (RUN_LOG_MAX_BYTES + 1 - len(head)))
    now = datetime.now(UTC)
    aside = record_run(build, run_id="r", start_time=now, end_time=now, status="completed")
    assert aside is not None and (build_dir / aside).stat().st_size == RUN_LOG_MAX_BYTES + 1
    assert list(json.loads(log.read_text())) == ["clf_analysis"]


@pytest.mark.parametrize("nesting", ["[" * 200_000, '{"a":' * 950 + "1" + "}" * 950])
def test_a_run_log_nested_too_deep_is_kept_aside(build, build_dir, nesting):
    log = build_dir / "processes_run.json"
    log.write_text(nesting)
    now = datetime.now(UTC)
    aside = record_run(build, run_id="r", start_time=now, end_time=now, status="completed")
    assert aside is not None and (build_dir / aside).read_text() == nesting
    assert [r["run_id"] for r in json.loads(log.read_text())["clf_analysis"]["runs"]] == ["r"]


def test_previous_results_nested_deeper_than_python_recurses_are_deleted(
    build, build_dir, deep_tree
):
    _make_output(build_dir / OUTPUT_DIR, "old")
    deep_tree(build_dir / OUTPUT_DIR, 1200)
    _make_output(build_dir / temp_output_name(R2), "new")
    swap_into_place(build, temp_output_name(R2), R2)
    live = json.loads((build_dir / OUTPUT_DIR / "platform_info.json").read_text())
    assert live == {"marker": "new"}
    assert sorted(p.name for p in build_dir.iterdir()) == [OUTPUT_DIR]
