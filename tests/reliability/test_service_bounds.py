"""The real server (uvicorn) on loopback bounds what one client can hold: a search stuck past the request deadline
is answered 504 (not waited for), a connection that sends nothing or its head a byte at a time is closed after
the head deadline, an oversized head is refused; and the service keeps answering others meanwhile."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from mmsearch import Engine
from mmsearch.web.security import TOKEN_HEADER, Limits
from mmsearch.web.server import MAX_HEAD_BYTES, WebServer
from tests.web_library import build_library, running

LIMITS = Limits(request_timeout_s=0.5, header_timeout_s=0.5)


@pytest.fixture
def server(tmp_path: Path):
    with Engine.open(tmp_path / "home", model="fake:16", workers=1, batch_size=4) as engine:
        engine.ingest(build_library(tmp_path / "library"))
        with running(WebServer(engine, limits=LIMITS)) as served:
            yield served


def get(server: WebServer, path: str, timeout: float = 30) -> tuple[int, dict]:
    request = urllib.request.Request(server.url + path, headers={TOKEN_HEADER: server.token})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def connect(server: WebServer) -> socket.socket:
    parts = urllib.parse.urlsplit(server.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def closed_within(connection: socket.socket, seconds: float, trickle: bytes = b"") -> float | None:
    """Seconds until the server closed ``connection`` (sending ``trickle`` a byte every 0.1 s meanwhile)."""
    start = time.monotonic()
    connection.settimeout(0.1)
    while time.monotonic() - start < seconds:
        try:
            if connection.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            pass
        except ConnectionError:
            return time.monotonic() - start
        if trickle:
            try:
                connection.sendall(trickle[:1])
            except OSError:
                return time.monotonic() - start
            trickle = trickle[1:] or b"X"
    return None


def test_a_search_stuck_past_the_deadline_is_answered_504(server: WebServer, monkeypatch) -> None:
    engine = server.service.engine
    real_search = engine.search
    release = threading.Event()

    def stuck(*args, **kwargs):
        release.wait(30)
        return real_search(*args, **kwargs)

    monkeypatch.setattr(engine, "search", stuck)
    start = time.monotonic()
    status, body = get(server, "/api/v1/search?q=a+brown+dog&k=3")
    assert (status, time.monotonic() - start < 10) == (504, True)
    assert "took longer than 0.5 s" in body["error"]
    assert get(server, "/api/v1/health")[0] == 200  # the service answers others meanwhile
    release.set()
    monkeypatch.setattr(engine, "search", real_search)
    deadline = time.monotonic() + 10
    while (status := get(server, "/api/v1/search?q=a+brown+dog&k=3")[0]) != 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status == 200  # the late search ended; its answer was dropped, nothing broke


def test_a_silent_connection_is_closed_after_the_head_deadline(server: WebServer) -> None:
    with connect(server) as silent:
        assert closed_within(silent, 8) is not None


def test_a_head_sent_a_byte_at_a_time_is_cut_off(server: WebServer) -> None:
    with connect(server) as slow:
        head = b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 200
        assert closed_within(slow, 8, trickle=head) is not None
    assert get(server, "/api/v1/health")[0] == 200


def test_a_kept_alive_connection_gets_the_deadline_again_after_its_answer(server: WebServer) -> None:
    with connect(server) as client:
        client.sendall(
            f"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n{TOKEN_HEADER}: {server.token}\r\n\r\n".encode()
        )
        client.settimeout(10)
        assert client.recv(4096).startswith(b"HTTP/1.1 200")
        client.sendall(b"GET /api/v1/health HTTP/1.1\r\n")  # the next head, never finished
        assert closed_within(client, 8) is not None


def test_an_oversized_head_is_refused(server: WebServer) -> None:
    """(uvicorn's default limit already; pinned here, as MAX_HEAD_BYTES, so that it stays.)"""
    with connect(server) as client:
        client.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (MAX_HEAD_BYTES + 10))
        client.settimeout(10)
        assert client.recv(4096).startswith(b"HTTP/1.1 400")
