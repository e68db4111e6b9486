"""A `clf-analysis worker` whose share is not the API's: the failed job says where the
worker looked, and the worker's text log names the job in its own lines."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from clf_analysis.jobs import JobState
from clf_analysis.jobs.store import JobStore

from .conftest import BUILD_ID, CLI, clean_env, run_cli, small_build


def _wait_until_finished(store_url: str, job_id: str, worker: subprocess.Popen[bytes]) -> str:
    store = JobStore.connect(store_url)
    try:
        deadline = time.monotonic() + 180  # a cold start of the job's process on busy cores
        while time.monotonic() < deadline and worker.poll() is None:
            job = store.get(job_id)
            assert job is not None
            if job.state in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED):
                return str(job.state)
            time.sleep(0.2)
    finally:
        store.close()
    raise AssertionError(f"job {job_id} did not finish (worker exit code {worker.poll()})")


def test_a_build_missing_on_the_workers_share_names_its_base_path(tmp_path: Path) -> None:
    small_build(tmp_path / "api-share")  # where the API found it
    worker_share = tmp_path / "worker-share"  # the worker's mount: empty
    worker_share.mkdir()
    store_url = f"sqlite:///{tmp_path / 'state' / 'jobs.db'}"
    store = JobStore.connect(store_url)
    try:
        job_id = store.submit(BUILD_ID, {}).job.id
    finally:
        store.close()

    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [str(CLI), "worker"],
            env=clean_env(
                DATABASE_URL=store_url,
                MIDAS_BASE_PATH=str(worker_share),
                WORKER_CONCURRENCY="1",
                ANALYSIS_PROCESSES="1",
                LOG_FORMAT="text",
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        assert _wait_until_finished(store_url, job_id, worker) == JobState.FAILED
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)

    reason = (
        f"build '{BUILD_ID}': no folder {BUILD_ID} under {worker_share.resolve()} (MIDAS_BASE_PATH)"
    )
    shown = run_cli("report", "--database-url", store_url, "--job", job_id)
    assert shown.returncode == 0, shown.stderr
    assert reason in shown.stdout

    text = log.read_text()
    assert f"job {job_id} claimed (build {BUILD_ID}, attempt 1)" in text
    assert f"job {job_id} started (build {BUILD_ID}, pid " in text
    assert f"job {job_id} failed (build {BUILD_ID}): {reason}" in text
    # A failure the pipeline describes (a missing build) is no fault of the code: the
    # worker's log holds its one line, not a traceback.
    assert "Traceback" not in text
