"""A service with API_TOKEN set and jobs that run until cancelled: what `submit` says when
the token is missing or wrong, what a 409 tells the user to do, and `clf-analysis cancel`
doing it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from .conftest import BUILD_ID, Served, run_cli, service

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # tests.api.runners:slow runs until cancelled (or 600 s): a job stays active.
    with service(
        tmp_path_factory.mktemp("guarded"),
        "--runner",
        "tests.api.runners:slow",
        API_TOKEN=TOKEN,
        CLF_TEST_RUNNER_SECONDS="600",
    ) as running:
        yield running


def test_a_missing_token_says_how_to_give_one(guarded: Served) -> None:
    done = run_cli("submit", BUILD_ID, "--url", guarded.url)
    assert done.returncode == 1
    assert done.stderr == (
        "clf-analysis submit: the service needs an API token (HTTP 401): pass --token TOKEN "
        "or set API_TOKEN to the service's API_TOKEN\n"
    )


def test_a_wrong_token_names_where_it_came_from(guarded: Served) -> None:
    flag = run_cli("submit", BUILD_ID, "--url", guarded.url, "--token", "nope")
    assert flag.returncode == 1
    assert flag.stderr == (
        "clf-analysis submit: the service refused the token of --token (HTTP 401): it must "
        "equal the service's API_TOKEN\n"
    )
    env = run_cli("cancel", "some-job", "--url", guarded.url, API_TOKEN="nope")
    assert env.returncode == 1
    assert "refused the token of API_TOKEN (HTTP 401)" in env.stderr


def test_a_conflict_names_the_active_job_and_cancel_clears_it(guarded: Served) -> None:
    first = run_cli("submit", BUILD_ID, "--url", guarded.url, "--token", TOKEN)
    assert first.returncode == 0, first.stderr
    job_id = first.stdout.split()[0]

    other = run_cli("submit", BUILD_ID, "--composite", "--url", guarded.url, "--token", TOKEN)
    assert other.returncode == 1
    (line,) = other.stderr.splitlines()
    assert "already has an active analysis" in line and "(HTTP 409)" in line
    assert f"the active job is {job_id}" in line
    assert f"`clf-analysis cancel {job_id} --url {guarded.url} --token TOKEN`" in line
    assert TOKEN not in line

    # --json: the problem, as the service sent it, for a script.
    as_json = run_cli(
        "submit", BUILD_ID, "--composite", "--json", "--url", guarded.url, "--token", TOKEN
    )
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["active_job_id"] == job_id

    cancelled = run_cli("cancel", job_id, "--wait", "--url", guarded.url, API_TOKEN=TOKEN)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.splitlines()[-1] == f"{job_id} cancelled"
    shown = run_cli("query", job_id, "--url", guarded.url)
    assert shown.stdout.splitlines()[1].split()[2] == "cancelled"

    again = run_cli("cancel", job_id, "--url", guarded.url, API_TOKEN=TOKEN)
    assert again.returncode == 0
    assert again.stdout == f"{job_id} cancelled (already)\n"


def test_cancel_of_an_unknown_job_names_it(guarded: Served) -> None:
    done = run_cli("cancel", "nope", "--url", guarded.url, "--token", TOKEN)
    assert done.returncode == 1
    assert done.stderr == f"clf-analysis cancel: job nope not found at {guarded.url} (HTTP 404)\n"
    # With --json, a script gets the problem as the service sent it.
    for command in ("cancel", "query"):
        as_json = run_cli(command, "nope", "--json", "--url", guarded.url, "--token", TOKEN)
        assert as_json.returncode == 1
        assert json.loads(as_json.stdout)["type"].endswith("/job-not-found")
