"""An ingest process writes to a home while ``mmsearch serve`` (another process) answers queries on it: every
search during the ingest is answered with full hits from a consistent index, the counts it sees only grow, the
service picks up the new generation once the ingest ends, an ingest job asked of the service meanwhile waits for
the writer lock instead of writing at the same time, and nothing crashes."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from mmsearch.service.protocol import SERVICE_FILE, TOKEN_HEADER, ServiceInfo
from tests.reliability.race_tools import (
    assert_index_equals_database,
    finish,
    integrity,
    make_folder,
    mmsearch_process,
    stored_image_paths,
)

FIRST, SECOND, BY_JOB = 60, 240, 20


def call(info: ServiceInfo, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    headers = {TOKEN_HEADER: info.token, "Content-Type": "application/json"}
    request = urllib.request.Request(info.url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_for_service(home: Path, server) -> ServiceInfo:
    deadline = time.monotonic() + 120
    while (info := ServiceInfo.read(home)) is None:
        assert server.poll() is None, finish(server)[2]
        assert time.monotonic() < deadline, "mmsearch serve did not start"
        time.sleep(0.1)
    return info


def searched_count(info: ServiceInfo, k: int) -> int:
    status, document = call(info, f"/api/v1/search?q=a+picture&k={k}&kind=image")
    assert status == 200, document
    return len(document["hits"])


def test_an_ingest_while_the_service_answers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_folder(tmp_path / "a", FIRST)
    make_folder(tmp_path / "b", SECOND, first_seed=10_000)
    make_folder(tmp_path / "c", BY_JOB, first_seed=20_000)
    assert finish(mmsearch_process(home, "ingest", str(tmp_path / "a")))[0] == 0
    server = mmsearch_process(home, "serve")
    try:
        info = wait_for_service(home, server)
        ingest = mmsearch_process(home, "ingest", str(tmp_path / "b"), "--batch-size", "2", "--json")
        seen: list[int] = []
        job: dict | None = None
        while ingest.poll() is None:
            count = searched_count(info, 1000)
            assert count >= FIRST  # never an empty or half-loaded index
            seen.append(count)
            assert call(info, "/api/v1/status")[0] == 200
            if job is None and FIRST < count < FIRST + SECOND:  # the ingest is writing, so it holds the lock
                job_status, job = call(info, "/api/v1/ingest", {"folder": str(tmp_path / "c")})
                assert job_status == 202, job
        assert job is not None, "the ingest ended before the service saw its first batch"
        code, out, err = finish(ingest)
        ingest_ended = time.time()
        assert code == 0 and json.loads(out)["added"] == SECOND, err
        job = wait_for_job(info, job["id"])
        assert job["state"] == "done" and job["report"]["added"] == BY_JOB, job
        assert job["finished"] >= ingest_ended - 1  # it waited for the writer lock, it did not write alongside
        assert searched_count(info, 1000) == FIRST + SECOND + BY_JOB  # the new generations, picked up
        assert call(info, "/api/v1/status")[1]["vectors"] >= FIRST + SECOND + BY_JOB
    finally:
        server.send_signal(signal.SIGTERM)
        code, _out, errors = finish(server)
    assert code == 0 and "Traceback" not in errors, errors
    assert not (home / SERVICE_FILE).exists()
    assert seen == sorted(seen)  # counts only grow: no query saw a rolled-back or half-built index
    paths = stored_image_paths(home)
    assert len(paths) == len(set(paths)) == FIRST + SECOND + BY_JOB
    assert_index_equals_database(integrity(home))


def wait_for_job(info: ServiceInfo, job_id: str) -> dict:
    deadline = time.monotonic() + 180
    while True:
        status, job = call(info, f"/api/v1/ingest/{job_id}")
        assert status == 200, job
        if job["state"] != "running" or time.monotonic() > deadline:
            return job
        time.sleep(0.2)
