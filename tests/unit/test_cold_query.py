"""A cold process encodes the query text in a second thread while it opens the indexes (``encode_aside``): same
hits and scores as encoding in the caller's thread, errors raised to the caller; a loaded encoder, an image term
or an in-memory database keep the encoding in the caller's thread. (Timing: bench/query_cold.py.)"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mmsearch import Engine
from mmsearch.errors import ModelMismatchError
from mmsearch.search.query import Query


@pytest.fixture
def home(tmp_path: Path, photo_dir: Path) -> Path:
    home = tmp_path / "home"
    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
    return home


def spy_threads(engine: Engine, monkeypatch) -> list[str]:
    """The names of the threads that encode queries."""
    names: list[str] = []
    encode = engine.queries.encode

    def recorded(*args, **kwargs):
        names.append(threading.current_thread().name)
        return encode(*args, **kwargs)

    monkeypatch.setattr(engine.queries, "encode", recorded)
    return names


def test_a_cold_text_query_is_encoded_aside_with_the_same_hits(home: Path, monkeypatch) -> None:
    with Engine.open(home) as cold:
        cold_threads = spy_threads(cold, monkeypatch)
        got = cold.search("a red square", k=4)
        again = cold.search("a green circle", k=4)  # the encoder is loaded now: no second thread
    with Engine.open(home) as warm:
        warm.models.text_encoder(warm.models.active()[1])  # loaded first: encoded in the caller's thread
        warm_threads = spy_threads(warm, monkeypatch)
        expected = warm.search("a red square", k=4)
    assert cold_threads == ["mmsearch-encode", threading.current_thread().name] and len(again) == 4
    assert warm_threads == [threading.current_thread().name]
    assert [(h.path, h.score) for h in got] == [(h.path, h.score) for h in expected] and len(got) == 4


def test_encode_aside_gives_the_vector_encode_gives(home: Path) -> None:
    with Engine.open(home) as engine:
        model_id, identity = engine.models.active()
        query = Query.parse("a blue triangle")
        pending = engine.queries.encode_aside(query, model_id, identity)
        assert pending is not None
        spec = pending.result(timeout=60)
        assert engine.queries.encode_aside(query, model_id, identity) is None  # loaded now
        assert (spec.vector == engine.queries.encode(query, model_id, identity).vector).all()


def test_image_terms_and_shared_connections_stay_in_the_callers_thread(home: Path, photo_dir: Path, engine) -> None:
    with Engine.open(home) as local:
        model_id, identity = local.models.active()
        picture = Query.parse("a dog + image:x.jpg".replace("x.jpg", str(photo_dir / "a.jpg")))
        assert local.queries.encode_aside(picture, model_id, identity) is None
    engine.ingest(photo_dir)  # the in-memory database of the `engine` fixture: one connection for every thread
    assert engine.queries.encode_aside(Query.parse("a dog"), *engine.models.active()) is None


def test_an_error_while_encoding_aside_reaches_the_caller(home: Path, monkeypatch) -> None:
    with Engine.open(home) as engine:

        def refuse(identity):
            raise ModelMismatchError("not this model")

        monkeypatch.setattr(engine.models, "text_encoder", refuse)
        with pytest.raises(ModelMismatchError, match="not this model"):
            engine.search("a yellow star")
