"""Searching with the fake encoder: image->image, text, errors, the query cache."""

from pathlib import Path

import pytest

from mmsearch import Engine
from mmsearch.errors import ModelMismatchError, NoIndexError, UnreadableMediaError
from mmsearch.store.records import SCORE_BOUND  # stored vectors are float16: a self-match scores 1 +- 2^-11


def test_image_query_finds_itself_first(engine: Engine, photo_dir: Path) -> None:
    engine.ingest(photo_dir)
    hits = engine.search(image=photo_dir / "d.bmp", k=3)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert Path(hits[0].path).name == "d.bmp"
    assert hits[0].score == pytest.approx(1.0, abs=SCORE_BOUND)
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert hits[0].to_dict()["kind"] == "image"


def test_k_larger_than_the_collection(engine: Engine, photo_dir: Path) -> None:
    engine.ingest(photo_dir)
    assert len(engine.search("anything", k=100)) == 6


def test_search_many_matches_single_searches(engine: Engine, photo_dir: Path) -> None:
    engine.ingest(photo_dir)
    texts = ["red", "a blue sky", "red"]
    batched = engine.search_many(texts, k=4)
    assert [[h.id for h in hits] for hits in batched] == [[h.id for h in engine.search(t, k=4)] for t in texts]


def test_nothing_indexed_yet(engine: Engine) -> None:
    with pytest.raises(NoIndexError, match="mmsearch ingest"):
        engine.search("a dog")


def test_unreadable_query_image(engine: Engine, photo_dir: Path, tmp_path: Path) -> None:
    engine.ingest(photo_dir)
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    with pytest.raises(UnreadableMediaError, match="cannot read query image"):
        engine.search(image=bad)
    with pytest.raises(UnreadableMediaError, match="cannot open"):
        engine.search(image=tmp_path / "missing.jpg")


def test_model_mismatch_is_refused_before_loading(tmp_path: Path, photo_dir: Path) -> None:
    home = tmp_path / "home"
    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
    with Engine.open(home, model="fake:8") as engine:
        with pytest.raises(ModelMismatchError, match="built with fake:16"):
            engine.search("x")
        with pytest.raises(ModelMismatchError):
            engine.ingest(photo_dir)
        assert engine.models.loaded_encoder is None
    with Engine.open(home) as engine:  # no --model: the index's model is used
        assert engine.search("x", k=1)[0].rank == 1


def test_a_loaded_model_must_match_the_index_identity(tmp_path: Path, photo_dir: Path) -> None:
    from mmsearch.encoders.fake import FakeEncoder

    home = tmp_path / "home"
    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
    impostor = FakeEncoder(16)
    impostor.identity = type(impostor.identity)("fake", "16", 16, {"thumbnail": 4})
    with (
        Engine.open(home, encoder_factory=lambda name, device: impostor) as engine,
        pytest.raises(ModelMismatchError, match="loaded model"),
    ):
        engine.search("x")


def test_repeated_text_queries_skip_the_model(tmp_path: Path, photo_dir: Path) -> None:
    home = tmp_path / "home"
    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
        first = engine.search("a red square", k=3)
    with Engine.open(home) as engine:
        again = engine.search("a red square", k=3)
        assert engine.models.loaded_encoder is None  # served from the query cache, no model load
        assert [(h.id, h.score) for h in again] == [(h.id, h.score) for h in first]
        engine.search("something new", k=3)
        assert engine.models.loaded_encoder is not None


def test_a_query_needs_text_or_an_image(engine: Engine) -> None:
    with pytest.raises(ValueError, match="give a text, an image, or both"):
        engine.search()


def test_image_and_text_mix_into_one_query(engine: Engine, photo_dir: Path) -> None:
    engine.ingest(photo_dir)
    alone = engine.search(image=photo_dir / "d.bmp", k=6, mode="dense")
    mixed = engine.search("d", image=photo_dir / "d.bmp", k=6, mode="dense")
    assert Path(mixed[0].path).name == "d.bmp"
    assert mixed[0].score < alone[0].score  # no longer the picture's own vector alone


def test_an_open_engine_sees_what_another_one_ingested(tmp_path: Path, photo_dir: Path) -> None:
    from tests.conftest import make_image

    home = tmp_path / "home"
    with Engine.open(home, model="fake:16") as reader, Engine.open(home, model="fake:16") as writer:
        writer.ingest(photo_dir)
        assert len(reader.search("x", k=100)) == 6
        make_image(photo_dir / "new.png", seed=42)
        writer.ingest(photo_dir)
        hits = reader.search(image=photo_dir / "new.png", k=100)
        assert len(hits) == 7 and Path(hits[0].path).name == "new.png"
