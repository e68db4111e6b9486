"""`clf-analysis demo`: generate a synthetic build, then analyse it through the service.

By default the demo starts the real service (`clf-analysis serve`, embedded workers,
SQLite job store under `<out>/.state`) on a free loopback port, submits the build over
HTTP, follows the job's progress, prints the analysis and job-store reports, stops the
service with SIGTERM, as an operator would, and ends with the command that opens the
results in the viewer. `--no-service` analyses in this process.

`--view` generates nothing: it serves the results of an earlier demo in `--out` on
`--port` (default 6300) and prints the viewer's URL, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from clf_analysis.cli.options import above, at_least

if TYPE_CHECKING:
    from clf_analysis.synth import GeneratedBuild

READY_TIMEOUT = 120.0  # first start on a cold machine imports numpy, shapely, matplotlib
VIEW_PORT = 6300


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="generate a synthetic build and analyse it through the service",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--out", type=Path, required=True, help="folder that receives <build id>/")
    p.add_argument("--parts", type=at_least(1), default=8, help="analysed part files (default 8)")
    p.add_argument("--height", type=above(0), default=20.0, help="build height in mm (default 20)")
    p.add_argument("--layer", type=above(0), default=0.05, help="layer thickness in mm (0.05)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--build-id", default="demo-0001", help="build id (default demo-0001)")
    p.add_argument(
        "--no-service", action="store_true", help="analyse in this process, without the service"
    )
    p.add_argument(
        "--view",
        action="store_true",
        help="serve the results of an earlier demo in --out and print the viewer's URL",
    )
    p.add_argument(
        "--port",
        type=at_least(1),
        default=VIEW_PORT,
        help=f"port of --view (default {VIEW_PORT}; `make demo-ui` takes DEMO_PORT)",
    )
    p.set_defaults(func=run)


MIN_DEMO_LAYERS = 20  # what the generator needs for its designs


def demo_problem(args: argparse.Namespace) -> str | None:
    """What in the command line the generator would refuse, by flag; None when fine."""
    from clf_analysis.abp.discovery import validate_build_id
    from clf_analysis.abp.errors import InvalidBuildId

    try:
        validate_build_id(args.build_id)
    except InvalidBuildId as exc:
        return f"--build-id: {exc}"
    if round(args.height / args.layer) < MIN_DEMO_LAYERS:
        return (
            f"--height {args.height:g} mm is fewer than {MIN_DEMO_LAYERS} layers of --layer "
            f"{args.layer:g} mm: raise --height or lower --layer"
        )
    return None


def generate_demo(args: argparse.Namespace) -> GeneratedBuild:
    """Generate the build the command line describes."""
    from clf_analysis.synth import generate_build

    return generate_build(
        args.out,
        build_id=args.build_id,
        parts=args.parts,
        height_mm=args.height,
        layer_mm=args.layer,
        seed=args.seed,
    )


def summary_lines(build: GeneratedBuild) -> list[str]:
    """A short human summary of a generated build."""
    return [
        f"build       {build.build_id}",
        f"package     {build.archive} ({build.size_bytes / 1e6:.2f} MB)",
        f"clf files   {build.clf_files}: {build.included_files} included, "
        f"{build.excluded_files} excluded by folder",
        f"parts       {build.parts} (folder, file, model id) keys analysed",
        f"layers      {build.layers}",
        f"truth       {build.ground_truth}",
        f"generated   in {build.seconds:.2f} s",
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> bool:
    import requests

    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        time.sleep(0.3)
    return False


def _program() -> str:
    """How to call this command again, as the user called it (`.venv/bin/clf-analysis`)."""
    argv0 = Path(sys.argv[0])
    if argv0.name != "clf-analysis":
        return "clf-analysis"  # `python -m clf_analysis`, or embedded: the installed script
    try:
        return str(argv0.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(argv0)


def view_command(out: Path, build_id: str) -> str:
    """The one command that serves a demo's results and prints the viewer's URL."""
    parts = [_program(), "demo", "--out", str(out), "--view"]
    if build_id != "demo-0001":
        parts += ["--build-id", build_id]
    return shlex.join(parts)


class _Service:
    """`clf-analysis serve` on a demo folder: its builds, a SQLite job store beside them."""

    def __init__(self, out: Path, port: int) -> None:
        state = out / ".state"
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "MIDAS_BASE_PATH": str(out.resolve()),
            "STATE_DIR": str(state.resolve()),
            "DATABASE_URL": f"sqlite:///{(state / 'jobs.db').resolve()}",
            "WORKER_CONCURRENCY": "1",
            "LOG_LEVEL": "WARNING",
        }
        self.env.pop("API_TOKEN", None)
        self.log_path = out / "demo-service.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "clf_analysis", "serve", "--host", "127.0.0.1",
                 "--port", str(port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def ready(self) -> bool:
        return _wait_ready(self.url, self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=90)
            print(f"\nservice stopped (exit code {rc})")
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            print("\nservice did not stop within 90 s; killed", file=sys.stderr)


def through_service(build: GeneratedBuild, out: Path) -> int:
    """Serve, submit, follow, report, stop: the main job as the stack runs it."""
    from clf_analysis.cli import report, submit
    from clf_analysis.cli.analyze import report_lines
    from clf_analysis.cli.client import ApiClient, ClientError

    service = _Service(out, _free_port())
    print(f"\nstarting the service on {service.url} (log: {service.log_path})")
    try:
        if not service.ready():
            print(f"the service did not become ready; see {service.log_path}", file=sys.stderr)
            return 1
        print(f"submitting build {build.build_id} through POST /api/builds/<id>/analyze")
        client = ApiClient.from_args(service.url, None)
        try:
            accepted = client.submit(build.build_id, {"create_composite_views": True})
        except ClientError as exc:
            print(f"clf-analysis demo: {exc}", file=sys.stderr)
            return 1
        # No result links: this service stops at the end of the demo.
        code = submit.follow(client, accepted, as_json=False, links=False)
        if code == 0:
            try:
                results = client.json("GET", f"/api/builds/{build.build_id}/results")
                job = client.jobs(build_id=build.build_id)["jobs"][0]
            except ClientError as exc:
                print(f"clf-analysis demo: {exc}", file=sys.stderr)
                return 1
            duration = float((job.get("result") or {}).get("duration_seconds") or 0.0)
            output_dir = str(build.build_dir / "clf_analysis")
            print("\n" + "\n".join(report_lines(results["platform_info"], output_dir, duration)))
        print()
        store_url = service.env["DATABASE_URL"]
        _run_command(report, "report", "--database-url", store_url, "--limit", "5")
    finally:
        service.stop()
    if code == 0:
        # Last, so that it is what the terminal shows: the service above is stopped.
        print(f"\nopen the results in the viewer: {view_command(out, build.build_id)}")
    return code


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise _Stopped


class _Stopped(Exception):
    """SIGTERM to the viewer command: stop the service it started."""


def view(out: Path, build_id: str, port: int) -> int:
    """Serve the results of an earlier demo until interrupted; prints the viewer's URL."""
    from clf_analysis.cli.client import ApiClient

    results = out / build_id / "clf_analysis" / "platform_info.json"
    if not results.is_file():
        print(
            f"clf-analysis demo: no demo results in {out / build_id}; "
            f"run first: {shlex.join([_program(), 'demo', '--out', str(out)])}",
            file=sys.stderr,
        )
        return 2
    if _port_in_use(port):
        print(
            f"clf-analysis demo: port {port} is in use; pass --port N "
            "(with make demo-ui: make demo-ui DEMO_PORT=N)",
            file=sys.stderr,
        )
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    service = _Service(out, port)
    try:
        if not service.ready():
            print(f"the service did not become ready; see {service.log_path}", file=sys.stderr)
            return 1
        print(f"viewer: {ApiClient(service.url).viewer_url(build_id)}")
        print(f"serving {out} (log: {service.log_path}); Ctrl-C stops it")
        service.proc.wait()
        print(f"the service stopped by itself; see {service.log_path}", file=sys.stderr)
        return 1
    except _Stopped:
        return 0
    except KeyboardInterrupt:
        # Ctrl-C reached the service too (same terminal): let it drain on its own first.
        with contextlib.suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
            service.proc.wait(timeout=45)
        return 0
    finally:
        service.stop()


def _run_command(command: ModuleType, *argv: str) -> int:
    """`clf-analysis ARGV` in this process, for a role the demo shows (imported by name:
    the command line's registry imports this module)."""
    parser = argparse.ArgumentParser(prog="clf-analysis")
    command.register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


def run(args: argparse.Namespace) -> int:
    # Our lines and the service's progress (stderr) interleave in order in CI logs.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    if args.view:
        return view(args.out, args.build_id, args.port)
    problem = demo_problem(args)
    if problem is not None:
        print(f"clf-analysis demo: {problem}", file=sys.stderr)
        return 2
    try:
        build = generate_demo(args)
    except ValueError as exc:  # too many parts for the plate
        print(f"clf-analysis demo: {exc}; lower --parts", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(build)))
    if args.no_service:
        from clf_analysis.cli import analyze

        print()
        return _run_command(
            analyze, "analyze", build.build_id, "--midas", str(args.out), "--composite"
        )
    return through_service(build, args.out)
