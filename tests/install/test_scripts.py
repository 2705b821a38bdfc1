"""The set-up scripts: scripts/venv.sh (one venv per checkout, the caller's shell untouched) and scripts/demo
(inputs checked before any environment is built, its temporary home removed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEV, FIXTURE_HF_HOME
from tests.installed import source_files

CHECKOUT = Path(__file__).resolve().parents[2]


def bash(
    script: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def copy_checkout(target: Path) -> Path:
    for name in source_files(CHECKOUT):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(CHECKOUT / name, target / name)
    return target


def base_python() -> str:
    """The interpreter this checkout's venv was made from (the one venv.sh keys the dependency venv on)."""
    config = (Path(sys.prefix) / "pyvenv.cfg").read_text()
    home = next(line.split("=", 1)[1].strip() for line in config.splitlines() if line.startswith("home"))
    return str(Path(home) / "python3")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a new shell: none of the venv's or the tests' own variables. The scripts find the same
    Python, so the same dependency venv, and fail rather than build one (MMSEARCH_VENV_NO_BUILD)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("MMSEARCH_", "VIRTUAL_ENV", "PYTHON", "HF_", "TRANSFORMERS_"))
    }
    env["PATH"] = os.pathsep.join(
        entry for entry in os.environ["PATH"].split(os.pathsep) if "/.venv/" not in entry and "/venvs/" not in entry
    )
    env.update(PYTHON=base_python(), MMSEARCH_VENV_NO_BUILD="1", **extra)
    return env


OPTIONS = 'set -o | grep -E "^(errexit|nounset|pipefail)\\b" | tr -s " \\t" " "'


def test_venv_sh_leaves_the_callers_shell_options_alone() -> None:
    off = bash(f"source scripts/venv.sh; {OPTIONS}", CHECKOUT, clean_env())
    assert off.returncode == 0, off.stderr
    assert off.stdout.split("\n")[:3] == ["errexit off", "nounset off", "pipefail off"]
    on = bash(f"set -euo pipefail; source scripts/venv.sh; {OPTIONS}", CHECKOUT, clean_env())
    assert on.stdout.split("\n")[:3] == ["errexit on", "nounset on", "pipefail on"], on.stderr


def test_two_checkouts_side_by_side_run_their_own_code(tmp_path: Path) -> None:
    first, second = copy_checkout(tmp_path / "first"), copy_checkout(tmp_path / "second")
    which = 'source scripts/venv.sh >/dev/null && cd "$1" && python -I -c "import mmsearch; print(mmsearch.__file__)"'
    for _ in range(2):  # set up both, then again: the second checkout must not re-point the first
        for checkout, elsewhere in ((first, second), (second, first)):
            # Run from inside the other checkout (-I: as an installed script, without the current folder on sys.path).
            done = subprocess.run(
                ["bash", "-c", which, "which", str(elsewhere)],
                cwd=checkout,
                env=clean_env(),
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == str(checkout / "mmsearch" / "__init__.py")


def test_demo_checks_its_inputs_before_building_anything(tmp_path: Path) -> None:
    alone = copy_checkout(tmp_path / "alone" / "checkout")  # no ../shared next to it
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    cache = tmp_path / "venv-cache"
    env = clean_env(MMSEARCH_VENV_CACHE=str(cache), TMPDIR=str(scratch))
    done = subprocess.run(["scripts/demo"], cwd=alone, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("scripts/demo cannot run:\n")
    assert "no sample photos" in done.stderr and "MMSEARCH_DEMO_FOLDER=/path/to/photos" in done.stderr
    assert "default model" in done.stderr and "MMSEARCH_MODEL=" in done.stderr
    assert "dependency environment" not in done.stderr  # venv.sh was never reached (it would say it has none)
    assert not cache.exists() and not (alone / ".venv").exists()
    assert list(scratch.iterdir()) == []

    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("no photos here")
    env.update(MMSEARCH_DEMO_FOLDER=str(empty), MMSEARCH_MODEL=str(tmp_path / "no-such-model"))
    done = subprocess.run(["scripts/demo"], cwd=alone, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"no photos (.jpg, .png, .webp, ...) under {empty}" in done.stderr
    assert f"the model path MMSEARCH_MODEL={tmp_path / 'no-such-model'} does not exist" in done.stderr
    assert not cache.exists() and list(scratch.iterdir()) == []


@pytest.mark.skipif(
    not (FIXTURE_HF_HOME / "hub").is_dir() or not (DEV / "images").is_dir(), reason="../shared is missing"
)
def test_demo_runs_on_a_folder_and_removes_its_home(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for image in sorted((DEV / "images").glob("*.jpg"))[:8]:
        shutil.copy2(image, photos / image.name)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = clean_env(MMSEARCH_DEMO_FOLDER=str(photos), TMPDIR=str(scratch))
    done = subprocess.run(["scripts/demo"], cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "8 added" in done.stdout and "top 5 for 'a dog running on the beach'" in done.stdout
    assert "removed at exit" in done.stdout
    (home,) = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("home:")]  # from status
    assert Path(home).parent == scratch and Path(home).name.startswith("mmsearch-demo.")
    assert not Path(home).exists() and list(scratch.glob("mmsearch-demo.*")) == []  # removed at exit
