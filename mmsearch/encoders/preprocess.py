"""open_clip's inference preprocessing in Pillow + numpy, without torch or torchvision.

open_clip builds ``Compose([resize, crop, MaybeConvertMode, MaybeToTensor, Normalize])`` from the model's
``preprocess_cfg`` (``open_clip.transform.image_transform``, ``is_train=False``); this module does the same steps:

* ``shortest`` (the default): a square target resizes the shorter side to the target (torchvision ``Resize(int)``:
  the longer side is ``int(target * long / short)``, truncated) and centre-crops; a non-square target resizes by
  the ratio of the shorter side (``ResizeKeepRatio``: sides rounded) and centre-crops;
* ``longest``: resizes by the ratio of the longer side (``ResizeKeepRatio(longest=1)``) and centre-crops or pads
  with ``fill_color`` (``CenterCropOrPad``);
* ``squash``: resizes to the target, ignoring the aspect ratio.

Resizing is Pillow's (torchvision does ``PIL.Image.resize`` for PIL input too, skipping it when the size already
matches), so the pixels are the same bytes; ``ToTensor`` + ``Normalize`` are float32 ``x / 255``, ``(x - mean) /
std``. Exactness is measured on embeddings, not pixels (tests/integration/test_onnx_image.py).

``fast=True`` is the ingest's path (the engine's ONNX image tower): the same sampling grid and filter, but only
the region the centre crop keeps is resized (two one-axis passes, as Pillow's own resize runs them, over the
kept columns and the rows they need), and the normalisation is one float32 multiply-add per value. On all 300
DEV photos the pixels stay within 2 levels of the exact ones (floating-point rounding of the filter weights, in
about 0.02 % of them); where Pillow's own resize runs its two passes in the other order (it may, for some
shapes) sharp edges differ more (up to ~20 levels on noise); the floats are within a few float32 ulps. What
counts is the embedding: on the 300 DEV photos the fixture's vectors agree with open_clip's own transform + fp32
model at worst cosine 0.9999937, mean 0.9999998 (tests/integration/test_onnx_image.py; bar 0.995 / 0.999).
About 27 % less resize CPU and 60 % less normalisation CPU per DEV photo (bench/RESULTS.md, issue 13).
With ``resizer="simd"`` (the engine's choice where cykooz-resizer is installed) the fast path's two passes run
on a SIMD resizer with Pillow's filters and grid (:mod:`mmsearch.encoders.simdresize`): pixels within 2 levels of
Pillow's passes, worst cosine 0.99998 on the same check, about a quarter of Pillow's resize CPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

from mmsearch.encoders import simdresize

RESIZE_MODES = ("shortest", "longest", "squash")
RESIZERS = ("pillow", "simd")
_RESAMPLING = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
_SUPPORT = {Image.Resampling.BICUBIC: 2.0, Image.Resampling.BILINEAR: 1.0}
"""Pillow's filter support (in source pixels at scale 1): how far a resized pixel reads on either side."""


@dataclass(frozen=True)
class ImagePreprocess:
    """The preprocessing of one model: ``prepare`` per image (uint8 HWC), ``batch`` per batch (float32 NCHW)."""

    size: tuple[int, int]
    """(height, width) the model reads."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0
    fast: bool = False
    """False: open_clip's pixels and floats bit for bit. True: the ingest's cheaper path (see the module docs)."""
    resizer: str = "pillow"
    """The fast path's one-axis passes: ``pillow``, or ``simd`` (:mod:`mmsearch.encoders.simdresize`, cykooz-resizer:
    the same filters and grid, within 2 levels of Pillow's passes, about a quarter of the CPU)."""

    def __post_init__(self) -> None:
        if self.resizer not in RESIZERS:
            raise ValueError(f"resizer must be one of {', '.join(RESIZERS)}, not {self.resizer!r}")
        if self.resizer == "simd" and not self.fast:
            raise ValueError("the simd resizer is a variant of the fast path (fast=True); the exact path is Pillow's")
        if self.resizer == "simd" and not simdresize.available():
            from mmsearch.hints import install_hint

            raise ValueError(f"the simd resizer needs cykooz-resizer ({install_hint('onnx')})")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode must be one of {', '.join(RESIZE_MODES)}, not {self.resize_mode!r}")
        if self.interpolation not in _RESAMPLING:
            raise ValueError(f"interpolation must be bicubic or bilinear, not {self.interpolation!r}")
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"size must be (height, width) of positive sides, not {self.size!r}")

    @classmethod
    def from_config(cls, cfg: dict[str, Any], fast: bool = False, resizer: str = "pillow") -> ImagePreprocess:
        """From open_clip's ``model.visual.preprocess_cfg`` (as recorded in ``ModelIdentity.preprocess``)."""
        size = cfg.get("size", 224)
        height, width = (size, size) if isinstance(size, int) else (int(size[-2]), int(size[-1]))
        mean = _triple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
        std = _triple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
        interpolation = cfg.get("interpolation") or "bicubic"
        return cls(
            (height, width),
            mean,
            std,
            "bilinear" if interpolation == "bilinear" else "bicubic",  # open_clip: anything else is bicubic
            cfg.get("resize_mode") or "shortest",
            int(cfg.get("fill_color") or 0),
            fast,
            resizer,
        )

    def prepare(self, image: Image.Image) -> np.ndarray:
        """Resize and crop (or pad) as open_clip does; the RGB pixels as a (height, width, 3) uint8 array."""
        cropped = self._resize_kept_region(image) if self.fast else None
        image = cropped if cropped is not None else self._crop_or_pad(self._resize(image))
        if image.mode != "RGB":
            image = image.convert("RGB")
        return np.asarray(image, dtype=np.uint8)

    def batch(self, prepared: Sequence[np.ndarray]) -> np.ndarray:
        """Stacked, scaled to [0, 1] and normalised: the float32 (n, 3, height, width) batch the model reads.

        Each uint8 value is looked up in :attr:`levels`, the 256 normalised values per channel computed once with
        the float32 operations ``ToTensor`` + ``Normalize`` do (``x / 255``, ``- mean``, ``/ std``): the same
        numbers bit for bit, at about a third of the CPU of doing the arithmetic on every pixel."""
        prepared = list(prepared)
        if not prepared:
            return np.zeros((0, 3, *self.size), dtype=np.float32)
        out = np.empty((len(prepared), 3, *prepared[0].shape[:2]), dtype=np.float32)
        if self.fast:
            return self._scale_batch(prepared, out)
        levels = self.levels
        for index, pixels in enumerate(prepared):
            planes = np.ascontiguousarray(pixels.transpose(2, 0, 1))  # HWC -> CHW, still uint8
            for channel in range(3):
                np.take(levels[channel], planes[channel], out=out[index, channel])
        return out

    def _scale_batch(self, prepared: list[np.ndarray], out: np.ndarray) -> np.ndarray:
        """The fast path's normalisation: ``x * (1 / (255 std)) - mean / std`` in float32, written in place."""
        scale, offset = self.affine
        for index, pixels in enumerate(prepared):
            np.multiply(pixels.transpose(2, 0, 1), scale, out=out[index])
            out[index] += offset
        return out

    @cached_property
    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, offset), each (3, 1, 1) float32: the normalisation as one multiply-add per value."""
        std, mean = np.asarray(self.std, dtype=np.float64), np.asarray(self.mean, dtype=np.float64)
        scale, offset = 1.0 / (255.0 * std), -mean / std
        return scale.astype(np.float32).reshape(3, 1, 1), offset.astype(np.float32).reshape(3, 1, 1)

    @cached_property
    def levels(self) -> np.ndarray:
        """(3, 256) float32: channel ``c``'s normalised value of each 8-bit level, as open_clip computes it."""
        values = np.arange(256, dtype=np.float32)[:, None] / np.float32(255)
        values = (values - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(values.T, dtype=np.float32)

    def _resize(self, image: Image.Image) -> Image.Image:
        new_w, new_h = self._resized_size(*image.size)
        if (new_w, new_h) == image.size:
            return image  # torchvision returns the image untouched when the size already matches
        return image.resize((new_w, new_h), self._filter)

    def _resized_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the resized image, before the crop or pad."""
        target_h, target_w = self.size
        if self.resize_mode == "squash":
            return target_w, target_h
        if self.resize_mode == "shortest" and target_h == target_w:
            new_h, new_w = _shorter_side_to(height, width, target_h)
            return new_w, new_h
        ratio_h, ratio_w = height / target_h, width / target_w
        ratio = max(ratio_h, ratio_w) if self.resize_mode == "longest" else min(ratio_h, ratio_w)
        return round(width / ratio), round(height / ratio)

    @property
    def _filter(self) -> Image.Resampling:
        # open_clip builds ResizeKeepRatio for a non-square `shortest` target without passing the interpolation
        keep_ratio_default = self.resize_mode == "shortest" and self.size[0] != self.size[1]
        return _RESAMPLING["bicubic" if keep_ratio_default else self.interpolation]

    def _resize_kept_region(self, image: Image.Image) -> Image.Image | None:
        """The fast path: resize only the centre crop's region; None where there is no crop to save (a squash,
        a pad, or a resize to the image's own size), which the exact path then does."""
        width, height = image.size
        new_w, new_h = self._resized_size(width, height)
        crop_h, crop_w = self.size
        if self.resize_mode == "squash" or crop_w > new_w or crop_h > new_h or (new_w, new_h) == (width, height):
            return None
        if image.mode not in ("RGB", "L"):  # Pillow premultiplies alpha and maps palettes per resize call
            return None
        left, top = round((new_w - crop_w) / 2.0), round((new_h - crop_h) / 2.0)
        one_axis = _simd_pass if self.resizer == "simd" and image.mode in simdresize.MODES else _pillow_pass
        return _resize_region(image, (new_w, new_h), (left, top, crop_w, crop_h), self._filter, one_axis)

    def _crop_or_pad(self, image: Image.Image) -> Image.Image:
        """torchvision's ``center_crop`` (open_clip's ``center_crop_or_pad`` with ``fill_color`` for ``longest``)."""
        if self.resize_mode == "squash":
            return image
        crop_h, crop_w = self.size
        width, height = image.size
        if crop_w > width or crop_h > height:
            fill = self.fill_color if self.resize_mode == "longest" else 0
            left, top = max(crop_w - width, 0) // 2, max(crop_h - height, 0) // 2
            padded = Image.new(image.mode, (max(width, crop_w), max(height, crop_h)), _fill(image.mode, fill))
            padded.paste(image, (left, top))
            image, (width, height) = padded, padded.size
            if (width, height) == (crop_w, crop_h):
                return image
        top, left = round((height - crop_h) / 2.0), round((width - crop_w) / 2.0)
        return image.crop((left, top, left + crop_w, top + crop_h))


Box = tuple[float, float, float, float]
OneAxisResize = Callable[[Image.Image, tuple[int, int], Box, Image.Resampling], Image.Image]
"""``(image, size, box, filter) -> image.resize(size, filter, box=box)``, by Pillow or by the SIMD resizer."""


def _pillow_pass(image: Image.Image, size: tuple[int, int], box: Box, resample: Image.Resampling) -> Image.Image:
    return image.resize(size, resample, box=box)


def _simd_pass(image: Image.Image, size: tuple[int, int], box: Box, resample: Image.Resampling) -> Image.Image:
    return simdresize.resize(image, size, box, resample)


def _resize_region(
    image: Image.Image,
    resized: tuple[int, int],
    region: tuple[int, int, int, int],
    resample: Image.Resampling,
    one_axis: OneAxisResize = _pillow_pass,
) -> Image.Image:
    """``image.resize(resized, resample).crop(region as left, top, width, height)``, computing only the region.

    Two one-axis passes in Pillow's own order (across, then down), each with a ``box`` in source coordinates on
    the same sampling grid as the full resize: across over the kept columns of the rows the second pass reads,
    then down to the kept rows. (One ``resize`` with a box differs by up to 10 levels on portrait photos: Pillow
    then orders the passes differently; two explicit passes differ by at most rounding of the weights.)"""
    width, height = image.size
    left, top, crop_w, crop_h = region
    scale_x, scale_y = width / resized[0], height / resized[1]
    y0, y1 = top * scale_y, (top + crop_h) * scale_y
    reach = _SUPPORT[resample] * max(scale_y, 1.0) + 1.0  # the rows the second pass reads, with a margin
    first, last = max(0, math.floor(y0 - reach)), min(height, math.ceil(y1 + reach))
    if (first, last) != (0, height):
        image = image.crop((0, first, width, last))
        y0, y1 = y0 - first, y1 - first
    rows = last - first
    if resized[0] == width:  # no pass across, as in the full resize: the kept columns as they are
        image = image.crop((left, 0, left + crop_w, rows)) if crop_w != width else image
    else:
        image = one_axis(image, (crop_w, rows), (left * scale_x, 0, (left + crop_w) * scale_x, rows), resample)
    if resized[1] == height:  # no pass down either
        return image.crop((0, top - first, crop_w, top - first + crop_h))
    return one_axis(image, (crop_w, crop_h), (0, y0, crop_w, y1), resample)


def _shorter_side_to(height: int, width: int, side: int) -> tuple[int, int]:
    """torchvision's ``Resize(int)``: the shorter side becomes ``side``, the longer one scales (truncated)."""
    if width <= height:
        return int(side * height / width), side
    return side, int(side * width / height)


def _triple(value: Any) -> tuple[float, float, float]:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * 3
    return float(values[0]), float(values[1]), float(values[2])


def _fill(mode: str, fill: int) -> Any:
    return (fill,) * len(mode) if len(mode) > 1 else fill
