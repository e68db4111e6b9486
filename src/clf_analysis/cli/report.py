"""`clf-analysis report`: read the job store directly, also while the service is down."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from clf_analysis.cli.options import at_least

if TYPE_CHECKING:
    from clf_analysis.cli.job_store import StoreChoice


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="summarise the job store (works while the service is down)",
        description="Jobs by state, recent jobs and failures, service starts and unclean "
        "shutdowns; with --job, one job and its events.",
    )
    parser.add_argument(
        "--database-url",
        default=None,
        help="job store URL (default: DATABASE_URL, else jobs.db in STATE_DIR)",
    )
    parser.add_argument("--job", default=None, metavar="ID", help="show one job and its events")
    parser.add_argument(
        "--limit", type=at_least(1), default=20, help="recent jobs to list (default 20)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _job_summary(job: Any) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "build_id": job.build_id,
        "state": job.state,
        "attempts": job.attempts,
        "progress": round(job.progress, 1),
        "stage": job.stage,
        "created_at": _iso(job.created_at),
        "duration_seconds": job.duration_seconds,
        "error": (job.error or {}).get("message"),
    }


def _sqlite_missing(url: str) -> str | None:
    # Reading must not create an empty store somewhere by mistake.
    from pathlib import Path

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    database = parsed.database
    is_file = parsed.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
    return database if is_file and not Path(str(database)).exists() else None


def collect(store: Any, *, job_id: str | None, limit: int) -> dict[str, Any]:
    """Everything the report shows, as plain data."""
    from clf_analysis.jobs import JobState

    recent, total = store.list_jobs(limit=limit)
    failures, _ = store.list_jobs(state=JobState.FAILED, limit=min(limit, 10))
    state = store.service_state()
    report: dict[str, Any] = {
        "counts": store.counts_by_state(),
        "total_jobs": total,
        "oldest_queued_age_seconds": store.oldest_queued_age_seconds(),
        "recent_jobs": [_job_summary(j) for j in recent],
        "recent_failures": [
            {**_job_summary(j), "error_detail": j.error, "finished_at": _iso(j.finished_at)}
            for j in failures
        ],
        "service": {
            "startup_count": state.startup_count,
            "clean_shutdown_count": state.clean_shutdown_count,
            "unclean_shutdown_count": state.unclean_shutdown_count,
            "running_instances": list(state.running_instance_ids),
            "last_started_at": _iso(state.last_started_at),
            "instances": [
                {
                    "instance_id": i.instance_id,
                    "role": i.role,
                    "host": i.host,
                    "pid": i.pid,
                    "started_at": _iso(i.started_at),
                    "stopped_at": _iso(i.stopped_at),
                    "status": i.status,
                }
                for i in state.instances
            ],
        },
    }
    if job_id is not None:
        job = store.get(job_id)
        report["job"] = None
        if job is not None:
            report["job"] = {
                **_job_summary(job),
                "params": job.params,
                "started_at": _iso(job.started_at),
                "finished_at": _iso(job.finished_at),
                "message": job.message,
                "result": job.result,
                "error_detail": job.error,
                "events": [
                    {"id": e.id, "at": _iso(e.at), "kind": e.kind, "detail": e.detail}
                    for e in store.events(job_id)
                ],
            }
    return report


def _fmt_duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def render_job(job: dict[str, Any]) -> str:
    """One job of the report (`--job`): its state, parameters, error and every event."""
    lines = [f"Job {job['job_id']} (build {job['build_id']}): {job['state']}"]
    lines.append(f"  params: {json.dumps(job['params'], sort_keys=True)}")
    if job["error_detail"]:
        lines.append(f"  error: {json.dumps(job['error_detail'], sort_keys=True)}")
    lines.append("  events:")
    for e in job["events"]:
        detail = json.dumps(e["detail"], sort_keys=True) if e["detail"] else ""
        lines.append(f"    {e['at']}  {e['kind']:16} {detail}")
    return "\n".join(lines)


def render_text(report: dict[str, Any]) -> str:
    lines = ["Jobs by state: " + ", ".join(f"{k} {v}" for k, v in report["counts"].items())]
    age = report["oldest_queued_age_seconds"]
    if age is not None:
        lines.append(f"Oldest queued job waits for {age:.0f} s")
    s = report["service"]
    lines.append(
        f"Service: {s['startup_count']} startups, {s['clean_shutdown_count']} clean and "
        f"{s['unclean_shutdown_count']} unclean shutdowns, running now: "
        + (", ".join(s["running_instances"]) or "none")
    )
    lines.append("")
    lines.append(f"Recent jobs ({len(report['recent_jobs'])} of {report['total_jobs']}):")
    header = f"  {'job id':36}  {'build':12}  {'state':9}  att  {'prog':>5}  {'time':>7}  error"
    lines.append(header)
    for j in report["recent_jobs"]:
        lines.append(
            f"  {j['job_id']:36}  {j['build_id'][:12]:12}  {j['state']:9}  {j['attempts']:3}  "
            f"{j['progress']:5.1f}  {_fmt_duration(j['duration_seconds']):>7}  {j['error'] or ''}"
        )
    if report["recent_failures"]:
        lines.append("")
        lines.append("Recent failures:")
        for j in report["recent_failures"]:
            detail = j["error_detail"] or {}
            lines.append(
                f"  {j['job_id']}  build {j['build_id']}  {detail.get('type', '?')}: "
                f"{detail.get('message', '')}"
            )
    return "\n".join(lines)


def _choice(database_url: str | None) -> StoreChoice:
    """The store to read: --database-url, else the settings' (ConfigError, ValueError)."""
    from clf_analysis.cli.job_store import StoreChoice, configured_store
    from clf_analysis.config import database_url_problem, load_settings

    if database_url is None:
        return configured_store(load_settings())
    problem = database_url_problem(database_url)
    if problem is not None:
        raise ValueError(f"--database-url: {problem}")
    return StoreChoice(database_url, "--database-url")


def no_store_message(path: str, named_by: str) -> str:
    """What to do when the store's SQLite file is not there."""
    if named_by == "STATE_DIR":
        return (
            f"no job store at {path}; set STATE_DIR to the folder of the service's jobs.db "
            "or pass --database-url URL (`make demo` keeps its store in demo-out/.state)"
        )
    return f"no job store at {path} ({named_by}); check the path"


def run(args: argparse.Namespace) -> int:
    from clf_analysis.cli.job_store import StoreUnavailable, open_store
    from clf_analysis.config import ConfigError

    try:
        choice = _choice(args.database_url)
    except (ConfigError, ValueError) as exc:
        print(f"clf-analysis report: {exc}", file=sys.stderr)
        return 2
    missing = _sqlite_missing(choice.url)
    if missing is not None:
        # Nothing recorded there (yet): not a configuration error, the service may just
        # never have run with this STATE_DIR.
        print(f"clf-analysis report: {no_store_message(missing, choice.named_by)}", file=sys.stderr)
        return 1
    try:
        store = open_store(choice)
    except StoreUnavailable as exc:
        print(f"clf-analysis report: {exc}", file=sys.stderr)
        return 2
    try:
        report = collect(store, job_id=args.job, limit=args.limit)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    elif args.job is None:
        print(render_text(report))
    elif report["job"] is not None:
        # Asked about one job: that job only, not the whole store around it.
        print(render_job(report["job"]))
    if args.job is not None and report["job"] is None:
        print(f"clf-analysis report: job {args.job} not found", file=sys.stderr)
        return 1
    return 0
