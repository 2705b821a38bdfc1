"""The one factory the model side calls for an open_clip model: the best encoder for (model, device, engine,
precision), each tower on the engine the calibration picked (:mod:`mmsearch.encoders.engine_choice`).

On a CPU, with a warm shared cache (the model's identity, its verified ONNX exports and a cached engine choice
for this machine: :mod:`mmsearch.encoders.export_cache`), nothing is measured, exported or checked, and torch is
imported only for a tower that torch runs. A cold cache loads the model with open_clip once: both towers are
exported and verified, the candidates are measured, and everything is recorded for the next run. ``engine
torch`` is the open_clip encoder as before (its own precision rule); on CUDA the engine is always torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import importlib
import importlib.util
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmsearch.encoders.base import Encoder, EncoderBase, ModelIdentity
from mmsearch.encoders.engine_choice import (
    TOWERS,
    TowerChoice,
    cached_choice,
    candidates_for,
    check_engine,
    store_choice,
)
from mmsearch.encoders.export_cache import known_identity, model_folder, remember_identity
from mmsearch.encoders.text_side import RentPlan, RentThenBuy
from mmsearch.errors import ConfigError

log = logging.getLogger(__name__)

EXPORT_MODULES = ("onnx", "onnxruntime", "tokenizers", "ftfy")
ENGINE_FAST_PREPROCESS = True
"""The engine's ONNX image tower prepares photos with ``ImagePreprocess``'s fast path (resize only the kept
region, one multiply-add to normalise): on the 300 DEV photos its vectors agree with open_clip's own transform +
fp32 model at worst cosine >= 0.9999 (tests/integration/test_onnx_image.py; bar 0.995 / 0.999). The calibration
measures the same path. The exact path stays what exports are verified with."""
ENGINE_SIMD_RESIZE = True
"""... and runs the fast path's resize passes on the SIMD resizer where cykooz-resizer is installed
(:mod:`mmsearch.encoders.simdresize`; worst cosine 0.99998 on the same check, about a quarter of Pillow's resize
CPU); Pillow's passes without it."""


def engine_resizer() -> str:
    """The resizer of the engine's fast path: ``simd`` where enabled and installed, else ``pillow``."""
    from mmsearch.encoders import simdresize

    return "simd" if ENGINE_FAST_PREPROCESS and ENGINE_SIMD_RESIZE and simdresize.available() else "pillow"


class TowerEncoder(EncoderBase):
    """An encoder whose image and text towers may run on different engines (CPU only).

    ``image`` prepares and encodes images (an ``OnnxImageEncoder`` or the open_clip encoder); ``text`` builds
    the text side on first use (an ``OnnxTextEncoder``, the open_clip encoder, or a
    :class:`~mmsearch.encoders.text_side.RentThenBuy` of both where torch won the text tower only), so torch
    is not imported for an ingest without captions when only the text tower runs on torch.
    """

    device = "cpu"

    def __init__(
        self,
        identity: ModelIdentity,
        image: Any,
        text: Callable[[], Any],
        choice: dict[str, TowerChoice],
        tokenizer: Callable[[], Any] = lambda: None,
        text_choice: Callable[[], TowerChoice] | None = None,
    ) -> None:
        self.identity = identity
        self._image = image
        self._text_factory = text
        self._text_choice = text_choice
        """What the text side runs now, where that changes during the run (:mod:`mmsearch.encoders.text_side`)."""
        self._text: Any = None
        self._tokenizer_factory = tokenizer
        """Makes the export's ``QueryTokenizer`` (counts tokens without the text tower) or None (ask the text
        side); called on the first count, so an ingest of photos without captions never reads the tokenizer."""
        self._tokenizer_made = False
        self._tokenizer: Any = None
        self.choice = choice

    @property
    def dim(self) -> int:
        return self.identity.dim

    @property
    def precision(self) -> dict[str, dict[str, Any]]:
        """Per tower: the engine, the precision, why, and what the calibration measured."""
        now = dict(self.choice)
        if self._text_choice is not None:
            now["text"] = self._text_choice()
        return {tower: now[tower].to_dict() for tower in TOWERS}

    @property
    def min_decode_size(self) -> tuple[int, int]:
        return self._image.min_decode_size

    @property
    def batch_size(self) -> int | None:
        """The batch size the calibration measured fastest for the image tower's engine."""
        return self.choice["image"].batch

    @property
    def context_length(self) -> int:
        tokenizer = self._tokens()
        if tokenizer is not None:
            return int(tokenizer.spec.context_length)
        return int(self._text_side().context_length)

    def count_tokens(self, text: str) -> int:
        tokenizer = self._tokens()
        if tokenizer is not None:
            return int(tokenizer.count(text))
        return int(self._text_side().count_tokens(text))

    def _tokens(self) -> Any:
        if not self._tokenizer_made:
            self._tokenizer, self._tokenizer_made = self._tokenizer_factory(), True
        return self._tokenizer

    @contextlib.contextmanager
    def parallel_batches(self, requested: int = 0) -> Iterator[int]:
        with self._image.parallel_batches(requested) as streams:
            yield streams

    def prepare_image(self, image: Image.Image) -> Any:
        return self._image.prepare_image(image)

    def encode_prepared(self, prepared: Sequence[Any]) -> np.ndarray:
        return self._image.encode_prepared(prepared)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_prepared([self.prepare_image(image) for image in images])

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._text_side().encode_texts(texts)

    def _text_side(self) -> Any:
        if self._text is None:
            self._text = self._text_factory()
        return self._text


def open_clip_encoder(spec: str, device: str = "auto", precision: str = "auto", engine: str = "auto") -> Encoder:
    """The best encoder for an open_clip model name on this machine (see the module docstring)."""
    from mmsearch.encoders.openclip import OpenClipSpec

    check_engine(engine)
    parsed = OpenClipSpec.parse(spec)
    canonical = f"{parsed.model_name}:{parsed.pretrained}" if parsed.pretrained else parsed.model_name
    if engine == "torch" or not _cpu_only(device):
        return _torch_only(spec, device, precision, engine)
    identity = known_identity(canonical)
    if identity is not None:
        choice = cached_choice(identity.fingerprint, engine, precision)
        if choice is not None:
            warm = _from_cache(spec, identity, choice)
            if warm is not None:
                return warm
    return _calibrated(spec, canonical, precision, engine)


def _torch_only(spec: str, device: str, precision: str, engine: str) -> Encoder:
    from mmsearch.encoders.openclip import OpenClipEncoder, resolve_device

    if engine == "onnx" and resolve_device(device) != "cpu":
        raise ConfigError("--engine onnx runs on the CPU; add --device cpu, or use --engine auto on a GPU")
    return OpenClipEncoder(spec, device=device, precision=precision)


def _cpu_only(device: str) -> bool:
    """True when the model will run on the CPU, decided without importing torch where no NVIDIA GPU is present."""
    if device == "cpu":
        return True
    if device == "auto" and not (Path("/proc/driver/nvidia/gpus").is_dir() or glob.glob("/dev/nvidia[0-9]*")):
        return True
    from mmsearch.encoders.openclip import resolve_device

    return resolve_device(device) == "cpu"


def _from_cache(spec: str, identity: ModelIdentity, choice: dict[str, TowerChoice]) -> Encoder | None:
    """The encoder a cached choice describes, or None when an export it names is gone (calibrate again)."""
    from mmsearch.encoders.onnx_image import load_image_encoder

    torch_side = _LazyTorch(spec, choice)
    if choice["image"].engine == "onnx":
        image = load_image_encoder(identity, fast=ENGINE_FAST_PREPROCESS, resizer=engine_resizer())
        if image is None:
            return None
    else:
        image = torch_side.get()
    if choice["text"].engine == "onnx":
        if _text_manifest(identity) is None:
            return None
        text_side = _Once(lambda: load_shared_text_encoder(identity))
        return TowerEncoder(identity, image, text_side.get, choice, lambda: text_side.get().tokenizer)
    plan = RentPlan.of(choice["text"]) if choice["image"].engine == "onnx" and _onnx_text_enabled() else None
    if plan is not None and _text_manifest(identity) is not None:  # torch is not loaded for the image tower
        rented = RentThenBuy(plan, lambda: load_shared_text_encoder(identity), torch_side.get)
        tokenizer = lambda: shared_tokenizer(identity)  # noqa: E731
        return TowerEncoder(identity, image, lambda: rented, choice, tokenizer, lambda: rented.choice)
    return TowerEncoder(identity, image, torch_side.get, choice, lambda: shared_tokenizer(identity))


class _Once:
    """``make()`` on the first ``get()``, the same object after (the text side: loaded on the first text)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._value: Any = None

    def get(self) -> Any:
        if self._value is None:
            self._value = self._make()
        return self._value


class _LazyTorch:
    """The open_clip encoder, loaded on first need and set to the cached precisions of its towers."""

    def __init__(self, spec: str, choice: dict[str, TowerChoice]) -> None:
        self._spec = spec
        self._choice = choice
        self._encoder: Any = None

    def get(self) -> Any:
        if self._encoder is None:
            from mmsearch.encoders.openclip import OpenClipEncoder

            encoder = OpenClipEncoder(self._spec, device="cpu", precision="fp32")
            for tower in TOWERS:
                if self._choice[tower].engine == "torch":
                    encoder.set_precision(tower, self._choice[tower].precision, self._choice[tower].reason)
            self._encoder = encoder
        return self._encoder


def _onnx_text_enabled() -> bool:
    """False where ``MMSEARCH_ONNX_TEXT`` switches the ONNX text path off (texts then go to torch from the first)."""
    from mmsearch.encoders.onnx_text import enabled

    return enabled()


def _text_manifest(identity: ModelIdentity) -> dict[str, Any] | None:
    from mmsearch.encoders.onnx_text import read_manifest, usable

    manifest = read_manifest(model_folder(identity.fingerprint) / "text")
    return manifest if usable(manifest, identity) else None


def load_shared_text_encoder(identity: ModelIdentity) -> Any:
    """The verified text export in the shared cache, set up for throughput (ingest), or None."""
    from mmsearch.encoders.onnx_text import OnnxTextEncoder

    manifest = _text_manifest(identity)
    if manifest is None:
        return None
    return OnnxTextEncoder(model_folder(identity.fingerprint) / "text", manifest, throughput=True)


def shared_tokenizer(identity: ModelIdentity) -> Any:
    """The verified text export's tokenizer (no text tower loaded), or None."""
    from mmsearch.encoders.onnx_text import QueryTokenizer, TokenizerSpec

    manifest = _text_manifest(identity)
    if manifest is None:
        return None
    folder = model_folder(identity.fingerprint) / "text"
    return QueryTokenizer(folder / "tokenizer.json", TokenizerSpec.from_dict(manifest["tokenizer"]))


def _calibrated(spec: str, canonical: str, precision: str, engine: str) -> Encoder:
    """Load with open_clip, export both towers (once), measure the candidates, remember, build."""
    from mmsearch.encoders.onnx_image import load_image_encoder
    from mmsearch.encoders.openclip import OpenClipEncoder
    from mmsearch.encoders.precision import cpu_bf16_support

    import_s = _torch_import_s()
    torch_encoder = OpenClipEncoder(spec, device="cpu", precision="fp32")
    identity = torch_encoder.identity
    remember_identity(canonical, identity)
    reason = _export(torch_encoder)
    fast, resizer = ENGINE_FAST_PREPROCESS, engine_resizer()
    onnx_image = load_image_encoder(identity, fast=fast, resizer=resizer) if reason is None else None
    onnx_text = load_shared_text_encoder(identity) if reason is None else None
    if engine == "onnx" and (onnx_image is None or onnx_text is None):
        raise ConfigError(f"--engine onnx: no verified ONNX export of {identity.spec} ({reason or 'check failed'})")
    bf16_native = cpu_bf16_support()[0]
    pairs = candidates_for(engine, precision, bf16_native, onnx_image is not None and onnx_text is not None)
    if len(pairs) == 1:
        only = pairs[0]
        why = f"the only candidate for --engine {engine} --precision {precision}"
        choice = {tower: TowerChoice(only[0], only[1], f"{tower}: {why}") for tower in TOWERS}
        if only[0] == "torch":
            for tower in TOWERS:
                torch_encoder.set_precision(tower, only[1], choice[tower].reason)
        from mmsearch.encoders.calibration import with_measured_batch

        choice["image"] = with_measured_batch(torch_encoder, onnx_image, choice["image"])
    else:
        from mmsearch.encoders.calibration import calibrate

        choice = calibrate(torch_encoder, onnx_image, onnx_text, pairs)
    if choice["text"].engine == "torch" and import_s is not None:
        choice["text"] = dataclasses.replace(choice["text"], load_s=import_s)
    store_choice(identity.fingerprint, engine, precision, choice)
    image = onnx_image if choice["image"].engine == "onnx" else torch_encoder
    text = onnx_text if choice["text"].engine == "onnx" else torch_encoder
    return TowerEncoder(identity, image, lambda: text, choice, lambda: onnx_text.tokenizer if onnx_text else None)


def _torch_import_s() -> float | None:
    """Seconds to import torch and open_clip, where neither was imported yet: what a new process pays before the
    first text of a text tower on torch (the model build after it is a tenth of that); None where they were
    imported already or are missing (the encoder then says so)."""
    if "torch" in sys.modules or "open_clip" in sys.modules:
        return None
    started = time.perf_counter()
    try:
        importlib.import_module("torch")
        importlib.import_module("open_clip")
    except ImportError:
        return None
    return time.perf_counter() - started


def _export(torch_encoder: Any) -> str | None:
    """Export both towers to the shared cache unless there; None when done, else why not."""
    missing = [name for name in EXPORT_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        from mmsearch.hints import install_hint

        return f"{', '.join(missing)} not installed ({install_hint('onnx')})"
    from mmsearch.encoders.image_export import ensure_exports

    model, tokenizer = torch_encoder.text_tower
    try:
        manifests = ensure_exports(model, torch_encoder.open_clip_preprocess, tokenizer, torch_encoder.identity)
    except OSError as exc:
        return f"the cache is not writable: {exc}"
    failed = [f"{tower}: {m.get('reason')}" for tower, m in manifests.items() if m.get("status") != "verified"]
    return "; ".join(failed) or None
