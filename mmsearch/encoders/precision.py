"""Which numeric precision a model tower runs in on the CPU: the decision rule, the CPU check and the probe set.

``auto`` runs a tower in bfloat16 only when the CPU has native bf16 instructions (AVX512-BF16 or AMX-BF16 on
x86, BF16 on Arm) **and** the tower's bf16 vectors agree with its float32 vectors on a fixed probe set:

* worst cosine >= :data:`MIN_WORST_COSINE` (0.99) and mean cosine >= :data:`MIN_MEAN_COSINE` (0.998).

The bar is "bf16 moves vectors less than re-saving the photo as a JPEG at quality 95 does": on the 300 Flickr8k
DEV photos that re-save moves the test fixture's image vectors to worst 0.987 / mean 0.998, while bf16 moves them to
worst 0.995 / mean 0.9992 (text-to-image search agrees: top-10 overlap 0.97, R@1/5/10 24.5/53.9/67.9 against
24.1/53.5/67.5 in fp32). The fixture's EfficientNet tower is the sensitive case: its text tower (0.99991 worst over
1,500 captions) and a random-weight ViT-B-32 (image 0.99995, text 0.99991 on the probes) sit near 0.9999. A tower
that breaks in bf16 (overflow, NaN, a lost normalisation) lands far below the bar and stays in float32, with the
reason recorded. ``fp32`` never casts; ``bf16`` casts without checks. This module needs neither torch nor open_clip.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mmsearch.config import PRECISIONS

MIN_WORST_COSINE = 0.99
MIN_MEAN_COSINE = 0.998
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""x86 ``/proc/cpuinfo`` flags for native bf16 arithmetic (AVX512-BF16: Cooper Lake, Zen 4; AMX: Sapphire Rapids)."""
ARM_BF16_FEATURE = "bf16"

PROBE_TEXTS = (
    "a dog running on the beach",
    "two children playing football in a muddy field",
    "a man in a red jacket climbs a snowy mountain",
    "a woman rides a bicycle down a busy city street at night",
    "a black and white photo of an old harbour with fishing boats",
    "",
    "Ein Hund läuft über die Straße, café crème",
    "a very long caption that goes on and on about a crowded market with stalls of fruit, fish, spices, "
    "flowers and bread, people haggling, children running between the tables and a band playing in the corner",
)
"""Texts every text tower is checked on: caption-like, empty, non-ASCII, past a short context."""
PROBE_IMAGE_COUNT = 8


@dataclass(frozen=True)
class Agreement:
    """How closely reduced-precision vectors match float32 ones, row by row."""

    worst_cosine: float
    mean_cosine: float
    probes: int

    @property
    def passed(self) -> bool:
        return self.worst_cosine >= MIN_WORST_COSINE and self.mean_cosine >= MIN_MEAN_COSINE

    def describe(self) -> str:
        verdict = "passes" if self.passed else "fails"
        return (
            f"bf16 vs fp32 on {self.probes} probes: worst cosine {self.worst_cosine:.5f}, mean {self.mean_cosine:.5f} "
            f"({verdict} worst >= {MIN_WORST_COSINE}, mean >= {MIN_MEAN_COSINE})"
        )


@dataclass(frozen=True)
class PrecisionChoice:
    """What one tower runs in, and why; ``agreement`` is set when the check ran."""

    dtype: str
    reason: str
    agreement: Agreement | None = None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {"dtype": self.dtype, "reason": self.reason}
        if self.agreement is not None:
            data["worst_cosine"] = round(self.agreement.worst_cosine, 6)
            data["mean_cosine"] = round(self.agreement.mean_cosine, 6)
        return data


def agreement(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    """Row-wise cosines between two sets of vectors (any scale); a NaN or zero row counts as cosine -1."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosines = np.where(norms > 0, (a * b).sum(1) / np.maximum(norms, 1e-300), -1.0)
    cosines = np.nan_to_num(cosines, nan=-1.0)
    return Agreement(float(cosines.min()), float(cosines.mean()), len(cosines))


def choose_cpu_precision(setting: str, support: tuple[bool, str], check: Callable[[], Agreement]) -> PrecisionChoice:
    """The rule: ``fp32`` stays; ``bf16`` casts; ``auto`` casts only if supported and ``check()`` passes.

    ``support`` is ``(supported, why)`` as :func:`cpu_bf16_support` returns it; ``check`` runs the agreement
    check (only called when it matters).
    """
    if setting not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {setting!r}")
    if setting == "fp32":
        return PrecisionChoice("fp32", "fp32 asked for")
    if setting == "bf16":
        return PrecisionChoice("bf16", "bf16 asked for (no support or agreement check)")
    supported, why = support
    if not supported:
        return PrecisionChoice("fp32", f"auto: {why}")
    try:
        result = check()
    except Exception as exc:  # a tower that cannot run in bf16 at all stays in float32
        return PrecisionChoice("fp32", f"auto: bf16 failed to run ({type(exc).__name__}: {exc})")
    return PrecisionChoice("bf16" if result.passed else "fp32", f"auto: {result.describe()}", result)


def cpu_bf16_support(cpuinfo: str | None = None, torch_check: Callable[[], bool] | None = None) -> tuple[bool, str]:
    """``(supported, why)``: whether this CPU does bf16 arithmetic natively (emulated bf16 is slower than fp32).

    Linux: the ``/proc/cpuinfo`` flags (``cpuinfo`` overrides the file, for tests). Elsewhere, or when the file
    cannot be read: ``torch_check`` (torch's own ``torch.cpu._is_avx512_bf16_supported``), if given.
    """
    if cpuinfo is None and sys.platform.startswith("linux"):
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            cpuinfo = None
    if cpuinfo:
        flags = _cpu_flags(cpuinfo)
        found = [flag for flag in CPU_BF16_FLAGS if flag in flags]
        if found:
            return True, f"CPU has {', '.join(found)}"
        if ARM_BF16_FEATURE in flags:
            return True, "CPU has bf16 (Arm)"
        return False, "CPU has no native bf16 (no avx512_bf16 / amx_bf16 flag in /proc/cpuinfo)"
    if torch_check is not None:
        try:
            if torch_check():
                return True, "torch reports AVX512-BF16"
        except Exception:  # a private torch helper that moved or failed: treat as unknown
            pass
    return False, "native bf16 support not detected on this platform"


def _cpu_flags(cpuinfo: str) -> set[str]:
    """The flags of the first CPU (x86 ``flags``, Arm ``Features``)."""
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return set(value.split())
    return set()


def probe_images(count: int = PROBE_IMAGE_COUNT, size: tuple[int, int] = (320, 240)) -> list[Image.Image]:
    """Deterministic synthetic photos: smooth colour fields, shapes, edges, texture and blur (seeded)."""
    return [_probe_image(seed, size) for seed in range(count)]


def _probe_image(seed: int, size: tuple[int, int]) -> Image.Image:
    rng = np.random.default_rng(20_240 + seed)
    width, height = size
    field = rng.integers(0, 256, size=(3, 4, 3), dtype=np.uint8)  # a 4x3 colour grid, smoothly enlarged
    image = Image.fromarray(field).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 12))):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, size=2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, size=2))
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse((x0, y0, x1 + 1, y1 + 1), fill=colour)
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 8)))
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0.0, 4.0 + 4.0 * seed, size=pixels.shape)  # sensor-like noise, stronger in later probes
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return image.filter(ImageFilter.GaussianBlur(radius=0.5 + (seed % 3))) if seed % 2 else image
