"""A small HTTP client of the API, used by `clf-analysis submit`, `query` and `demo`.

Its errors are one line a person can act on: the service's own reason (with the field
reasons of a 422), or why the service could not be reached, never a library's traceback.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote, urlsplit

import requests

from clf_analysis.jobs import FINISHED_STATES

DEFAULT_URL = "http://127.0.0.1:6300"


class ClientError(Exception):
    """The service refused a request or could not be reached; the message says which."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


def service_url(url: str) -> str:
    """The base URL to call: `host:port` gets `http://`; other schemes are refused."""
    text = url.strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(
            f"service URL {url!r} is not usable: write http://HOST:PORT, e.g. {DEFAULT_URL}"
        )
    return text


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and every exception it wraps (requests wraps urllib3 wraps the socket's)."""
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)
        pending += [current.__cause__, current.__context__]
        pending += [reason] if isinstance(reason, BaseException) else []
        pending += [a for a in current.args if isinstance(a, BaseException)]


def unreachable_reason(exc: requests.RequestException, timeout: float) -> str:
    """Why a request got no answer, in a few words."""
    causes = list(_causes(exc))
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return "connection refused (is the service running on that host and port?)"
    if any(isinstance(c, socket.gaierror) for c in causes):
        return "host name not found"
    if isinstance(exc, requests.Timeout):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed (the service speaks plain http://)"
    errno_errors = [c for c in causes if isinstance(c, OSError) and c.strerror]
    if errno_errors:
        return str(errno_errors[-1].strerror).lower()
    return type(exc).__name__


def problem_text(body: Any, response: requests.Response) -> str:
    """The reason of an error answer: the problem's detail, with the reason of every
    invalid field of a 422 (the detail alone only names the fields)."""
    if not isinstance(body, dict):
        text = " ".join(response.text.split())[:200]
        return text or response.reason or "no reason given"
    detail = str(body.get("detail") or body.get("message") or response.reason)
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        reasons = [
            f"{e.get('field') or '(body)'}: {e.get('message')}"
            for e in errors
            if isinstance(e, dict)
        ]
        if reasons:
            return "invalid request: " + "; ".join(reasons)
    return detail


@dataclass
class ApiClient:
    base_url: str = DEFAULT_URL
    token: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        self.base_url = service_url(self.base_url)
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
            reason = unreachable_reason(exc, self.timeout)
            raise ClientError(f"cannot reach the service at {self.base_url}: {reason}") from None

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of a successful answer; ClientError with the problem's reason."""
        response = self.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise ClientError(
                f"{problem_text(body, response)} (HTTP {response.status_code})",
                response.status_code,
            )
        if not isinstance(body, dict):
            raise ClientError(
                f"{method} {self.base_url}{path}: not an answer of this service "
                f"(HTTP {response.status_code}, {response.headers.get('Content-Type')})"
            )
        return body

    def submit(
        self, build_id: str, params: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        path = f"/api/builds/{quote(build_id, safe='')}/analyze"
        return self.json("POST", path, json=params, headers=headers)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.json("GET", f"/api/jobs/{quote(job_id, safe='')}")["job"]

    def jobs(self, **filters: Any) -> dict[str, Any]:
        query = {k: v for k, v in filters.items() if v is not None}
        return self.json("GET", "/api/jobs", params=query)

    def viewer_url(self, build_id: str) -> str:
        """The viewer page showing a build's results."""
        return f"{self.base_url}/ui/#build={quote(build_id, safe='')}"

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
    """Redraw one status line: bar, percent, state, and while running stage and message."""
    progress = job.get("progress") or {}
    percent = float(progress.get("percent") or 0.0)
    filled = int(width * percent / 100)
    finished = job["status"] in FINISHED_STATES
    # A finished job's stage is only where it last reported from ("publish"), not news.
    stage = "" if finished else progress.get("stage") or ""
    message = "" if finished else progress.get("message") or ""
    line = f"[{'#' * filled}{'.' * (width - filled)}] {percent:5.1f}% {job['status']:<9} "
    line += f"{stage} {message}".strip()
    line = line.rstrip()
    end = "\n" if finished else ""
    if stream.isatty():
        stream.write("\r\x1b[K" + line[:120] + end)
    else:
        # A log file gets one line per update instead of carriage-return noise.
        stream.write(line + "\n")
    stream.flush()
