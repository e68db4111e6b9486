"""gunicorn's threaded (gthread) worker, hardened for clients the service cannot trust.

Two things the stock worker does not do:

- **Bound the time a request takes to arrive.** gthread waits for a new connection's first
  bytes without holding a thread (5 s at most), but once a request has begun a thread reads
  it with blocking reads and no limit: a client sending `Content-Length: 1000` and one
  byte, or its headers a byte at a time, held a thread as long as it liked, and as many
  such sockets as threads starved /livez. Here each request has REQUEST_READ_TIMEOUT
  seconds from its first byte to its last (request line, headers and body); a slower
  client is answered 408 and disconnected.
- **Answer its own errors like the app.** A bad request line, a too-long URI or too-large
  headers never reach the app; gunicorn answered them with an HTML page. Here they are
  problem+json with the legacy members, with gunicorn's status and log line.

`clf-analysis serve` uses it; plain gunicorn can too (`-k
clf_analysis.api.gunicorn_worker.ApiThreadWorker`, which reads REQUEST_READ_TIMEOUT from
the environment). TLS is not handled by this service: terminate it at a proxy.
"""

from __future__ import annotations

import json
import socket
import time
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from clf_analysis.api.errors import PROBLEM_MIME, ClientTooSlow, problem_body


class DeadlineSocket:
    """A client socket whose blocking reads share one deadline per request.

    Reads that carry a timeout of their own (gunicorn draining an unread body, or lingering
    on close) keep that bound: they already end, and raising there would answer a request
    twice.
    """

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self._sock = sock
        self._seconds = seconds
        self._deadline: float | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def next_request(self) -> None:
        """The next request's clock starts with its first read."""
        self._deadline = None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._sock.gettimeout() is not None:
            return self._sock.recv(bufsize, flags)
        now = time.monotonic()
        if self._deadline is None:
            self._deadline = now + self._seconds
        remaining = self._deadline - now
        if remaining <= 0:
            raise ClientTooSlow(self._seconds)
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv(bufsize, flags)
        except TimeoutError:
            raise ClientTooSlow(self._seconds) from None
        finally:
            self._sock.settimeout(None)


class _ErrorPageCapture:
    """Stands in for the client socket while gunicorn writes one of its error pages, so
    that its status line (and gunicorn's choice of status and log line) can be kept."""

    def __init__(self) -> None:
        self.data = bytearray()

    def gettimeout(self) -> float:
        return 0.0  # already non-blocking: gunicorn then writes without toggling modes

    def sendall(self, data: bytes) -> None:
        self.data += data


class ApiThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gthread with a read deadline per request and problem+json error pages."""

    #: Seconds a request may take to arrive; None: REQUEST_READ_TIMEOUT from the environment.
    read_timeout: float | None = None

    def init_process(self) -> None:
        if self.read_timeout is None:
            from clf_analysis.config import load_settings

            self._seconds = load_settings().request_read_timeout
        else:
            self._seconds = self.read_timeout
        super().init_process()

    def handle(self, conn: Any) -> Any:
        # Wrapped before gunicorn makes the connection's parser, which keeps the socket.
        if not isinstance(conn.sock, DeadlineSocket) and not self.cfg.is_ssl:
            conn.sock = DeadlineSocket(conn.sock, self._seconds)
        if isinstance(conn.sock, DeadlineSocket):
            conn.sock.next_request()
        return super().handle(conn)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        instance = getattr(req, "path", None)
        if isinstance(exc, ClientTooSlow):
            peer = addr[0] if addr else "?"
            self.log.warning("request from ip=%s answered 408: %s", peer, exc)
            _send_problem(client, 408, "Request Timeout", str(exc), instance)
            return
        capture = _ErrorPageCapture()
        super().handle_error(req, capture, addr, exc)
        status, reason = _status_line(bytes(capture.data))
        # A 500 here is a server fault: its text stays in the log, not in the answer.
        detail = str(exc)[:300] if status != 500 and str(exc) else reason
        _send_problem(client, status, reason, detail, instance)


def _status_line(page: bytes) -> tuple[int, str]:
    """Status and reason of a written HTTP response ("HTTP/1.1 414 URI Too Long")."""
    first = page.split(b"\r\n", 1)[0].decode("latin-1")
    parts = first.split(" ", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return int(parts[1]), parts[2]
    return 500, "Internal Server Error"


def _send_problem(client: Any, status: int, reason: str, detail: str, instance: Any) -> None:
    kind = "-".join(reason.lower().split())
    body = json.dumps(
        problem_body(
            status,
            reason,
            detail,
            kind=kind,
            instance=instance if isinstance(instance, str) else None,
        )
    ).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        f"Content-Type: {PROBLEM_MIME}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    try:
        util.write_nonblock(client, head + body)
    except Exception:  # the client is gone: nothing left to tell it
        return
