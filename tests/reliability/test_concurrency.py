"""Concurrent writers and readers of one home, as real processes (issue 12, items 2 and 4).

One ingest or reindex writes at a time (a lock beside the database); an index file never claims a generation it
does not reflect; a fresh home opened by several processes at once creates its schema once.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mmsearch import Engine
from mmsearch.errors import LockBusyError, NoIndexError
from mmsearch.index import load_index
from mmsearch.store.lock import database_lock
from tests.reliability.race_tools import (
    MODEL,
    assert_index_equals_database,
    finish,
    integrity,
    make_folder,
    mmsearch_process,
    stored_image_paths,
)

COUNT = 240


def test_two_ingests_of_different_folders_keep_every_vector(tmp_path: Path) -> None:
    home = _existing_home(tmp_path)  # the schema race of a fresh home is tested below
    make_folder(tmp_path / "a", COUNT)
    make_folder(tmp_path / "b", COUNT, first_seed=10_000)
    runs = [mmsearch_process(home, "ingest", str(tmp_path / name), "--batch-size", "4", "--json") for name in "ab"]
    results = [finish(run) for run in runs]
    for code, _out, err in results:
        assert code == 0, err
    assert sorted(json.loads(out)["added"] for _, out, _ in results) == [COUNT, COUNT]
    assert len(stored_image_paths(home)) == 2 * COUNT + 1
    report = integrity(home)
    assert_index_equals_database(report)
    assert report.collections["image"].index == 2 * COUNT + 1


def test_two_ingests_of_the_same_folder_store_each_file_once(tmp_path: Path) -> None:
    home = _existing_home(tmp_path)
    make_folder(tmp_path / "a", COUNT)
    results = [finish(run) for run in [mmsearch_process(home, "ingest", str(tmp_path / "a")) for _ in range(2)]]
    for code, _out, err in results:
        assert code == 0, err
        assert "Traceback" not in err and "IntegrityError" not in err
    paths = stored_image_paths(home)
    assert len(paths) == len(set(paths)) == COUNT + 1
    assert_index_equals_database(integrity(home))


def _existing_home(tmp_path: Path) -> Path:
    """A home with its schema and model (one image): the races of a fresh home are tested on their own."""
    home = tmp_path / "home"
    make_folder(tmp_path / "seed", 1, first_seed=99_999)
    with Engine.open(home, model=MODEL) as engine:
        engine.ingest(tmp_path / "seed")
    return home


def test_queries_while_an_ingest_runs_never_fail_and_end_on_the_whole_index(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_folder(tmp_path / "a", 60)
    assert finish(mmsearch_process(home, "ingest", str(tmp_path / "a")))[0] == 0
    make_folder(tmp_path / "b", COUNT, first_seed=10_000)
    ingest = mmsearch_process(home, "ingest", str(tmp_path / "b"), "--batch-size", "4")
    seen = set()
    with Engine.open(home) as engine:  # a long-lived reader in this process, as the service is
        while ingest.poll() is None:
            hits = engine.search("a picture", k=5)
            assert len(hits) == 5
            seen.add(len(engine.models.index_cache(*engine.models.active(), "image").get()))
        code, _out, err = finish(ingest)
        assert code == 0, err
        engine.search("a picture", k=5)
        assert len(engine.models.index_cache(*engine.models.active(), "image").get()) == 60 + COUNT
    assert_index_equals_database(integrity(home))
    assert min(seen) >= 60


def test_a_long_lived_engine_does_not_stamp_over_another_processs_writes(tmp_path: Path) -> None:
    """The root cause of the half-empty index: a writer whose index in memory missed another writer's batches
    saved it stamped with the newest generation. Now the gap in generations makes it rebuild."""
    home = tmp_path / "home"
    for name, seed in (("a", 0), ("b", 1000), ("c", 2000)):
        make_folder(tmp_path / name, 30, first_seed=seed)
    with Engine.open(home, model=MODEL) as first:
        first.ingest(tmp_path / "a")  # its image index stays in memory
        with Engine.open(home, model=MODEL) as other:  # another writer, as another process would be
            other.ingest(tmp_path / "b")
        first.ingest(tmp_path / "c")
    report = integrity(home)
    assert_index_equals_database(report)
    assert report.collections["image"].index == 90


def test_an_index_file_stamped_current_with_missing_vectors_is_repaired_by_the_next_ingest(tmp_path: Path) -> None:
    """What the race left behind in homes written before the fix: a re-ingest repairs it."""
    home = tmp_path / "home"
    make_folder(tmp_path / "a", 30)
    with Engine.open(home, model=MODEL) as engine:
        engine.ingest(tmp_path / "a")
        path = engine.models.index_cache(*engine.models.active(), "image").path
    index, header = load_index(path)
    index.remove(np.arange(1, 11, dtype=np.int64))
    index.save(path, {key: header[key] for key in ("generation", "model_id", "collection")})
    assert not integrity(home).ok  # claims current, holds 20 of 30
    with Engine.open(home) as engine:
        report = engine.ingest(tmp_path / "a")
    assert report.skipped == 30
    assert_index_equals_database(integrity(home))


def test_a_second_writer_waits_with_a_message_or_fails_fast(tmp_path: Path) -> None:
    home = tmp_path / "home"
    make_folder(tmp_path / "a", 5)
    with Engine.open(home, model=MODEL) as engine:
        with database_lock(engine.store.engine, purpose="ingest"):
            code, _out, err = finish(mmsearch_process(home, "ingest", str(tmp_path / "a"), "--no-wait"))
            assert code == 75
            [line] = err.strip().splitlines()  # one line, no traceback
            pattern = rf"Error: another ingest is running \(pid {os.getpid()}, since [-0-9]{{10}} [:0-9]{{8}}\); .*"
            assert re.fullmatch(pattern, line), line
            assert "Traceback" not in err
            with pytest.raises(LockBusyError, match="another ingest is running"):
                engine.reindex(wait=False)
            waiting = mmsearch_process(home, "ingest", str(tmp_path / "a"), "--json")
            # Read its stderr up to the waiting message (a fixed sleep raced the child's start on a loaded machine);
            # a child that never says it waits is killed after 120 s, and the assertions below fail.
            guard = threading.Timer(120, waiting.kill)
            guard.start()
            said = ""
            while "waiting for it to finish" not in said and waiting.poll() is None:
                said += waiting.stderr.readline()
            guard.cancel()
            assert waiting.poll() is None  # waits while the lock is held
        code, out, err = finish(waiting)
    assert code == 0, said + err
    assert "another ingest is running" in said and "waiting for it to finish" in said
    assert json.loads(out)["added"] == 5


OPEN_AT = """
import sys, time
from mmsearch.store.database import connect, upgrade_to_head
engine = connect(sys.argv[1])
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
upgrade_to_head(engine)
"""


@pytest.mark.parametrize("trial", range(3))
def test_a_fresh_home_opened_by_several_processes_at_once_gets_one_schema(tmp_path: Path, trial: int) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    start = time.time() + 2.5  # after every process has imported what it needs
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AT, url, str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    for run in runs:
        _out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    with Engine.open(db_url=url, home=tmp_path / "home") as engine:
        assert engine.status().files_by_kind == {}
        with pytest.raises(NoIndexError):
            engine.search("x")


def test_a_lock_file_that_cannot_be_created_is_one_clear_error(tmp_path: Path) -> None:
    from mmsearch.errors import LockError

    home = tmp_path / "home"
    Engine.open(home, model=MODEL).close()
    (home / "mmsearch.db.writer.lock").mkdir()  # a folder where the lock file should be
    make_folder(tmp_path / "a", 2)
    with Engine.open(home, model=MODEL) as engine, pytest.raises(LockError, match="cannot open the lock file"):
        engine.ingest(tmp_path / "a")
