"""Scale-out on the PostgreSQL job store: profile `postgres`, three worker replicas, a dozen
builds submitted at once; each analysed exactly once, by more than one worker."""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor

import pytest

from .stack import API, POSTGRES, WORKER, Stack

BUILDS = [f"pg-{n:02d}" for n in range(1, 13)]


@pytest.fixture(scope="module")
def scaled(stack: Stack):
    share = stack.share("pg-share")
    for build_id in BUILDS:
        stack.add_build(share, build_id)
    password = secrets.token_hex(12)
    env = stack.env_file(
        "postgres",
        MIDAS_HOST_PATH=str(share),
        COMPOSE_PROFILES="postgres",
        POSTGRES_PASSWORD=password,
        DATABASE_URL=f"postgresql+psycopg://clf:{password}@clf-postgres:5432/clf_jobs",
        WORKER_REPLICAS="3",
        WORKER_CONCURRENCY="1",
    )
    # `make up` names the API and the workers; the database comes with them because the
    # profile is on and the API depends on it.
    stack.up_wait(env, API, WORKER)
    yield stack, share, env
    stack.compose(env, "down", "--volumes", "--timeout", "10")
    assert stack.containers(every=True) == []


def test_three_workers_and_the_database_are_healthy(scaled) -> None:
    stack, _, _ = scaled
    (database,) = stack.containers(POSTGRES)
    assert database["State"]["Health"]["Status"] == "healthy"
    workers = stack.containers(WORKER)
    assert len(workers) == 3
    assert all(w["State"]["Health"]["Status"] == "healthy" for w in workers)
    assert stack.get("/info").json()["settings"]["job_store"] == "postgresql"


def test_a_dozen_builds_at_once_complete_each_exactly_once_across_workers(scaled) -> None:
    stack, share, _ = scaled
    with ThreadPoolExecutor(len(BUILDS)) as pool:
        job_ids = dict(zip(BUILDS, pool.map(stack.submit, BUILDS), strict=True))
    assert len(set(job_ids.values())) == len(BUILDS)

    finishers = set()
    for build_id, job_id in job_ids.items():
        job = stack.wait_job(job_id, ("completed", "failed"), timeout=600)
        assert job["status"] == "completed", job
        assert job["attempts"] == 1, job
        kinds = [e["kind"] for e in stack.events(job_id)]
        assert kinds.count("claimed") == 1 and kinds.count("completed") == 1, kinds
        assert "requeued" not in kinds and "released" not in kinds, kinds
        (done,) = [e for e in stack.events(job_id) if e["kind"] == "completed"]
        finishers.add(str(done["detail"]["worker"]).split(":")[0])
        # One run published on the share, by this job.
        runs = json.loads((share / build_id / "processes_run.json").read_text())
        assert len(runs["clf_analysis"]["runs"]) == 1, runs
        summary = stack.get(f"/api/builds/{build_id}/results").json()
        assert summary["platform_info"]["job_id"] == job_id

    hosts = {c["Config"]["Hostname"] for c in stack.containers(WORKER)}
    assert finishers <= hosts
    assert len(finishers) > 1, finishers
    assert 'clf_jobs{state="completed"} 12' in stack.get("/metrics").text
