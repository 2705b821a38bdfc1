"""Every ```bash runnable block of README.md and docs/*.md runs, as written, on a sample folder.

The user's world is a temporary HOME with ~/Pictures holding 12 DEV photos; the model is the offline fixture
(MMSEARCH_MODEL) and the home a temporary folder (MMSEARCH_HOME). The blocks of a file run in order, each in a
fresh `bash -euo pipefail`; the photos are ingested once before the first block, as a reader would have done.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEV, FIXTURE_HF_HOME, FIXTURE_MODEL

CHECKOUT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```bash runnable\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PAGES = [CHECKOUT / "README.md", *sorted((CHECKOUT / "docs").glob("*.md"))]

pytestmark = pytest.mark.skipif(
    not (FIXTURE_HF_HOME / "hub").is_dir() or not (DEV / "images").is_dir(),
    reason=f"../shared is missing (no fixture model under {FIXTURE_HF_HOME} or no DEV photos under {DEV})",
)


def runnable_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_readme_has_runnable_blocks() -> None:
    # The extraction itself must find something, or every page would pass without running a command.
    assert len(runnable_blocks(CHECKOUT / "README.md")) >= 3
    assert "mmsearch ingest ~/Pictures" in runnable_blocks(CHECKOUT / "README.md")[0]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("reader")
    pictures = root / "me" / "Pictures"
    pictures.mkdir(parents=True)
    for image in sorted((DEV / "images").glob("*.jpg"))[:12]:
        shutil.copy2(image, pictures / image.name)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MMSEARCH_", "XDG_CONFIG_HOME", "FORCE_COLOR", "NO_COLOR"))
    }
    env.update(
        HOME=str(root / "me"),
        MMSEARCH_HOME=str(root / "mmsearch-home"),
        MMSEARCH_MODEL=FIXTURE_MODEL,
        HF_HOME=str(FIXTURE_HF_HOME),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    done = subprocess.run(
        ["mmsearch", "ingest", str(pictures)], cwd=root / "me", env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return env


@pytest.mark.parametrize("page", [p for p in PAGES if runnable_blocks(p)], ids=lambda p: p.name)
def test_runnable_blocks_run(page: Path, world: dict[str, str]) -> None:
    for number, block in enumerate(runnable_blocks(page), 1):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=world["HOME"],
            env=world,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{page.name} block {number} failed:\n{block}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
