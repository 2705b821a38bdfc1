"""The warm service: protocol round trips, the web server (uvicorn) and the client over loopback, the CLI using it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from click.testing import CliRunner
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from mmsearch import Engine
from mmsearch.cli import cli
from mmsearch.search.filters import Filters
from mmsearch.search.hits import Hit
from mmsearch.service.client import find_service, remote_search
from mmsearch.service.protocol import (
    SERVICE_FILE,
    TOKEN_HEADER,
    RemoteError,
    ServiceInfo,
    hits_from_json,
    hits_to_json,
    search_query,
)
from mmsearch.web.params import SearchParams, search_params
from mmsearch.web.server import WebServer
from tests.web_library import running

PROBED: list[SearchParams] = []
_probe = FastAPI()


@_probe.get("/probe")
def _probe_route(params: Annotated[SearchParams, Depends(search_params)]) -> None:
    PROBED.append(params)  # what the service's search routes receive


PARAMS_PROBE = TestClient(_probe)

# -- protocol ---------------------------------------------------------------------------------------------


@given(
    path=st.none()
    | st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=20).filter(
        lambda p: p.strip() == p
    ),
    ext=st.lists(st.sampled_from(["jpg", "png", "mp3"]), max_size=3),
    since=st.none() | st.floats(0, 2e9),
    until=st.none() | st.floats(0, 2e9),
    k=st.integers(1, 50),
    weights=st.none() | st.dictionaries(st.sampled_from(["image", "caption", "keyword"]), st.floats(0, 5)),
)
def test_search_requests_survive_the_query_string(path, ext, since, until, k, weights) -> None:
    filters = Filters(path=path, ext=tuple(ext), since=since, until=until)
    options = {"filters": filters, "weights": weights, "mode": "hybrid", "explain": True, "min_score": None}
    answer = PARAMS_PROBE.get("/probe?" + urllib.parse.urlencode(search_query("a dog", k, "any", options)))
    assert answer.status_code == 200, answer.text
    back = PROBED.pop()
    assert (back.text, back.k, back.kind) == ("a dog", k, "any")
    assert back.options["filters"] == Filters(path=path or None, ext=tuple(ext), since=since, until=until)
    assert back.options.get("weights") == (weights or None) and back.options["mode"] == "hybrid"
    assert back.options["explain"] is True
    assert "min_score" not in back.options  # None means "not given"


def test_hits_survive_json() -> None:
    hits = [
        Hit(1, 0.5, 7, "/a.jpg", "image", 3, 4),
        Hit(2, 0.25, 9, "/b.mp3", "audio", None, None, "transcript", "hello", 1.0, 2.5, 11, {"x": 1}),
    ]
    assert hits_from_json(json.loads(json.dumps(hits_to_json(hits)))) == hits


def test_discovery_file_is_private_and_round_trips(tmp_path: Path) -> None:
    info = ServiceInfo("http://127.0.0.1:1", "secret", os.getpid(), "sqlite:///x.db", str(tmp_path))
    path = info.write(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ServiceInfo.read(tmp_path) == info
    assert info.alive()
    path.write_text("{not json")
    assert ServiceInfo.read(tmp_path) is None


def test_a_dead_service_is_not_found(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = ServiceInfo("http://127.0.0.1:1", "t", int(finished.stdout), "sqlite:///x.db", str(tmp_path))
    dead.write(tmp_path)
    assert not dead.alive()
    assert find_service(tmp_path, "sqlite:///x.db") is None


# -- server and client --------------------------------------------------------------------------------------


@pytest.fixture
def served(tmp_path: Path, photo_dir: Path) -> Iterator[tuple[Any, Engine]]:
    """A service on a file database (the CLI opens the same home) over the fake encoder, in a thread."""
    with Engine.open(tmp_path / "home", model="fake:16", workers=1, batch_size=4) as engine:
        engine.ingest(photo_dir)
        assert engine.warm_up(images=True)
        with running(WebServer(engine)) as server:
            yield server.service, engine


def test_the_service_answers_as_the_engine_does(served, photo_dir: Path) -> None:
    service, engine = served
    info = find_service(engine.settings.home, engine.settings.database_url)
    assert info is not None and info.url == service.url
    before = service.requests
    options = {"filters": Filters(ext=("png", "jpg")), "mode": "dense"}
    remote = remote_search(info, "a red square", None, 3, "image", options)
    assert remote == engine.search("a red square", k=3, **options)
    by_image = remote_search(info, None, str(photo_dir / "a.jpg"), 2, "image", {})
    assert by_image is not None and by_image[0].path == str(photo_dir / "a.jpg")
    assert by_image == engine.search(image=photo_dir / "a.jpg", k=2)
    assert service.requests == before + 2


def test_service_errors_keep_their_exit_codes(served, photo_dir: Path) -> None:
    _, engine = served
    info = find_service(engine.settings.home, engine.settings.database_url)
    assert info is not None
    with pytest.raises(RemoteError, match="keyword mode needs query text") as bad_query:
        remote_search(info, None, str(photo_dir / "a.jpg"), 3, "image", {"mode": "keyword"})
    assert bad_query.value.exit_code == 2
    with pytest.raises(RemoteError, match="refusing to use") as other_model:
        remote_search(info, "x", None, 3, "image", {}, model="fake:32")
    assert other_model.value.exit_code == 1


def test_requests_without_the_token_are_refused(served) -> None:
    service, engine = served
    request = urllib.request.Request(service.url + "/api/v1/status", headers={TOKEN_HEADER: "wrong"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401
    request = urllib.request.Request(service.url + "/api/v1/status", headers={TOKEN_HEADER: service.auth.token})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read())["files_by_kind"] == {"image": 6}
    forged = ServiceInfo(service.url, "wrong", os.getpid(), engine.settings.database_url, "")
    assert remote_search(forged, "x", None, 3, "image", {}) is None  # not ours to ask: search locally


def test_shutdown_removes_the_discovery_file(tmp_path: Path, photo_dir: Path) -> None:
    with Engine.open(tmp_path / "home", model="fake:16") as engine:
        server = WebServer(engine)
        server.start()
        assert (tmp_path / "home" / SERVICE_FILE).is_file()
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        server.shutdown()
        thread.join(5)
        server.close()
        assert not thread.is_alive()
        assert not (tmp_path / "home" / SERVICE_FILE).exists()


# -- the CLI uses it ----------------------------------------------------------------------------------------


def test_cli_query_goes_to_the_running_service(served, photo_dir: Path) -> None:
    service, engine = served
    home = str(engine.settings.home)
    before = service.requests
    served_json = CliRunner().invoke(cli, ["--home", home, "query", "a red square", "--json", "-k", "3"])
    assert served_json.exit_code == 0, served_json.output
    assert service.requests == before + 1
    local = CliRunner().invoke(cli, ["--home", home, "query", "a red square", "--json", "-k", "3", "--no-service"])
    assert local.exit_code == 0 and service.requests == before + 1
    assert json.loads(served_json.output)["hits"] == json.loads(local.output)["hits"]

    bad = CliRunner().invoke(cli, ["--home", home, "query", "--mode", "keyword", "--image", str(photo_dir / "a.jpg")])
    assert service.requests == before + 2
    assert bad.exit_code == 2 and "keyword mode needs query text" in bad.output

    image = ["--home", home, "query", "--image", str(photo_dir / "b.png"), "--json", "-k", "2"]
    by_image = CliRunner().invoke(cli, image)
    assert by_image.exit_code == 0 and service.requests == before + 3  # uploaded to the service
    assert json.loads(by_image.output)["hits"][0]["path"] == str(photo_dir / "b.png")


def test_cli_query_without_a_live_service_searches_itself(tmp_path: Path, photo_dir: Path) -> None:
    home = tmp_path / "home"
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(home), "--model", "fake:16", "ingest", str(photo_dir)]).exit_code == 0
    database = f"sqlite:///{home.resolve() / 'mmsearch.db'}"
    ServiceInfo("http://127.0.0.1:9", "t", os.getpid(), database, str(home)).write(home)  # nobody listens there
    result = runner.invoke(cli, ["--home", str(home), "query", "a red square", "--json", "-k", "2"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)["hits"]) == 2


def test_open_searcher_picks_the_running_service(served, photo_dir: Path) -> None:
    from mmsearch.searcher import open_searcher
    from mmsearch.service.client import RemoteSearcher

    service, engine = served
    with open_searcher(engine.settings.home, model=None) as searcher:
        assert isinstance(searcher, RemoteSearcher)
        assert searcher.search("a red square", k=3) == engine.search("a red square", k=3)
        by_image = searcher.search(image=photo_dir / "a.jpg", k=1)
    assert by_image[0].path == str(photo_dir / "a.jpg")
    assert service.requests == 2
    with open_searcher(engine.settings.home, service=False) as local:
        assert not isinstance(local, RemoteSearcher)


# -- `mmsearch serve` as a process ------------------------------------------------------------------------------


def serve_process(home: Path, *args: str) -> tuple[subprocess.Popen, list[str]]:
    """``mmsearch serve`` started, and the lines it printed up to the sign-in link."""
    command = [sys.executable, "-m", "mmsearch", "--home", str(home), "--model", "fake:16", "serve", *args]
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    while not lines or "sign in" not in lines[-1]:
        line = server.stderr.readline()
        assert line, f"serve exited: {lines}"
        lines.append(line)
    return server, lines


def test_serve_prints_a_sign_in_link_and_stops_cleanly(tmp_path: Path) -> None:
    import signal

    home = tmp_path / "home"
    server, lines = serve_process(home)
    try:
        info = ServiceInfo.read(home)
        assert info is not None and info.url.startswith("http://127.0.0.1:")
        assert not any("warning" in line for line in lines)
        link = lines[-1].split()[-1]
        assert link.startswith(f"{info.url}/signin?code=")
        assert info.token not in "".join(lines)  # the token is never printed (it is in service.json)
        with urllib.request.urlopen(link, timeout=10) as response:
            assert "mmsearch_session=" in response.headers["set-cookie"]
    finally:
        server.send_signal(signal.SIGTERM)
        _, rest = server.communicate(timeout=30)
    assert server.returncode == 0, rest
    assert not (home / SERVICE_FILE).exists()


def test_serve_beyond_loopback_warns(tmp_path: Path) -> None:
    import signal

    server, lines = serve_process(tmp_path / "home", "--host", "0.0.0.0")
    server.send_signal(signal.SIGTERM)
    server.communicate(timeout=30)
    assert any("warning: listening on 0.0.0.0" in line and "token" in line for line in lines)


def test_serve_on_a_bad_address_is_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "--model", "fake:16", "serve", "--host", "::x"])
    assert result.exit_code == 1 and result.output.startswith("Error: cannot listen on ::x")
    assert "Traceback" not in result.output
