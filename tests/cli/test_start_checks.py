"""Mistakes a role finds before it does anything: a job store it cannot open, a --runner
that cannot run, a port in use, a flag out of range. Each is one line naming what the user
typed, exit status 2, never a traceback, and the role does not start."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import free_port, run_cli, small_build

# A start-up mistake is found at once; a role that starts anyway runs until this timeout.
QUICK = 60


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture
def share(tmp_path: Path) -> dict[str, str]:
    """Settings of a role that would otherwise start fine."""
    midas = tmp_path / "midas"
    midas.mkdir()
    return {"MIDAS_BASE_PATH": str(midas), "STATE_DIR": str(tmp_path / "state")}


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def test_an_unreachable_job_store_is_one_line_for_every_role(share: dict[str, str]) -> None:
    url = f"postgresql+psycopg://clf:hunter2@127.0.0.1:{free_port()}/jobs"
    shown = url.replace("hunter2", "***")
    report = run_cli("report", "--database-url", url, timeout=QUICK)
    assert report.returncode == 2
    assert report.stderr.startswith(
        f"clf-analysis report: cannot open the job store {shown} (--database-url): "
    )
    assert "refused" in one_line(report.stderr).lower()
    for role in ("worker", "serve"):
        args = (role,) if role == "worker" else (role, "--port", str(free_port()))
        done = run_cli(*args, timeout=QUICK, DATABASE_URL=url, **share)
        assert done.returncode == 2
        last = done.stderr.splitlines()[-1]  # after the share's start-up log line
        assert last.startswith(f"clf-analysis {role}: cannot open the job store {shown} ")
        assert "hunter2" not in done.stderr and "Traceback" not in done.stderr


def test_a_malformed_database_url_is_refused_by_name(share: dict[str, str]) -> None:
    for role in ("report", "worker", "serve"):
        done = run_cli(role, timeout=QUICK, DATABASE_URL="foo://bar", **share)
        assert done.returncode == 2
        assert one_line(done.stderr) == (
            f"clf-analysis {role}: invalid configuration: DATABASE_URL: the job store cannot "
            "be a 'foo' database; write sqlite:///PATH or "
            "postgresql+psycopg://USER:PASSWORD@HOST:5432/DB (got 'foo://bar')"
        )
    flag = run_cli("report", "--database-url", "not a url", timeout=QUICK)
    assert flag.returncode == 2
    assert one_line(flag.stderr).startswith(
        "clf-analysis report: --database-url: not a database URL; write sqlite:///PATH"
    )


def test_report_without_a_store_says_where_to_point_it(tmp_path: Path) -> None:
    done = run_cli("report", cwd=tmp_path, timeout=QUICK)
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        f"clf-analysis report: no job store at {tmp_path / '.state' / 'jobs.db'}; set "
        "STATE_DIR to the folder of the service's jobs.db or pass --database-url URL "
        "(`make demo` keeps its store in demo-out/.state)"
    )


@pytest.mark.parametrize(
    ("role", "runner", "reason"),
    [
        ("serve", "nosuch.module:fn", "no module named 'nosuch' (is it on PYTHONPATH?)"),
        ("worker", "nocolon", "write 'module:function', e.g. 'clf_analysis.pipeline.job:run_job'"),
        ("worker", "json:nope", "module json has no 'nope'"),
    ],
)
def test_a_runner_that_cannot_run_stops_the_start(
    share: dict[str, str], role: str, runner: str, reason: str
) -> None:
    args = ["--port", str(free_port())] if role == "serve" else []
    done = run_cli(role, "--runner", runner, *args, timeout=QUICK, **share)
    assert done.returncode == 2
    assert one_line(done.stderr) == f"clf-analysis {role}: --runner {runner!r}: {reason}"


def test_serve_on_a_port_in_use_stops_before_anything_starts(
    share: dict[str, str], listening: int
) -> None:
    done = run_cli("serve", "--host", "127.0.0.1", "--port", str(listening), timeout=QUICK, **share)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"clf-analysis serve: port {listening} (--port) is in use on 127.0.0.1: stop what "
        "listens there, or choose another port with --port N (or PORT)"
    )
    # Nothing started: no job store was opened, no worker claimed anything.
    assert not Path(share["STATE_DIR"]).exists()
    by_env = run_cli("serve", timeout=QUICK, PORT=str(listening), **share)
    assert by_env.returncode == 2
    assert f"port {listening} (PORT) is in use" in one_line(by_env.stderr)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--limit", "-5"], "argument --limit: must be at least 1, got -5"),
        (["worker", "--cancel-grace", "-1"], "argument --cancel-grace: must be at least 0, got -1"),
        (["worker", "--concurrency", "0"], "argument --concurrency: must be at least 1, got 0"),
        (
            ["worker", "--concurrency", "65"],
            "invalid configuration: --concurrency: Input should be less than or equal to 64 "
            "(got 65)",
        ),
        (["demo", "--out", "x", "--layer", "0"], "argument --layer: must be greater than 0, got 0"),
        (
            ["demo", "--out", "x", "--height", "0.5"],
            "--height 0.5 mm is fewer than 20 layers of --layer 0.05 mm: raise --height or "
            "lower --layer",
        ),
        (["query", "--limit", "0"], "argument --limit: must be at least 1, got 0"),
    ],
)
def test_a_flag_out_of_range_is_refused_by_name(
    share: dict[str, str], tmp_path: Path, args: list[str], message: str
) -> None:
    done = run_cli(*args, cwd=tmp_path, timeout=QUICK, **share)
    assert done.returncode == 2
    line = one_line(done.stderr)
    assert line.startswith(f"clf-analysis {args[0]}: {message}"), line
    assert not (tmp_path / "x").exists()  # the demo generated nothing


def test_analyze_refuses_its_flags_in_one_line(tmp_path: Path) -> None:
    build = small_build(tmp_path / "builds")
    for args, message in [
        (
            ["--holes-interval", "0"],
            "--holes-interval: Input should be greater than or equal to 0.5 (got 0.0)",
        ),
        (["--processes", "0"], "argument --processes: must be at least 1, got 0"),
    ]:
        done = run_cli("analyze", str(build), "--quiet", *args, timeout=QUICK)
        assert done.returncode == 2
        assert one_line(done.stderr).startswith(f"clf-analysis analyze: {message}")
    assert not (build / "clf_analysis").exists()


def test_the_viewer_on_a_busy_port_names_both_ways_to_move_it(
    tmp_path: Path, listening: int
) -> None:
    results = tmp_path / "out" / "demo-0001" / "clf_analysis"
    results.mkdir(parents=True)
    (results / "platform_info.json").write_text("{}")
    done = run_cli("demo", "--out", "out", "--view", "--port", str(listening), cwd=tmp_path)
    assert done.returncode == 2
    assert one_line(done.stderr) == (
        f"clf-analysis demo: port {listening} is in use; pass --port N "
        "(with make demo-ui: make demo-ui DEMO_PORT=N)"
    )
