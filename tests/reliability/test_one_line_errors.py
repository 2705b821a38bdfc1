"""A model that cannot be loaded offline ends in one ``Error:`` line: open_clip's own ``ERROR:root:Failed to download
weights ...`` log line (which would install ``basicConfig``'s handler on stderr) shows only with ``-v``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_image

MODEL = "ViT-B-32:laion2b_s34b_b79k"


def run_offline(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HOME": str(tmp_path / "empty-cache"), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "mmsearch", *args, "--home", str(tmp_path / "home"), "--model", MODEL]
    return subprocess.run(
        [*command, "ingest", str(tmp_path / "photos")], capture_output=True, text=True, env=env, timeout=300
    )


def test_a_model_missing_offline_is_one_error_line(tmp_path: Path) -> None:
    make_image(tmp_path / "photos" / "a.jpg", 1)
    result = run_offline(tmp_path)
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Error: cannot load model {MODEL}: its weights ")
    assert "not in the local cache and could not be downloaded" in lines[0]
    assert lines[0].count("Failed to download") == 0 and len(lines[0]) < 250


def test_with_verbose_the_libraries_own_log_line_is_shown(tmp_path: Path) -> None:
    make_image(tmp_path / "photos" / "a.jpg", 1)
    result = run_offline(tmp_path, "-v")
    assert "root: ERROR: Failed to download weights" in result.stderr
    assert result.stderr.count("Error: cannot load model") == 1
    assert "ERROR:root:" not in result.stderr  # basicConfig's format: never
