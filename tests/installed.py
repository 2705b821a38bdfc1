"""Building the wheel and sdist of a checkout, and installing them into fresh virtual environments.

A fresh environment holds mmsearch as pip installed it from the built file (no editable install, the checkout not on
``sys.path``); its dependencies come from the dependency environment the tests already run on, layered on with a
``.pth`` line exactly as ``scripts/venv.sh`` layers a checkout's ``.venv`` (so no download, seconds not minutes).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

DEPS_PTH = "_mmsearch_deps.pth"


def run(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run a command; its stdout, or an AssertionError carrying everything it said."""
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def source_files(checkout: Path) -> list[Path]:
    """The files of the checkout a release is made from: tracked, and new ones git does not ignore."""
    listed = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=checkout)
    return sorted(Path(name) for name in set(listed.split("\0")) if name and (checkout / name).is_file())


BUILD_LOG = "build.log"
"""What ``python -m build`` said (stdout and stderr), in the build's work folder."""


def build(checkout: Path, workdir: Path) -> tuple[Path, Path]:
    """Build the sdist, then the wheel from the sdist (as ``python -m build`` does) from a copy of the checkout's
    files (the checkout itself gets no build/ or egg-info); return (wheel, sdist); the log is ``workdir/BUILD_LOG``."""
    copy = workdir / "src"
    for name in source_files(checkout):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(checkout / name, copy / name)
    dist = workdir / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(copy)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    (workdir / BUILD_LOG).write_text(done.stdout + done.stderr)
    assert done.returncode == 0, f"python -m build exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    (wheel,) = dist.glob("mmsearch-*.whl")
    (sdist,) = dist.glob("mmsearch-*.tar.gz")
    return wheel, sdist


def dependency_site() -> Path:
    """The site-packages of the dependency environment under this interpreter (never one holding mmsearch)."""
    own = Path(sysconfig.get_paths()["purelib"])
    layered = own / DEPS_PTH
    if layered.is_file():
        return Path(layered.read_text().strip())
    return own  # a plain environment with the dependencies installed; checked by `Installed.module_file`


def expected_wheel_files(checkout: Path) -> set[str]:
    """What the wheel must hold, from the source tree (not a hand list): every module and package data file under
    mmsearch/ (modules, the page's static files, schemas...), and every migration file as mmsearch/migrations/..."""
    wanted = set()
    for path in source_files(checkout):
        parts = path.parts
        if parts[0] == "mmsearch" and path.suffix != ".pyc":
            wanted.add(path.as_posix())
        elif parts[0] == "migrations" and path.suffix in (".py", ".mako"):
            wanted.add(Path("mmsearch", *parts).as_posix())
    return wanted


def wheel_files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


@dataclass
class Installed:
    """A fresh virtual environment with mmsearch installed from one built file."""

    venv: Path
    cwd: Path
    env: dict[str, str]

    @classmethod
    def create(cls, venv: Path, artefact: Path, cwd: Path, env: dict[str, str]) -> Installed:
        run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=cwd)
        python = venv / "bin" / "python"
        purelib = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=cwd).strip()
        Path(purelib, DEPS_PTH).write_text(f"{dependency_site()}\n")
        environment = {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", "VIRTUAL_ENV": str(venv)}
        # pip comes from the dependency environment; without network, no build isolation (setuptools is there too).
        run(
            [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q", artefact],
            cwd=cwd,
            env=environment,
        )
        return cls(venv, cwd, environment)

    def python(self, code: str) -> str:
        return run([self.venv / "bin" / "python", "-c", code], cwd=self.cwd, env=self.env)

    def mmsearch(self, *args: str | Path, timeout: float = 300) -> str:
        return run([self.venv / "bin" / "mmsearch", *args], cwd=self.cwd, env=self.env, timeout=timeout)

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [str(self.venv / "bin" / "mmsearch"), *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
