"""Service configuration from environment variables, validated once at start-up."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_CORS_ORIGINS = (
    "http://localhost:6200",
    "http://127.0.0.1:6200",
    "http://defect-detect-fe:6200",
    "http://localhost:5176",
    "http://127.0.0.1:5176",
)


class ConfigError(Exception):
    """A configuration value is invalid; the message names the variable."""


JOB_STORE_URL_FORMS = "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:5432/DB"
# The job store relies on what these two offer (SQLite's locking, PostgreSQL's advisory
# locks); another database would fail at its first job, not at start.
_JOB_STORE_BACKENDS = ("sqlite", "postgresql")


def database_url_problem(url: str) -> str | None:
    """Why `url` cannot name the job store (unparsable, another database, a driver that is
    not installed), or None; checked before anything connects."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"not a database URL; write {JOB_STORE_URL_FORMS}"
    backend = parsed.get_backend_name()
    if backend not in _JOB_STORE_BACKENDS:
        return f"the job store cannot be a {backend!r} database; write {JOB_STORE_URL_FORMS}"
    try:
        parsed.get_dialect().import_dbapi()
    except (NoSuchModuleError, ImportError):
        return f"no driver {parsed.drivername!r} is installed; write {JOB_STORE_URL_FORMS}"
    return None


def without_password(url: str) -> str:
    """`url` with the password of its `user:password@` part replaced by `***`."""
    return re.sub(r"(://[^/:@]*:)[^/@]*@", r"\1***@", url)


class Settings(BaseModel):
    """Every setting of the service; each field is read from the upper-case variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    midas_base_path: Path = Path("/midas")
    state_dir: Path = Path("./.state")
    database_url: str | None = None
    port: int = Field(default=6300, ge=1, le=65535)
    cors_origins: tuple[str, ...] = DEFAULT_CORS_ORIGINS
    api_token: str | None = None
    # Names the service is addressed by (Host header); "*": any. IP addresses and
    # localhost are always taken.
    allowed_hosts: tuple[str, ...] = ("*",)
    worker_concurrency: int = Field(default=2, ge=0, le=64)
    # None: the machine's cores shared among WORKER_CONCURRENCY jobs.
    analysis_processes: int | None = Field(default=None, ge=1, le=64)
    lease_seconds: float = Field(default=30.0, gt=0, le=3600)
    job_timeout: float = Field(default=3600.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=100)
    drain_timeout: float = Field(default=30.0, ge=0)
    # Added to the worker's nice value for each job's processes (the analysis and its pool):
    # within one scheduling group (container, session) heartbeats and an embedded API
    # answer first.
    job_niceness: int = Field(default=10, ge=0, le=19)
    job_retention_days: float = Field(default=30.0, gt=0)
    exclusions_file: Path | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    plate_size_mm: float = Field(default=210.0, gt=0, le=2000)
    plate_px_per_mm: float = Field(default=10.0, gt=0, le=100)
    max_body_bytes: int = Field(default=64 * 1024, gt=0)
    # Seconds one request may take to arrive, from its first byte to its last: a client
    # trickling its headers or body must not hold an HTTP thread for longer.
    request_read_timeout: float = Field(default=10.0, gt=0, le=300)
    # Seconds one response may take to leave, from its first byte to its last: a client
    # that does not read what it asked for must not hold an HTTP thread for longer.
    response_send_timeout: float = Field(default=30.0, gt=0, le=600)
    # Build packages come from a share we do not control: bounds checked before reading.
    archive_max_members: int = Field(default=20_000, gt=0)
    archive_max_total_bytes: int = Field(default=8 * 1024**3, gt=0)
    archive_max_ratio: float = Field(default=200.0, gt=1)
    archive_max_package_bytes: int = Field(default=8 * 1024**3, gt=0)

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _split_origins(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(o.strip() for o in v.split(",") if o.strip())
        return v

    @field_validator("database_url")
    @classmethod
    def _job_store_url(cls, v: str | None) -> str | None:
        problem = None if v is None else database_url_problem(v)
        if problem is not None:
            raise ValueError(problem)
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @property
    def job_store_url(self) -> str:
        """DATABASE_URL when set, else SQLite in the state directory (never the share)."""
        return self.database_url or f"sqlite:///{self.state_dir.resolve() / 'jobs.db'}"


def _shown_input(field: str, value: object) -> str:
    """A refused value as a message may show it: never a secret."""
    if field == "api_token":
        return "(not shown)"
    if field == "database_url" and isinstance(value, str):
        return repr(without_password(value))
    return repr(value)


def load_settings(
    environ: Mapping[str, str] | None = None,
    *,
    option_names: Mapping[str, str] | None = None,
    **overrides: object,
) -> Settings:
    """Build Settings from the environment (upper-case names) plus explicit overrides.

    An error names the variable of the value it refuses, or for an override its entry in
    `option_names` (the command-line flag it came from: `--concurrency`).
    """
    env = os.environ if environ is None else environ
    names = option_names or {}
    raw: dict[str, object] = {}
    for name in Settings.model_fields:
        value = env.get(name.upper())
        if value is not None and value != "":
            raw[name] = value
    raw.update(overrides)
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            named = names.get(field) if field in overrides else None
            message = str(err["msg"]).removeprefix("Value error, ")
            shown = _shown_input(field, err.get("input"))
            problems.append(f"{named or field.upper()}: {message} (got {shown})")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
