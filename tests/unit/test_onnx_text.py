"""The torch-free query text encoder: when the engine uses an export, and when it falls back to its encoder.

A synthetic export (a tiny ONNX graph and a word-level tokenizer, built here without torch) stands in for
a real text tower; tests/integration/test_onnx_text.py checks real exports against open_clip.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsearch.encoders import onnx_text
from mmsearch.encoders.base import ModelIdentity
from mmsearch.encoders.fake import FakeEncoder
from mmsearch.encoders.onnx_text import (
    EXPORT_FORMAT,
    MANIFEST_FILE,
    MODEL_FILE,
    TOKENIZER_FILE,
    clean_text,
    export_dir,
    load_text_encoder,
    read_manifest,
    usable,
)

CONTEXT = 8
WORDS = ["[PAD]", "[UNK]", "a", "dog", "cat", "on", "the", "beach", "red", "car"]


def write_export(index_dir: Path, identity: ModelIdentity, overrides: dict | None = None) -> Path:
    """A verified-looking export for ``identity``: ids -> float -> (ids @ W) -> unit rows."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    tokenizers = pytest.importorskip("tokenizers")
    from onnx import TensorProto, helper, numpy_helper

    folder = export_dir(index_dir, identity.fingerprint)
    folder.mkdir(parents=True)
    weights = np.random.default_rng(0).standard_normal((CONTEXT, identity.dim)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["input_ids"], ["ids_f"], to=TensorProto.FLOAT),
            helper.make_node("MatMul", ["ids_f", "W"], ["raw"]),
            helper.make_node("LpNormalization", ["raw"], ["text_embedding"], axis=1, p=2),
        ],
        "fake-text-tower",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", CONTEXT])],
        [helper.make_tensor_value_info("text_embedding", TensorProto.FLOAT, ["batch", identity.dim])],
        [numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(folder / MODEL_FILE))
    tokenizer = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({word: i for i, word in enumerate(WORDS)}, unk_token="[UNK]")
    )
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer.enable_truncation(max_length=CONTEXT)
    tokenizer.enable_padding(length=CONTEXT, pad_id=0, pad_token="[PAD]")
    tokenizer.save(str(folder / TOKENIZER_FILE))
    manifest = {
        "format": EXPORT_FORMAT,
        "fingerprint": identity.fingerprint,
        "identity": identity.to_dict(),
        "status": "verified",
        "tokenizer": {"clean": "lower", "context_length": CONTEXT, "strip_sep_id": None},
        "check": {"worst_cosine": 1.0},
    }
    manifest.update(overrides or {})
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    return folder


def expected_vector(text: str, identity: ModelIdentity) -> np.ndarray:
    """What the synthetic export gives for ``text``."""
    weights = np.random.default_rng(0).standard_normal((CONTEXT, identity.dim)).astype(np.float32)
    ids = np.zeros(CONTEXT, dtype=np.float32)
    tokens = [WORDS.index(word) if word in WORDS else 1 for word in text.lower().split()][:CONTEXT]
    ids[: len(tokens)] = tokens
    raw = ids @ weights
    return raw / np.linalg.norm(raw)


@pytest.fixture
def fake_home(tmp_path: Path, photo_dir: Path):
    """A home ingested with fake:16 (no torch anywhere); yields (home, identity)."""
    from mmsearch import Engine

    home = tmp_path / "home"
    with Engine.open(home, model="fake:16") as engine:
        engine.ingest(photo_dir)
        identity = engine.store.active_model()[1]
    return home, identity


def open_counting(home: Path):
    """An engine whose encoder factory counts how often it is called."""
    from mmsearch import Engine

    calls = []

    def factory(spec: str, device: str) -> FakeEncoder:
        calls.append(spec)
        return FakeEncoder(16)

    return Engine.open(home, encoder_factory=factory), calls


def test_a_verified_export_encodes_queries_without_loading_the_encoder(fake_home) -> None:
    home, identity = fake_home
    write_export(home / "indexes", identity)
    engine, calls = open_counting(home)
    with engine:
        vectors = engine.queries.text_vectors(engine.store.active_model()[0], identity, ["a red car", "the dog"])
        hits = engine.search("a dog on the beach", k=3)
        assert calls == [] and engine.models.loaded_encoder is None and len(hits) == 3
    np.testing.assert_allclose(vectors[0], expected_vector("a red car", identity), atol=1e-6)
    np.testing.assert_allclose(vectors[1], expected_vector("the dog", identity), atol=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [
        {"fingerprint": "0123456789abcdef"},
        {"identity": ModelIdentity("fake", "17", 17, {}).to_dict()},
        {"status": "failed"},
        {"format": EXPORT_FORMAT + 1},
        {"check": {"worst_cosine": 0.9998}},
    ],
    ids=["fingerprint", "identity", "failed", "format", "cosine"],
)
def test_an_export_of_another_model_or_unverified_falls_back(fake_home, overrides) -> None:
    home, identity = fake_home
    folder = write_export(home / "indexes", identity, overrides)
    assert not usable(read_manifest(folder), identity)
    engine, calls = open_counting(home)
    with engine:
        engine.search("a dog on the beach", k=3)
    assert calls == ["fake:16"]


def test_missing_onnxruntime_or_the_switch_falls_back(fake_home, monkeypatch) -> None:
    home, identity = fake_home
    write_export(home / "indexes", identity)
    assert load_text_encoder(home / "indexes", identity) is not None
    monkeypatch.setattr(onnx_text, "missing_runtime_modules", lambda: ["onnxruntime"])
    assert load_text_encoder(home / "indexes", identity) is None
    engine, calls = open_counting(home)
    with engine:
        engine.search("a red car", k=3)
    assert calls == ["fake:16"]
    monkeypatch.undo()
    monkeypatch.setenv("MMSEARCH_ONNX_TEXT", "0")
    assert load_text_encoder(home / "indexes", identity) is None


def test_an_unreadable_export_falls_back(fake_home) -> None:
    home, identity = fake_home
    folder = write_export(home / "indexes", identity)
    (folder / MODEL_FILE).write_bytes(b"not a model")
    assert load_text_encoder(home / "indexes", identity) is None


def test_a_loaded_encoder_is_used_as_it_is(fake_home) -> None:
    """Once the torch encoder is loaded (ingest, image query), texts go through it: no second model."""
    home, identity = fake_home
    write_export(home / "indexes", identity)
    engine, _ = open_counting(home)
    with engine:
        engine.encoder  # noqa: B018
        vector = engine.queries.text_vectors(engine.store.active_model()[0], identity, ["a red car"])[0]
    np.testing.assert_allclose(vector, FakeEncoder(16).encode_texts(["a red car"])[0], atol=1e-6)


def test_a_warm_service_keeps_the_export_once_it_is_loaded(fake_home) -> None:
    """`mmsearch serve` warms the text export, then the image tower: texts keep going through the export, so a
    served text query has the vector a new process (which loads only the export) computes."""
    home, identity = fake_home
    write_export(home / "indexes", identity)
    exported = load_text_encoder(home / "indexes", identity).encode_texts(["a blue car"])[0]
    engine, calls = open_counting(home)
    with engine:
        assert engine.warm_up(images=True)
        assert calls == ["fake:16"]  # the image tower is loaded
        served = engine.queries.text_vectors(engine.store.active_model()[0], identity, ["a blue car"])[0]
    np.testing.assert_allclose(served, exported, atol=1e-6)
    assert not np.allclose(served, FakeEncoder(16).encode_texts(["a blue car"])[0], atol=1e-3)


def test_a_failed_export_is_recorded_and_not_retried(tmp_path: Path, monkeypatch) -> None:
    """An unsupported tokenizer fails before torch is imported; the failure is written down once."""
    for name in ("onnx", "onnxruntime", "tokenizers", "ftfy"):
        pytest.importorskip(name)
    from mmsearch.encoders import onnx_export

    class Unsupported(FakeEncoder):
        text_tower = (object(), object())

    encoder = Unsupported(16)
    first = onnx_export.ensure_text_export(encoder, tmp_path)
    assert first is not None and first["status"] == "failed" and "context length" in first["reason"]
    assert read_manifest(export_dir(tmp_path, encoder.identity.fingerprint)) == first
    monkeypatch.setattr(onnx_export, "export_text_tower", lambda *a: pytest.fail("retried"))
    assert onnx_export.ensure_text_export(encoder, tmp_path) == first
    assert onnx_export.ensure_text_export(FakeEncoder(16), tmp_path) is None  # no text tower to export


PLAIN = st.text(alphabet=st.sampled_from([chr(c) for c in range(0x20, 0x7F) if chr(c) != "&"] + ["\t", "\n", "\r"]))


@settings(max_examples=300, deadline=None)
@given(PLAIN)
def test_plain_text_skips_ftfy_without_changing_the_result(text: str) -> None:
    ftfy = pytest.importorskip("ftfy")
    assert clean_text(text, "whitespace") == " ".join(html.unescape(html.unescape(ftfy.fix_text(text))).split())


def test_cleaning_follows_open_clip() -> None:
    pytest.importorskip("ftfy")
    assert clean_text("  A  dog\t&amp;\nCat ", "whitespace") == "A dog & Cat"
    assert clean_text("A DOG", "lower") == "a dog"
    assert clean_text("cafÃ© ﬁne", "whitespace") == "café fine"
