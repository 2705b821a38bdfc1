"""The encoder protocol every dual encoder backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from mmsearch.identity import ModelIdentity

if TYPE_CHECKING:
    from PIL import Image  # annotations only: a text query never imports Pillow


@runtime_checkable
class Encoder(Protocol):
    """A dual encoder mapping images and texts into one L2-normalised space.

    ``prepare_image`` runs in decoder worker threads (resize, crop, ...);
    ``encode_prepared`` runs on the encoding thread, so decoding overlaps with
    encoding. All outputs are float32 arrays of shape ``(n, dim)`` with unit rows.
    The optional capabilities have defaults in :class:`EncoderBase`: ``min_decode_size`` (width, height):
    JPEGs are then decoded at a reduced scale, never below it (``mmsearch.imageio``); ``batch_size``, the images
    per ``encode_prepared`` call measured fastest on this machine (None: the device's default);
    ``parallel_batches(requested)``, a context manager yielding how many ``encode_prepared`` calls may run at
    once (threads) for the best throughput; ``precision``, what each tower ran in; ``text_tower``, what an
    ONNX export of the text tower reads (``mmsearch.encoders.onnx_export``); ``device``.
    """

    identity: ModelIdentity
    device: str

    @property
    def min_decode_size(self) -> tuple[int, int] | None: ...

    @property
    def batch_size(self) -> int | None: ...

    @property
    def precision(self) -> dict[str, dict[str, Any]]: ...

    @property
    def text_tower(self) -> Any: ...

    def parallel_batches(self, requested: int = 0) -> AbstractContextManager[int]: ...

    @property
    def dim(self) -> int: ...

    def prepare_image(self, image: Image.Image) -> Any: ...

    def encode_prepared(self, prepared: Sequence[Any]) -> np.ndarray: ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    @property
    def context_length(self) -> int:
        """The most tokens (special tokens included) the text tower reads; longer text is cut."""
        ...

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes in the text tower, special tokens included."""
        ...


class EncoderBase:
    """The defaults of :class:`Encoder`'s optional capabilities; every encoder derives from it."""

    device: str = "cpu"

    @property
    def min_decode_size(self) -> tuple[int, int] | None:
        """None: images are decoded at full size."""
        return None

    @property
    def batch_size(self) -> int | None:
        """None: images per ``encode_prepared`` call are the device's default (``mmsearch.config``)."""
        return None

    @property
    def precision(self) -> dict[str, dict[str, Any]]:
        """Nothing to report: the encoder has no precision choice."""
        return {}

    @property
    def text_tower(self) -> Any:
        """None: no text tower to export."""
        return None

    def parallel_batches(self, requested: int = 0) -> AbstractContextManager[int]:
        """One batch at a time unless more are asked for."""
        return nullcontext(max(1, requested))


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Return float32 rows scaled to unit length (zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
