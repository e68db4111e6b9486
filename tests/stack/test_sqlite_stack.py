"""The stack as operators run it by default (SQLite job store in the named volume): up and
healthy on the shared network, a frontend of another compose file calling it, the
tools, a graceful stop in the middle of an analysis, down/up, a worker killed mid-job.

The tests run in this order and build on each other's state (one `up` is expensive);
each checks what it relies on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from .stack import (
    API,
    APP_GID,
    APP_UID,
    FRONTEND,
    FRONTEND_FILE,
    NETWORK,
    PROJECT,
    WORKER,
    Stack,
    wait_for,
)

ORIGIN = "http://defect-detect-fe:6200"
NAMES = [
    "defect-detector-services-clf-abp-path-analysis-1",
    "defect-detector-services-clf-analysis-worker-1",
    "defect-detector-services-clf-analysis-worker-2",
]


class Run:
    """What the tests of this module share: the env file, the share, jobs seen so far."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.share = stack.share("share")
        for build_id in ("fe-1", "tool-1"):
            stack.add_build(self.share, build_id)
        stack.add_build(self.share, "big-1", big=True)
        # Short drain and lease so that a release and a requeue happen within seconds;
        # one job per worker so that "the worker running it" is one container.
        self.env = stack.env_file(
            "sqlite",
            MIDAS_HOST_PATH=str(self.share),
            DRAIN_TIMEOUT="2",
            LEASE_SECONDS="5",
            WORKER_CONCURRENCY="1",
            STOP_GRACE_PERIOD="30s",
        )
        self.jobs: dict[str, str] = {}

    def compose(self, *args: str, **kw: Any) -> Any:
        return self.stack.compose(self.env, *args, **kw)

    def tool(self, *args: str) -> Any:
        return self.compose("run", "--rm", "-T", *args, timeout=600)


@pytest.fixture(scope="module")
def run(stack: Stack):
    state = Run(stack)
    stack.up_wait(state.env, API, WORKER)
    yield state
    stack.compose(state.env, "down", "--timeout", "10", file=FRONTEND_FILE)
    stack.compose(state.env, "down", "--volumes", "--timeout", "10")
    assert stack.containers(every=True) == []


def _header(headers: dict[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name.lower()), "")


def _running(stack: Stack, service: str) -> dict[str, tuple[str, str]]:
    """name -> (container id, started at) of a service's running containers."""
    return {
        c["Name"].lstrip("/"): (c["Id"], c["State"]["StartedAt"]) for c in stack.containers(service)
    }


def _worker_host(event: dict) -> str:
    # Worker ids are "<hostname>:<pid>:<random>"; a container's hostname is its short id.
    return str(event["detail"]["worker"]).split(":")[0]


def test_api_and_workers_are_healthy_on_the_shared_network(run: Run) -> None:
    containers = run.stack.containers()
    assert [c["Name"].lstrip("/") for c in containers] == NAMES
    for container in containers:
        assert container["State"]["Health"]["Status"] == "healthy", container["Name"]
        assert NETWORK in container["NetworkSettings"]["Networks"], container["Name"]
        assert container["Config"]["User"] == f"{APP_UID}:{APP_GID}"
    api = containers[0]
    bound = api["NetworkSettings"]["Ports"]["6300/tcp"]
    assert {b["HostPort"] for b in bound} == {str(run.stack.port)}
    assert run.stack.get("/readyz").json() == {"status": "ready"}
    logs = run.stack.logs(run.env, API)
    assert "build share /midas: readable and writable by uid 10001 (gid 10001)" in logs


def test_a_frontend_of_another_compose_file_calls_the_api_by_name(run: Run) -> None:
    stack = run.stack
    stack.up_wait(run.env, file=FRONTEND_FILE)
    done = stack.compose(
        run.env,
        "exec",
        "-T",
        FRONTEND,
        "python3",
        "/probe/probe.py",
        "fe-1",
        "240",
        file=FRONTEND_FILE,
    )
    seen = json.loads(done.stdout)
    assert seen["job"]["status"] == "completed", seen["job"]
    run.jobs["fe-1"] = seen["post"]["job_id"]

    preflight = seen["preflight"]
    assert preflight["status"] == 200
    assert _header(preflight["headers"], "Access-Control-Allow-Origin") == ORIGIN
    assert "POST" in _header(preflight["headers"], "Access-Control-Allow-Methods")
    post = seen["post"]
    assert post["status"] == 202
    assert _header(post["headers"], "Access-Control-Allow-Origin") == ORIGIN
    assert "Location" in _header(post["headers"], "Access-Control-Expose-Headers")
    assert _header(seen["poll"]["headers"], "Access-Control-Allow-Origin") == ORIGIN

    # The results are on the bind-mounted share, written as APP_UID.
    result = seen["job"]["result"]
    assert result["output_dir"] == "/midas/fe-1/clf_analysis"
    output = run.share / "fe-1" / "clf_analysis"
    written = [output, *output.rglob("*")]
    assert len(written) > 3
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in written}
    assert owners == {(APP_UID, APP_GID)}, owners


def test_tools_submit_query_and_report_through_compose(run: Run) -> None:
    submitted = run.tool("clf-submit", "tool-1", "--wait", "--json")
    job = json.loads(submitted.stdout)
    assert job["status"] == "completed", job
    run.jobs["tool-1"] = job["job_id"]

    listing = run.tool("clf-query")
    for job_id in run.jobs.values():
        assert job_id in listing.stdout, listing.stdout
    one = json.loads(run.tool("clf-query", run.jobs["tool-1"], "--json").stdout)
    assert one["job"]["build_id"] == "tool-1" and one["job"]["status"] == "completed"

    report = json.loads(run.tool("clf-report", "--json").stdout)
    assert report["counts"]["completed"] == 2, report["counts"]


def test_stop_during_an_analysis_drains_and_releases_the_job(run: Run) -> None:
    stack = run.stack
    job_id = stack.submit("big-1")
    run.jobs["big-1"] = job_id
    stack.wait_job(job_id, ("running",), timeout=120)
    frontend_before = _running(stack, FRONTEND)

    started = time.monotonic()
    run.compose("stop")
    took = time.monotonic() - started
    stopped = stack.containers(every=True)
    ours = [c for c in stopped if c["Config"]["Labels"]["com.docker.compose.service"] != FRONTEND]
    assert len(ours) == 3
    for container in ours:
        state = container["State"]
        assert not state["Running"], container["Name"]
        # 0, not 137: every process drained and exited before the grace period ran out.
        assert state["ExitCode"] == 0, (container["Name"], state, stack.logs(run.env))
    assert took < 30, took
    assert _running(stack, FRONTEND) == frontend_before  # the other file's container

    # The job went back to the queue, and the report tool says so with nothing running.
    report = json.loads(run.tool("clf-report", "--json").stdout)
    assert report["counts"]["queued"] == 1 and report["counts"]["running"] == 0, report
    assert report["counts"]["completed"] == 2
    logs = stack.logs(run.env, WORKER)
    assert f"releasing job {job_id} at shutdown" in logs, logs[-3000:]


def test_down_then_up_keeps_the_job_history_and_finishes_the_released_job(run: Run) -> None:
    stack = run.stack
    frontend_before = _running(stack, FRONTEND)
    assert frontend_before, "the frontend runs before the main file goes down"
    run.compose("down", "--timeout", "10")
    assert [c for c in stack.containers(every=True) if FRONTEND not in c["Name"]] == []
    assert _running(stack, FRONTEND) == frontend_before  # down never touched it

    stack.up_wait(run.env, API, WORKER)
    assert _running(stack, FRONTEND) == frontend_before  # nor did up
    for build_id in ("fe-1", "tool-1"):
        assert stack.job(run.jobs[build_id])["status"] == "completed", build_id
    job_id = run.jobs["big-1"]
    job = stack.wait_job(job_id, ("completed", "failed"), timeout=400)
    assert job["status"] == "completed", job
    assert job["attempts"] == 1  # a release gives the attempt back
    kinds = [e["kind"] for e in stack.events(job_id)]
    assert kinds.count("released") == 1 and kinds.count("completed") == 1, kinds
    assert stack.get("/api/jobs").json()["total"] == 3


def test_either_file_up_or_down_leaves_the_other_files_containers_alone(run: Run) -> None:
    stack = run.stack
    ours = {**_running(stack, API), **_running(stack, WORKER)}
    assert len(ours) == 3
    stack.compose(run.env, "down", "--timeout", "5", file=FRONTEND_FILE)
    assert _running(stack, FRONTEND) == {}
    assert {**_running(stack, API), **_running(stack, WORKER)} == ours
    stack.up_wait(run.env, file=FRONTEND_FILE)
    frontend = _running(stack, FRONTEND)
    assert len(frontend) == 1
    assert {**_running(stack, API), **_running(stack, WORKER)} == ours
    # Our file's up, with the frontend's container present in the project: no orphan
    # removal, no recreation on either side.
    stack.up_wait(run.env, API, WORKER)
    assert {**_running(stack, API), **_running(stack, WORKER)} == ours
    assert _running(stack, FRONTEND) == frontend


def test_runbook_commands_work_by_project_name_from_any_directory(run: Run) -> None:
    # docs/OPERATIONS.md's runbook: `docker compose -p defect-detector-services ...`,
    # where no compose file is at hand.
    engine, elsewhere = run.stack.engine, run.stack.run_dir

    def by_name(*args: str) -> str:
        return str(engine.run("compose", "-p", PROJECT, *args, cwd=elsewhere).stdout)

    assert "serving on 0.0.0.0:6300" in by_name("logs", "--no-color", API)
    probe = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:6300/readyz').read())"
    assert "ready" in by_name("exec", "-T", API, "python", "-c", probe)
    (before,) = run.stack.containers(API)
    by_name("restart", API)
    (after,) = run.stack.containers(API)
    assert after["Id"] == before["Id"]
    assert after["State"]["StartedAt"] != before["State"]["StartedAt"]
    wait_for(lambda: run.stack.get("/readyz").status_code == 200, 120, "the API ready again")


def test_a_killed_worker_s_job_is_requeued_and_finished_by_another(run: Run) -> None:
    stack = run.stack
    earlier = run.jobs["big-1"]

    def summary_job() -> str:
        answer = stack.get("/api/builds/big-1/results")
        assert answer.status_code == 200, answer.text
        return str(answer.json()["platform_info"]["job_id"])

    assert summary_job() == earlier  # the build has results from before
    job_id = stack.submit("big-1", holes_interval=5.0)  # other parameters: a new job
    stack.wait_job(job_id, ("running",), timeout=120)
    claimed = [e for e in stack.events(job_id) if e["kind"] == "claimed"]
    host = _worker_host(claimed[-1])
    workers = stack.containers(WORKER)
    victim = next(c for c in workers if c["Config"]["Hostname"] == host)
    stack.engine.run("kill", "--signal", "KILL", victim["Id"])

    # Results stay readable the whole time: the earlier ones until the new ones replace
    # them in one swap.
    seen = []
    deadline = time.monotonic() + 400
    while (job := stack.job(job_id))["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        seen.append(summary_job())
        time.sleep(0.5)
    assert job["status"] == "completed", job
    seen.append(summary_job())
    assert set(seen) <= {earlier, job_id}, set(seen)
    assert seen[0] == earlier and seen[-1] == job_id
    assert seen == sorted(seen, key=lambda s: s == job_id)  # never back to the old ones

    assert job["attempts"] == 2
    events = stack.events(job_id)
    requeued = [e for e in events if e["kind"] == "requeued"]
    assert len(requeued) == 1 and requeued[0]["detail"]["lost_worker"].startswith(host)
    (completed,) = [e for e in events if e["kind"] == "completed"]
    finisher = _worker_host(completed)
    assert finisher != host
    assert finisher in {c["Config"]["Hostname"] for c in workers}
    killed = stack.container_named(victim["Id"])["State"]
    assert killed["ExitCode"] == 137 and not killed["Running"]
    assert Path(run.share / "big-1" / "clf_analysis").is_dir()
