"""A small HTTP client of the API, used by `clf-analysis submit` and `query`."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

import requests

from clf_analysis.jobs import FINISHED_STATES

DEFAULT_URL = "http://127.0.0.1:6300"


class ClientError(Exception):
    """The service refused a request or could not be reached; the message says which."""


@dataclass
class ApiClient:
    base_url: str = DEFAULT_URL
    token: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.session = requests.Session()
        if self.token:
            self.session.headers["Authorization"] = f"Bearer {self.token}"

    @classmethod
    def from_args(cls, url: str | None, token: str | None) -> ApiClient:
        return cls(
            base_url=url or os.environ.get("CLF_ANALYSIS_URL") or DEFAULT_URL,
            token=token or os.environ.get("API_TOKEN") or None,
        )

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(
                method, self.base_url + path, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise ClientError(f"cannot reach {self.base_url}: {exc}") from None

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of a successful answer; ClientError with the problem's detail."""
        response = self.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400 or not isinstance(body, dict):
            detail = (
                body.get("detail") or body.get("message")
                if isinstance(body, dict)
                else response.text[:200]
            )
            raise ClientError(f"{method} {path}: HTTP {response.status_code}: {detail}")
        return body

    def submit(
        self, build_id: str, params: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.json("POST", f"/api/builds/{build_id}/analyze", json=params, headers=headers)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.json("GET", f"/api/jobs/{job_id}")["job"]

    def jobs(self, **filters: Any) -> dict[str, Any]:
        query = {k: v for k, v in filters.items() if v is not None}
        return self.json("GET", "/api/jobs", params=query)

    def wait(
        self,
        job_id: str,
        on_update: Callable[[dict[str, Any]], None] | None = None,
        poll_seconds: float = 1.0,
    ) -> dict[str, Any]:
        """Poll until the job is finished; returns its last view."""
        while True:
            job = self.job(job_id)
            if on_update is not None:
                on_update(job)
            if job["status"] in FINISHED_STATES:
                return job
            time.sleep(poll_seconds)


def progress_bar(job: dict[str, Any], stream: TextIO = sys.stderr, width: int = 30) -> None:
    """Redraw one status line: bar, percent, state, stage and message."""
    progress = job.get("progress") or {}
    percent = float(progress.get("percent") or 0.0)
    filled = int(width * percent / 100)
    stage = progress.get("stage") or ""
    message = progress.get("message") or ""
    line = f"[{'#' * filled}{'.' * (width - filled)}] {percent:5.1f}% {job['status']:<9} "
    line += f"{stage} {message}".strip()
    end = "\n" if job["status"] in FINISHED_STATES else ""
    if stream.isatty():
        stream.write("\r\x1b[K" + line[:120] + end)
    else:
        # A log file gets one line per update instead of carriage-return noise.
        stream.write(line + "\n")
    stream.flush()
