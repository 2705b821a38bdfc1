"""Start-up paths in fresh interpreters: what they import, and `python -m mmsearch`."""

import json
import subprocess
import sys
from pathlib import Path

PROBE = """
import json, sys
from click.testing import CliRunner
from mmsearch.cli import cli
result = CliRunner().invoke(cli, {args!r})
print(json.dumps({{"exit": result.exit_code, "torch": "torch" in sys.modules,
                  "open_clip": "open_clip" in sys.modules, "faiss": "faiss" in sys.modules}}))
"""


def probe(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_does_not_import_torch() -> None:
    assert probe(["--help"]) == {"exit": 0, "torch": False, "open_clip": False, "faiss": False}


def test_status_and_cached_queries_do_not_import_torch(tmp_path: Path, photo_dir: Path) -> None:
    home = str(tmp_path / "home")
    # The model is an open_clip name; status and a cached query must not need it loaded.
    from mmsearch import Engine

    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
        engine.search("a cached query")
    status = probe(["--home", home, "status"])
    assert status == {"exit": 0, "torch": False, "open_clip": False, "faiss": False}
    cached = probe(["--home", home, "query", "a cached query"])
    assert cached["exit"] == 0 and not cached["torch"]


def test_python_dash_m_runs_the_cli() -> None:
    result = subprocess.run([sys.executable, "-m", "mmsearch", "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("mmsearch, version")
