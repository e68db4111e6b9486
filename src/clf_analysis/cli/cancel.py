"""`clf-analysis cancel`: cancel a job of a running service, optionally wait until it ends."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from clf_analysis.cli.options import EXIT_FAILED, add_service_options


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "cancel",
        help="cancel a job of a running service",
        description="Cancel a job over HTTP (DELETE /api/jobs/JOB_ID): a queued job at once, "
        "a running one at its next check (killed after the worker's grace period). Exit 0 "
        "when the job is or will be cancelled (with --wait: when it ended cancelled), 1 when "
        "it had already completed or failed, or the service refused.",
    )
    p.add_argument("job_id", metavar="JOB_ID", help="the job's id (submit and query print it)")
    add_service_options(p)
    p.add_argument("--wait", action="store_true", help="wait until the job has stopped")
    p.add_argument("--json", action="store_true", help="print the job as the service shows it")
    p.set_defaults(func=run)


def _fail(message: str, code: int = EXIT_FAILED) -> int:
    print(f"clf-analysis cancel: {message}", file=sys.stderr)
    return code


def _show(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(job, indent=2))
        return
    note = " (cancel requested; it stops at its next check)" if job["status"] == "running" else ""
    print(f"{job['job_id']} {job['status']}{note}")


def run(args: argparse.Namespace) -> int:
    from clf_analysis.cli.client import ApiClient, ClientError
    from clf_analysis.jobs import FINISHED_STATES, JobState

    try:
        client = ApiClient.from_args(args.url, args.token)
        job = client.cancel(args.job_id)
    except ClientError as exc:
        body = exc.body or {}
        if exc.http_status == 409 and body.get("job_status") == JobState.CANCELLED:
            print(f"{args.job_id} cancelled (already)")
            return 0
        if args.json and exc.body is not None:
            print(json.dumps(exc.body, indent=2))  # a script reads the problem as sent
        return _fail(str(exc), exc.exit_code)
    if args.wait and job["status"] not in FINISHED_STATES:
        try:
            job = client.wait(args.job_id)
        except ClientError as exc:
            return _fail(str(exc), exc.exit_code)
    _show(job, args.json)
    if args.wait and job["status"] != JobState.CANCELLED:
        return _fail(f"job {args.job_id} ended {job['status']}, not cancelled")
    return 0
