"""Helpers of the concurrency and crash tests: a synthetic photo folder, mmsearch as a real process, and the
integrity verdict (``mmsearch.check``) the tests assert on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from mmsearch import Engine
from mmsearch.check import IntegrityReport, check_integrity
from tests.conftest import make_image

MODEL = "fake:16"


def make_folder(folder: Path, count: int, first_seed: int = 0, size: tuple[int, int] = (24, 16)) -> list[Path]:
    """``count`` small distinct PNG images (seeds ``first_seed`` on)."""
    return [make_image(folder / f"img{seed:05d}.png", seed, size) for seed in range(first_seed, first_seed + count)]


def mmsearch_process(home: Path, *args: str, **popen: object) -> subprocess.Popen[str]:
    """``mmsearch --home HOME --model fake:16 ARGS...`` as a child process (stdout and stderr piped)."""
    command = [sys.executable, "-m", "mmsearch", "--home", str(home), "--model", MODEL, *args]
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    return subprocess.Popen(  # type: ignore[call-overload]
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **popen
    )


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def integrity(home: Path) -> IntegrityReport:
    with Engine.open(home, model=MODEL) as engine:
        return check_integrity(engine.store, engine.settings.index_dir, engine.settings.database_url)


def stored_image_paths(home: Path) -> list[str]:
    """Every stored image path, with repeats if a path were stored twice."""
    from sqlalchemy import select

    from mmsearch.store.models import MediaFile

    with Engine.open(home, model=MODEL) as engine, engine.store.session() as session:
        return list(session.scalars(select(MediaFile.path).where(MediaFile.kind == "image")))


def assert_index_equals_database(report: IntegrityReport) -> None:
    """0 lost vectors, 0 duplicates, and every index file holds exactly the database's ids (or, for an empty
    collection, may not exist yet)."""
    assert report.files_without_vector == 0, report.lost_sample
    assert report.duplicate_paths == []
    for check in report.collections.values():
        assert check.matches or (check.index is None and check.database == 0), check
    assert report.ok


def two_ingests(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """A home with 20 then 30 images; returns the home, its image index file and that file after the first."""
    home = tmp_path / "home"
    make_folder(tmp_path / "a", 20)
    make_folder(tmp_path / "b", 10, first_seed=500)
    with Engine.open(home, model=MODEL) as engine:
        engine.ingest(tmp_path / "a")
        path = engine.models.index_cache(*engine.models.active(), "image").path
    first = path.read_bytes()
    with Engine.open(home, model=MODEL) as engine:
        engine.ingest(tmp_path / "b")
    return home, path, first
