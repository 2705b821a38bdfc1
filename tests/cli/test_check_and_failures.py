"""``mmsearch check [--repair]`` (issue 12 item 3), the ingest report's failures grouped by cause and exit code 3
(issue 11 item 7), and the ingest and check documents against their schemas (issue 11 item 10)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from mmsearch import schemas
from mmsearch.cli import cli
from mmsearch.ingest.report import FailedFile, IngestReport
from mmsearch.reasons import DECODE_ERROR, NO_TRANSCRIBER


def valid(name: str, document: dict) -> dict:
    jsonschema.validate(document, schemas.load(name), cls=jsonschema.Draft202012Validator)
    return document


def run(home: Path, *args: str):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


@pytest.fixture
def home(tmp_path: Path, photo_dir: Path) -> Path:
    home = tmp_path / "home"
    result = run(home, "--model", "fake:16", "ingest", str(photo_dir), "--json")
    assert result.exit_code == 0, result.output
    valid("ingest", json.loads(result.output))
    return home


def test_a_clean_home_checks_ok(home: Path) -> None:
    result = run(home, "check", "--json")
    assert result.exit_code == 0, result.output
    report = valid("check", json.loads(result.output))
    assert report["ok"] and report["keyword"] == {"missing": 0, "extra": 0} and report["repaired"] is None
    text = run(home, "check")
    assert text.exit_code == 0 and "result:    ok" in text.output


def test_lost_embeddings_are_detected_and_repaired(home: Path, photo_dir: Path) -> None:
    database = home / "mmsearch.db"
    with sqlite3.connect(database) as connection:  # two images lose their vectors, as a damaged database would
        hashes = [row[0] for row in connection.execute("SELECT content_hash FROM media_files ORDER BY path LIMIT 2")]
        connection.executemany("DELETE FROM embeddings WHERE content_hash = ?", [(h,) for h in hashes])
    found = run(home, "check", "--json")
    assert found.exit_code == 3
    report = valid("check", json.loads(found.output))
    assert report["files_without_vector"] == 2 and not report["ok"] and report["needs_attention"]
    assert not report["collections"]["image"]["matches"]  # the index still has what the database lost

    repaired = run(home, "check", "--repair", "--json")
    assert repaired.exit_code == 0, repaired.output
    after = valid("check", json.loads(repaired.output))
    assert len(after["repaired"]["reembed_next_ingest"]) == 2 and "image" in after["repaired"]["indexes_rebuilt"]
    assert after["collections"]["image"]["matches"] and not after["needs_attention"]

    again = run(home, "ingest", str(photo_dir), "--json")  # the next ingest re-embeds the marked files
    assert again.exit_code == 0
    assert json.loads(again.output)["embedded"] == 2
    final = valid("check", json.loads(run(home, "check", "--json").output))
    assert final["ok"] and final["files_without_vector"] == 0
    paths = run(home, "query", "--image", str(photo_dir / "a.jpg"), "--paths", "-k", "6", "--no-service").output
    assert len(paths.splitlines()) == 6


def test_a_drifted_keyword_index_is_detected_and_rebuilt(home: Path) -> None:
    with sqlite3.connect(home / "mmsearch.db") as connection:
        connection.execute("DELETE FROM search_fts WHERE rowid IN (SELECT -id FROM media_files LIMIT 3)")
    report = valid("check", json.loads(run(home, "check", "--json").output))
    assert report["keyword"] == {"missing": 3, "extra": 0} and report["needs_attention"]
    repaired = valid("check", json.loads(run(home, "check", "--repair", "--json").output))
    assert repaired["repaired"]["keyword_rebuilt"] and repaired["ok"]
    assert "a.jpg" in run(home, "query", "a", "--mode", "keyword", "--paths", "--no-service").output


def test_one_cause_for_many_files_is_reported_once(capsys) -> None:
    report = IngestReport(folder="/x")
    reason = "speech model 'small' cannot be loaded offline: " + "detail " * 40
    report.failed += [FailedFile(f"/x/talk{i}.mp3", reason, NO_TRANSCRIBER) for i in range(20)]
    report.failed.append(FailedFile("/x/bad.jpg", "truncated", DECODE_ERROR))
    groups = report.failure_groups()
    assert [(g.code, g.count) for g in groups] == [(NO_TRANSCRIBER, 20), (DECODE_ERROR, 1)]
    assert report.audio_blocked() == groups[0]
    document = valid("ingest", report.to_dict())
    assert document["failure_groups"][0]["count"] == 20 and document["failed_count"] == 21

    from mmsearch.cli.output import print_ingest_report

    print_ingest_report(report)
    text = capsys.readouterr().err
    assert text.count(reason.strip()) == 2  # the headline, and the group's line: not 20 times
    assert text.splitlines()[0].startswith("every audio file needing speech-to-text failed (20)")
    assert "... and 15 more (-v lists them)" in text and "failed: /x/bad.jpg: truncated" in text
    report.transcribed = 1  # one audio file got through: no headline
    assert report.audio_blocked() is None


def test_an_ingest_with_failed_files_exits_3(tmp_path: Path, photo_dir: Path) -> None:
    (photo_dir / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    result = run(tmp_path / "home", "--model", "fake:16", "ingest", str(photo_dir))
    assert result.exit_code == 3, result.output
    assert "1 failed" in result.output
    clean = run(tmp_path / "home", "ingest", str(photo_dir))  # remembered: held back, nothing failed this time
    assert clean.exit_code == 0, clean.output
