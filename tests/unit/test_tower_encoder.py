"""The per-tower encoder builds its text side and its tokenizer only when a text needs them."""

from __future__ import annotations

import numpy as np

from mmsearch.encoders.base import ModelIdentity
from mmsearch.encoders.engine_choice import TowerChoice
from mmsearch.encoders.selection import TowerEncoder

IDENTITY = ModelIdentity("hf-hub:org/model", None, 4, {"context_length": 8})
CHOICE = {tower: TowerChoice("onnx", "fp32", "test") for tower in ("image", "text")}


class ImageSide:
    min_decode_size = (8, 8)

    def prepare_image(self, image: object) -> np.ndarray:
        return np.zeros(4, dtype=np.float32)

    def encode_prepared(self, prepared: list) -> np.ndarray:
        return np.ones((len(prepared), 4), dtype=np.float32) / 2


class Tokenizer:
    class spec:
        context_length = 8

    def count(self, text: str) -> int:
        return len(text.split())


def test_images_need_neither_the_text_side_nor_the_tokenizer() -> None:
    made: list[str] = []

    def text_side() -> object:
        made.append("text")
        raise AssertionError("the text side was built for images")

    def tokenizer() -> Tokenizer:
        made.append("tokenizer")
        return Tokenizer()

    encoder = TowerEncoder(IDENTITY, ImageSide(), text_side, CHOICE, tokenizer)
    assert encoder.encode_prepared([encoder.prepare_image(None)] * 3).shape == (3, 4)
    assert made == []
    assert encoder.count_tokens("two words") == 2 and encoder.context_length == 8
    assert made == ["tokenizer"]  # made once, on the first count, and the text side still not built


def test_without_a_tokenizer_the_text_side_counts() -> None:
    class TextSide:
        context_length = 5

        def count_tokens(self, text: str) -> int:
            return 7

    encoder = TowerEncoder(IDENTITY, ImageSide(), TextSide, CHOICE)
    assert encoder.count_tokens("anything") == 7 and encoder.context_length == 5


def test_an_ingest_of_photos_without_captions_loads_no_tokenizer(tmp_path, photo_dir) -> None:
    """Each photo's (empty) caption groups are still set, but nothing is counted: the export's tokenizer is read
    only for the first photo with a caption."""
    from contextlib import nullcontext

    from mmsearch import Engine

    class Side(ImageSide):
        def parallel_batches(self, requested: int = 0):
            return nullcontext(1)

    made: list[str] = []

    def tokenizer() -> Tokenizer:
        made.append("tokenizer")
        return Tokenizer()

    class TextSide:
        def encode_texts(self, texts: list[str]) -> np.ndarray:
            return np.ones((len(texts), 4), dtype=np.float32) / 2

    encoder = TowerEncoder(IDENTITY, Side(), TextSide, CHOICE, tokenizer)
    with Engine.open(tmp_path / "home", model=IDENTITY.spec, encoder_factory=lambda name, device: encoder) as engine:
        report = engine.ingest(photo_dir)
        assert report.added == 6 and not report.failed and made == []
        (photo_dir / "a.txt").write_text("a red square on a white ground")
        again = engine.ingest(photo_dir)
        assert again.texts_added == {"caption": 1} and made == ["tokenizer"]
