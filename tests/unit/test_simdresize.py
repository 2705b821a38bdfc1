"""The fast path's SIMD resizer (``ImagePreprocess(fast=True, resizer="simd")``, the engine's where cykooz-resizer
is installed): Pillow's filters and sampling grid, so its pixels stay within rounding of Pillow's own passes; the
embedding-level check on the 300 DEV photos is in tests/integration/test_onnx_image.py."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from mmsearch.encoders import selection, simdresize
from mmsearch.encoders.preprocess import ImagePreprocess
from tests.unit.test_preprocess import CONFIGS, PHOTO_SIZES, photo, picture

needs_simd = pytest.mark.skipif(not simdresize.available(), reason="cykooz-resizer not installed (mmsearch[onnx])")


def simd(cfg: dict) -> ImagePreprocess:
    return ImagePreprocess.from_config(cfg, fast=True, resizer="simd")


@needs_simd
@pytest.mark.parametrize("size", PHOTO_SIZES)
@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=lambda cfg: f"{cfg['size']}-{cfg['interpolation']}")
def test_the_simd_passes_keep_photo_pixels_within_a_level_of_pillows(cfg: dict, size: tuple[int, int]) -> None:
    """Measured: at most 1 level apart, in 0.1-2.3 % of the values (the weights' fixed-point rounding)."""
    image = photo(*size, seed=sum(size) % 5)
    pillow = ImagePreprocess.from_config(cfg, fast=True).prepare(image).astype(int)
    ours = simd(cfg).prepare(image).astype(int)
    assert ours.shape == pillow.shape == (*cfg["size"], 3)
    difference = np.abs(ours - pillow)
    assert difference.max() <= 1 and (difference > 0).mean() < 0.05
    exact = ImagePreprocess.from_config(cfg).prepare(image).astype(int)
    assert np.abs(ours - exact).max() <= 2


@needs_simd
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda cfg: f"{cfg['resize_mode']}-{cfg['size']}-{cfg['interpolation']}")
@settings(max_examples=25, deadline=None)
@given(width=st.integers(8, 900), height=st.integers(8, 900), seed=st.integers(0, 2**16), grey=st.booleans())
def test_the_simd_path_stays_close_to_open_clips_pixels_for_any_size(cfg, width, height, seed, grey) -> None:
    """Any size, shrinking or enlarging, RGB or L (noise: the worst case), every config: same shape, within a
    level on average."""
    image = picture(width, height, seed)
    image = image.convert("L") if grey else image
    ours, reference = simd(cfg).prepare(image), ImagePreprocess.from_config(cfg).prepare(image)
    assert ours.dtype == np.uint8 and ours.shape == reference.shape
    assert np.abs(ours.astype(int) - reference.astype(int)).mean() < 1.0


@needs_simd
def test_the_simd_path_calls_no_pillow_resize(monkeypatch) -> None:
    calls: list[tuple[int, int]] = []
    resize = Image.Image.resize

    def spy(self, size, *args, **kwargs):
        calls.append(tuple(size))
        return resize(self, size, *args, **kwargs)

    image, preprocess = photo(384, 288, seed=1), simd(CONFIGS[0])
    monkeypatch.setattr(Image.Image, "resize", spy)
    assert preprocess.prepare(image).shape == (224, 224, 3)
    assert calls == []


@needs_simd
def test_the_simd_path_leaves_images_without_a_crop_to_the_exact_path() -> None:
    image = photo(300, 200, seed=2)
    for cfg in (CONFIGS[3], CONFIGS[5]):
        np.testing.assert_array_equal(simd(cfg).prepare(image), ImagePreprocess.from_config(cfg).prepare(image))
    exact = ImagePreprocess.from_config(CONFIGS[0])
    for same in (photo(224, 224, seed=3), photo(224, 300, seed=3), image.convert("RGBA")):
        np.testing.assert_array_equal(simd(CONFIGS[0]).prepare(same), exact.prepare(same))


@needs_simd
def test_decoder_threads_each_get_their_own_resizer() -> None:
    """The resizer keeps scratch buffers: threads preparing at once get the pixels one thread gets."""
    prepare = simd(CONFIGS[0]).prepare
    images = [photo(*size, seed=index % 5) for index, size in enumerate(PHOTO_SIZES * 3)]
    alone = [prepare(image) for image in images]
    with ThreadPoolExecutor(max_workers=4) as pool:
        together = list(pool.map(prepare, images))
    assert all(np.array_equal(a, b) for a, b in zip(alone, together, strict=True))


def test_the_resizer_is_validated(monkeypatch) -> None:
    with pytest.raises(ValueError, match="resizer must be one of"):
        ImagePreprocess.from_config(CONFIGS[0], fast=True, resizer="opencv")
    with pytest.raises(ValueError, match="variant of the fast path"):
        ImagePreprocess.from_config(CONFIGS[0], resizer="simd")
    monkeypatch.setattr(simdresize, "available", lambda: False)
    with pytest.raises(ValueError, match="needs cykooz-resizer"):
        ImagePreprocess.from_config(CONFIGS[0], fast=True, resizer="simd")


def test_the_engine_resizes_with_simd_where_installed_and_enabled(monkeypatch) -> None:
    monkeypatch.setattr(simdresize, "available", lambda: True)
    assert selection.engine_resizer() == "simd"
    monkeypatch.setattr(selection, "ENGINE_SIMD_RESIZE", False)
    assert selection.engine_resizer() == "pillow"
    monkeypatch.setattr(selection, "ENGINE_SIMD_RESIZE", True)
    monkeypatch.setattr(selection, "ENGINE_FAST_PREPROCESS", False)  # the exact path is Pillow's
    assert selection.engine_resizer() == "pillow"
    monkeypatch.setattr(selection, "ENGINE_FAST_PREPROCESS", True)
    monkeypatch.setattr(simdresize, "available", lambda: False)  # not installed: Pillow's passes
    assert selection.engine_resizer() == "pillow"


def jpeg(image: Image.Image, **options) -> bytes:
    import io

    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90, **options)
    return buffer.getvalue()


@needs_simd
def test_every_kind_of_jpeg_the_ingest_decodes_gets_the_pillow_passes_outcome() -> None:
    """CMYK, greyscale, progressive and EXIF-turned JPEGs, decoded as the ingest decodes them (RGB, turned): the
    SIMD passes give the shape and, within rounding, the pixels of Pillow's passes."""
    from mmsearch.imageio import decode_image

    base = photo(384, 288, seed=4)
    exif = Image.Exif()
    exif[0x0112] = 6
    sources = {
        "cmyk": jpeg(base.convert("CMYK")),
        "grey": jpeg(base.convert("L")),
        "progressive": jpeg(base, progressive=True),
        "turned": jpeg(base, exif=exif),
    }
    pillow, ours = ImagePreprocess.from_config(CONFIGS[0], fast=True), simd(CONFIGS[0])
    for name, data in sources.items():
        image, full = decode_image(data, 10**8, (336, 336))
        assert image.mode == "RGB" and full == ((288, 384) if name == "turned" else (384, 288)), name
        expected, got = pillow.prepare(image).astype(int), ours.prepare(image).astype(int)
        assert got.shape == expected.shape == (224, 224, 3), name
        assert np.abs(got - expected).max() <= 2, name


@needs_simd
def test_one_thread_alternating_filters_and_boxes_gets_what_fresh_resizers_give() -> None:
    """A thread keeps its resizer and its options per filter: a call must not inherit the last call's box or
    filter (each result is compared with the same call on a new thread, whose resizer is fresh)."""
    image = photo(384, 288, seed=7)
    calls = [
        ((224, 288), (10.0, 0.0, 300.0, 288.0), Image.Resampling.BICUBIC),
        ((200, 150), (0.5, 3.25, 380.0, 280.0), Image.Resampling.BILINEAR),
        ((224, 224), (20.0, 10.0, 330.0, 250.0), Image.Resampling.BICUBIC),
        ((224, 288), (10.0, 0.0, 300.0, 288.0), Image.Resampling.BILINEAR),
    ]
    here = [np.asarray(simdresize.resize(image, *call)) for call in calls]
    fresh = []
    for call in calls:
        with ThreadPoolExecutor(max_workers=1) as pool:  # a new thread each: a new resizer and options
            fresh.append(pool.submit(lambda c: np.asarray(simdresize.resize(image, *c)), call).result())
    for ours, theirs in zip(here, fresh, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert not np.array_equal(here[0], here[3])  # the filter did change between those two
