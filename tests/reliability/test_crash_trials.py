"""Crash trials: ``kill -9`` an ingest or a reindex at random points, then re-ingest: nothing lost, nothing
duplicated, every index equal to the database (``mmsearch.check``).

A fixed seed and a few trials in CI (about 30 s); ``MMSEARCH_CRASH_TRIALS=N`` runs N of each kind,
``MMSEARCH_CRASH_SEED`` picks other kill points.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mmsearch import Engine
from tests.conftest import make_image
from tests.reliability.race_tools import (
    MODEL,
    assert_index_equals_database,
    finish,
    integrity,
    make_folder,
    mmsearch_process,
    stored_image_paths,
    two_ingests,
)

TRIALS = int(os.environ.get("MMSEARCH_CRASH_TRIALS", "5"))
SEED = int(os.environ.get("MMSEARCH_CRASH_SEED", "12"))


@dataclass
class Tally:
    trials: int = 0
    killed_running: int = 0
    """Kills that landed while the process was still running (the others found it done)."""
    partial: int = 0
    """Trials where the kill left a part of the changes written (what the re-ingest had to finish)."""


def _kill_at(process: subprocess.Popen[str], delay: float) -> bool:
    """SIGKILL the process after ``delay`` seconds; True when it was still running."""
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    running = process.poll() is None
    if running:
        process.send_signal(signal.SIGKILL)
    finish(process)
    return running


def _generation(database: Path) -> int:
    """The image index generation in the database (-1 while it cannot be read: no file or no schema yet)."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            row = connection.execute("SELECT value FROM settings WHERE key = 'index_generation'").fetchone()
    except sqlite3.Error:
        return -1
    return int(row[0]) if row else 0


def _kill_after_commits(process: subprocess.Popen[str], database: Path, commits: int, extra: float) -> bool:
    """SIGKILL the process ``extra`` seconds after it committed ``commits`` more image batches (0: as soon as
    it starts writing or before); True when it was still running."""
    start = _generation(database)
    while process.poll() is None and _generation(database) < start + commits:
        time.sleep(0.005)
    return _kill_at(process, extra)


def _images_on_disk(folder: Path) -> list[str]:
    return sorted(str(path) for path in folder.rglob("*.png"))


def _mutate(folder: Path, rng: random.Random, next_seed: int) -> int:
    """Add, change and delete a few images (some with caption sidecars); returns the next unused seed."""
    existing = sorted(folder.glob("*.png"))
    for path in rng.sample(existing, min(4, len(existing))):
        path.unlink()
        path.with_suffix(".txt").unlink(missing_ok=True)
    for path in rng.sample(sorted(folder.glob("*.png")), 4):
        make_image(path, next_seed, (24, 16))  # new bytes under a known name
        next_seed += 1
    for _ in range(30):
        path = make_image(folder / f"new{next_seed:05d}.png", next_seed, (24, 16))
        if next_seed % 3 == 0:
            path.with_suffix(".txt").write_text(f"a caption of picture {next_seed}\n")
        next_seed += 1
    return next_seed


def _verify(home: Path, folder: Path) -> None:
    paths = stored_image_paths(home)
    assert len(paths) == len(set(paths)), "a path stored twice"
    assert sorted(paths) == _images_on_disk(folder), "lost or stale files"
    assert_index_equals_database(integrity(home))


def _kill_window(tmp_path: Path, folder: Path) -> tuple[float, float]:
    """(start-up, whole run) seconds of an ingest process here: kills land between the two, mostly after the
    start-up (imports, opening the home), where the writes are."""
    started = time.monotonic()
    code, _out, err = finish(mmsearch_process(tmp_path / "timing-home", "status"))
    assert code == 1 and "nothing is indexed" in err, err  # a reading command creates no database
    startup = time.monotonic() - started
    started = time.monotonic()
    code, _out, err = finish(mmsearch_process(tmp_path / "timing-home", "ingest", str(folder), "--batch-size", "4"))
    assert code == 0, err
    return startup, time.monotonic() - started


def test_kill_9_during_ingests_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    home, folder = tmp_path / "home", tmp_path / "photos"
    make_folder(folder, 60)
    for index in range(0, 60, 4):
        (folder / f"img{index:05d}.txt").write_text(f"caption {index}\n")
    startup, whole = _kill_window(tmp_path, folder)
    tally, next_seed = Tally(), 50_000
    for trial in range(TRIALS):
        if trial:  # the first trial kills the very first ingest of a fresh home (schema, model, first batches)
            next_seed = _mutate(folder, rng, next_seed)
        before = sorted(stored_image_paths(home)) if trial else []
        process = mmsearch_process(home, "ingest", str(folder), "--batch-size", "4")
        if rng.random() < 0.25:  # at a random time: start-up, schema creation, scanning, hashing, ...
            tally.killed_running += _kill_at(process, rng.uniform(0.3 * startup, 1.1 * whole))
        else:  # at a random commit, and a random moment after it (mid-batch, mid-index update)
            extra = rng.choice([0.0, rng.uniform(0.0, 0.05)])
            tally.killed_running += _kill_after_commits(process, home / "mmsearch.db", rng.randint(1, 9), extra)
        if trial:
            after = sorted(stored_image_paths(home))
            tally.partial += after not in (before, _images_on_disk(folder))
        with Engine.open(home, model=MODEL) as engine:
            engine.ingest(folder)
        _verify(home, folder)
        tally.trials += 1
    print(f"ingest crash trials: {tally}")
    assert tally.trials == TRIALS
    assert tally.killed_running >= 1  # else the trials killed nothing and proved nothing


def test_kill_9_during_reindex_then_a_query_and_a_reingest_leave_the_index_whole(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    home, folder = tmp_path / "home", tmp_path / "photos"
    make_folder(folder, 150)
    with Engine.open(home, model=MODEL) as engine:
        engine.ingest(folder)
    started = time.monotonic()
    assert finish(mmsearch_process(home, "reindex"))[0] == 0
    window = time.monotonic() - started
    tally, next_seed, ingests_killed = Tally(), 60_000, 0
    for _ in range(TRIALS):
        next_seed = _mutate(folder, rng, next_seed)
        ingest = mmsearch_process(home, "ingest", str(folder), "--batch-size", "4")
        reindex = mmsearch_process(home, "reindex")  # waits for the ingest's lock, or runs first
        tally.killed_running += _kill_at(reindex, rng.uniform(0.3, 1.1) * window)
        ingest_killed = _kill_at(ingest, rng.uniform(0.0, 1.0) * window)
        with Engine.open(home) as engine:
            assert len(engine.search("a picture", k=3)) == 3  # a query repairs what it loads
            engine.ingest(folder)
        _verify(home, folder)
        tally.trials += 1
        ingests_killed += ingest_killed
    print(f"reindex crash trials: {tally}, ingests killed beside them: {ingests_killed}")
    assert tally.trials == TRIALS
    assert tally.killed_running >= 1


def test_a_stale_index_left_by_a_killed_writer_is_rebuilt_by_a_no_change_ingest(tmp_path: Path) -> None:
    """A writer killed after its last commit but before saving leaves the index file behind the database; the
    next ingest repairs it even with nothing to do (found by the crash trials with MMSEARCH_CRASH_SEED=2026)."""
    home, path, saved = two_ingests(tmp_path)
    path.write_bytes(saved)  # as if killed before the save
    stale = integrity(home).collections["image"]
    assert (stale.index, stale.database, stale.claims_current) == (20, 30, False)
    with Engine.open(home) as engine:
        assert engine.ingest(tmp_path / "a").skipped == 20
    assert_index_equals_database(integrity(home))
