"""Remembered failures (issue 12, item 10): a file that failed is skipped until it changes, retried on demand,
and listed by ``status``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmsearch import Engine
from mmsearch.cli import cli
from mmsearch.ingest import reading
from tests.conftest import make_image
from tests.reliability.race_tools import MODEL, make_folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    make_folder(folder, 4)
    (folder / "broken.jpg").write_bytes(b"not a picture at all")
    return folder


@pytest.fixture
def engine(tmp_path: Path):
    with Engine.open(tmp_path / "home", model=MODEL) as engine:
        yield engine


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file the ingest reads to hash or decode."""
    seen: list[str] = []

    def recording(original):
        def call(path: str, *args):
            seen.append(path)
            return original(path, *args)

        return call

    monkeypatch.setattr(reading, "hash_file", recording(reading.hash_file))  # the probe: hash, then header
    monkeypatch.setattr(reading, "read_whole", recording(reading.read_whole))  # the decode (prepare_file)
    return seen


def test_a_failed_file_is_remembered_and_not_read_again_until_it_changes(
    engine: Engine, folder: Path, reads: list[str]
) -> None:
    broken = str(folder / "broken.jpg")
    first = engine.ingest(folder)
    assert [failure.path for failure in first.failed] == [broken] and first.added == 4
    reads.clear()
    second = engine.ingest(folder)
    assert second.failed == [] and second.failed_before == 1
    assert broken not in reads
    [remembered] = engine.status().failures
    assert remembered["path"] == broken and remembered["size"] == 20 and remembered["reason"]
    assert remembered["content_hash"] and remembered["mtime_ns"] == os.stat(broken).st_mtime_ns


def test_a_touched_but_identical_file_stays_skipped(engine: Engine, folder: Path) -> None:
    engine.ingest(folder)
    broken = folder / "broken.jpg"
    os.utime(broken, ns=(10**18, 10**18))
    report = engine.ingest(folder)
    assert report.failed == [] and report.failed_before == 1
    assert engine.status().failures[0]["mtime_ns"] == 10**18  # the new stat is remembered


def test_retry_failed_tries_again(engine: Engine, folder: Path) -> None:
    engine.ingest(folder)
    report = engine.ingest(folder, retry_failed=True)
    assert [failure.path for failure in report.failed] == [str(folder / "broken.jpg")]
    assert report.failed_before == 0
    assert engine.status().failed_files == 1


def test_a_fixed_file_is_ingested_and_forgotten(engine: Engine, folder: Path) -> None:
    engine.ingest(folder)
    make_image(folder / "broken.jpg", 77, fmt="JPEG")
    report = engine.ingest(folder)
    assert report.added == 1 and report.failed == [] and report.failed_before == 0
    assert engine.status().failed_files == 0 and engine.status().failures == []


def test_a_deleted_failed_file_is_forgotten(engine: Engine, folder: Path) -> None:
    engine.ingest(folder)
    (folder / "broken.jpg").unlink()
    engine.ingest(folder)
    assert engine.status().failed_files == 0


def test_a_known_file_that_breaks_is_removed_and_remembered(engine: Engine, folder: Path) -> None:
    engine.ingest(folder)
    victim = folder / "img00001.png"
    victim.write_bytes(b"\x89PNG truncated")
    report = engine.ingest(folder)
    assert str(victim) in [failure.path for failure in report.failed]
    assert {failure["path"] for failure in engine.status().failures} == {str(victim), str(folder / "broken.jpg")}
    assert engine.status().files_by_kind == {"image": 3}
    assert engine.ingest(folder).failed_before == 2


def test_cli_retry_flag_and_status_listing(tmp_path: Path, folder: Path) -> None:
    home = str(tmp_path / "cli-home")

    def run(*args: str):
        return CliRunner().invoke(cli, ["--home", home, "--model", MODEL, *args], catch_exceptions=False)

    assert run("ingest", str(folder)).exit_code == 3  # completed with a per-file failure (issue 11 item 7)
    again = run("ingest", str(folder))
    assert again.exit_code == 0 and "1 files skipped: they failed before" in again.output
    retried = run("ingest", str(folder), "--retry-failed", "--json")
    assert json.loads(retried.stdout)["failed_count"] == 1
    status = run("status")
    assert "failed:    1 files failed" in status.output
    listed = json.loads(run("status", "--json").stdout)
    assert listed["failed_files"] == 1
    assert [entry["path"] for entry in listed["failures"]] == [str(folder / "broken.jpg")]


def test_only_failures_of_the_files_own_content_are_remembered(tmp_path: Path) -> None:
    """An audio file that fails for want of a speech model is not the file's fault: tried again next run."""
    from mmsearch.errors import MissingDependencyError

    def no_speech(spec: str, device: str):
        raise MissingDependencyError("no speech-to-text here")

    folder = tmp_path / "talks"
    folder.mkdir()
    (folder / "talk.wav").write_bytes(b"RIFF....WAVEfmt ")
    with Engine.open(tmp_path / "home", model=MODEL, transcriber_factory=no_speech) as engine:
        assert [failure.path for failure in engine.ingest(folder).failed] == [str(folder / "talk.wav")]
        again = engine.ingest(folder)
        assert len(again.failed) == 1 and again.failed_before == 0
        assert engine.status().failed_files == 0


def test_a_file_that_could_not_be_read_is_tried_each_run(
    engine: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No hash was taken (permissions, say: a chmod leaves the mtime alone), so it is not held back."""
    from mmsearch.errors import UnreadableMediaError
    from mmsearch.ingest import failure_memory

    locked = str(folder / "img00002.png")
    probe_hash, read, hash_file = reading.hash_file, reading.read_whole, failure_memory.hash_file

    def refuse(original):
        def call(path: str, *args):
            if path == locked:
                raise UnreadableMediaError("cannot read file: Permission denied")
            return original(path, *args)

        return call

    with monkeypatch.context() as patch:
        patch.setattr(reading, "hash_file", refuse(probe_hash))
        patch.setattr(reading, "read_whole", refuse(read))
        patch.setattr(failure_memory, "hash_file", refuse(hash_file))
        assert locked in [failure.path for failure in engine.ingest(folder).failed]
    hashes = {failure["path"]: failure["content_hash"] for failure in engine.status().failures}
    assert hashes[locked] is None and hashes[str(folder / "broken.jpg")]
    report = engine.ingest(folder)  # readable again, same size and mtime
    assert report.added == 1 and report.failed == [] and engine.status().failed_files == 1  # broken.jpg


def test_a_failed_file_whose_name_is_not_utf8_is_remembered_and_listed(engine: Engine, tmp_path: Path) -> None:
    """Failure memory stores paths as the files table does (StoredPath): a bad name must not break the ingest."""
    folder = tmp_path / "odd"
    make_folder(folder, 2)
    broken = os.fsdecode(os.path.join(os.fsencode(folder), b"broken_\xff\xfe.jpg"))
    with open(os.fsencode(broken), "wb") as handle:
        handle.write(b"not a picture at all")
    first = engine.ingest(folder)
    assert [failure.path for failure in first.failed] == [broken]
    second = engine.ingest(folder)
    assert second.failed == [] and second.failed_before == 1
    assert [failure["path"] for failure in engine.status().failures] == [broken]
