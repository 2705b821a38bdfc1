"""A bounded load test of the real server (uvicorn) on loopback: 200 concurrent searches while 150 idle connections
are held open; every request is answered (none reset, none left hanging) with the right hits."""

from __future__ import annotations

import json
import socket
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mmsearch import Engine
from mmsearch.web.security import TOKEN_HEADER
from mmsearch.web.server import WebServer
from tests.web_library import build_library, running


def test_every_concurrent_request_is_answered(tmp_path: Path) -> None:
    with Engine.open(tmp_path / "home", model="fake:16", workers=1, batch_size=4) as engine:
        engine.ingest(build_library(tmp_path / "library"))
        expected = [hit.path for hit in engine.search("a brown dog", k=3)]
        with running(WebServer(engine)) as server:
            host, port = urllib.parse.urlsplit(server.url).hostname, urllib.parse.urlsplit(server.url).port
            idle = [socket.create_connection((host, port), timeout=10) for _ in range(150)]
            idle[0].sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and one half-sent request

            def search(_: int) -> tuple[int, list[str]]:
                request = urllib.request.Request(
                    f"{server.url}/api/v1/search?q=a+brown+dog&k=3", headers={TOKEN_HEADER: server.token}
                )
                with urllib.request.urlopen(request, timeout=120) as response:
                    return response.status, [hit["path"] for hit in json.loads(response.read())["hits"]]

            try:
                with ThreadPoolExecutor(max_workers=200) as pool:
                    answers = list(pool.map(search, range(200)))
            finally:
                for connection in idle:
                    connection.close()
    assert len(answers) == 200
    assert all(answer == (200, expected) for answer in answers)
