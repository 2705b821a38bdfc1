"""The metadata store on a real PostgreSQL server, started in a temporary folder for these tests.

Skipped, with the reason, where PostgreSQL's server programs or psycopg are missing.
"""

from __future__ import annotations

import getpass
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'mmsearch[postgres]')")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server programs (initdb, pg_ctl) not found")
    # Not under pytest's tmp folder: that is private to this user, and the server may run as another.
    root = Path(tempfile.mkdtemp(prefix="mmsearch-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    prefix: list[str] = []
    user = getpass.getuser()
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL")
        user = "postgres"
        prefix = ["runuser", "-u", user, "--"]
        shutil.chown(root, user)
        shutil.chown(sockets, user)
    run = lambda *args: subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)  # noqa: E731
    made = run(initdb, "-D", str(data), "-A", "trust", "-U", user, "--no-sync")
    if made.returncode != 0:
        pytest.skip(f"initdb failed: {made.stderr.strip()[-300:]}")
    options = f"-k {sockets} -c listen_addresses='' -c fsync=off"
    started = run(pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    if started.returncode != 0:
        pytest.skip(f"PostgreSQL did not start: {started.stderr.strip()[-300:]}")
    try:
        yield f"postgresql+psycopg://{user}@/postgres?host={sockets}"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def test_engine_on_postgres(postgres_url: str, tmp_path: Path, photo_dir: Path) -> None:
    from mmsearch import Engine

    with Engine.open(tmp_path / "home", model="fake:16", db_url=postgres_url) as engine:
        report = engine.ingest(photo_dir)
        assert (report.added, report.failed) == (6, [])
        hits = engine.search(image=photo_dir / "a.jpg", k=2)
        assert hits[0].path == str(photo_dir / "a.jpg")
        (photo_dir / "b.png").unlink()
        again = engine.ingest(photo_dir)
        assert (again.removed, again.skipped) == (1, 5)
        status = engine.status()
        assert status.database.startswith("postgresql+psycopg://")
        assert status.files_by_kind == {"image": 5}
    with Engine.open(tmp_path / "home", db_url=postgres_url) as engine:
        assert engine.search("cached? no, new", k=10)[0].rank == 1


def test_migrations_match_the_models_on_postgres(postgres_url: str) -> None:
    from alembic import command

    from mmsearch.store.database import alembic_config, connect, upgrade_to_head

    engine = connect(postgres_url)
    upgrade_to_head(engine)
    with engine.connect() as connection:
        command.check(alembic_config(connection=connection))
    engine.dispose()
