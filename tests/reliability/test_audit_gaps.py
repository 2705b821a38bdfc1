"""Gaps the audit of issue 12's tests found (docs/reliability.md): cases of a defect that no test named."""

from __future__ import annotations

from pathlib import Path

from mmsearch import Engine, reasons
from tests.conftest import make_image


def test_jpeg_2000_and_sgi_files_are_reported_as_unsupported_not_skipped_silently(tmp_path: Path) -> None:
    """Defect 12 names ``.sgi`` and ``.j2k``; the hostile corpus holds only the first."""
    folder = tmp_path / "photos"
    make_image(folder / "ok.jpg", 1)
    for name in ("scan.j2k", "scan.jp2", "pic.sgi"):
        (folder / name).write_bytes(b"\0" * 64)
    with Engine.open(tmp_path / "home", model="fake:16", workers=1, batch_size=4) as engine:
        report = engine.ingest(folder)
    assert report.added == 1
    outcomes = {Path(item.path).name: item.code for item in [*report.ignored, *report.failed]}
    assert set(outcomes) == {"scan.j2k", "scan.jp2", "pic.sgi"}, outcomes
    assert set(outcomes.values()) == {reasons.UNSUPPORTED_TYPE}
