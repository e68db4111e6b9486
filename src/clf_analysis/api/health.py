"""Service routes: legacy info and health, probes, versions, Prometheus metrics."""

from __future__ import annotations

import logging
import platform
from datetime import UTC, datetime
from importlib import metadata

from flask import Blueprint, Response, jsonify

from clf_analysis import __version__
from clf_analysis.abp.share_check import check_share
from clf_analysis.api.contract import Header, Operation, Reply, declare, problem
from clf_analysis.api.errors import ApiError
from clf_analysis.api.models import (
    HealthResponse,
    Liveness,
    Readiness,
    ServiceInfo,
    ServiceSettings,
    ServiceVersions,
)
from clf_analysis.api.service import service
from clf_analysis.jobs.models import JOB_STATES

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)

# Distribution names, read from package metadata so that /info never imports OpenCV or
# matplotlib into an API process that does not otherwise need them.
VERSIONED_PACKAGES = {
    "numpy": "numpy",
    "shapely": "shapely",
    "opencv": "opencv-python-headless",
    "matplotlib": "matplotlib",
    "sqlalchemy": "SQLAlchemy",
    "flask": "Flask",
    "pydantic": "pydantic",
    "gunicorn": "gunicorn",
}
DURATION_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
NOT_READY = problem(
    503,
    "draining",
    "store-unavailable",
    "share-unavailable",
    description=(
        "Shutting down, the job store does not answer, or the build share (MIDAS_BASE_PATH) "
        "is missing, no folder, or not readable and writable by the service's uid."
    ),
    headers={"Retry-After": Header("Seconds to wait.", {"type": "integer", "minimum": 0})},
)


@bp.get("/")
@declare(
    Operation(
        "Service name, version and main routes",
        legacy=True,
        replies={200: Reply("The service.", ServiceInfo)},
    )
)
def index() -> Response:
    return jsonify(
        ServiceInfo(
            service="CLF Analysis API",
            version=__version__,
            status="running",
            endpoints={
                "health": "/health",
                "analyze": "/api/analyze",
                "analyze_by_build": "/api/builds/<build_id>/analyze",
                "jobs": "/api/jobs",
                "job": "/api/jobs/<job_id>",
                "builds": "/api/builds",
                "results": "/api/builds/<build_id>/results",
                "layers": "/api/builds/<build_id>/layers",
                "openapi": "/openapi.json",
                "ui": "/ui/",
            },
        ).dump()
    )


@bp.get("/health")
@declare(Operation("Health", legacy=True, replies={200: Reply("Always healthy.", HealthResponse)}))
def health() -> Response:
    return jsonify(
        HealthResponse(
            status="healthy", service="clf-abp-path-analysis", timestamp=datetime.now(UTC)
        ).dump()
    )


@bp.get("/livez")
@declare(Operation("Liveness probe", replies={200: Reply("The process answers.", Liveness)}))
def livez() -> Response:
    return jsonify(Liveness(status="ok").dump())


@bp.get("/readyz")
@declare(
    Operation(
        "Readiness probe: job store reachable, build share usable, not draining",
        replies={200: Reply("Ready for work.", Readiness)},
        refusals=(NOT_READY,),
    )
)
def readyz() -> Response:
    svc = service()
    if svc.is_draining():
        raise ApiError(
            503,
            "Service Unavailable",
            "shutting down: not accepting work",
            kind="draining",
            headers={"Retry-After": "5"},
        )
    try:
        svc.store.ping()
    except Exception as exc:
        log.warning("readiness: job store unreachable: %s", exc)
        raise ApiError(
            503,
            "Service Unavailable",
            "job store unreachable",
            kind="store-unavailable",
            headers={"Retry-After": "5"},
        ) from None
    # Every job needs the share: without it the service is up but of no use, and the
    # answer says why (path and uid) so that the fix is obvious from a health check.
    share = check_share(svc.settings.midas_base_path)
    if not share.ok:
        log.warning("readiness: %s", share.problem)
        raise ApiError(
            503,
            "Service Unavailable",
            share.problem or "build share unusable",
            kind="share-unavailable",
            headers={"Retry-After": "5"},
            share=share.to_dict(),
        )
    return jsonify(Readiness(status="ready").dump())


@bp.get("/info")
@declare(
    Operation(
        "Versions of the service and its libraries",
        replies={200: Reply("Versions and settings.", ServiceVersions)},
    )
)
def info() -> Response:
    versions: dict[str, str | None] = {
        "service": __version__,
        "python": platform.python_version(),
    }
    for key, dist in VERSIONED_PACKAGES.items():
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    svc = service()
    return jsonify(
        ServiceVersions(
            service="clf-abp-path-analysis",
            versions=versions,
            started_at=svc.started_at.isoformat(),
            draining=svc.is_draining(),
            settings=ServiceSettings(
                worker_concurrency=svc.settings.worker_concurrency,
                max_attempts=svc.settings.max_attempts,
                job_store=svc.store_kind,
            ),
            share=check_share(svc.settings.midas_base_path).to_dict(),
        ).dump()
    )


def _metric(lines: list[str], name: str, kind: str, help_text: str) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")


@bp.get("/metrics")
@declare(
    Operation(
        "Prometheus metrics",
        description="Jobs by state, the age of the oldest queued job, recent durations, "
        "service starts.",
        replies={200: Reply("Prometheus text format 0.0.4.", media=("text/plain",))},
    )
)
def metrics() -> Response:
    store = service().store
    lines: list[str] = []

    counts = store.counts_by_state()
    _metric(lines, "clf_jobs", "gauge", "Jobs in the store by state.")
    for state in JOB_STATES:
        lines.append(f'clf_jobs{{state="{state}"}} {counts.get(state, 0)}')

    age = store.oldest_queued_age_seconds()
    _metric(
        lines,
        "clf_oldest_queued_job_age_seconds",
        "gauge",
        "Seconds the oldest queued job has waited (0 when none waits).",
    )
    lines.append(f"clf_oldest_queued_job_age_seconds {age or 0.0:.3f}")

    # Durations come from the store (the truth shared by every process), not from counters
    # of this process: a histogram over the most recent completed jobs.
    durations = store.recent_durations()
    _metric(lines, "clf_job_duration_seconds", "histogram", "Run time of recently completed jobs.")
    for bound in DURATION_BUCKETS:
        n = sum(1 for d in durations if d <= bound)
        lines.append(f'clf_job_duration_seconds_bucket{{le="{bound}"}} {n}')
    lines.append(f'clf_job_duration_seconds_bucket{{le="+Inf"}} {len(durations)}')
    lines.append(f"clf_job_duration_seconds_sum {sum(durations):.3f}")
    lines.append(f"clf_job_duration_seconds_count {len(durations)}")

    history = store.service_state()
    _metric(lines, "clf_service_startups_total", "counter", "Recorded process starts.")
    lines.append(f"clf_service_startups_total {history.startup_count}")
    _metric(
        lines,
        "clf_service_unclean_shutdowns_total",
        "counter",
        "Starts that found an earlier instance dead without a clean shutdown.",
    )
    lines.append(f"clf_service_unclean_shutdowns_total {history.unclean_shutdown_count}")
    _metric(lines, "clf_service_running_instances", "gauge", "Instances believed running.")
    lines.append(f"clf_service_running_instances {len(history.running_instance_ids)}")

    _metric(lines, "clf_draining", "gauge", "1 while this process is shutting down.")
    lines.append(f"clf_draining {int(service().is_draining())}")
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
