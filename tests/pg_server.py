"""A throw-away PostgreSQL server for tests (``postgres_server``), shared by every module that needs one.

Skipped, with the reason, where PostgreSQL's server programs or psycopg are missing, except when
``MMSEARCH_REQUIRE_POSTGRES`` is set: ``scripts/test`` (what CI runs) installs Debian's postgresql where it
can and then sets it, so there a server that cannot start is a failure.
"""

from __future__ import annotations

import getpass
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _unavailable(reason: str) -> None:
    if os.environ.get("MMSEARCH_REQUIRE_POSTGRES"):
        pytest.fail(f"PostgreSQL is required here (MMSEARCH_REQUIRE_POSTGRES is set): {reason}")
    pytest.skip(reason)


def postgres_server() -> Iterator[str]:
    """Start a server in a temporary folder, yield its SQLAlchemy URL, stop it."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg not installed (pip install 'mmsearch[postgres]')")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        _unavailable("PostgreSQL server programs (initdb, pg_ctl) not found")
    # Not under pytest's tmp folder: that is private to this user, and the server may run as another.
    root = Path(tempfile.mkdtemp(prefix="mmsearch-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    prefix: list[str] = []
    user = getpass.getuser()
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None:
            _unavailable("running as root without runuser: cannot start PostgreSQL")
        user = "postgres"
        prefix = ["runuser", "-u", user, "--"]
        shutil.chown(root, user)
        shutil.chown(sockets, user)
    run = lambda *args: subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)  # noqa: E731
    made = run(initdb, "-D", str(data), "-A", "trust", "-U", user, "--no-sync")
    if made.returncode != 0:
        _unavailable(f"initdb failed: {made.stderr.strip()[-300:]}")
    options = f"-k {sockets} -c listen_addresses='' -c fsync=off"
    started = run(pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    if started.returncode != 0:
        _unavailable(f"PostgreSQL did not start: {started.stderr.strip()[-300:]}")
    try:
        yield f"postgresql+psycopg://{user}@/postgres?host={sockets}"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(server_url: str, name: str) -> str:
    """A new, empty database ``name`` on the server of ``server_url`` (dropped first if there); its URL."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(server_url)
    host = url.query["host"]
    with psycopg.connect(dbname=url.database, user=url.username, host=host, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}"')
        connection.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)
