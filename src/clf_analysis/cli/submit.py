"""`clf-analysis submit`: ask a running service to analyse a build, optionally wait."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "submit",
        help="submit an analysis to the service over HTTP",
        description="Submit an analysis of a build to a running service. With --wait, show "
        "progress on stderr; exit 0 when completed, 1 when failed, cancelled or refused.",
    )
    p.add_argument("build_id", help="build folder name under MIDAS_BASE_PATH")
    p.add_argument(
        "--url",
        default=None,
        help="service URL (default CLF_ANALYSIS_URL or http://127.0.0.1:6300)",
    )
    p.add_argument("--token", default=None, help="API token (default: API_TOKEN)")
    p.add_argument("--holes-interval", type=float, default=None, metavar="MM")
    p.add_argument("--composite", action="store_true", help="also create composite views")
    p.add_argument("--idempotency-key", default=None)
    p.add_argument("--wait", action="store_true", help="wait for the job to finish")
    p.add_argument("--json", action="store_true", help="print the service's JSON answer")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from clf_analysis.cli.client import ApiClient, ClientError, progress_bar
    from clf_analysis.jobs import JobState

    client = ApiClient.from_args(args.url, args.token)
    params: dict[str, Any] = {}
    if args.holes_interval is not None:
        params["holes_interval"] = args.holes_interval
    if args.composite:
        params["create_composite_views"] = True
    try:
        accepted = client.submit(args.build_id, params, args.idempotency_key)
        job_id = accepted["job_id"]
        if not args.wait:
            if args.json:
                print(json.dumps(accepted, indent=2))
            else:
                note = " (existing job)" if accepted.get("deduplicated") else ""
                print(f"{job_id} {accepted['job']['status']}{note}")
            return 0
        print(f"job {job_id} for build {accepted['build_id']}", file=sys.stderr)
        last: list[Any] = [None]

        def show(job: dict[str, Any]) -> None:
            key = (
                job["status"],
                job["progress"].get("percent"),
                job["progress"].get("stage"),
                job["progress"].get("message"),
            )
            if key != last[0]:
                last[0] = key
                progress_bar(job)

        job = client.wait(job_id, on_update=show)
    except ClientError as exc:
        print(f"clf-analysis submit: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        print(f"{job_id} {job['status']}")
        if job["status"] == JobState.FAILED:
            print(f"error: {(job.get('error') or {}).get('message')}", file=sys.stderr)
    return 0 if job["status"] == JobState.COMPLETED else 1
