"""`clf-analysis demo`: generate a synthetic build, then analyse it through the service.

By default the demo starts the real service (`clf-analysis serve`, embedded workers,
SQLite job store under `<out>/.state`) on a free loopback port, submits the build over
HTTP, follows the job's progress, prints the analysis and job-store reports and stops the
service with SIGTERM, as an operator would. `--no-service` analyses in this process.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clf_analysis.synth import GeneratedBuild

READY_TIMEOUT = 120.0  # first start on a cold machine imports numpy, shapely, matplotlib


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="generate a synthetic build and analyse it through the service",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--out", type=Path, required=True, help="folder that receives <build id>/")
    p.add_argument("--parts", type=int, default=8, help="analysed part files (default 8)")
    p.add_argument("--height", type=float, default=20.0, help="build height in mm (default 20)")
    p.add_argument("--layer", type=float, default=0.05, help="layer thickness in mm (0.05)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--build-id", default="demo-0001", help="build id (default demo-0001)")
    p.add_argument(
        "--no-service", action="store_true", help="analyse in this process, without the service"
    )
    p.set_defaults(func=run)


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


def through_service(build: GeneratedBuild, out: Path) -> int:
    """Serve, submit, follow, report, stop: the main job as the stack runs it."""
    from clf_analysis.cli import report, submit
    from clf_analysis.cli.analyze import report_lines
    from clf_analysis.cli.client import ApiClient, ClientError

    state = out / ".state"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "MIDAS_BASE_PATH": str(out.resolve()),
        "STATE_DIR": str(state.resolve()),
        "DATABASE_URL": f"sqlite:///{(state / 'jobs.db').resolve()}",
        "WORKER_CONCURRENCY": "1",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("API_TOKEN", None)
    log_path = out / "demo-service.log"
    print(f"\nstarting the service on {url} (log: {log_path})")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clf_analysis", "serve", "--host", "127.0.0.1",
             "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        if not _wait_ready(url, proc):
            print(f"the service did not become ready; see {log_path}", file=sys.stderr)
            return 1
        print(f"submitting build {build.build_id} through POST /api/builds/<id>/analyze")
        code = _run_command(submit, "submit", build.build_id, "--url", url, "--wait", "--composite")
        if code == 0:
            client = ApiClient.from_args(url, None)
            try:
                results = client.json("GET", f"/api/builds/{build.build_id}/results")
                job = client.jobs(build_id=build.build_id)["jobs"][0]
            except ClientError as exc:
                print(f"clf-analysis demo: {exc}", file=sys.stderr)
                return 1
            duration = float((job.get("result") or {}).get("duration_seconds") or 0.0)
            output_dir = str(build.build_dir / "clf_analysis")
            print("\n" + "\n".join(report_lines(results["platform_info"], output_dir, duration)))
            print(f"artifacts    {len(results['artifacts'])} images and summaries served under "
                  f"{url}/api/builds/{build.build_id}/artifacts/")  # fmt: skip
        print()
        _run_command(report, "report", "--database-url", env["DATABASE_URL"], "--limit", "5")
        return code
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=90)
            print(f"\nservice stopped (exit code {rc})")
        except subprocess.TimeoutExpired:
            proc.kill()
            print("\nservice did not stop within 90 s; killed", file=sys.stderr)


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
    try:
        build = generate_demo(args)
    except ValueError as exc:
        print(f"clf-analysis demo: {exc}", file=sys.stderr)
        return 2
    print("\n".join(summary_lines(build)))
    if args.no_service:
        from clf_analysis.cli import analyze

        print()
        return _run_command(
            analyze, "analyze", build.build_id, "--midas", str(args.out), "--composite"
        )
    return through_service(build, args.out)
