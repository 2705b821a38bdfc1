"""Pillow's convolution resize, one call per axis, with SIMD: ``cykooz-resizer`` (Python bindings of the Rust crate
``fast_image_resize``: AVX2, SSE4.1 or Neon, picked at run time).

Its ``catmull_rom`` and ``bilinear`` convolution filters are Pillow's ``BICUBIC`` (a = -0.5) and ``BILINEAR``:
the same kernels and supports, widened by the scale when shrinking, on the same sampling grid (a crop box in
source pixels, as Pillow's ``box``). Only the fixed-point rounding of the weights differs. The fast path of
:class:`mmsearch.encoders.preprocess.ImagePreprocess` runs its two one-axis passes through :func:`resize` when its
``resizer`` is ``simd``: on all 300 DEV photos the pixels stay within 2 levels of Pillow's own passes (0.3 % of
them differ), and the fixture's vectors agree with open_clip's own transform + fp32 model at worst cosine
0.99998, mean 0.999998 (tests/integration/test_onnx_image.py), for about a quarter of Pillow's resize CPU
(bench/RESULTS.md, issue 13, fourth round).
"""

from __future__ import annotations

import importlib.util
import threading
from typing import Any

from PIL import Image

FILTERS = {Image.Resampling.BICUBIC: "catmull_rom", Image.Resampling.BILINEAR: "bilinear"}
"""Pillow's filters this resizer reproduces, by the name of its own."""
MODES = ("RGB", "L")
"""Pillow modes it resizes as Pillow does (no alpha to premultiply, no palette)."""
_local = threading.local()


def available() -> bool:
    """True when cykooz-resizer is installed (it ships with ``mmsearch[onnx]``); nothing is imported."""
    return importlib.util.find_spec("cykooz_resizer") is not None


def resize(
    image: Image.Image, size: tuple[int, int], box: tuple[float, float, float, float], resample: Image.Resampling
) -> Image.Image:
    """``image.resize(size, resample, box=box)`` (``box``: left, top, right, bottom in source pixels) for an RGB
    or L image and a filter of :data:`FILTERS`."""
    from cykooz_resizer import CropBox

    resizer, options = _thread_resizer(resample)
    width, height = image.size
    left, top, right, bottom = box
    options.crop_box = CropBox(left, top, min(right, width) - left, min(bottom, height) - top)  # float rounding
    out = Image.new(image.mode, size, None)  # not filled: the resize writes every pixel
    resizer.resize_pil(image, out, options)
    return out


def _thread_resizer(resample: Image.Resampling) -> tuple[Any, Any]:
    """This thread's resizer (it keeps scratch buffers between calls, so threads must not share one) and its
    options for ``resample``, made once per thread and filter (``resize_pil`` copies the options it is given)."""
    try:
        resizer, options = _local.resizer, _local.options
    except AttributeError:
        from cykooz_resizer import Resizer

        resizer, options = _local.resizer, _local.options = Resizer(), {}
    if resample not in options:
        from cykooz_resizer import FilterType, ResizeAlg, ResizeOptions

        options[resample] = ResizeOptions(ResizeAlg.convolution(FilterType[FILTERS[resample]]))
    return resizer, options[resample]
