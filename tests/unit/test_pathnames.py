"""File names that are not valid UTF-8: stored, shown and written as JSON without loss."""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mmsearch import Engine
from mmsearch.pathnames import UnrepresentableNameError, display, from_stored, json_text, to_stored
from tests.conftest import make_image

names = st.binary(min_size=1, max_size=40).filter(lambda b: b"/" not in b and b"\0" not in b)


@given(names)
def test_any_byte_name_round_trips_through_the_stored_form(raw: bytes) -> None:
    path = os.fsdecode(raw)
    try:
        stored = to_stored(path)
    except UnrepresentableNameError:
        assert any(0xF780 <= ord(c) <= 0xF7FF for c in path)
        return
    stored.encode("utf-8")  # what a UTF-8 driver accepts
    assert os.fsencode(from_stored(stored)) == raw


@given(names)
def test_json_text_round_trips_and_display_is_printable(raw: bytes) -> None:
    path = os.fsdecode(raw)
    text = json_text(json.dumps({"path": path}, ensure_ascii=False))
    text.encode("utf-8")
    assert os.fsencode(json.loads(text)["path"]) == raw
    display(path).encode("utf-8")


def test_valid_names_are_stored_unchanged() -> None:
    assert to_stored("/photos/été/x.jpg") == "/photos/été/x.jpg"
    assert display("/a/bad_\udcff.jpg") == "/a/bad_\\xff.jpg"


def test_a_name_that_is_not_utf8_is_ingested_found_and_kept(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    bad = os.fsdecode(os.path.join(os.fsencode(folder), b"bad_\xff\xfe.jpg"))
    make_image(folder / "ok.jpg", 1)
    make_image(Path(bad), 2)
    report = engine.ingest(folder)
    assert report.added == 2 and not report.failed
    assert bad in {hit.path for hit in engine.search(image=bad, k=2)}
    again = engine.ingest(folder)
    assert again.skipped == 2 and again.added == 0 and not again.failed


def test_a_name_that_is_not_utf8_round_trips_through_the_service(tmp_path: Path) -> None:
    import threading

    from mmsearch.service.client import find_service, remote_search
    from mmsearch.service.server import QueryService

    folder = tmp_path / "photos"
    bad = os.fsdecode(os.path.join(os.fsencode(folder), b"caf\xe9.jpg"))  # latin-1 bytes: not UTF-8
    make_image(folder / "ok.jpg", 1)
    make_image(Path(bad), 2)
    with Engine.open(tmp_path / "home", model="fake:16", workers=1, batch_size=4) as engine:
        engine.ingest(folder)
        service = QueryService(engine)
        service.start()
        thread = threading.Thread(target=service.serve_forever, daemon=True)
        thread.start()
        try:
            info = find_service(engine.settings.home, engine.settings.database_url)
            assert info is not None
            hits = remote_search(info, None, bad, 2, "image", {})
            assert hits is not None and hits[0].path == bad
            assert os.fsencode(hits[0].path).endswith(b"caf\xe9.jpg")
        finally:
            service.shutdown()
            thread.join(5)
