"""Request and response models of the HTTP API; /openapi.json is generated from them.

Responses are built through these models (`dump`), so the published schema is the shape
clients actually get. Legacy members come first in each model; later members are new.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from clf_analysis.abp.discovery import BUILD_ID_PATTERN, validate_build_id
from clf_analysis.jobs import Job, JobEvent, JobState
from clf_analysis.pipeline.params import AnalysisParams

# A job's `status`: validated into a JobState, published as the inline enum of the state
# names it has always been (an enum type would add a $defs/JobState entry to the schema).
JobStatus = Annotated[
    str,
    AfterValidator(JobState),
    Field(json_schema_extra={"enum": [state.value for state in JobState]}),
]


def _always_sent(schema: dict[str, Any], model: type[BaseModel]) -> None:
    # The schema says what `dump` does: every member is sent but those defaulting to None.
    schema["required"] = [
        name
        for name, info in model.model_fields.items()
        if info.is_required() or info.default is not None
    ]


class _Response(BaseModel):
    model_config = ConfigDict(extra="allow", json_schema_extra=_always_sent)

    def model_post_init(self, context: Any, /) -> None:
        # Constant members such as status="success" must always be sent; only members
        # whose default is None (result, error) are left out unless given.
        for name, info in type(self).model_fields.items():
            if info.default is not None and not info.is_required():
                self.__pydantic_fields_set__.add(name)

    def dump(self) -> dict[str, Any]:
        """JSON-ready dict holding exactly the members that were set (legacy shapes omit
        `result`/`error` unless they apply, rather than sending null)."""
        return self.model_dump(mode="json", exclude_unset=True)


# --- requests -----------------------------------------------------------------------------


class BuildAnalyzeRequest(AnalysisParams):
    """Body of POST /api/builds/<build_id>/analyze (optional): the analysis parameters."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"holes_interval": 15, "create_composite_views": True}]}
    )


# The largest integer every JSON client holds exactly (an IEEE double's 53 bits).
MAX_EXACT_INTEGER = 2**53 - 1


class AnalyzeRequest(AnalysisParams):
    """Body of POST /api/analyze: the build id plus the analysis parameters."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"build_id": "271360", "holes_interval": 10, "create_composite_views": False}
            ]
        }
    )

    # validate_build_id decides; the schema says the same rule. A number's digits always fit
    # it; numbers are described up to what JSON clients can hold exactly.
    build_id: Annotated[
        str | int,
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "pattern": BUILD_ID_PATTERN, "maxLength": 64},
                    {
                        "type": "integer",
                        "minimum": -MAX_EXACT_INTEGER,
                        "maximum": MAX_EXACT_INTEGER,
                    },
                ]
            }
        ),
    ] = Field(
        description="Build folder name under MIDAS_BASE_PATH: 1-64 of A-Z a-z 0-9 . _ -, "
        "not starting with '.'; a number is taken as text.",
        examples=["271360"],
    )

    @field_validator("build_id", mode="before")
    @classmethod
    def _build_id_as_text(cls, v: object) -> str:
        # JSON has one kind of number: 271360.0 is the integer 271360 (as JSON Schema's
        # "integer" says), so its text is "271360". A fraction is no build id.
        if isinstance(v, float) and v.is_integer() and abs(v) <= MAX_EXACT_INTEGER:
            v = int(v)
        return validate_build_id(v)  # type: ignore[arg-type]

    def params(self) -> AnalysisParams:
        """The analysis parameters alone (what the job store deduplicates on)."""
        return AnalysisParams(**self.model_dump(exclude={"build_id"}))


# --- responses ----------------------------------------------------------------------------


class Progress(_Response):
    percent: float = Field(ge=0, le=100)
    stage: str | None = None
    message: str | None = None


class JobView(_Response):
    """A job as clients see it: the legacy members plus progress, params and timing."""

    job_id: str
    build_id: str
    status: JobStatus
    started_at: datetime | None
    holes_interval: float | None
    create_composite_views: bool | None
    result: dict[str, Any] | None = Field(default=None, description="Only when completed.")
    error: dict[str, Any] | None = Field(default=None, description="Only when failed.")
    params: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    updated_at: datetime
    progress: Progress
    attempts: int
    max_attempts: int
    cancel_requested: bool
    duration_seconds: float | None
    links: dict[str, str]

    @classmethod
    def of(cls, job: Job) -> JobView:
        fields: dict[str, Any] = {
            "job_id": job.id,
            "build_id": job.build_id,
            "status": job.state,
            "started_at": job.started_at,
            "holes_interval": job.params.get("holes_interval"),
            "create_composite_views": job.params.get("create_composite_views"),
            "params": job.params,
            "created_at": job.created_at,
            "finished_at": job.finished_at,
            "updated_at": job.updated_at,
            "progress": Progress(percent=job.progress, stage=job.stage, message=job.message),
            "attempts": job.attempts,
            "max_attempts": job.max_attempts,
            "cancel_requested": job.cancel_requested,
            "duration_seconds": job.duration_seconds,
            "links": {
                "self": f"/api/jobs/{job.id}",
                "events": f"/api/jobs/{job.id}/events",
                "results": f"/api/builds/{job.build_id}/results",
            },
        }
        if job.state == JobState.COMPLETED:
            fields["result"] = job.result
        if job.state == JobState.FAILED:
            fields["error"] = job.error
        return cls(**fields)


class JobResponse(_Response):
    status: Literal["success"] = "success"
    job: JobView


class JobListResponse(_Response):
    status: Literal["success"] = "success"
    jobs: list[JobView]
    count: int = Field(description="Jobs in this page (legacy member).")
    total: int = Field(description="Jobs matching the filter.")
    limit: int
    offset: int


class AcceptedResponse(_Response):
    """202 answer to a submission (legacy shape) plus whether an existing job was reused."""

    status: Literal["accepted"] = "accepted"
    job_id: str
    build_id: str
    message: str
    check_status_url: str
    deduplicated: bool = Field(
        description="True when an equivalent queued/running job was returned instead."
    )
    job: JobView


class EventView(_Response):
    id: int
    at: datetime
    kind: str
    detail: dict[str, Any]

    @classmethod
    def of(cls, event: JobEvent) -> EventView:
        return cls(id=event.id, at=event.at, kind=event.kind, detail=event.detail)


class EventListResponse(_Response):
    status: Literal["success"] = "success"
    job_id: str
    events: list[EventView]


class BuildSummary(_Response):
    build_id: str
    archive: str | None
    size_bytes: int | None
    results_available: bool
    latest_job: JobView | None
    links: dict[str, str]


class BuildListResponse(_Response):
    status: Literal["success"] = "success"
    builds: list[BuildSummary]
    count: int


class ArtifactLink(_Response):
    path: str
    url: str
    size_bytes: int


class ResultsResponse(_Response):
    status: Literal["success"] = "success"
    build_id: str
    platform_info: dict[str, Any]
    artifacts: list[ArtifactLink] = Field(description="Images and reports (not layer files).")
    artifacts_truncated: bool = Field(
        default=False,
        description="True when `artifacts` was cut at 5,000 files (or 50,000 entries "
        "examined): the output folder holds more than a run writes.",
    )
    layers_url: str
    layer_count: int
    latest_job: JobView | None


class LayerListResponse(_Response):
    status: Literal["success"] = "success"
    build_id: str
    heights: list[float]
    count: int
    urls: list[str]


class ServiceInfo(_Response):
    """GET / (legacy shape)."""

    service: str
    version: str
    status: Literal["running"]
    endpoints: dict[str, str]


class HealthResponse(_Response):
    """GET /health (legacy shape)."""

    status: Literal["healthy"]
    service: str
    timestamp: datetime


class Liveness(_Response):
    """GET /livez: the process answers."""

    status: Literal["ok"]


class Readiness(_Response):
    """GET /readyz: the job store answers and the process is not draining."""

    status: Literal["ready"]


class ServiceSettings(_Response):
    worker_concurrency: int
    max_attempts: int
    job_store: str = Field(description="Engine of the job store: sqlite or postgresql.")


class ServiceVersions(_Response):
    """GET /info: versions of the service and its libraries (null: not installed)."""

    status: Literal["success"] = "success"
    service: str
    versions: dict[str, str | None]
    started_at: str = Field(json_schema_extra={"format": "date-time"})
    draining: bool
    settings: ServiceSettings
    share: dict[str, Any] = Field(
        description="The build share check: path, uid, gid, exists, is_dir, readable, "
        "writable, and problem (null when usable)."
    )


class Problem(_Response):
    """Every error: RFC 9457 members plus the legacy `status: "error"` and `message`.

    Conflict with RFC 9457: its `status` member is the HTTP status number, but legacy
    clients read `status == "error"`; the number is in `http_status` instead.
    """

    type: str
    title: str
    status: Literal["error"]
    http_status: int
    detail: str
    message: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Validation errors: field, message, type."
    )
    active_job_id: str | None = Field(default=None, description="409 only.")
    active_build_id: str | None = Field(default=None, description="409 only.")
    active_started_at: datetime | None = Field(default=None, description="409 only.")
    check_status_url: str | None = Field(default=None, description="409 only.")
