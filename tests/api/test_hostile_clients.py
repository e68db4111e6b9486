"""Clients that misbehave on the wire, against a real `clf-analysis serve` (gunicorn).

Slow senders and clients that never read must not hold the HTTP threads, one client
address must not take all of them, and every error the server answers itself, before
the app sees a request, is problem+json like the app's own. A second client address is
a second loopback address (127.0.0.2): Linux routes all of 127/8 to the loopback device.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from gunicorn.config import Config

from clf_analysis.api.gunicorn_worker import WAITING_SHARE

from .conftest import ServeProcess, make_midas, serve_env, start_serve

THREADS = 2
READ_TIMEOUT = 2.0
SEND_TIMEOUT = 2.0
# The deadlines of the server that waits long: much longer than any probe here waits.
PATIENT_SECONDS = 120.0
PROBE_SECONDS = 15.0
OTHER_CLIENT = "127.0.0.2"
BIG_ARTIFACT = "/api/builds/demo-build/artifacts/big.png"
BIG_SIZE = 4 * 1024 * 1024


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> dict:
        assert self.headers.get("content-type") == "application/problem+json", self
        body = json.loads(self.body)
        assert body["status"] == "error" and body["http_status"] == self.status
        assert body["message"] == body["detail"] and body["message"]
        assert {"type", "title", "instance"} <= set(body)
        return body


def read_answer(sock: socket.socket, timeout: float = 30.0) -> RawAnswer:
    """Everything the server sends until it closes the connection, parsed."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawAnswer(int(lines[0].split()[1]), headers, body)


def _start(root: Path, read: float, send: float) -> ServeProcess:
    midas = make_midas(root)
    outputs = midas / "demo-build" / "clf_analysis"
    outputs.mkdir()
    (outputs / "platform_info.json").write_text("{}")
    (outputs / "big.png").write_bytes(os.urandom(BIG_SIZE))
    env = serve_env(
        midas,
        root / "state",
        WORKER_CONCURRENCY="0",
        REQUEST_READ_TIMEOUT=str(read),
        RESPONSE_SEND_TIMEOUT=str(send),
    )
    return start_serve(env, root / "serve.log", "--workers", "1", "--threads", str(THREADS))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """One HTTP worker with two threads, as in the report that found the starvation."""
    server = _start(tmp_path_factory.mktemp("hostile"), READ_TIMEOUT, SEND_TIMEOUT)
    yield server
    server.stop(signal.SIGKILL, timeout=10)


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """The same, with deadlines far longer than a probe waits: a probe answered while
    another client holds the threads was answered thanks to the sharing of threads."""
    server = _start(tmp_path_factory.mktemp("patient"), PATIENT_SECONDS, PATIENT_SECONDS)
    yield server
    server.stop(signal.SIGKILL, timeout=10)


def _connect(served: ServeProcess, source: str = "127.0.0.1") -> socket.socket:
    host, port = served.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10, source_address=(source, 0))


def _not_reading(served: ServeProcess, request: bytes, source: str = "127.0.0.1") -> socket.socket:
    """A client with a tiny receive window that sends `request` and reads nothing."""
    host, port = served.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    sock.bind((source, 0))
    sock.connect((host, int(port)))
    sock.sendall(request)
    return sock


def _drain(sock: socket.socket) -> bytes:
    """What the server sent before it closed the connection (it must close it)."""
    sock.settimeout(30)
    data = b""
    try:
        while chunk := sock.recv(1 << 20):
            data += chunk
    except ConnectionResetError:  # closed with our requests unread: a reset ends it
        pass
    return data


def _probe(served: ServeProcess) -> int:
    return requests.get(served.url + "/livez", timeout=PROBE_SECONDS).status_code


def _jobs_of(served: ServeProcess, build_id: str) -> int:
    answer = requests.get(f"{served.url}/api/jobs?build_id={build_id}", timeout=10)
    return int(answer.json()["total"])


def _send(served: ServeProcess, data: bytes) -> RawAnswer:
    with _connect(served) as sock:
        sock.sendall(data)
        return read_answer(sock)


class _Trickler(threading.Thread):
    """Sends a request's headers one byte every 0.2 s: never finishing them in time."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock = sock
        self.stop = threading.Event()

    def run(self) -> None:
        data = b"GET /livez HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: 1\r\n" * 10_000
        for byte in data:
            if self.stop.wait(0.2):
                return
            try:
                self.sock.sendall(bytes([byte]))
            except OSError:  # the server gave up on us: that is the point
                return


@pytest.mark.parametrize("slow_sockets", [THREADS, THREADS + 1])
def test_slow_clients_do_not_starve_the_probes(served: ServeProcess, slow_sockets: int) -> None:
    stalled_body = (
        b"POST /api/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    socks = [_connect(served) for _ in range(slow_sockets)]
    trickler = _Trickler(socks[0])
    try:
        trickler.start()
        for sock in socks[1:]:
            sock.sendall(stalled_body)  # and then nothing of the 999 other bytes
        time.sleep(0.5)  # let them take the threads
        # Generous: each slow request is cut after READ_TIMEOUT, so the probe waits a few
        # of those at most; without the bound it waited for as long as the sockets lived.
        livez = requests.get(served.url + "/livez", timeout=5 * READ_TIMEOUT + 5)
        assert livez.status_code == 200
        answers = [read_answer(sock) for sock in socks]
    finally:
        trickler.stop.set()
        for sock in socks:
            sock.close()
    for answer in answers:
        assert answer.status == 408
        assert answer.problem()["type"] == "/problems/request-timeout"
    assert answers[1].problem()["instance"] == "/api/analyze"  # the app answered that one


PIPELINED_OPENAPI = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 100
BIG_FETCH = f"GET {BIG_ARTIFACT} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


@pytest.mark.parametrize(
    ("request_bytes", "answers"),
    [(PIPELINED_OPENAPI, 100), (BIG_FETCH, 1)],
    ids=["100-pipelined-openapi", "4MB-artifact"],
)
def test_clients_that_never_read_do_not_hold_the_threads(
    served: ServeProcess, request_bytes: bytes, answers: int
) -> None:
    # As many clients as threads, each asking for more than the socket buffers hold and
    # reading none of it: every thread blocked writing to them, for good.
    socks = [_not_reading(served, request_bytes) for _ in range(THREADS)]
    try:
        time.sleep(0.5)  # let them take the threads
        assert _probe(served) == 200
        received = [_drain(sock) for sock in socks]
    finally:
        for sock in socks:
            sock.close()
    for data in received:
        # Cut off: the connection was closed with its answers unsent (what was sent
        # before may even be lost to the reset our unread requests cause).
        assert data.count(b"HTTP/1.1 200 ") < answers or len(data) < BIG_SIZE
    assert f"a response was not taken within {SEND_TIMEOUT:g} s" in served.log()


@pytest.mark.parametrize("attack", ["never-reading", "trickling"])
def test_one_client_address_cannot_take_every_thread(patient: ServeProcess, attack: str) -> None:
    # More such clients than threads, all from one address, each holding its thread
    # until a deadline (two minutes here): a probe from another address is answered.
    socks = [_connect(patient, OTHER_CLIENT) for _ in range(THREADS + 1)]
    tricklers = [_Trickler(sock) for sock in socks]
    try:
        for sock, trickler in zip(socks, tricklers, strict=True):
            if attack == "trickling":
                trickler.start()
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
                sock.sendall(PIPELINED_OPENAPI)
        time.sleep(0.5)
        assert _probe(patient) == 200
    finally:
        for sock, trickler in zip(socks, tricklers, strict=True):
            trickler.stop.set()
            sock.close()


def test_clients_that_do_not_close_do_not_stall_other_clients(patient: ServeProcess) -> None:
    # The server waits up to 2 s for a closing client to close too. In the worker's event
    # loop that wait stalled every connection: 30 clients that never close were a minute.
    socks = [_connect(patient, OTHER_CLIENT) for _ in range(30)]
    try:
        for sock in socks:
            sock.sendall(b"GET /livez HTTP/1.0\r\n\r\n")  # HTTP/1.0: answered, then closed
        time.sleep(0.5)
        assert _probe(patient) == 200
    finally:
        for sock in socks:
            sock.close()


def test_a_client_address_with_too_many_waiting_connections_is_refused(
    patient: ServeProcess,
) -> None:
    busy = [_connect(patient, OTHER_CLIENT) for _ in range(THREADS - 1)]
    tricklers = [_Trickler(sock) for sock in busy]
    waiting: list[socket.socket] = []
    try:
        for trickler in tricklers:
            trickler.start()
        time.sleep(0.5)  # they hold the address's share of the threads
        for _ in range(Config().worker_connections // WAITING_SHARE):
            waiting.append(_connect(patient, OTHER_CLIENT))
            waiting[-1].sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.5)
        with _connect(patient, OTHER_CLIENT) as one_too_many:
            answer = read_answer(one_too_many)
        assert _probe(patient) == 200  # another address is not affected
    finally:
        for trickler in tricklers:
            trickler.stop.set()
        for sock in busy + waiting:
            sock.close()
    assert answer.status == 503
    assert answer.headers["retry-after"] == "1"
    problem = answer.problem()
    assert problem["type"] == "/problems/too-many-connections"
    assert OTHER_CLIENT in problem["detail"]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Many: 1\r\n" * 150 + b"\r\n", 431),
        (b"POST /api/analyze HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    ],
    ids=[
        "bad-request-line",
        "uri-too-long",
        "header-too-large",
        "too-many-headers",
        "unknown-transfer-coding",
    ],
)
def test_the_servers_own_errors_are_problem_json(
    served: ServeProcess, request_bytes: bytes, status: int
) -> None:
    answer = _send(served, request_bytes)
    assert answer.status == status
    problem = answer.problem()
    assert "<html>" not in answer.body.decode("latin-1")
    assert problem["instance"] is None  # no request was read


def test_malformed_chunk_size_is_400_problem_and_starts_nothing(served: ServeProcess) -> None:
    answer = _send(
        served,
        b"POST /api/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b'zz\r\n{"build_id": "271360"}\r\n0\r\n\r\n',
    )
    assert answer.status == 400
    problem = answer.problem()
    assert problem["type"] == "/problems/unreadable-body"
    assert "chunk" in problem["message"].lower()
    assert _jobs_of(served, "271360") == 0


def test_a_form_post_with_an_empty_body_is_415_and_starts_nothing(served: ServeProcess) -> None:
    answer = _send(
        served,
        b"POST /api/builds/271360/analyze HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert answer.status == 415
    assert answer.problem()["type"] == "/problems/unsupported-content-type"
    assert _jobs_of(served, "271360") == 0


def test_a_legacy_post_without_body_or_type_is_still_accepted(served: ServeProcess) -> None:
    answer = _send(
        served,
        b"POST /api/builds/300001/analyze HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert answer.status == 202, answer
    assert json.loads(answer.body)["build_id"] == "300001"


def test_a_stalled_body_the_app_never_reads_gets_one_answer_then_close(
    served: ServeProcess,
) -> None:
    # The app answers without reading the body; gunicorn's own bounded drain then gives
    # up on the connection. The read deadline must not add a second answer (a 408).
    with _connect(served) as sock:
        sock.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        sock.settimeout(30)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.count(b"HTTP/1.1 ") == 1


def test_idle_time_between_kept_alive_requests_is_not_read_time(served: ServeProcess) -> None:
    # Each request has its own deadline: a pause longer than READ_TIMEOUT (but within the
    # keep-alive time, 5 s) before the next request on the same connection is fine.
    request = b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n"
    with _connect(served) as sock:
        sock.sendall(request)
        assert _one_answer(sock).startswith(b"HTTP/1.1 200 ")
        time.sleep(READ_TIMEOUT + 1)
        sock.sendall(request)
        assert _one_answer(sock).startswith(b"HTTP/1.1 200 ")


def _one_answer(sock: socket.socket) -> bytes:
    """One response of a kept-alive connection (framed by its Content-Length)."""
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


# --- requests a web page of another site makes the browser send ---------------------------


def _request(
    served: ServeProcess, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> RawAnswer:
    host = served.url.removeprefix("http://")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return _send(served, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def test_a_json_body_without_a_content_type_is_415_and_starts_nothing(
    served: ServeProcess,
) -> None:
    # fetch(url, {method: "POST", mode: "no-cors", body: new Blob(['{"build_id": "x"}'])})
    # sends the body with no Content-Type at all: no preflight, from any page.
    answer = _request(served, "POST", "/api/analyze", {}, b'{"build_id": "271360"}')
    assert answer.status == 415
    assert answer.problem()["type"] == "/problems/unsupported-content-type"
    assert "Content-Type: application/json" in answer.problem()["detail"]
    assert _jobs_of(served, "271360") == 0


@pytest.mark.parametrize(
    ("method", "path", "headers"),
    [
        ("POST", "/api/builds/271360/analyze", {"Origin": "http://evil.example"}),
        ("POST", "/api/builds/271360/analyze", {"Origin": "null"}),  # a sandboxed page
        ("POST", "/api/builds/271360/analyze", {"Origin": "http://localhost:6200.evil.example"}),
        (
            "POST",
            "/api/builds/271360/analyze",
            {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"},
        ),
        ("POST", "/api/builds/271360/analyze", {"Sec-Fetch-Site": "cross-site"}),
        (
            "POST",
            "/api/analyze",
            {"Origin": "http://evil.example", "Content-Type": "application/json"},
        ),
        ("DELETE", "/api/jobs/ad7309b1-5c3e-4a8e-9d36-0f4a3c1d2e5f", {"Origin": "null"}),
    ],
    ids=[
        "other-origin",
        "null-origin",
        "lookalike-origin",
        "other-port-same-site",
        "no-origin-cross-site",
        "json-from-other-origin",
        "cancel-from-other-origin",
    ],
)
def test_cross_site_requests_are_403_and_start_nothing(
    served: ServeProcess, method: str, path: str, headers: dict[str, str]
) -> None:
    body = b'{"build_id": "271360"}' if "Content-Type" in headers else b""
    answer = _request(served, method, path, headers, body)
    assert answer.status == 403
    problem = answer.problem()
    assert problem["type"] == "/problems/cross-site-request"
    assert "CORS_ORIGINS" in problem["detail"]
    assert _jobs_of(served, "271360") == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://localhost:6200"},  # the frontend, in the default CORS_ORIGINS
        {"Origin": "OWN", "Sec-Fetch-Site": "same-origin"},  # the viewer at /ui/
        {"Origin": "OWN"},  # the same, from a browser without Sec-Fetch-Site
        {"Origin": "https://clf.example", "Sec-Fetch-Site": "same-origin"},  # via a proxy
        {"Sec-Fetch-Site": "same-origin"},
        {},  # curl and scripts: neither Origin nor Sec-Fetch-Site
    ],
    ids=["frontend", "viewer", "viewer-old-browser", "viewer-via-proxy", "same-origin", "script"],
)
def test_posts_of_allowed_and_own_pages_and_scripts_are_accepted(
    served: ServeProcess, headers: dict[str, str]
) -> None:
    if headers.get("Origin") == "OWN":
        headers = {**headers, "Origin": served.url}
    answer = _request(served, "POST", "/api/builds/300001/analyze", headers)
    assert answer.status == 202, answer
