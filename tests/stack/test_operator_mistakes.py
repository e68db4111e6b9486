"""Operator mistakes with the share, as Compose and the running service answer them."""

from __future__ import annotations

import pytest

from .stack import API, WORKER, Stack, wait_for

REQUIRED = "set MIDAS_HOST_PATH in .env to the MIDAS build share on this host"


@pytest.fixture
def clean(stack: Stack):
    yield stack
    cleanup = stack.env_file("mistakes-cleanup", MIDAS_HOST_PATH=str(stack.run_dir))
    stack.compose(cleanup, "down", "--volumes", "--timeout", "10")
    assert stack.containers(every=True) == []


@pytest.mark.parametrize("setting", [None, ""], ids=["unset", "empty"])
def test_compose_refuses_without_midas_host_path(clean: Stack, setting: str | None) -> None:
    env = clean.env_file("no-share", MIDAS_HOST_PATH=setting)
    for command in (["config", "--quiet"], ["up", "--detach", API, WORKER]):
        done = clean.compose(env, *command, check=False)
        assert done.returncode != 0, command
        assert REQUIRED in done.stderr, done.stderr
    assert clean.containers(every=True) == []


def test_a_share_path_that_does_not_exist_is_refused_naming_it(clean: Stack) -> None:
    missing = clean.run_dir / "not-mounted"
    env = clean.env_file("missing-share", MIDAS_HOST_PATH=str(missing))
    done = clean.compose(env, "up", "--detach", API, check=False)
    assert done.returncode != 0
    assert f"bind source path does not exist: {missing}" in done.stderr, done.stderr
    assert clean.containers() == []  # nothing runs
    assert not missing.exists()  # and nothing made it up


def test_a_share_the_container_user_cannot_write(clean: Stack) -> None:
    # As a share often is on the host: root's, mode 0755; uid 10001 can read, not write.
    share = clean.share("root-share", owner=(0, 0))
    clean.add_build(share, "ro-1")
    before = sorted(p.name for p in (share / "ro-1").iterdir())
    env = clean.env_file("root-share", MIDAS_HOST_PATH=str(share))
    # `make up` fails: the API never becomes healthy, so the workers are not started.
    done = clean.compose(env, "up", "--detach", "--wait", API, WORKER, check=False, timeout=300)
    assert done.returncode != 0
    assert (
        "dependency failed to start: container "
        "defect-detector-services-clf-abp-path-analysis-1 is unhealthy"
    ) in done.stderr, done.stderr
    assert clean.containers(WORKER) == []
    # The API runs, not ready, and says why.
    answer = wait_for(
        lambda: (r := clean.get("/readyz")).status_code == 503 and r.json(), 120, "/readyz 503"
    )
    assert answer["detail"] == (
        "build share /midas is not writable by uid 10001 (gid 10001): owner 0:0, mode 0755; "
        "results cannot be published"
    ), answer
    assert clean.get("/info").json()["share"]["writable"] is False

    # A worker started anyway (not waiting for the API's health) fails the job clearly.
    clean.compose(env, "up", "--detach", "--no-deps", WORKER)
    job = clean.wait_job(clean.submit("ro-1"), ("completed", "failed"), timeout=180)
    assert job["status"] == "failed", job
    assert (
        "build folder /midas/ro-1 is not writable by uid 10001 (gid 10001)"
        in (job["error"]["message"])
    ), job["error"]
    assert sorted(p.name for p in (share / "ro-1").iterdir()) == before  # nothing written
    logs = clean.logs(env, WORKER)
    assert "build share /midas is not writable by uid 10001" in logs, logs[-3000:]
