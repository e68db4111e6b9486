"""`clf-analysis query`: show one job, or the recent jobs, of a running service."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from clf_analysis.cli.options import add_service_options, at_least


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "query",
        help="show a job (or the recent jobs) of a running service",
        description="Show one job by id, or list recent jobs, over HTTP.",
    )
    p.add_argument("job_id", nargs="?", help="job id; without it, list jobs")
    add_service_options(p)
    p.add_argument("--state", default=None, help="list only jobs in this state")
    p.add_argument("--build-id", default=None, help="list only jobs of this build")
    p.add_argument(
        "--limit", type=at_least(1), default=20, help="jobs to list (default 20, at most 500)"
    )
    p.add_argument("--json", action="store_true", help="print the service's JSON answer")
    p.set_defaults(func=run)


HEADER = f"{'job id':<36}  {'build':<12} {'state':<9} {'progress':>8}  created"


def _row(job: dict[str, Any]) -> str:
    progress = job.get("progress") or {}
    return (
        f"{job['job_id']:<36}  {job['build_id']:<12} {job['status']:<9} "
        f"{float(progress.get('percent') or 0):7.1f}%  {job.get('created_at') or ''}"
    )


def job_lines(job: dict[str, Any]) -> list[str]:
    """One job: its row, then what it is doing now or how it ended."""
    lines = [HEADER, _row(job)]
    progress = job.get("progress") or {}
    if job["status"] in ("queued", "running"):
        # Only news while the job runs: a finished job's stage is just where it last was.
        if progress.get("stage"):
            lines.append(f"  stage: {progress['stage']} {progress.get('message') or ''}".rstrip())
    elif job.get("finished_at"):
        lines.append(f"  finished: {job['finished_at']}")
    if job.get("result") is not None:
        lines.append(f"  result: {json.dumps(job['result'])}")
    if job.get("error") is not None:
        lines.append(f"  error: {job['error'].get('message')}")
    return lines


def run(args: argparse.Namespace) -> int:
    from clf_analysis.cli.client import ApiClient, ClientError

    try:
        client = ApiClient.from_args(args.url, args.token)
        if args.job_id:
            body = client.job_json("GET", args.job_id)
            if args.json:
                print(json.dumps(body, indent=2))
                return 0
            print("\n".join(job_lines(body["job"])))
            return 0
        body = client.jobs(state=args.state, build_id=args.build_id, limit=args.limit)
    except ClientError as exc:
        if args.json and exc.body is not None:
            print(json.dumps(exc.body, indent=2))  # a script reads the problem as sent
        print(f"clf-analysis query: {exc}", file=sys.stderr)
        return exc.exit_code
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    if body["jobs"]:
        print(HEADER)
    for job in body["jobs"]:
        print(_row(job))
    print(f"{body['count']} of {body['total']} jobs", file=sys.stderr)
    return 0
