"""`clf-analysis worker` and `report` as real processes: kill -9, SIGTERM drain, report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from jobwait import WAIT, alive, wait_for

from clf_analysis.jobs.store import JobStore

RUNNERS_DIR = Path(__file__).parent  # runners.py, imported by the workers' children


def _env(url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        STATE_DIR=str(tmp_path / "state"),
        LEASE_SECONDS="2",
        DRAIN_TIMEOUT="0.5",
        WORKER_CONCURRENCY="1",
        PYTHONPATH=os.pathsep.join([str(RUNNERS_DIR), env.get("PYTHONPATH", "")]),
    )
    env.update(extra)
    return env


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(url: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"worker-{len(procs)}.log", "wb")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "clf_analysis", "worker", "--runner", "runners:sleepy", *args],
            env=_env(url, tmp_path, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("built", [True, False])
def test_job_roles_warn_when_the_compiled_walker_is_missing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, built: bool
) -> None:
    import logging

    import clf_analysis.clf
    from clf_analysis.cli.job_runner import PIPELINE_RUNNER, log_startup_warnings

    monkeypatch.setattr(clf_analysis.clf, "COMPILED_WALKER", built)
    log = logging.getLogger("clf_analysis.worker")
    with caplog.at_level("WARNING", logger=log.name):
        log_startup_warnings(PIPELINE_RUNNER, log)
    warned = [r for r in caplog.records if "layer walker is not built" in r.getMessage()]
    assert len(warned) == (0 if built else 1)


def _report(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clf_analysis", "report", "--database-url", url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_kill_9_of_a_worker_mid_job_is_recovered_by_another(
    store: JobStore, store_url: str, spawn_worker, tmp_path: Path
) -> None:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    job = store.submit("b1", {"steps": 30, "delay": 0.1, "pid_dir": str(pid_dir)}).job
    first = spawn_worker(store_url)
    wait_for(store, job.id, lambda j: j.state == "running" and j.progress > 0)
    (orphan,) = (int(p.stem) for p in pid_dir.glob("*.pid"))

    first.send_signal(signal.SIGKILL)
    first.wait(10)
    # The child notices its parent is gone and stops instead of racing the retry.
    deadline = time.monotonic() + 10
    while alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(orphan)

    second = spawn_worker(store_url)
    done = wait_for(store, job.id, lambda j: j.state in ("completed", "failed", "cancelled"))
    assert done.state == "completed" and done.attempts == 2
    assert done.result is not None and done.result["pid"] != orphan
    kinds = [e.kind for e in store.events(job.id)]
    assert kinds.count("claimed") == 2 and "requeued" in kinds and kinds[-1] == "completed"

    second.send_signal(signal.SIGTERM)
    assert second.wait(WAIT) == 0
    state = store.service_state()
    assert state.startup_count == 2
    assert state.unclean_shutdown_count == 1 and state.clean_shutdown_count == 1


def test_sigterm_drains_releases_the_unfinished_job_and_exits_0(
    sqlite_url: str, spawn_worker
) -> None:
    store = JobStore.connect(sqlite_url)
    job = store.submit("b1", {"steps": 600, "delay": 0.05}).job
    proc = spawn_worker(sqlite_url, "--cancel-grace", "1")
    wait_for(store, job.id, lambda j: j.state == "running" and j.progress > 0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT) == 0
    back = store.get(job.id)
    assert back is not None and (back.state, back.attempts, back.lease_owner) == ("queued", 0, None)
    assert [e.kind for e in store.events(job.id)][-1] == "released"
    state = store.service_state()
    assert (state.clean_shutdown_count, state.unclean_shutdown_count) == (1, 0)
    store.close()


def test_worker_with_invalid_configuration_exits_2_naming_the_variable(
    sqlite_url: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "clf_analysis", "worker"],
        env=_env(sqlite_url, tmp_path, LEASE_SECONDS="-5"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "LEASE_SECONDS" in done.stderr


@pytest.mark.parametrize("content", [None, "{not json", '{"folder_exclusions": "Support"}'])
def test_worker_refuses_to_start_with_a_missing_or_invalid_exclusions_file(
    sqlite_url: str, tmp_path: Path, content: str | None
) -> None:
    exclusions = tmp_path / "exclusions.json"
    if content is not None:
        exclusions.write_text(content)
    done = subprocess.run(
        [sys.executable, "-m", "clf_analysis", "worker"],
        env=_env(sqlite_url, tmp_path, EXCLUSIONS_FILE=str(exclusions)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "EXCLUSIONS_FILE" in done.stderr and str(exclusions) in done.stderr
    assert not (tmp_path / "state" / "jobs.db").exists()  # stopped before touching the store


def test_report_reads_the_store_without_the_service(sqlite_url: str) -> None:
    store = JobStore.connect(sqlite_url)
    ok = store.submit("b-ok", {}).job
    bad = store.submit("b-bad", {}).job
    for _ in range(2):
        job = store.claim("w", 30)
        assert job is not None
        if job.id == ok.id:
            store.complete(job.id, "w", {"success": True})
        else:
            store.fail(job.id, "w", {"type": "AnalysisFailed", "message": "broken loop"})
    store.record_startup("api-x", "api")
    store.close()

    as_json = _report(sqlite_url, "--json", "--job", bad.id)
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["counts"]["completed"] == 1 and data["counts"]["failed"] == 1
    assert [f["job_id"] for f in data["recent_failures"]] == [bad.id]
    assert data["job"]["error_detail"]["message"] == "broken loop"
    assert [e["kind"] for e in data["job"]["events"]] == ["submitted", "claimed", "failed"]
    assert data["service"]["startup_count"] == 1

    text = _report(sqlite_url)
    assert text.returncode == 0
    assert "completed 1" in text.stdout and "broken loop" in text.stdout and ok.id in text.stdout


def test_report_on_a_missing_store_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "jobs.db"
    done = _report(f"sqlite:///{missing}")
    assert done.returncode == 1 and "no job store" in done.stderr
    assert not missing.exists()


def test_kill_9_mid_analysis_with_the_real_pipeline_keeps_results_and_recovers(
    sqlite_url: str, spawn_worker, tmp_path: Path
) -> None:
    from clf_analysis.pipeline.params import AnalysisParams
    from clf_analysis.pipeline.run import run
    from clf_analysis.synth import generate_build

    midas = tmp_path / "midas"
    build = generate_build(midas, build_id="k9", parts=4, height_mm=40.0, seed=2)
    params = AnalysisParams(holes_interval=20, clean_platform_heights=(5.0,))
    earlier = run("k9", params, midas_base_path=midas)
    info_path = build.build_dir / "clf_analysis" / "platform_info.json"

    store = JobStore.connect(sqlite_url)
    job = store.submit("k9", params.canonical()).job
    real = ("--runner", "clf_analysis.pipeline.job:run_job")
    env = {"MIDAS_BASE_PATH": str(midas), "ANALYSIS_PROCESSES": "1"}
    first = spawn_worker(sqlite_url, *real, **env)
    wait_for(store, job.id, lambda j: j.state == "running" and j.stage == "layers")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    # Mid-analysis the published results are the earlier run's, whole and readable.
    assert json.loads(info_path.read_text())["run_id"] == earlier.run_id

    second = spawn_worker(sqlite_url, *real, **env)
    done = wait_for(store, job.id, lambda j: j.state in ("completed", "failed", "cancelled"))
    assert done.state == "completed", done.error
    assert done.attempts == 2
    info = json.loads(info_path.read_text())
    assert info["job_id"] == job.id and info["run_id"] != earlier.run_id
    assert len(info["parts"]) == earlier.parts
    leftovers = [p.name for p in build.build_dir.iterdir() if ".tmp-" in p.name]
    assert leftovers == []
    second.send_signal(signal.SIGTERM)
    assert second.wait(WAIT) == 0
    store.close()
