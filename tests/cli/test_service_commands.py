"""`submit`, `query` and `report` as a user meets them: against a real service, a port
where nothing listens, and a job store on disk. Each test reads what the command prints
and its exit code."""

from __future__ import annotations

import json
import re

from clf_analysis.jobs.store import JobStore

from .conftest import BUILD_ID, Served, free_port, run_cli

JOB_ID = re.compile(r"^[0-9a-f-]{36}", re.MULTILINE)


def test_an_out_of_range_parameter_keeps_the_services_reason(served: Served) -> None:
    done = run_cli("submit", BUILD_ID, "--holes-interval", "-3", "--url", served.url)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "holes_interval" in done.stderr
    assert "greater than or equal to 0.5" in done.stderr  # the API's reason, not only the name
    assert "HTTP 422" in done.stderr


def test_a_refused_connection_is_one_clear_line(served: Served) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there any more
    for command in (["submit", BUILD_ID], ["query"]):
        done = run_cli(*command, "--url", url)
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert lines == [
            f"clf-analysis {command[0]}: cannot reach the service at {url}: connection refused "
            "(is the service running on that host and port?)"
        ]


def test_a_url_without_scheme_is_taken_as_http(served: Served) -> None:
    host_port = served.url.removeprefix("http://")
    done = run_cli("submit", BUILD_ID, "--url", host_port)
    assert done.returncode == 0, done.stderr
    assert JOB_ID.match(done.stdout)
    listed = run_cli("query", "--url", host_port)
    assert listed.returncode == 0, listed.stderr


def test_a_url_of_another_scheme_says_what_to_write() -> None:
    done = run_cli("query", "--url", "ftp://127.0.0.1:6300")
    assert done.returncode == 2  # a mistake on the command line
    assert "write http://HOST:PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_path_as_build_id_is_refused_as_an_invalid_build_id(served: Served) -> None:
    done = run_cli("submit", "../etc", "--url", served.url)
    assert done.returncode == 2
    assert "invalid build id '../etc'" in done.stderr
    assert "Endpoint not found" not in done.stderr


def test_an_unknown_build_says_where_the_service_looked(served: Served) -> None:
    done = run_cli("submit", "nope", "--url", served.url)
    assert done.returncode == 1
    assert f"build nope not found under {served.midas}" in done.stderr


def test_submit_wait_ends_with_where_the_results_are(served: Served) -> None:
    done = run_cli("submit", BUILD_ID, "--wait", "--url", served.url)
    assert done.returncode == 0, done.stderr + served.log.read_text()
    lines = done.stdout.strip().splitlines()
    job_id = lines[0].split()[0]
    assert lines[0] == f"{job_id} completed"
    assert lines[1] == (
        f"results  {BUILD_ID}/clf_analysis under the service's MIDAS_BASE_PATH "
        f"({served.midas / BUILD_ID / 'clf_analysis'} on its host)"
    )
    assert lines[-1] == f"viewer   {served.url}/ui/#build={BUILD_ID}"
    # The last progress line: completed, without the stage it last reported from.
    final = done.stderr.strip().splitlines()[-1]
    assert final.endswith("100.0% completed"), final

    # A finished job shows when it finished, not "stage: publish publishing results".
    shown = run_cli("query", job_id, "--url", served.url)
    assert shown.returncode == 0
    assert "stage:" not in shown.stdout and "publishing results" not in shown.stdout
    assert "  finished: " in shown.stdout


def test_the_job_list_has_column_headers(served: Served) -> None:
    run_cli("submit", BUILD_ID, "--url", served.url)
    done = run_cli("query", "--url", served.url)
    assert done.returncode == 0
    header, *rows = done.stdout.splitlines()
    assert header.split() == ["job", "id", "build", "state", "progress", "created"]
    assert rows and all(JOB_ID.match(row) for row in rows)


def test_report_of_an_unknown_job_prints_only_that(served: Served) -> None:
    done = run_cli("report", "--database-url", served.store_url, "--job", "nope")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == "clf-analysis report: job nope not found\n"


def test_report_of_one_job_shows_that_job_only(served: Served) -> None:
    submitted = run_cli("submit", BUILD_ID, "--url", served.url)
    job_id = submitted.stdout.split()[0]
    store = JobStore.connect(served.store_url)
    try:
        assert store.get(job_id) is not None
    finally:
        store.close()
    done = run_cli("report", "--database-url", served.store_url, "--job", job_id)
    assert done.returncode == 0
    assert done.stdout.startswith(f"Job {job_id} (build {BUILD_ID}): ")
    assert "Jobs by state" not in done.stdout and "Recent jobs" not in done.stdout
    assert "  events:" in done.stdout


def test_a_url_with_a_path_names_the_url_called_and_what_url_means(served: Served) -> None:
    done = run_cli("submit", BUILD_ID, "--url", f"{served.url}/api")
    assert done.returncode == 1
    assert done.stderr == (
        f"clf-analysis submit: POST {served.url}/api/api/builds/{BUILD_ID}/analyze: no such "
        "route (HTTP 404, 'Endpoint not found'); --url must be the service's root URL, like "
        "http://127.0.0.1:6300, without /api\n"
    )
    listed = run_cli("query", CLF_ANALYSIS_URL=f"{served.url}/api")
    assert listed.returncode == 1
    assert "CLF_ANALYSIS_URL must be the service's root URL" in listed.stderr


def test_a_port_that_is_no_number_says_so() -> None:
    done = run_cli("query", "--url", "localhost:abc")
    assert done.returncode == 2
    assert done.stderr == (
        "clf-analysis query: --url 'localhost:abc': the port 'abc' is not a number from 1 to "
        "65535; write http://HOST:PORT, e.g. http://127.0.0.1:6300\n"
    )


def test_a_host_without_port_means_the_services_port() -> None:
    # Whether or not something answers on 127.0.0.2:6300, the message names the URL called.
    done = run_cli("query", "no-such-job", "--url", "127.0.0.2")
    assert done.returncode == 1
    assert "http://127.0.0.2:6300" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_submit_json_prints_the_problem_of_a_refusal(served: Served) -> None:
    done = run_cli("submit", "nope", "--json", "--url", served.url)
    assert done.returncode == 1
    problem = json.loads(done.stdout)
    assert problem["http_status"] == 404
    assert problem["type"].endswith("/build-not-found")
    assert f"build nope not found under {served.midas}" in done.stderr


def test_cancel_of_a_finished_job_says_there_is_nothing_to_cancel(served: Served) -> None:
    submitted = run_cli("submit", BUILD_ID, "--wait", "--url", served.url)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.split()[0]
    done = run_cli("cancel", job_id, "--url", served.url)
    assert done.returncode == 1
    assert done.stderr == (
        f"clf-analysis cancel: job {job_id} already completed; nothing to cancel (HTTP 409)\n"
    )
