"""Job routes: submit an analysis (two legacy routes), read, list, cancel, events."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from flask import Blueprint, Response, json, jsonify, request
from pydantic import ValidationError

from clf_analysis.abp.discovery import BuildNotFound, BuildRefused, find_build_package
from clf_analysis.abp.errors import ShareAccessDenied
from clf_analysis.api.artifacts import SHARE_DENIED, denied
from clf_analysis.api.contract import Header, Link, Operation, Parameter, Reply, declare, problem
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
from clf_analysis.api.parsing import (
    BUILD_ID,
    BUILD_ID_SCHEMA,
    IDEMPOTENCY_KEY,
    INVALID_BUILD_ID,
    INVALID_QUERY,
    IntegerQuery,
    build_id_arg,
    idempotency_key,
    json_body,
    json_object_body,
)
from clf_analysis.api.service import service
from clf_analysis.jobs.models import FINISHED_STATES, JOB_STATES, Job
from clf_analysis.pipeline.params import AnalysisParams

bp = Blueprint("jobs", __name__)

# Job ids are UUIDs; anything else cannot exist, so it is answered without a query (and a
# PostgreSQL uuid cast can never fail on user input).
_JOB_ID = re.compile(r"[0-9A-Fa-f-]{1,64}")
POLL_SECONDS = "2"

# --- what the routes take and answer (published by /openapi.json) ------------------------

JOB_ID = Parameter(
    "job_id",
    "path",
    {"type": "string", "format": "uuid"},
    "The job's id, as a submission answered it.",
    example="ad7309b1-5c3e-4a8e-9d36-0f4a3c1d2e5f",
    required=True,
)
JOB_STATE = Parameter(
    "state",
    "query",
    {"type": "string", "enum": list(JOB_STATES)},
    "Only jobs in this state.",
    example="running",
    refusals=(INVALID_QUERY,),
)
JOB_BUILD = Parameter(
    "build_id",
    "query",
    BUILD_ID_SCHEMA,
    "Only jobs of this build.",
    example="271360",
    refusals=(INVALID_BUILD_ID,),
)
JOBS_LIMIT = IntegerQuery("limit", 50, 1, 500, "Jobs per page.")
JOBS_OFFSET = IntegerQuery("offset", 0, 0, 10**9, "Jobs to skip, newest first.")
EVENTS_AFTER = IntegerQuery("after", 0, 0, 2**62, "Only events with a larger id.")
IF_NONE_MATCH = Parameter(
    "If-None-Match",
    "header",
    {"type": "string"},
    "The ETag of the copy the client holds: 304 while nothing about it changed.",
)
JOB_NOT_FOUND = problem(404, "job-not-found", description="No such job.")
BUILD_NOT_FOUND = problem(
    404,
    "build-not-found",
    description="No build folder with an .abp package (nothing is created), or a link there.",
)
BUSY = problem(
    409,
    "analysis-in-progress",
    "analysis-cancelling",
    description="The build has an active analysis with other parameters (or one being "
    "cancelled); `active_job_id` and `check_status_url` name it.",
)
_JOB_LINKS = {
    "GetJob": Link("jobs.get_job", "Poll the job.", {"job_id": "$response.body#/job_id"}),
    "CancelJob": Link("jobs.cancel_job", "Cancel the job.", {"job_id": "$response.body#/job_id"}),
    "JobEvents": Link("jobs.job_events", "The job's events.", {"job_id": "$response.body#/job_id"}),
    "BuildResults": Link(
        "builds.build_results",
        "The build's results, once the job completed.",
        {"build_id": "$response.body#/build_id"},
    ),
}
RETRY_AFTER = Header("Seconds to wait before polling again.", {"type": "integer", "minimum": 0})
ACCEPTED = Reply(
    "Accepted: the new job, or the equivalent one already queued or running "
    "(`deduplicated`). Legacy members first.",
    AcceptedResponse,
    headers={"Location": Header("The job's URL."), "Retry-After": RETRY_AFTER},
    links=_JOB_LINKS,
)
SUBMIT_DESCRIPTION = (
    "Idempotent: the same build with the same parameters while queued or running answers "
    "the existing job. One analysis per build at a time: other parameters meanwhile are 409."
)
_JOB_VIEW_LINKS = {
    "CancelJob": Link(
        "jobs.cancel_job", "Cancel the job.", {"job_id": "$response.body#/job/job_id"}
    ),
    "JobEvents": Link(
        "jobs.job_events", "The job's events.", {"job_id": "$response.body#/job/job_id"}
    ),
    "BuildResults": Link(
        "builds.build_results",
        "The build's results.",
        {"build_id": "$response.body#/job/build_id"},
    ),
}
JOB_HEADERS = {
    "ETag": Header("Strong validator of the answer."),
    "Cache-Control": Header("no-cache: revalidate with If-None-Match."),
    "Retry-After": Header(
        "While the job is unfinished: seconds before polling again.",
        {"type": "integer", "minimum": 0},
        required=False,
    ),
}


@bp.post("/api/analyze")
@declare(
    Operation(
        "Submit an analysis of a build",
        description=SUBMIT_DESCRIPTION,
        legacy=True,
        parameters=(IDEMPOTENCY_KEY,),
        body=json_body(
            AnalyzeRequest, required=True, description="The build and the analysis parameters."
        ),
        replies={202: ACCEPTED},
        refusals=(BUILD_NOT_FOUND, SHARE_DENIED, BUSY),
    )
)
def analyze() -> Response:
    body = json_object_body(required=True)
    try:
        req = AnalyzeRequest.model_validate(body)
    except ValidationError as exc:
        raise validation_problem(exc) from None
    return _submit(str(req.build_id), req.params())


@bp.post("/api/builds/<path:build_id>/analyze")
@declare(
    Operation(
        "Submit an analysis of this build",
        description=SUBMIT_DESCRIPTION + " The body is optional; without one (and without a "
        "Content-Type) the defaults apply.",
        legacy=True,
        parameters=(BUILD_ID, IDEMPOTENCY_KEY),
        body=json_body(BuildAnalyzeRequest, required=False, description="The analysis parameters."),
        replies={202: ACCEPTED},
        refusals=(BUILD_NOT_FOUND, SHARE_DENIED, BUSY),
    )
)
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
    except ShareAccessDenied as exc:
        raise denied(build_id, exc) from None
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
@declare(
    Operation(
        "A job: state, progress, parameters, result or error",
        legacy=True,
        parameters=(JOB_ID, IF_NONE_MATCH),
        replies={
            200: Reply(
                "The job. Legacy members first; `result` only when completed, `error` only "
                "when failed.",
                JobResponse,
                headers=JOB_HEADERS,
                links=_JOB_VIEW_LINKS,
            ),
            304: Reply("Unchanged since the ETag sent.", headers={"ETag": JOB_HEADERS["ETag"]}),
        },
        refusals=(JOB_NOT_FOUND,),
    )
)
def get_job(job_id: str) -> Response:
    response = _job_response(_job_or_404(job_id))
    response.make_conditional(request)  # turns it into a 304 when If-None-Match matches
    return response


@bp.delete("/api/jobs/<job_id>")
@declare(
    Operation(
        "Cancel a job",
        description="A queued job is cancelled at once; a running one cooperatively, then "
        "killed after a grace period. The job stays readable (state `cancelled`).",
        parameters=(JOB_ID,),
        replies={
            202: Reply(
                "Cancellation requested: the job as it is now.", JobResponse, headers=JOB_HEADERS
            )
        },
        refusals=(
            JOB_NOT_FOUND,
            problem(409, "job-finished", description="The job already completed or failed."),
        ),
    )
)
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
@declare(
    Operation(
        "Jobs, newest first",
        legacy=True,
        parameters=(JOB_STATE, JOB_BUILD, JOBS_LIMIT.parameter, JOBS_OFFSET.parameter),
        replies={
            200: Reply(
                "A page of jobs (legacy members `jobs`, `count`).",
                JobListResponse,
                links={
                    "GetJob": Link(
                        "jobs.get_job",
                        "The first job.",
                        {"job_id": "$response.body#/jobs/0/job_id"},
                    )
                },
            )
        },
    )
)
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
    limit = JOBS_LIMIT.read()
    offset = JOBS_OFFSET.read()
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
@declare(
    Operation(
        "Events of a job: every transition, oldest first",
        parameters=(JOB_ID, EVENTS_AFTER.parameter),
        replies={200: Reply("The events.", EventListResponse)},
        refusals=(JOB_NOT_FOUND,),
    )
)
def job_events(job_id: str) -> Response:
    job = _job_or_404(job_id)
    after = EVENTS_AFTER.read()
    events = service().store.events(job.id, after_id=after)
    return jsonify(
        EventListResponse(job_id=job.id, events=[EventView.of(e) for e in events]).dump()
    )
