"""`mmsearch serve` as a real process on the fixture model's DEV home: `mmsearch query` processes use it, and it
cleans up on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mmsearch.service.protocol import SERVICE_FILE, TOKEN_HEADER, ServiceInfo
from tests.conftest import DEV

pytestmark = pytest.mark.integration


def mmsearch(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "mmsearch", "--home", str(home), *args]


def health(info: ServiceInfo) -> dict:
    request = urllib.request.Request(info.url + "/api/v1/health", headers={TOKEN_HEADER: info.token})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait_for_service(home: Path, server: subprocess.Popen, timeout_s: float = 180) -> ServiceInfo:
    deadline = time.monotonic() + timeout_s
    while (info := ServiceInfo.read(home)) is None:
        assert server.poll() is None, f"mmsearch serve exited: {server.communicate()[1]}"
        assert time.monotonic() < deadline, "mmsearch serve did not start in time"
        time.sleep(0.2)
    return info


def test_query_processes_use_the_running_service(dev_engine) -> None:
    engine, _ = dev_engine
    home = Path(engine.settings.home)
    server = subprocess.Popen(mmsearch(home, "serve"), stderr=subprocess.PIPE, text=True)
    try:
        info = wait_for_service(home, server)
        before = health(info)["requests"]
        query = ["query", "two dogs play in the snow", "--json", "-k", "5"]
        served = subprocess.run(mmsearch(home, *query), capture_output=True, text=True, timeout=120, check=True)
        assert health(info)["requests"] == before + 1  # answered by the service (health checks do not count)
        local = subprocess.run(
            mmsearch(home, *query, "--no-service"), capture_output=True, text=True, timeout=120, check=True
        )
        assert health(info)["requests"] == before + 1  # --no-service searched in its own process
        assert json.loads(served.stdout)["hits"] == json.loads(local.stdout)["hits"]
        photo = sorted((DEV / "images").glob("*.jpg"))[3]
        by_image = ["query", "--image", str(photo), "--json", "-k", "3"]
        served = subprocess.run(mmsearch(home, *by_image), capture_output=True, text=True, timeout=120, check=True)
        assert health(info)["requests"] == before + 2  # uploaded to the warm service, which has both towers
        assert json.loads(served.stdout)["hits"][0]["path"] == str(photo)
    finally:
        server.send_signal(signal.SIGTERM)
        _, errors = server.communicate(timeout=60)
    assert server.returncode == 0, errors
    assert not (home / SERVICE_FILE).exists()
