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
