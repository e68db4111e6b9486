"""A small HTTP client of the API, used by `clf-analysis submit`, `query` and `demo`.

Its errors are one line a person can act on: the service's own reason (with the field
reasons of a 422), or why the service could not be reached, never a library's traceback.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import quote, urlsplit, urlunsplit

import requests

from clf_analysis.cli.options import DEFAULT_PORT, DEFAULT_URL, EXIT_FAILED, EXIT_USAGE
from clf_analysis.jobs import FINISHED_STATES


class ClientError(Exception):
    """The service refused a request or could not be reached; the message says which.

    `body` is the service's problem JSON when it sent one; `usage` marks a mistake on the
    command line (a URL that cannot be one), whose exit status is 2.
    """

    def __init__(
        self,
        message: str,
        http_status: int | None = None,
        body: dict[str, Any] | None = None,
        *,
        usage: bool = False,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.body = body
        self.usage = usage

    @property
    def exit_code(self) -> int:
        return EXIT_USAGE if self.usage else EXIT_FAILED


def service_url(url: str, named_by: str = "--url") -> str:
    """The base URL to call: `HOST:PORT` gets `http://`, a `HOST` alone also the service's
    port 6300 (an explicit `http://HOST` keeps the scheme's own port: a proxy may serve it
    there); other schemes and a port that is no number are refused (ClientError, usage)."""
    text = url.strip().rstrip("/")
    bare = "://" not in text
    if bare:
        text = "http://" + text
    parts = urlsplit(text)
    usage = f"write http://HOST:PORT, e.g. {DEFAULT_URL}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClientError(f"{named_by} {url!r} is not usable: {usage}", usage=True)
    try:
        port = parts.port
    except ValueError:
        given = parts.netloc.rpartition(":")[2]
        raise ClientError(
            f"{named_by} {url!r}: the port {given!r} is not a number from 1 to 65535; {usage}",
            usage=True,
        ) from None
    if port == 0:
        raise ClientError(f"{named_by} {url!r}: port 0 cannot be called; {usage}", usage=True)
    if bare and port is None:
        text = urlunsplit(parts._replace(netloc=f"{parts.netloc}:{DEFAULT_PORT}"))
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


def _is_route_not_found(body: Any) -> bool:
    """The service's answer for a path it has no route for (not a job or build it lacks)."""
    return isinstance(body, dict) and body.get("detail") == "Endpoint not found"


@dataclass
class ApiClient:
    base_url: str = DEFAULT_URL
    token: str | None = None
    timeout: float = 30.0
    # How the user gave the URL and the token: messages name what they typed.
    url_named_by: str = "--url"
    token_named_by: str | None = None

    def __post_init__(self) -> None:
        self.base_url = service_url(self.base_url, self.url_named_by)
        self.session = requests.Session()
        if self.token:
            self.session.headers["Authorization"] = f"Bearer {self.token}"

    @classmethod
    def from_args(cls, url: str | None, token: str | None) -> ApiClient:
        env_url = os.environ.get("CLF_ANALYSIS_URL") or None
        env_token = os.environ.get("API_TOKEN") or None
        return cls(
            base_url=url or env_url or DEFAULT_URL,
            token=token or env_token,
            # The default is not the user's doing: what to change is --url.
            url_named_by="CLF_ANALYSIS_URL" if env_url and not url else "--url",
            token_named_by="--token" if token else "API_TOKEN" if env_token else None,
        )

    def command(self, *args: str) -> str:
        """`clf-analysis ARGS` as the user can run it against this same service (the token
        of a --token as a placeholder: a message must not repeat a secret)."""
        url = ["--url", self.base_url] if self.url_named_by == "--url" else []
        token = " --token TOKEN" if self.token_named_by == "--token" else ""
        return shlex.join(["clf-analysis", *args, *url]) + token

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(
                method, self.base_url + path, timeout=self.timeout, **kwargs
            )
        except requests.RequestException as exc:
            reason = unreachable_reason(exc, self.timeout)
            raise ClientError(f"cannot reach the service at {self.base_url}: {reason}") from None

    def refusal(self, method: str, path: str, response: requests.Response, body: Any) -> str:
        """Why the service refused a request, and what to do about it, in one line."""
        status = response.status_code
        if status == 401:
            if self.token_named_by is None:
                return (
                    "the service needs an API token (HTTP 401): pass --token TOKEN or set "
                    "API_TOKEN to the service's API_TOKEN"
                )
            return (
                f"the service refused the token of {self.token_named_by} (HTTP 401): it must "
                "equal the service's API_TOKEN"
            )
        if status == 404 and (_is_route_not_found(body) or not isinstance(body, dict)):
            # Not this service's "job/build not found": the URL itself leads nowhere.
            return (
                f"{method} {self.base_url}{path}: no such route (HTTP 404, "
                f"{problem_text(body, response)!r}); {self.url_named_by} must be the "
                f"service's root URL, like {DEFAULT_URL}, without /api"
            )
        return f"{problem_text(body, response)} (HTTP {status})"

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of a successful answer; ClientError with the problem's reason."""
        response = self.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            raise ClientError(
                self.refusal(method, path, response, body),
                response.status_code,
                body if isinstance(body, dict) else None,
            )
        if not isinstance(body, dict):
            raise ClientError(
                f"{method} {self.base_url}{path}: not an answer of this service "
                f"(HTTP {response.status_code}, {response.headers.get('Content-Type')}); "
                f"{self.url_named_by} must be the service's root URL, like {DEFAULT_URL}"
            )
        return body

    def submit(
        self, build_id: str, params: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        path = f"/api/builds/{quote(build_id, safe='')}/analyze"
        return self.json("POST", path, json=params, headers=headers)

    def job_json(self, method: str, job_id: str) -> dict[str, Any]:
        """The answer of `/api/jobs/<job_id>`; an unknown job is named in the error."""
        try:
            return self.json(method, f"/api/jobs/{quote(job_id, safe='')}")
        except ClientError as exc:
            if exc.body is not None and str(exc.body.get("type", "")).endswith("/job-not-found"):
                raise ClientError(
                    f"job {job_id} not found at {self.base_url} (HTTP 404)", 404, exc.body
                ) from None
            raise

    def job(self, job_id: str) -> dict[str, Any]:
        return self.job_json("GET", job_id)["job"]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Ask the service to cancel a job: the job as it is now (202)."""
        return self.job_json("DELETE", job_id)["job"]

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
