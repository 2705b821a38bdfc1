"""Database and disk faults are one line and an exit code, never a traceback (issue 12 item 8); a full disk
leaves the database as it was."""

from __future__ import annotations

import errno
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import exc as sa_exc

from mmsearch.cli import cli
from mmsearch.errors import DatabaseError, DiskFullError
from mmsearch.store.faults import translated
from tests.conftest import make_image


def run(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def one_error_line(result, *words: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    for word in words:
        assert word in lines[0]


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "mmsearch.db").write_bytes(b"these are not the tables you are looking for\n" * 200)
    for command in (["status"], ["query", "red", "--no-service"], ["reindex"]):
        one_error_line(run(home, *command), "is damaged or is not an mmsearch database", "mmsearch.db")


def test_a_malformed_page(tmp_path: Path, photo_dir: Path) -> None:
    home = tmp_path / "home"
    assert run(home, "--model", "fake:16", "ingest", str(photo_dir)).exit_code == 0
    database = home / "mmsearch.db"
    data = bytearray(database.read_bytes())
    data[100:4096] = b"\xa5" * (4096 - 100)  # the schema page, scrambled past the file header
    database.write_bytes(bytes(data))
    for command in (["status"], ["query", "red", "--no-service"]):
        one_error_line(run(home, *command), "is damaged or is not an mmsearch database")


def test_a_full_disk_while_writing_the_database(tmp_path: Path, photo_dir: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    assert run(home, "--model", "fake:16", "ingest", str(photo_dir)).exit_code == 0
    before = json.loads(run(home, "status", "--json").output)
    more = tmp_path / "more"
    for seed in range(3):
        make_image(more / f"m{seed}.jpg", 50 + seed)

    from mmsearch.store import writes

    def full(*_args, **_kwargs):
        raise sa_exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(writes.StoreWrites, "write_assets", full)
    one_error_line(run(home, "ingest", str(more)), "is full", "database or disk is full", "free some space")
    monkeypatch.undo()
    after = json.loads(run(home, "status", "--json").output)
    assert after["files_by_kind"] == before["files_by_kind"] and after["vectors"] == before["vectors"]
    assert run(home, "ingest", str(more)).exit_code == 0  # space freed: the same command completes
    assert json.loads(run(home, "status", "--json").output)["files_by_kind"] == {"image": 9}


def test_a_full_disk_while_writing_an_index(tmp_path: Path, photo_dir: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    assert run(home, "--model", "fake:16", "ingest", str(photo_dir)).exit_code == 0
    from mmsearch.index import faiss_index

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(faiss_index, "write_index_file", full)
    one_error_line(run(home, "reindex"), "the disk is full", "No space left on device")
    monkeypatch.undo()
    assert run(home, "query", "red", "--no-service", "--paths").output.count("\n") == 6


def test_translation_is_by_cause() -> None:
    url = "sqlite:////data/home/mmsearch.db"
    full = translated(sa_exc.OperationalError("x", {}, sqlite3.OperationalError("database or disk is full")), url)
    assert isinstance(full, DiskFullError) and "/data/home/mmsearch.db" in str(full)
    damaged = translated(sqlite3.DatabaseError("file is not a database"), url)
    assert isinstance(damaged, DatabaseError) and not isinstance(damaged, DiskFullError)
    assert translated(sqlite3.OperationalError("no such table: x"), url) is None  # a bug stays a bug
    assert translated(OSError(errno.EACCES, "denied"), url) is None
    secret = translated(sqlite3.DatabaseError("file is not a database"), "postgresql://u:pw@h/db")
    assert secret is not None and "pw" not in str(secret)


def test_engine_faults_are_typed(tmp_path: Path) -> None:
    from mmsearch import Engine

    bad = tmp_path / "bad.db"
    bad.write_bytes(b"\0garbage" * 512)
    with pytest.raises(DatabaseError, match="is damaged"):
        Engine.open(tmp_path / "home", db_url=f"sqlite:///{bad}")


@pytest.mark.parametrize(("host", "listens"), [("::1", True), ("::", True), ("nosuchhost.invalid", False)])
def test_serve_listens_on_ipv6_or_says_why_not(tmp_path: Path, host: str, listens: bool) -> None:
    import socket
    import threading

    from mmsearch import Engine
    from mmsearch.errors import ConfigError as ServiceError
    from mmsearch.web.server import WebServer as QueryService

    if listens and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with Engine.open(tmp_path / "home", model="fake:16") as engine:
        if not listens:
            with pytest.raises(ServiceError, match=r"cannot listen on nosuchhost\.invalid"):
                QueryService(engine, host)
            return
        try:
            service = QueryService(engine, host)
        except ServiceError as exc:  # IPv6 present in Python but not configured on this host
            pytest.skip(str(exc))
        assert service.url.startswith("http://[")
        thread = threading.Thread(target=service.serve_forever, daemon=True)
        thread.start()
        service.shutdown()
        thread.join(5)


def test_a_service_of_the_previous_protocol_is_not_asked(tmp_path: Path) -> None:
    """Protocol 1 answered ``{"hits": [...]}`` only; a client of this version searches itself instead."""
    import json as _json
    import os

    from mmsearch.service.protocol import SERVICE_FILE, ServiceInfo

    home = tmp_path / "home"
    ServiceInfo("http://127.0.0.1:9", "t", os.getpid(), "sqlite://", str(home)).write(home)
    data = _json.loads((home / SERVICE_FILE).read_text())
    assert ServiceInfo.read(home) is not None
    (home / SERVICE_FILE).write_text(_json.dumps({**data, "protocol": 1}))
    assert ServiceInfo.read(home) is None
