"""What a one-shot `mmsearch query` imports in a fresh process: only the search path. Ingest, the integrity check,
evaluation, status, the media readers (captions, audio, video), Alembic, torch and open_clip stay out, and FAISS
on a home with a small flat index; Pillow too unless the encoder itself needs it. (Their cost is timed in
bench/query_cold.py, not here.)"""

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
