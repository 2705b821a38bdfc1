"""What a one-shot `mmsearch query` imports in a fresh process: only the search path. Ingest, the integrity check,
evaluation, status, the media readers (captions, audio, video), SQLAlchemy and Alembic (a SQLite home is read with
the standard library's sqlite3), torch and open_clip stay out, and FAISS on a home with a small flat index; Pillow
too unless the encoder itself needs it. (Their cost is timed in bench/query_cold.py, not here.)"""

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from click.testing import CliRunner
from mmsearch.cli import cli
result = CliRunner().invoke(cli, {args!r})
print(json.dumps({{"exit": result.exit_code, "output": result.output, "modules": sorted(sys.modules)}}))
"""
NEVER = (
    "torch",
    "open_clip",
    "transformers",
    "sqlalchemy",
    "alembic",
    "mmsearch.check",
    "mmsearch.store.integrity",
    "mmsearch.ingest",
    "mmsearch.evaluation",
    "mmsearch.status",
    "mmsearch.captions",
    "mmsearch.audio",
    "mmsearch.video",
)
"""Modules (and their submodules) a text query must not import."""


def imported(args: list[str]) -> tuple[dict, set[str]]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result, set(result["modules"])


def forbidden(modules: set[str], names: tuple[str, ...] = NEVER) -> set[str]:
    return {module for module in modules for name in names if module == name or module.startswith(name + ".")}


def test_a_query_imports_only_the_search_path(tmp_path: Path, photo_dir: Path) -> None:
    from mmsearch import Engine

    home = str(tmp_path / "home")
    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
        engine.search("a cached query")
    result, modules = imported(["--home", home, "query", "a new query", "--json", "--no-service"])
    assert result["exit"] == 0, result["output"]
    assert json.loads(result["output"])["hits"]
    assert {"mmsearch.engine", "mmsearch.search.hybrid", "mmsearch.index.flat_arrays"} <= modules  # it searched here
    assert forbidden(modules, (*NEVER, "faiss")) == set()  # a small flat index is searched without FAISS
    # a cached query loads no encoder at all: not even Pillow (which the fake encoder imports)
    result, modules = imported(["--home", home, "query", "a cached query", "--json", "--no-service"])
    assert result["exit"] == 0 and json.loads(result["output"])["hits"]
    assert forbidden(modules, (*NEVER, "PIL")) == set()


ENGINE_PROBE = """
import json, sys
from mmsearch import Engine
with Engine.open({home!r}) as engine:
    hits = engine.search("a brand new query", k=3)
    print(json.dumps({{"hits": len(hits), "modules": sorted(sys.modules)}}))
"""


def test_the_engine_opened_and_searched_in_a_fresh_process_imports_no_sqlalchemy(
    tmp_path: Path, photo_dir: Path
) -> None:
    from mmsearch import Engine

    home = str(tmp_path / "home")
    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
    out = subprocess.run(
        [sys.executable, "-c", ENGINE_PROBE.format(home=home)], capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["hits"] == 3
    assert forbidden(set(result["modules"]), ("sqlalchemy", "alembic", "torch", "open_clip")) == set()
    with Engine.open(home) as engine:  # and what it wrote (the query cache) is read back
        model_id = engine.models.active()[0]
        assert set(engine.store.cached_query_vectors(model_id, ["a brand new query"])) == {"a brand new query"}


def test_a_home_to_migrate_is_still_queried(tmp_path: Path, photo_dir: Path) -> None:
    """A schema behind the head: the query opens SQLAlchemy (and Alembic) to migrate it, then answers."""
    from alembic import command

    from mmsearch import Engine
    from mmsearch.store.database import alembic_config, connect

    home = tmp_path / "home"
    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
    database = connect(f"sqlite:///{home / 'mmsearch.db'}")
    command.downgrade(alembic_config(database), "-1")
    database.dispose()
    result, modules = imported(["--home", str(home), "query", "red", "--json", "--no-service"])
    assert result["exit"] == 0 and json.loads(result["output"])["hits"]
    assert {"sqlalchemy", "alembic"} <= modules
    result, modules = imported(["--home", str(home), "query", "blue", "--json", "--no-service"])
    assert result["exit"] == 0 and json.loads(result["output"])["hits"]
    assert forbidden(modules, ("sqlalchemy", "alembic")) == set()
