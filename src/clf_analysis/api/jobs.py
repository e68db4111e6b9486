"""Job routes: submit an analysis (two legacy routes), read, list, cancel, events."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from flask import Blueprint, Response, json, jsonify, request
from pydantic import ValidationError

from clf_analysis.api.errors import ApiError, validation_problem
from clf_analysis.api.models import (
    AcceptedResponse,
    AnalyzeRequest,
    BuildAnalyzeRequest,
    EventListResponse,
    EventView,
    JobListResponse,
    JobResponse,
    JobView,
)
from clf_analysis.api.parsing import build_id_arg, idempotency_key, int_query, json_object_body
from clf_analysis.api.service import service
from clf_analysis.build.discovery import BuildNotFound, BuildRefused, find_build_package
from clf_analysis.jobs.models import FINISHED_STATES, JOB_STATES, Job
from clf_analysis.pipeline.params import AnalysisParams

bp = Blueprint("jobs", __name__)

# Job ids are UUIDs; anything else cannot exist, so it is answered without a query (and a
# PostgreSQL uuid cast can never fail on user input).
_JOB_ID = re.compile(r"[0-9A-Fa-f-]{1,64}")
POLL_SECONDS = "2"


@bp.post("/api/analyze")
def analyze() -> Response:
    body = json_object_body(required=True)
    try:
        req = AnalyzeRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    return _submit(str(req.build_id), req.params())


@bp.post("/api/builds/<path:build_id>/analyze")
def analyze_build(build_id: str) -> Response:
    build_id = build_id_arg(build_id)
    body = json_object_body(required=False)
    try:
        params = BuildAnalyzeRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    return _submit(build_id, AnalysisParams(**params.model_dump()))


def _submit(build_id: str, params: AnalysisParams) -> Response:
    svc = service()
    key = idempotency_key()
    try:
        # Checked before anything is stored, and find_build_package never creates anything:
        # the legacy service made an empty folder for every mistyped id.
        find_build_package(svc.settings.midas_base_path, build_id)
    except BuildNotFound as exc:
        # A refused link is named (share-relative), so the operator knows what to fix; a
        # missing build says where it was looked for (MIDAS_BASE_PATH, the operator's
        # setting), so a wrong or missing mount is obvious.
        if isinstance(exc, BuildRefused):
            raise ApiError(
                404, "Not Found", str(exc), kind="build-not-found", build_id=build_id
            ) from None
        base = svc.settings.midas_base_path
        raise ApiError(
            404,
            "Not Found",
            f"build {build_id} not found under {base} (no folder or no .abp package)",
            kind="build-not-found",
            build_id=build_id,
            midas_base_path=str(base),
        ) from None
    wanted = params.canonical()
    outcome = svc.store.submit(
        build_id, wanted, idempotency_key=key, max_attempts=svc.settings.max_attempts
    )
    if outcome.conflict is not None:
        active = outcome.conflict
        detail = (
            f"build {active.build_id}: the active analysis is being cancelled; "
            "submit again once it has stopped"
            if active.cancel_requested
            else f"build {active.build_id} already has an active analysis ({active.state}) "
            "with different parameters; wait for it or cancel it"
        )
        raise ApiError(
            409,
            "Conflict",
            detail,
            kind="analysis-cancelling" if active.cancel_requested else "analysis-in-progress",
            active_job_id=active.id,
            active_build_id=active.build_id,
            active_started_at=_iso(active.started_at),
            active_status=active.state,
            check_status_url=f"/api/jobs/{active.id}",
        )
    job = outcome.job
    if key is not None and (job.build_id != build_id or job.params != wanted):
        raise ApiError(
            422,
            "Unprocessable Content",
            "this Idempotency-Key was already used for a different request",
            kind="idempotency-key-reused",
            existing_job_id=job.id,
        )
    if outcome.created:
        message = f"Analysis started for build {build_id}"
    else:
        message = f"Analysis for build {build_id} already {job.state}; returning that job"
    body = AcceptedResponse(
        job_id=job.id,
        build_id=job.build_id,
        message=message,
        check_status_url=f"/api/jobs/{job.id}",
        deduplicated=not outcome.created,
        job=JobView.of(job),
    ).dump()
    response = jsonify(body)
    response.status_code = 202
    response.headers["Location"] = f"/api/jobs/{job.id}"
    response.headers["Retry-After"] = POLL_SECONDS
    return response


def _iso(value: datetime | None) -> str | None:
    # The same spelling as the models' datetimes (pydantic writes UTC as "Z").
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _job_or_404(job_id: str) -> Job:
    job = service().store.get(job_id) if _JOB_ID.fullmatch(job_id) else None
    if job is None:
        raise ApiError(404, "Not Found", "Job not found", kind="job-not-found")
    return job


def _job_response(job: Job, status: int = 200) -> Response:
    payload = json.dumps(JobResponse(job=JobView.of(job)).dump())
    response = Response(payload, status=status, mimetype="application/json")
    # A strong tag over the exact bytes: pollers get 304 until anything about the job moves.
    response.set_etag(hashlib.blake2b(payload.encode(), digest_size=16).hexdigest())
    if job.state not in FINISHED_STATES:
        response.headers["Retry-After"] = POLL_SECONDS
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/api/jobs/<job_id>")
def get_job(job_id: str) -> Response:
    response = _job_response(_job_or_404(job_id))
    response.make_conditional(request)  # turns it into a 304 when If-None-Match matches
    return response


@bp.delete("/api/jobs/<job_id>")
def cancel_job(job_id: str) -> Response:
    job = _job_or_404(job_id)
    if job.state not in FINISHED_STATES:
        # The job may finish between the read and the cancel; the store then returns it
        # unchanged, and the answer is the same 409 as for a job found finished.
        job = service().store.request_cancel(job.id) or job
        if job.state in ("completed", "failed"):
            _already_finished(job)
    else:
        _already_finished(job)
    return _job_response(job, status=202)


def _already_finished(job: Job) -> None:
    raise ApiError(
        409,
        "Conflict",
        f"job {job.id} already {job.state}; nothing to cancel",
        kind="job-finished",
        job_status=job.state,
    )


@bp.get("/api/jobs")
def list_jobs() -> Response:
    state = request.args.get("state") or None
    if state is not None and state not in JOB_STATES:
        raise ApiError(
            400,
            "Bad Request",
            f"state must be one of {', '.join(JOB_STATES)}",
            kind="invalid-query",
        )
    build_id = request.args.get("build_id") or None
    if build_id is not None:
        build_id = build_id_arg(build_id)
    limit = int_query("limit", 50, minimum=1, maximum=500)
    offset = int_query("offset", 0, minimum=0, maximum=10**9)
    jobs, total = service().store.list_jobs(
        state=state, build_id=build_id, limit=limit, offset=offset
    )
    views = [JobView.of(job) for job in jobs]
    return jsonify(
        JobListResponse(
            jobs=views, count=len(views), total=total, limit=limit, offset=offset
        ).dump()
    )


@bp.get("/api/jobs/<job_id>/events")
def job_events(job_id: str) -> Response:
    job = _job_or_404(job_id)
    after = int_query("after", 0, minimum=0, maximum=2**62)
    events = service().store.events(job.id, after_id=after)
    return jsonify(
        EventListResponse(job_id=job.id, events=[EventView.of(e) for e in events]).dump()
    )
