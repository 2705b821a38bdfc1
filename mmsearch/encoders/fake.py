"""A deterministic, torch-free encoder for tests and demos of the plumbing.

Images map to a fixed random projection of a tiny colour thumbnail, so the same
picture always gives the same vector and similar pictures similar vectors.
Texts map to a hashed bag of words. The two spaces are not semantically aligned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from mmsearch.encoders.base import EncoderBase, ModelIdentity, l2_normalise

_THUMB = 8
CONTEXT_LENGTH = 16
"""Words (plus 2 special tokens) the fake text tower reads: small, so tests exercise text splitting."""


class FakeEncoder(EncoderBase):
    """Deterministic encoder: ``fake:<dim>`` in model names."""

    def __init__(self, dim: int = 32) -> None:
        if dim < 2:
            raise ValueError("dim must be at least 2")
        self.identity = ModelIdentity(
            name="fake",
            pretrained=str(dim),
            dim=dim,
            preprocess={"thumbnail": _THUMB, "context_length": CONTEXT_LENGTH},
        )
        rng = np.random.default_rng(1234)
        self._projection = rng.standard_normal((_THUMB * _THUMB * 3, dim)).astype(np.float32)
        self.images_encoded = 0
        self.texts_encoded = 0

    @property
    def dim(self) -> int:
        return self.identity.dim

    @property
    def context_length(self) -> int:
        return CONTEXT_LENGTH

    def count_tokens(self, text: str) -> int:
        return len(text.split()) + 2

    def prepare_image(self, image: Image.Image) -> np.ndarray:
        rgb = image if image.mode == "RGB" else image.convert("RGB")  # no full-size copy of a decoded RGB image
        thumb = rgb.resize((_THUMB, _THUMB), Image.Resampling.BILINEAR)
        pixels = np.asarray(thumb, dtype=np.float32).reshape(-1) / 255.0
        return pixels - 0.5

    def encode_prepared(self, prepared: Sequence[np.ndarray]) -> np.ndarray:
        self.images_encoded += len(prepared)
        if not prepared:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalise(np.stack(prepared) @ self._projection)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_prepared([self.prepare_image(image) for image in images])

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.texts_encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split()[: CONTEXT_LENGTH - 2] or [""]:
                digest = hashlib.sha256(word.encode()).digest()
                out[row, int.from_bytes(digest[:4], "little") % self.dim] += 1.0
                out[row, int.from_bytes(digest[4:8], "little") % self.dim] -= 0.5
        return l2_normalise(out)
