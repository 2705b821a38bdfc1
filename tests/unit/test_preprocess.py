"""The torch-free preprocessing against open_clip's own transform, for every inference configuration it builds.

The pixels must be the same bytes (both resize with Pillow), so the float batch equals open_clip's tensor; the
embedding-level check on the fixture model is in tests/integration/test_onnx_image.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mmsearch.encoders.preprocess import ImagePreprocess

CONFIGS = [
    {"size": (224, 224), "mean": [0.5] * 3, "std": [0.5] * 3, "interpolation": "bicubic", "resize_mode": "shortest"},
    {"size": (224, 224), "interpolation": "bilinear", "resize_mode": "shortest"},
    {"size": (160, 224), "interpolation": "bilinear", "resize_mode": "shortest"},
    {"size": (224, 224), "interpolation": "bicubic", "resize_mode": "longest", "fill_color": 7},
    {"size": (192, 256), "interpolation": "bicubic", "resize_mode": "longest", "fill_color": 0},
    {"size": (224, 224), "interpolation": "bicubic", "resize_mode": "squash"},
    {"size": (200, 120), "interpolation": "bilinear", "resize_mode": "squash"},
]


def open_clip_transform(cfg: dict):
    transform = pytest.importorskip("open_clip.transform")
    return transform.image_transform(
        cfg["size"],
        is_train=False,
        mean=cfg.get("mean"),
        std=cfg.get("std"),
        resize_mode=cfg.get("resize_mode"),
        interpolation=cfg.get("interpolation"),
        fill_color=cfg.get("fill_color", 0),
    )


def picture(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda cfg: f"{cfg['resize_mode']}-{cfg['size']}-{cfg['interpolation']}")
@settings(max_examples=25, deadline=None)
@given(width=st.integers(8, 700), height=st.integers(8, 700), seed=st.integers(0, 2**16))
def test_the_batch_equals_open_clips_tensor(cfg: dict, width: int, height: int, seed: int) -> None:
    image = picture(width, height, seed)
    reference = open_clip_transform(cfg)(image).numpy()
    ours = ImagePreprocess.from_config(cfg)
    prepared = ours.prepare(image)
    assert prepared.dtype == np.uint8 and prepared.shape == (*cfg["size"], 3)
    np.testing.assert_allclose(ours.batch([prepared])[0], reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("size", [(224, 224), (500, 375), (375, 500), (224, 300), (100, 60)])
def test_the_fixture_config_matches_exactly_on_photo_sizes(size: tuple[int, int]) -> None:
    cfg = CONFIGS[0]
    image = picture(*size, seed=sum(size))
    reference = open_clip_transform(cfg)(image).numpy()
    ours = ImagePreprocess.from_config(cfg)
    np.testing.assert_array_equal(ours.batch([ours.prepare(image)])[0], reference)


def test_a_greyscale_image_comes_out_rgb() -> None:
    ours = ImagePreprocess.from_config(CONFIGS[0])
    grey = picture(300, 200, 1).convert("L")
    assert ours.prepare(grey).shape == (224, 224, 3)


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="resize_mode"):
        ImagePreprocess((224, 224), (0.5,) * 3, (0.5,) * 3, resize_mode="stretch")
    with pytest.raises(ValueError, match="interpolation"):
        ImagePreprocess((224, 224), (0.5,) * 3, (0.5,) * 3, interpolation="lanczos")
    with pytest.raises(ValueError, match="size"):
        ImagePreprocess((0, 224), (0.5,) * 3, (0.5,) * 3)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda cfg: f"{cfg['resize_mode']}-{cfg['size']}-{cfg['interpolation']}")
def test_the_level_table_gives_the_float32_arithmetic_bit_for_bit(cfg: dict) -> None:
    """``batch`` looks every uint8 level up in a table: it must equal ``(x / 255 - mean) / std`` in float32 exactly,
    for every level of every channel, and keep each image of a batch in its place."""
    ours = ImagePreprocess.from_config(cfg)
    height, width = ours.size
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8) for _ in range(3)]
    images[0].reshape(-1, 3)[:256] = np.arange(256, dtype=np.uint8)[:, None]  # every level in every channel
    pixels = np.stack(images).astype(np.float32) / np.float32(255)
    pixels = (pixels - np.asarray(ours.mean, dtype=np.float32)) / np.asarray(ours.std, dtype=np.float32)
    expected = pixels.transpose(0, 3, 1, 2)
    batch = ours.batch(images)
    assert batch.dtype == np.float32 and batch.flags.c_contiguous
    np.testing.assert_array_equal(batch, expected)
    assert ours.batch([]).shape == (0, 3, height, width)


# The fast path (``fast=True``, what the engine's ONNX image tower runs): the same grid and filter over only the
# region the crop keeps, and a multiply-add normalisation. Not bit-exact: its pixels stay within a few levels of
# open_clip's, its floats within float32 rounding; the embeddings are checked against open_clip on the 300 DEV
# photos in tests/integration/test_onnx_image.py (worst cosine 0.99999).

PHOTO_SIZES = [(384, 288), (288, 384), (384, 256), (256, 384), (500, 375), (375, 500), (640, 427), (1024, 768)]


def photo(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like picture (smooth colour fields, shapes, edges): the calibration's probe generator."""
    from mmsearch.encoders.precision import probe_images

    return probe_images(seed + 1, (width, height))[seed]


@pytest.mark.parametrize("size", PHOTO_SIZES)
@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=lambda cfg: f"{cfg['size']}-{cfg['interpolation']}")
def test_the_fast_path_keeps_photo_pixels_within_two_levels(cfg: dict, size: tuple[int, int]) -> None:
    exact, fast = ImagePreprocess.from_config(cfg), ImagePreprocess.from_config(cfg, fast=True)
    image = photo(*size, seed=sum(size) % 5)
    ours, reference = fast.prepare(image).astype(int), exact.prepare(image).astype(int)
    assert ours.shape == reference.shape == (*cfg["size"], 3)
    difference = np.abs(ours - reference)
    assert difference.max() <= 2 and (difference > 0).mean() < 0.01


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda cfg: f"{cfg['resize_mode']}-{cfg['size']}-{cfg['interpolation']}")
@settings(max_examples=25, deadline=None)
@given(width=st.integers(8, 900), height=st.integers(8, 900), seed=st.integers(0, 2**16))
def test_the_fast_path_stays_close_to_open_clips_pixels_for_any_size(cfg: dict, width: int, height: int, seed: int):
    """Noise is the worst case (Pillow may run its own two passes in the other order: the clipping in between
    differs at sharp edges); still within a level on average, and the same shape for every config."""
    exact, fast = ImagePreprocess.from_config(cfg), ImagePreprocess.from_config(cfg, fast=True)
    image = picture(width, height, seed)
    ours, reference = fast.prepare(image), exact.prepare(image)
    assert ours.dtype == np.uint8 and ours.shape == reference.shape
    assert np.abs(ours.astype(int) - reference.astype(int)).mean() < 1.0
    np.testing.assert_allclose(fast.batch([reference]), exact.batch([reference]), rtol=0, atol=2e-6)


def test_the_fast_path_resizes_only_the_kept_region(monkeypatch) -> None:
    """A 384 x 288 photo: the exact path resizes all of it to 298 x 224 and crops 224 x 224; the fast path's
    passes never make anything wider than the crop (about a quarter less work)."""
    sizes: list[tuple[int, int]] = []
    resize = Image.Image.resize

    def spy(self, size, *args, **kwargs):
        sizes.append(tuple(size))
        return resize(self, size, *args, **kwargs)

    image = photo(384, 288, seed=1)
    monkeypatch.setattr(Image.Image, "resize", spy)
    ImagePreprocess.from_config(CONFIGS[0]).prepare(image)
    assert sizes == [(298, 224)]
    sizes.clear()
    ImagePreprocess.from_config(CONFIGS[0], fast=True).prepare(image)
    assert sizes and all(width <= 224 for width, _ in sizes)


def test_the_fast_path_leaves_images_without_a_crop_to_the_exact_path() -> None:
    """A squash, a pad (``longest``), an image already at the target and a non-RGB/L mode: the same pixels."""
    image = photo(300, 200, seed=2)
    for cfg in (CONFIGS[3], CONFIGS[5]):
        exact, fast = ImagePreprocess.from_config(cfg), ImagePreprocess.from_config(cfg, fast=True)
        np.testing.assert_array_equal(fast.prepare(image), exact.prepare(image))
    exact, fast = ImagePreprocess.from_config(CONFIGS[0]), ImagePreprocess.from_config(CONFIGS[0], fast=True)
    for same in (photo(224, 224, seed=3), photo(224, 300, seed=3), image.convert("RGBA")):
        np.testing.assert_array_equal(fast.prepare(same), exact.prepare(same))
