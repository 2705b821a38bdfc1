"""The schema check on open: an up-to-date database is recognised without importing Alembic."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mmsearch.store import database
from mmsearch.store.database import alembic_config, connect, script_head, upgrade_to_head

PROBE = """
import json, sys
from mmsearch.store.database import connect, upgrade_to_head
upgrade_to_head(connect({url!r}))
print(json.dumps({{"alembic": "alembic" in sys.modules}}))
"""


def test_the_head_read_from_the_files_is_alembics() -> None:
    from alembic.script import ScriptDirectory

    assert script_head() == ScriptDirectory.from_config(alembic_config()).get_current_head()


def test_an_up_to_date_database_is_opened_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade_to_head(connect(url))  # creates the schema (with Alembic)
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(url=url)], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {"alembic": False}


def test_anything_else_goes_through_alembic(tmp_path: Path, monkeypatch) -> None:
    engine = connect(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade_to_head(engine)
    calls = []
    from alembic import command

    monkeypatch.setattr(command, "upgrade", lambda config, target: calls.append(target))
    monkeypatch.setattr(database, "script_head", lambda: "not-a-revision")
    upgrade_to_head(engine)  # the quick check fails: Alembic decides (already at head: no upgrade)
    assert calls == []
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM alembic_version")
    monkeypatch.undo()
    monkeypatch.setattr(command, "upgrade", lambda config, target: calls.append(target))
    upgrade_to_head(engine)  # no recorded revision: Alembic upgrades
    assert calls == ["head"]
