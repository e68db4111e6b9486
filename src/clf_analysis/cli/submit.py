"""`clf-analysis submit`: ask a running service to analyse a build, optionally wait."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from clf_analysis.cli.options import EXIT_USAGE, add_service_options

if TYPE_CHECKING:
    from clf_analysis.cli.client import ApiClient, ClientError


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "submit",
        help="submit an analysis to the service over HTTP",
        description="Submit an analysis of a build to a running service. With --wait, show "
        "progress on stderr and end with where the results are; exit 0 when completed, "
        "1 when failed, cancelled or refused, 2 for a build id or a URL that cannot be one.",
    )
    p.add_argument("build_id", help="build folder name under the service's MIDAS_BASE_PATH")
    add_service_options(p)
    p.add_argument("--holes-interval", type=float, default=None, metavar="MM")
    p.add_argument("--composite", action="store_true", help="also create composite views")
    p.add_argument("--idempotency-key", default=None)
    p.add_argument("--wait", action="store_true", help="wait for the job to finish")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the service's JSON answer (its problem JSON when it refuses)",
    )
    p.set_defaults(func=run)


def _fail(message: str, code: int = 1) -> int:
    print(f"clf-analysis submit: {message}", file=sys.stderr)
    return code


def refused(client: ApiClient | None, exc: ClientError, *, as_json: bool) -> int:
    """Report a refusal: one line on stderr (with the command that clears a 409) and, with
    --json, the service's problem JSON on stdout for a script to read."""
    if as_json and exc.body is not None:
        print(json.dumps(exc.body, indent=2))
    message = str(exc)
    active = (exc.body or {}).get("active_job_id") if exc.http_status == 409 else None
    if client is not None and active:
        message += (
            f"; the active job is {active}: follow it with `{client.command('query', active)}`"
        )
        if not (exc.body or {}).get("type", "").endswith("/analysis-cancelling"):
            message += f", cancel it with `{client.command('cancel', active)}`"
    return _fail(message, exc.exit_code)


def completed_lines(client: ApiClient, job: dict[str, Any]) -> list[str]:
    """Where a completed job's results are: on the share, over HTTP, in the viewer."""
    result = job.get("result") or {}
    build_id = job["build_id"]
    lines = []
    if result.get("output_relpath"):
        where = f"{result['output_relpath']} under the service's MIDAS_BASE_PATH"
        if result.get("output_dir"):
            where += f" ({result['output_dir']} on its host)"
        lines.append(f"results  {where}")
    lines.append(f"summary  {client.base_url}/api/builds/{build_id}/results")
    lines.append(f"viewer   {client.viewer_url(build_id)}")
    return lines


def run(args: argparse.Namespace) -> int:
    from clf_analysis.abp.discovery import validate_build_id
    from clf_analysis.abp.errors import InvalidBuildId
    from clf_analysis.cli.client import ApiClient, ClientError

    try:
        # Checked here as the service would: a path like ../etc never reaches a URL.
        build_id = validate_build_id(args.build_id)
    except InvalidBuildId as exc:
        return _fail(f"{exc} (a build id is a folder name under MIDAS_BASE_PATH)", EXIT_USAGE)
    params: dict[str, Any] = {}
    if args.holes_interval is not None:
        params["holes_interval"] = args.holes_interval
    if args.composite:
        params["create_composite_views"] = True
    client = None
    try:
        client = ApiClient.from_args(args.url, args.token)
        accepted = client.submit(build_id, params, args.idempotency_key)
    except ClientError as exc:
        return refused(client, exc, as_json=args.json)
    if not args.wait:
        if args.json:
            print(json.dumps(accepted, indent=2))
        else:
            note = " (existing job)" if accepted.get("deduplicated") else ""
            print(f"{accepted['job_id']} {accepted['job']['status']}{note}")
        return 0
    return follow(client, accepted, as_json=args.json)


def follow(
    client: ApiClient, accepted: dict[str, Any], *, as_json: bool, links: bool = True
) -> int:
    """Show an accepted job's progress until it ends, then how it ended (and, completed,
    where its results are unless `links` is false); the exit code of `submit --wait`."""
    from clf_analysis.cli.client import ClientError, progress_bar
    from clf_analysis.jobs import JobState

    job_id = accepted["job_id"]
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

    try:
        job = client.wait(job_id, on_update=show)
    except ClientError as exc:
        return _fail(str(exc), exc.exit_code)
    if as_json:
        print(json.dumps(job, indent=2))
    else:
        print(f"{job_id} {job['status']}")
        if job["status"] == JobState.COMPLETED and links:
            print("\n".join(completed_lines(client, job)))
        if job["status"] == JobState.FAILED:
            print(f"error: {(job.get('error') or {}).get('message')}", file=sys.stderr)
    return 0 if job["status"] == JobState.COMPLETED else 1
