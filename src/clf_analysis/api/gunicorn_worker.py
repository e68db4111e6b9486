"""gunicorn's threaded (gthread) worker, hardened for clients the service cannot trust.

What the stock worker does not do:

- **Bound the time a request takes to arrive.** gthread waits for a new connection's first
  bytes without holding a thread (5 s at most), but once a request has begun a thread reads
  it with blocking reads and no limit: a client sending `Content-Length: 1000` and one
  byte, or its headers a byte at a time, held a thread as long as it liked, and as many
  such sockets as threads starved /livez. Here each request has REQUEST_READ_TIMEOUT
  seconds from its first byte to its last (request line, headers and body); a slower
  client is answered 408 and disconnected.
- **Bound the time a response takes to leave.** A client that never reads (a small
  receive window, a hundred pipelined requests) blocked the thread writing to it forever.
  Here each response has RESPONSE_SEND_TIMEOUT seconds from its first byte to its last;
  a client that has not taken it by then is disconnected without further answer.
- **Share the threads between clients.** One client address is never given every thread
  of a worker: at most `threads - 1` of its connections are handled at once, the others
  wait their turn without holding a thread (past a quarter of the worker's connection
  limit of them, the next is refused with 503). So a client holding its threads until
  the deadlines above cannot keep another client, such as the health check, waiting.
- **Linger on close in the connection's own thread.** gunicorn waits up to 2 s on a
  closing connection for the client to close too (so that the last answer is not lost
  to a reset), and it did so in the worker's one event-loop thread: twenty clients that
  did not close stalled every other client for twenty seconds.
- **Answer its own errors like the app.** A bad request line, a too-long URI or too-large
  headers never reach the app; gunicorn answered them with an HTML page. Here they are
  problem+json with the legacy members, with gunicorn's status and log line.

`clf-analysis serve` uses it; plain gunicorn can too (`-k
clf_analysis.api.gunicorn_worker.ApiThreadWorker`, which reads REQUEST_READ_TIMEOUT and
RESPONSE_SEND_TIMEOUT from the environment). TLS is not handled by this service:
terminate it at a proxy.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections import deque
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from clf_analysis.api.errors import PROBLEM_MIME, ClientTooSlow, problem_body

# One client address may have this share of the worker's connection limit (gunicorn's
# worker_connections) waiting for a thread: many pollers behind one address are served,
# one address cannot fill the table alone.
WAITING_SHARE = 4
# Bytes of a file handed to the socket at a time (see DeadlineSocket.sendfile).
_FILE_CHUNK = 256 * 1024


class ClientNotReading(BrokenPipeError):
    """The client did not take a response within RESPONSE_SEND_TIMEOUT.

    A broken pipe to gunicorn, which is what it is to the service: gunicorn then drops
    the connection quietly instead of trying to write an error page into it.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(errno.EPIPE, f"the response was not taken within {seconds:g} s")


class DeadlineSocket:
    """A client socket whose blocking reads share one deadline per request, and whose
    blocking writes share one deadline per response.

    Reads and writes that carry a timeout of their own (gunicorn draining an unread body,
    lingering on close, writing an error page without blocking) keep that bound: they
    already end, and raising there would answer a request twice.
    """

    def __init__(self, sock: socket.socket, read_seconds: float, send_seconds: float) -> None:
        self._sock = sock
        self._read_seconds = read_seconds
        self._send_seconds = send_seconds
        self._read_deadline: float | None = None
        self._send_deadline: float | None = None
        #: Set once a response was abandoned: the connection is closed without lingering.
        self.abandoned = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def next_request(self) -> None:
        """The next request's clocks start with its first read and its first write."""
        self._read_deadline = None
        self._send_deadline = None

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._sock.gettimeout() is not None:
            return self._sock.recv(bufsize, flags)
        now = time.monotonic()
        if self._read_deadline is None:
            self._read_deadline = now + self._read_seconds
        remaining = self._read_deadline - now
        if remaining <= 0:
            raise ClientTooSlow(self._read_seconds)
        self._sock.settimeout(remaining)
        try:
            return self._sock.recv(bufsize, flags)
        except TimeoutError:
            raise ClientTooSlow(self._read_seconds) from None
        finally:
            self._sock.settimeout(None)

    def sendall(self, data: bytes, flags: int = 0) -> None:
        if self._sock.gettimeout() is not None:
            self._sock.sendall(data, flags)
            return
        now = time.monotonic()
        if self._send_deadline is None:
            self._send_deadline = now + self._send_seconds
        remaining = self._send_deadline - now
        if remaining <= 0:
            self._abandon()
        # With a timeout, sendall's bound is the whole call, not each wait for the client.
        self._sock.settimeout(remaining)
        try:
            self._sock.sendall(data, flags)
        except TimeoutError:
            self._abandon()
        finally:
            self._sock.settimeout(None)

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        """Send `count` bytes of `file` from `offset` (to its end without `count`).

        Through `sendall`, so that the response's deadline bounds the file too:
        socket.sendfile's timeout limits each wait for the client, not the whole.
        """
        fd = file.fileno()
        end = os.fstat(fd).st_size if count is None else offset + count
        position = offset
        while position < end:
            chunk = os.pread(fd, min(_FILE_CHUNK, end - position), position)
            if not chunk:
                break
            self.sendall(chunk)
            position += len(chunk)
        return position - offset

    def _abandon(self) -> None:
        self.abandoned = True
        raise ClientNotReading(self._send_seconds) from None


class _ErrorPageCapture:
    """Stands in for the client socket while gunicorn writes one of its error pages, so
    that its status line (and gunicorn's choice of status and log line) can be kept."""

    def __init__(self) -> None:
        self.data = bytearray()

    def gettimeout(self) -> float:
        return 0.0  # already non-blocking: gunicorn then writes without toggling modes

    def sendall(self, data: bytes) -> None:
        self.data += data


def _client_address(conn: Any) -> str:
    """The peer's IP address ("" for a Unix socket): what the threads are shared by."""
    client = conn.client
    return str(client[0]) if isinstance(client, tuple) and client else ""


class ApiThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gthread with deadlines per request and response, threads shared between client
    addresses, lingering closes in the connection's thread and problem+json error pages.

    Connection bookkeeping (`enqueue_req`, `finish_request`) runs in the worker's event
    loop thread only, as in gthread: the counters need no lock.
    """

    #: Seconds a request may take to arrive; None: REQUEST_READ_TIMEOUT from the environment.
    read_timeout: float | None = None
    #: Seconds a response may take to leave; None: RESPONSE_SEND_TIMEOUT from the environment.
    send_timeout: float | None = None

    def init_process(self) -> None:
        read, send = self.read_timeout, self.send_timeout
        if read is None or send is None:
            from clf_analysis.config import load_settings

            settings = load_settings()
            read = settings.request_read_timeout if read is None else read
            send = settings.response_send_timeout if send is None else send
        self._read_seconds: float = read
        self._send_seconds: float = send
        threads = max(1, int(self.cfg.threads))
        self._per_client = max(1, threads - 1)
        self._waiting_limit = max(1, int(self.cfg.worker_connections) // WAITING_SHARE)
        self._busy: dict[str, int] = {}
        self._waiting: dict[str, deque[Any]] = {}
        super().init_process()

    def enqueue_req(self, conn: Any) -> None:
        client = _client_address(conn)
        if self._busy.get(client, 0) >= self._per_client:
            waiting = self._waiting.setdefault(client, deque())
            if len(waiting) >= self._waiting_limit:
                self._refuse(conn, client)
            else:
                waiting.append(conn)
            return
        self._busy[client] = self._busy.get(client, 0) + 1
        super().enqueue_req(conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        client = _client_address(conn)
        busy = self._busy.get(client, 0) - 1
        if busy > 0:
            self._busy[client] = busy
        else:
            self._busy.pop(client, None)
        if getattr(conn, "closed_in_thread", False):
            self.nr_conns -= 1
        else:
            super().finish_request(conn, fs)
        waiting = self._waiting.get(client)
        while waiting and self._busy.get(client, 0) < self._per_client:
            self.enqueue_req(waiting.popleft())
        if not waiting:
            self._waiting.pop(client, None)

    def _refuse(self, conn: Any, client: str) -> None:
        """Answer 503 to a connection one client address has too many of, and drop it."""
        self.log.warning(
            "connection from ip=%s refused: %d of its connections already wait for a thread",
            client,
            self._waiting_limit,
        )
        detail = (
            f"too many connections from {client or 'this client'} at once; "
            "retry once earlier requests are answered"
        )
        _send_problem(
            conn.sock,
            503,
            "Service Unavailable",
            detail,
            None,
            kind="too-many-connections",
            retry_after=1,
        )
        self.nr_conns -= 1
        conn.close()

    def handle(self, conn: Any) -> Any:
        # Wrapped before gunicorn makes the connection's parser, which keeps the socket.
        if not isinstance(conn.sock, DeadlineSocket) and not self.cfg.is_ssl:
            conn.sock = DeadlineSocket(conn.sock, self._read_seconds, self._send_seconds)
        if isinstance(conn.sock, DeadlineSocket):
            conn.sock.next_request()
        result = super().handle(conn)
        if not result:  # neither kept alive nor handed back to wait for data: closed here
            self._close(conn)
        return result

    def _close(self, conn: Any) -> None:
        abandoned = isinstance(conn.sock, DeadlineSocket) and conn.sock.abandoned
        if abandoned:
            # Nothing of ours is worth waiting for: the client took no answer.
            self.log.warning(
                "connection from ip=%s dropped: a response was not taken within %g s",
                _client_address(conn),
                self._send_seconds,
            )
        with contextlib.suppress(OSError):  # already gone
            conn.close(graceful=not abandoned)
        conn.closed_in_thread = True

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


def _send_problem(
    client: Any,
    status: int,
    reason: str,
    detail: str,
    instance: Any,
    *,
    kind: str | None = None,
    retry_after: int | None = None,
) -> None:
    kind = kind or "-".join(reason.lower().split())
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
        + (f"Retry-After: {retry_after}\r\n" if retry_after is not None else "")
        + f"Content-Type: {PROBLEM_MIME}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1")
    try:
        util.write_nonblock(client, head + body)
    except Exception:  # the client is gone: nothing left to tell it
        return
