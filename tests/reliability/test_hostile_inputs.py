"""Every hostile input of the generated corpus gets its expected outcome, through the library and the CLI:
indexed, or a per-file failure / a skip with its reason class; never a crash, a lost batch or a stray line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmsearch import Engine, imageformats, reasons
from mmsearch.cli import cli
from mmsearch.hints import install_hint
from mmsearch.ingest.audio import hash_file
from tests.conftest import make_image
from tests.reliability.corpus import INDEXED, build_corpus

FAKE = {"model": "fake:16", "db_url": "sqlite://", "workers": 2, "batch_size": 4}


def outcomes(failed: list[dict], ignored: list[dict], indexed: set[str]) -> dict[str, tuple[str, str]]:
    seen: dict[str, tuple[str, str]] = {path: INDEXED for path in indexed}
    for kind, entries in (("failed", failed), ("ignored", ignored)):
        for entry in entries:
            assert entry["path"] not in seen, f"{entry['path']} has two outcomes"
            seen[entry["path"]] = (kind, entry["code"])
    return seen


def mismatches(cases, actual: dict[str, tuple[str, str]]) -> list[str]:
    wrong = [f"{c.what}: {c.path!r} expected {c.outcome}, got {actual.get(c.path)}" for c in cases]
    wrong = [line for line, case in zip(wrong, cases, strict=True) if actual.get(case.path) != case.outcome]
    expected = {case.path for case in cases}
    wrong += [f"unexpected outcome {outcome} for {path!r}" for path, outcome in actual.items() if path not in expected]
    return wrong


def report_outcomes(report, indexed: set[str]) -> dict[str, tuple[str, str]]:
    data = report.to_dict()
    return outcomes(data["failed"], data["ignored"], indexed)


def test_every_hostile_input_gets_its_outcome_through_the_library(tmp_path: Path, capfd) -> None:
    lib, cases = build_corpus(tmp_path)
    with Engine.open(tmp_path / "home", **FAKE) as engine:
        capfd.readouterr()
        report = engine.ingest(lib)
        indexed = set(engine.store.files_under(str(lib)))
        assert mismatches(cases, report_outcomes(report, indexed)) == []
        assert set(report.to_dict()["failed_by_reason"]) <= set(reasons.FAIL_REASONS)
        assert set(report.ignored_by_reason()) <= set(reasons.SKIP_REASONS)
        warned = {warning.path for warning in report.file_warnings}
        assert str(lib / "bad_exif.jpg") in warned
        assert capfd.readouterr().err == ""  # decoder warnings are in the report, not on stderr

        held = engine.ingest(lib)  # a plain re-run: files that failed on their content are remembered, not read
        assert held.added == held.updated == held.removed == 0
        assert 0 < held.failed_before <= engine.status().failed_files
        again = engine.ingest(lib, retry_failed=True)  # retried: the same outcomes, nothing re-indexed, nothing lost
        assert again.added == again.updated == again.removed == 0 and again.failed_before == 0
        assert set(engine.store.files_under(str(lib))) == indexed
        # The image of a bad caption sidecar is indexed and unchanged, so its sidecar is not read again.
        rerun = [case for case in cases if not case.path.endswith(".txt")]
        assert mismatches(rerun, report_outcomes(again, indexed)) == []


def test_every_hostile_input_gets_its_outcome_through_the_cli_json(tmp_path: Path) -> None:
    lib, cases = build_corpus(tmp_path)
    args = ["--home", str(tmp_path / "home"), "--model", "fake:16", "ingest", str(lib), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    data = json.loads(result.stdout)
    indexed = {case.path for case in cases if case.outcome == INDEXED}
    assert data["added"] == len(indexed)
    actual = outcomes(data["failed"], data["ignored"], indexed)
    assert mismatches(cases, actual) == []
    assert sum(data["ignored_by_reason"].values()) == len(data["ignored"])
    bad_name = os.fsdecode(os.path.join(os.fsencode(lib), b"bad_\xff\xfe.jpg"))
    query = ["--home", str(tmp_path / "home"), "query", "--no-service", "--image", bad_name, "--json", "-k", "50"]
    hits = json.loads(CliRunner().invoke(cli, query).stdout)["hits"]
    assert bad_name in {hit["path"] for hit in hits}  # the JSON name round-trips to the bytes on disk


def test_cli_text_report_counts_skips_and_lists_them_with_verbose(tmp_path: Path) -> None:
    lib, _ = build_corpus(tmp_path)
    base = ["--model", "fake:16", "ingest", str(lib)]
    quiet = CliRunner().invoke(cli, ["--home", str(tmp_path / "quiet"), *base])
    assert f"4 {reasons.UNSUPPORTED_TYPE}" in quiet.stdout and "-v lists them" in quiet.stdout
    assert "fifo.jpg" not in quiet.output and "Tag data larger" not in quiet.output
    assert "decoder warnings (-v shows them)" in quiet.stderr
    verbose = CliRunner().invoke(cli, ["-v", "--home", str(tmp_path / "verbose"), *base])  # the global -v
    assert f"fifo.jpg: FIFO (named pipe) [{reasons.NOT_A_REGULAR_FILE}]" in verbose.stdout
    assert "bad_exif.jpg: UserWarning: Tag data larger than file" in verbose.stderr


def test_heic_without_pillow_heif_is_skipped_with_the_install_hint(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "photos"
    make_image(folder / "a.jpg", 1)
    (folder / "b.heic").write_bytes(b"\0" * 32)
    monkeypatch.setattr(imageformats, "heif_available", lambda: False)
    with Engine.open(tmp_path / "home", **FAKE) as engine:
        report = engine.ingest(folder)
    assert [(item.path, item.code) for item in report.ignored] == [(str(folder / "b.heic"), reasons.NEEDS_PLUGIN)]
    assert "pillow-heif" in report.ignored[0].detail and install_hint("heif") in report.ignored[0].detail


@pytest.mark.skipif(not imageformats.heif_available(), reason="pillow-heif is not installed (the heif extra)")
def test_heic_is_indexed_and_found_with_pillow_heif(tmp_path: Path) -> None:
    from PIL import Image

    folder = tmp_path / "photos"
    make_image(folder / "a.jpg", 1)
    Image.open(folder / "a.jpg").save(folder / "b.heic", format="HEIF")
    with Engine.open(tmp_path / "home", **FAKE) as engine:
        report = engine.ingest(folder)
        assert report.added == 2 and not report.failed and not report.ignored
        assert engine.search(image=folder / "b.heic", k=1)[0].path == str(folder / "b.heic")


def test_files_deleted_or_changed_during_the_run(tmp_path: Path, monkeypatch) -> None:
    """Fault injection: between the scan and the reads, one file is deleted and one rewritten."""
    import mmsearch.ingest.job as scanner_module  # one folder's ingest (Engine.ingest) scans with this name

    folder = tmp_path / "photos"
    for seed in range(6):
        make_image(folder / f"{seed}.jpg", seed)
    real_scan = scanner_module.scan_folder

    def scan_then_tamper(root):
        result = real_scan(root)
        (folder / "1.jpg").unlink()
        make_image(folder / "2.jpg", 42, size=(80, 60))
        return result

    with Engine.open(tmp_path / "home", **FAKE) as engine:
        monkeypatch.setattr(scanner_module, "scan_folder", scan_then_tamper)
        report = engine.ingest(folder)
        monkeypatch.setattr(scanner_module, "scan_folder", real_scan)
        assert [(f.path, f.code) for f in report.failed] == [(str(folder / "1.jpg"), reasons.VANISHED)]
        assert report.added == 5
        again = engine.ingest(folder)
        assert not again.failed and again.added == again.updated == 0
        stored = engine.store.files_under(str(folder))
        assert stored[str(folder / "2.jpg")].content_hash == hash_file(str(folder / "2.jpg"))
        assert str(folder / "1.jpg") not in stored
