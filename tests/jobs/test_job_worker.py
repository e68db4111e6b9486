"""The worker loop with real spawned children: progress, cancel, timeout, crash, drain."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from jobwait import WAIT, alive, finished, wait_for
from sqlalchemy import update

from clf_analysis.config import Settings
from clf_analysis.jobs.schema import jobs, utcnow
from clf_analysis.jobs.store import JobStore
from clf_analysis.jobs.worker import Worker


@pytest.fixture
def run_worker(
    make_settings: Callable[..., Settings],
) -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(store: JobStore, runner: str, **kw: object) -> Worker:
        settings = make_settings(**kw.pop("settings", {}))  # type: ignore[arg-type]
        worker = Worker(store, settings, runner=f"runners:{runner}", poll_interval=0.05, **kw)  # type: ignore[arg-type]
        worker.start()
        started.append(worker)
        return worker

    yield start
    for w in started:
        w.shutdown(drain_timeout=0)


def test_job_runs_in_a_child_and_progress_is_relayed(store: JobStore, run_worker) -> None:
    job = store.submit("b1", {"steps": 10, "delay": 0.1}).job
    run_worker(store, "sleepy")
    seen = wait_for(store, job.id, lambda j: j.state == "running" and j.progress > 0)
    assert seen.stage in ("parse", "render") and seen.message and "step" in seen.message
    done = wait_for(store, job.id, finished)
    assert done.state == "completed" and done.progress == 100.0
    assert done.result is not None and done.result["steps"] == 10
    assert done.result["pid"] != os.getpid()  # it really ran in another process
    kinds = [e.kind for e in store.events(job.id)]
    assert kinds[:2] == ["submitted", "claimed"] and kinds[-1] == "completed"
    stages = [e.detail["stage"] for e in store.events(job.id) if e.kind == "stage"]
    assert stages == ["parse", "render"]  # stage changes, not every tick


def test_different_builds_run_concurrently(sqlite_url: str, run_worker) -> None:
    store = JobStore.connect(sqlite_url)
    a = store.submit("b1", {"steps": 40, "delay": 0.1}).job
    b = store.submit("b2", {"steps": 40, "delay": 0.1}).job
    worker = run_worker(store, "sleepy", settings={"worker_concurrency": 2})
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline and len(worker.running_job_ids) < 2:
        time.sleep(0.05)
    assert store.counts_by_state()["running"] == 2
    for job in (a, b):
        store.request_cancel(job.id)
    for job in (a, b):
        assert wait_for(store, job.id, finished).state == "cancelled"
    store.close()


def test_cancel_running_job_that_cooperates(sqlite_url: str, run_worker) -> None:
    store = JobStore.connect(sqlite_url)
    job = store.submit("b1", {"steps": 600, "delay": 0.05}).job
    run_worker(store, "sleepy")
    wait_for(store, job.id, lambda j: j.progress > 0)
    store.request_cancel(job.id)
    done = wait_for(store, job.id, finished)
    assert done.state == "cancelled" and done.result is None
    kinds = [e.kind for e in store.events(job.id)]
    assert "cancel_requested" in kinds and kinds[-1] == "cancelled"
    store.close()


def test_cancel_of_a_job_ignoring_it_kills_after_the_grace(sqlite_url: str, run_worker) -> None:
    store = JobStore.connect(sqlite_url)
    job = store.submit("b1", {}).job
    run_worker(store, "hang", cancel_grace=0.5)
    wait_for(store, job.id, lambda j: j.stage == "stuck")
    store.request_cancel(job.id)
    assert wait_for(store, job.id, finished).state == "cancelled"
    store.close()


def test_timeout_kills_and_fails(sqlite_url: str, run_worker) -> None:
    store = JobStore.connect(sqlite_url)
    job = store.submit("b1", {}).job
    run_worker(store, "hang", settings={"job_timeout": 2.0})
    done = wait_for(store, job.id, finished)
    assert done.state == "failed" and done.error is not None
    assert done.error["type"] == "timeout" and "JOB_TIMEOUT" in done.error["message"]
    store.close()


def test_stopping_a_job_also_stops_the_processes_its_runner_started(
    sqlite_url: str, run_worker, tmp_path
) -> None:
    store = JobStore.connect(sqlite_url)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    job = store.submit("b1", {"pid_dir": str(pid_dir)}).job
    run_worker(store, "pooled_hang", settings={"job_timeout": 4.0})
    done = wait_for(store, job.id, finished)
    assert done.state == "failed" and done.error["type"] == "timeout"
    pids = [int(p.stem) for p in pid_dir.glob("*.pid")]
    assert len(pids) == 2  # both pool processes had started
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)]
    store.close()


def test_a_result_with_nan_fails_clearly_on_both_engines(store: JobStore, run_worker) -> None:
    job = store.submit("b1", {}).job
    run_worker(store, "not_a_number")
    done = wait_for(store, job.id, finished)
    assert done.state == "failed" and done.attempts == 1
    assert "not storable JSON (NaN or infinity)" in done.error["message"]
    store.close()


def test_child_crash_fails_with_exit_code(sqlite_url: str, run_worker) -> None:
    store = JobStore.connect(sqlite_url)
    job = store.submit("b1", {}).job
    run_worker(store, "crash")
    done = wait_for(store, job.id, finished)
    assert done.state == "failed" and done.error is not None
    assert (done.error["type"], done.error["exit_code"]) == ("crash", 3)
    assert done.attempts == 1  # a crash is this attempt's failure, not a requeue
    store.close()


def test_runner_exception_keeps_what_it_knows(store: JobStore, run_worker) -> None:
    job = store.submit("b1", {}).job
    run_worker(store, "boom")
    done = wait_for(store, job.id, finished)
    assert done.state == "failed" and done.error is not None
    assert done.error["type"] == "AnalysisFailed"
    assert done.error["message"] == "self-intersecting loop in layer 17"
    assert (done.error["stage"], done.error["file"], done.error["layer"]) == (
        "geometry",
        "Models/part1.clf",
        17,
    )
    assert done.error["problem"]["code"] == "bad-loop"
    assert "traceback" not in done.error  # tracebacks go to the log, never to clients


def test_lost_lease_stops_the_child_without_writing(sqlite_url: str, run_worker) -> None:
    store = JobStore.connect(sqlite_url)
    job = store.submit("b1", {"steps": 600, "delay": 0.05}).job
    run_worker(store, "sleepy")
    wait_for(store, job.id, lambda j: j.progress > 0)
    # Another worker decided this one was lost and took the job over.
    with store.engine.begin() as conn:
        conn.execute(update(jobs).where(jobs.c.id == job.id).values(lease_owner="someone-else"))
    wait_for(store, job.id, lambda j: "heartbeat_lost" in [e.kind for e in store.events(j.id)])
    time.sleep(0.5)
    still = store.get(job.id)
    assert still is not None and still.state == "running" and still.lease_owner == "someone-else"
    store.close()


def test_shutdown_drains_then_releases_unfinished_jobs(sqlite_url: str, make_settings) -> None:
    store = JobStore.connect(sqlite_url)
    quick = store.submit("b1", {"steps": 5, "delay": 0.05}).job
    slow = store.submit("b2", {"steps": 600, "delay": 0.05}).job
    worker = Worker(
        store, make_settings(), runner="runners:sleepy", poll_interval=0.05, cancel_grace=2.0
    )
    worker.start()
    wait_for(store, slow.id, lambda j: j.progress > 0)
    wait_for(store, quick.id, finished)
    worker.shutdown(drain_timeout=0.2)
    back = store.get(slow.id)
    assert back is not None and (back.state, back.attempts) == ("queued", 0)
    assert store.get(quick.id).state == "completed"  # type: ignore[union-attr]
    assert [e.kind for e in store.events(slow.id)][-1] == "released"
    assert worker.running_job_ids == []
    store.close()


def test_worker_requeues_expired_leases_of_others(sqlite_url: str, run_worker) -> None:
    store = JobStore.connect(sqlite_url)
    job = store.submit("b1", {"steps": 3, "delay": 0.01}).job
    assert store.claim("dead-worker", 30) is not None
    with store.engine.begin() as conn:
        conn.execute(
            update(jobs)
            .where(jobs.c.id == job.id)
            .values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    run_worker(store, "sleepy")
    done = wait_for(store, job.id, finished)
    assert done.state == "completed" and done.attempts == 2
    assert "requeued" in [e.kind for e in store.events(job.id)]
    store.close()


def test_embedded_worker_thread_starts_once(sqlite_url: str, make_settings) -> None:
    store = JobStore.connect(sqlite_url)
    worker = Worker(store, make_settings(), runner="runners:sleepy")
    worker.start()
    with pytest.raises(RuntimeError):
        worker.start()
    worker.shutdown(drain_timeout=0)
    assert not any(t.name.startswith("worker-") for t in threading.enumerate())
    store.close()


@pytest.mark.parametrize("niceness", [0, 7])
def test_jobs_and_their_pools_run_at_the_configured_lower_priority(
    store: JobStore, run_worker, niceness: int
) -> None:
    job = store.submit("b1", {}).job
    run_worker(store, "priorities", settings={"job_niceness": niceness})
    done = wait_for(store, job.id, finished)
    assert done.state == "completed", done.error
    expected = min(19, os.nice(0) + niceness)  # relative to the worker's own priority
    assert done.result == {"job": expected, "pool": expected}


def test_a_child_killed_by_sigkill_is_retried_then_fails_with_the_reason(
    store: JobStore, run_worker
) -> None:
    job = store.submit("b1", {}, max_attempts=2).job
    run_worker(store, "killed")
    done = wait_for(store, job.id, finished)
    assert done.state == "failed" and done.attempts == 2
    assert done.error["type"] == "crash" and done.error["signal"] == "SIGKILL"
    assert done.error["message"] == (
        "analysis process killed by SIGKILL (possibly out of memory); 2 of 2 attempts used"
    )
    events = [e for e in store.events(job.id) if e.kind != "stage"]
    assert [e.kind for e in events] == ["submitted", "claimed", "requeued", "claimed", "failed"]
    requeued = events[2].detail
    assert requeued["reason"] == "analysis process killed by SIGKILL (possibly out of memory)"
    assert (requeued["attempts"], requeued["max_attempts"]) == (1, 2)
    store.close()


def test_a_child_killed_by_sigkill_once_completes_on_the_next_attempt(
    store: JobStore, run_worker, tmp_path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    job = store.submit("b1", {"survive_after": str(markers), "kills": 1}).job
    run_worker(store, "killed")
    done = wait_for(store, job.id, finished)
    assert done.state == "completed" and done.attempts == 2
    assert done.result == {"build_id": "b1", "attempts_before": 1}
    kinds = [e.kind for e in store.events(job.id) if e.kind != "stage"]
    assert kinds == ["submitted", "claimed", "requeued", "claimed", "completed"]
    store.close()
