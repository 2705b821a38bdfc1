#!/usr/bin/env python3
"""The service under hostile load (issue 12): the figures of ``tests/unit/test_web_load.py``, measured.

Run from the repository root::

    source scripts/venv.sh && python bench/service_load.py            # about 30 s
    python bench/service_load.py --searches 400 --idle 300 --json

The real server (uvicorn, :class:`mmsearch.web.server.WebServer`) serves a small library (the fake encoder, so
the figures are the service's, not a model's) on loopback in this process. ``--idle`` connections are opened and
left silent (one with half a request head), then ``--searches`` searches are sent at once from as many threads,
each on its own connection. Reported: answers by status, connection errors (resets, refusals), latency p50 / p90 /
p99 / max, how many idle connections the server had closed by the end (the head deadline), and this process's
peak RSS. The load average is reported with the figures: on a shared machine latencies scale with it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmsearch import Engine  # noqa: E402
from mmsearch.web.security import TOKEN_HEADER  # noqa: E402
from mmsearch.web.server import WebServer  # noqa: E402
from tests.web_library import build_library, running  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def search_once(url: str, token: str) -> tuple[str, float]:
    start = time.perf_counter()
    request = urllib.request.Request(f"{url}/api/v1/search?q=a+brown+dog&k=3", headers={TOKEN_HEADER: token})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            response.read()
            outcome = str(response.status)
    except urllib.error.HTTPError as exc:
        outcome = str(exc.code)
    except (ConnectionError, urllib.error.URLError, TimeoutError) as exc:
        outcome = type(getattr(exc, "reason", exc)).__name__
    return outcome, time.perf_counter() - start


def still_open(connection: socket.socket) -> bool:
    connection.setblocking(False)
    try:
        return connection.recv(1) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def run(searches: int, idle_count: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with Engine.open(root / "home", model="fake:16", workers=1, batch_size=4) as engine:
            engine.ingest(build_library(root / "library"))
            with running(WebServer(engine)) as server:
                parts = urllib.parse.urlsplit(server.url)
                idle = [socket.create_connection((parts.hostname, parts.port), timeout=10) for _ in range(idle_count)]
                if idle:
                    idle[0].sendall(b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                began = time.perf_counter()
                with ThreadPoolExecutor(max_workers=searches) as pool:
                    answers = list(pool.map(lambda _: search_once(server.url, server.token), range(searches)))
                wall = time.perf_counter() - began
                closed = sum(not still_open(connection) for connection in idle)
                for connection in idle:
                    connection.close()
    latencies = [seconds for _, seconds in answers]
    return {
        "searches": searches,
        "idle_connections": idle_count,
        "answers": dict(Counter(outcome for outcome, _ in answers)),
        "p50_s": round(statistics.median(latencies), 3),
        "p90_s": round(percentile(latencies, 0.90), 3),
        "p99_s": round(percentile(latencies, 0.99), 3),
        "max_s": round(max(latencies), 3),
        "wall_s": round(wall, 2),
        "idle_closed_by_server": closed,
        "peak_rss_mib": round(peak_rss_mib()),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--idle", type=int, default=150)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.searches, args.idle)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:>24}: {value}")


if __name__ == "__main__":
    main()
