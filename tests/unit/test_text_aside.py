"""A cold query's text encoded speculatively (``mmsearch.textaside``): the home records the model its queries
load; the next process encodes its text with it before the engine is imported; the engine takes the result only
for its own model and texts, with the same vectors, and anything else means no speculation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mmsearch import textaside
from mmsearch.encoders.base import ModelIdentity
from mmsearch.search.querylang import QuerySyntaxError
from mmsearch.textaside import RECORD_FILE, read_record, start, write_record
from tests.unit.test_onnx_text import fake_home, write_export  # noqa: F401 - fake_home is a fixture

TEXT = "a dog on the beach"


def searched(home: Path, text: str, aside: textaside.TextAside | None) -> tuple[list, np.ndarray, object]:
    """Hits of ``text``, its vector as the engine encodes it, and the engine's text encoder."""
    from mmsearch import Engine

    with Engine.open(home, text_aside=aside) as engine:
        model_id, identity = engine.models.active()
        hits = engine.search(text, k=5)
        vector = engine.queries.text_vectors(model_id, identity, [text])[0]
        return [(hit.path, hit.score) for hit in hits], vector, engine.models.text_encoder(identity)


@pytest.fixture
def exported_home(fake_home):  # noqa: F811 - the imported fixture
    home, identity = fake_home
    folder = write_export(home / "indexes", identity)
    return home, identity, folder


def test_a_query_records_its_model_and_the_next_one_encodes_aside(exported_home) -> None:
    home, identity, folder = exported_home
    assert read_record(home / "indexes") is None
    searched(home, TEXT, None)
    assert read_record(home / "indexes") == (identity.fingerprint, folder)

    aside = start(home / "indexes", "the red car")
    assert aside is not None
    hits, vector, encoder = searched(home, "the red car", aside)
    assert encoder is aside._encoder  # the engine took the thread's encoder ...
    assert aside._vectors and list(aside._vectors) == ["the red car"]
    np.testing.assert_array_equal(vector, aside._vectors["the red car"])  # ... and its vector
    again_hits, again_vector, _ = searched(home, "the red car", None)  # a fresh engine, no speculation
    np.testing.assert_array_equal(vector, again_vector)  # identical vectors
    assert hits == again_hits


def test_the_speculative_vector_is_the_one_the_engine_would_compute(exported_home) -> None:
    home, _, _ = exported_home
    searched(home, "warm up the record", None)
    _, plain, _ = searched(home, TEXT + " and the cat", None)  # now cached; encode afresh below
    aside = start(home / "indexes", "the dog and the cat")
    _, speculated, _ = searched(home, "the dog and the cat", aside)
    from mmsearch import Engine

    with Engine.open(home) as engine:
        _, identity = engine.models.active()
        fresh = engine.models.text_encoder(identity).encode_texts(["the dog and the cat"])[0]
    np.testing.assert_array_equal(speculated, fresh)
    assert plain.shape == fresh.shape


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json",
        "[1, 2]",
        json.dumps({"format": 99, "fingerprint": "x", "folder": "/x"}),
        json.dumps({"format": 1}),
    ],
)
def test_a_missing_or_damaged_record_means_no_speculation(tmp_path: Path, content: str) -> None:
    assert start(tmp_path, TEXT) is None  # no record
    (tmp_path / RECORD_FILE).write_text(content)
    assert read_record(tmp_path) is None and start(tmp_path, TEXT) is None


def test_the_switch_turns_speculation_off(exported_home, monkeypatch) -> None:
    home, _, _ = exported_home
    searched(home, TEXT, None)  # records the model
    monkeypatch.setenv(textaside.ENV_SWITCH, "0")
    assert start(home / "indexes", TEXT) is None
    monkeypatch.setenv(textaside.ENV_SWITCH, "1")
    aside = start(home / "indexes", TEXT)
    assert aside is not None
    aside.take("", Path())  # waits for the thread


def test_a_stale_record_is_discarded_and_the_engine_encodes_as_usual(exported_home, tmp_path: Path) -> None:
    home, identity, folder = exported_home
    _, want, _ = searched(home, TEXT, None)
    other = ModelIdentity("fake", "17", 17, {})
    other_folder = write_export(tmp_path / "elsewhere", other)
    write_record(home / "indexes", other.fingerprint, other_folder)  # another model's export
    aside = start(home / "indexes", TEXT + " again")
    assert aside is not None
    _, got, encoder = searched(home, TEXT + " again", aside)
    assert aside._encoder is not None and encoder is not aside._encoder  # loaded aside, not taken
    _, plain, _ = searched(home, TEXT + " again", None)
    np.testing.assert_array_equal(got, plain)
    assert read_record(home / "indexes") == (identity.fingerprint, folder)  # recorded again
    assert want.shape == (identity.dim,)


def test_a_record_pointing_at_nothing_fails_quietly(exported_home, tmp_path: Path) -> None:
    home, identity, _ = exported_home
    write_record(home / "indexes", identity.fingerprint, tmp_path / "gone")
    aside = start(home / "indexes", TEXT)
    assert aside is not None
    hits, vector, _ = searched(home, TEXT, aside)
    assert aside._encoder is None and hits and vector.shape == (identity.dim,)


def test_errors_surface_as_without_speculation(exported_home) -> None:
    from mmsearch.searcher import open_searcher

    home, _, _ = exported_home
    searched(home, TEXT, None)  # records the model
    with pytest.raises(QuerySyntaxError), open_searcher(home, service=False, text='"unterminated') as searcher:
        searcher.search('"unterminated')


def test_no_speculation_when_a_service_answers(exported_home, monkeypatch) -> None:
    from mmsearch import searcher as searcher_module
    from mmsearch.service import client

    home, _, _ = exported_home
    searched(home, TEXT, None)  # records the model
    started = []
    monkeypatch.setattr(textaside, "start", lambda *args: started.append(args))
    monkeypatch.setattr(client, "find_service", lambda home, url: object())
    monkeypatch.setattr(client, "RemoteSearcher", lambda info, model, local: "remote")
    assert searcher_module.open_searcher(home, text=TEXT) == "remote"
    assert started == []
    monkeypatch.setattr(client, "find_service", lambda home, url: None)
    with searcher_module.open_searcher(home, text=TEXT):
        assert len(started) == 1  # without a service it is started


def test_the_record_is_not_rewritten_when_unchanged_and_never_raises(tmp_path: Path) -> None:
    write_record(tmp_path, "abc", tmp_path / "f")
    stamp = (tmp_path / RECORD_FILE).stat().st_mtime_ns
    write_record(tmp_path, "abc", tmp_path / "f")
    assert (tmp_path / RECORD_FILE).stat().st_mtime_ns == stamp
    (tmp_path / "file").write_text("x")
    write_record(tmp_path / "file", "abc", tmp_path / "f")  # a folder that cannot be made: no error
    assert read_record(tmp_path / "file") is None
