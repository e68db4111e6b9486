"""Service configuration from environment variables, validated once at start-up."""

from __future__ import annotations

import os
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

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @property
    def job_store_url(self) -> str:
        """DATABASE_URL when set, else SQLite in the state directory (never the share)."""
        return self.database_url or f"sqlite:///{self.state_dir.resolve() / 'jobs.db'}"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from the environment (upper-case names) plus explicit overrides."""
    env = os.environ if environ is None else environ
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
            var = str(err["loc"][0]).upper() if err["loc"] else "?"
            problems.append(f"{var}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
