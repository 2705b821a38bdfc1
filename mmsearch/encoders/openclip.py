"""open_clip dual encoder backend. torch and open_clip are imported lazily."""

from __future__ import annotations

import contextlib
import logging
import math
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmsearch.encoders.base import EncoderBase, ModelIdentity, l2_normalise
from mmsearch.encoders.precision import (
    PRECISIONS,
    PROBE_TEXTS,
    Agreement,
    PrecisionChoice,
    agreement,
    choose_cpu_precision,
    cpu_bf16_support,
    probe_images,
)
from mmsearch.errors import ConfigError, MissingDependencyError, UnknownModelError
from mmsearch.hints import install_hint

HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"

log = logging.getLogger(__name__)

DRAFT_MARGIN = 1.5
"""JPEGs are decoded at 1/2, 1/4 or 1/8 scale only while both sides stay >= 1.5x the model's input side. Measured
on 100 DEV photos enlarged 2.5-8x (fixture model, fp32): decoding down to 1x moved vectors by up to 0.016 cosine
(worst 0.984); down to 1.5x, worst 0.9915 and mean >= 0.9994, within the bar bf16 is held to, and still 3.5x
faster to decode and prepare at 8x (a 3072x2304 photo: 10.7 instead of 37 ms)."""


@dataclass(frozen=True)
class OpenClipSpec:
    """A parsed open_clip model name: ``model_name`` and ``pretrained`` as open_clip takes them."""

    model_name: str
    pretrained: str | None

    @classmethod
    def parse(cls, spec: str) -> OpenClipSpec:
        """Parse ``hf-hub:org/name``, ``local-dir:/dir``, a directory, ``ARCH:TAG`` or ``ARCH:/ckpt``."""
        spec = spec.strip()
        if spec.startswith(HF_HUB_PREFIX):
            if len(spec) == len(HF_HUB_PREFIX):
                raise UnknownModelError("empty model name after 'hf-hub:'")
            return cls(spec, None)
        if spec.startswith(LOCAL_DIR_PREFIX):
            return cls(LOCAL_DIR_PREFIX + str(Path(spec[len(LOCAL_DIR_PREFIX) :]).expanduser().resolve()), None)
        if Path(spec).expanduser().is_dir():
            return cls(LOCAL_DIR_PREFIX + str(Path(spec).expanduser().resolve()), None)
        arch, sep, pretrained = spec.partition(":")
        if not arch or not sep or not pretrained:
            raise UnknownModelError(
                f"model {spec!r} names no weights; use ARCH:TAG (e.g. ViT-B-32:laion2b_s34b_b79k), "
                "ARCH:/path/to/checkpoint.pt, hf-hub:org/name or a local model directory"
            )
        if _looks_like_path(pretrained):
            pretrained = str(Path(pretrained).expanduser().resolve())
        return cls(arch, pretrained)


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.endswith((".pt", ".pth", ".bin", ".safetensors"))


def resolve_device(device: str) -> str:
    """Map ``auto`` to ``cuda`` when a GPU is usable, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was asked for, but torch sees no CUDA GPU")
    return device


class OpenClipEncoder(EncoderBase):
    """An open_clip model with unit-length float32 output.

    Precision (``precision``: ``auto``, ``fp32`` or ``bf16``): on CUDA, autocast (bf16 where supported, else
    fp16; none for ``fp32``). On the CPU each tower is cast to bf16 or kept in float32 on its first use, by
    :func:`mmsearch.encoders.precision.choose_cpu_precision` (``auto``: native bf16 and the agreement check);
    :attr:`precision` shows what each tower runs in and why. Precision never changes :attr:`identity`: vectors
    from either precision are interchangeable within the agreement bar. Convolutional image towers run
    channels_last.
    """

    def __init__(self, spec: str, device: str = "auto", text_batch_size: int = 256, precision: str = "auto") -> None:
        self._spec = OpenClipSpec.parse(spec)
        if precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        try:
            import open_clip
            import torch
        except ImportError as exc:
            hint = install_hint("clip")
            raise MissingDependencyError(f"the open_clip encoder needs extra packages: {hint} ({exc})") from exc
        self._torch = torch
        self.device = resolve_device(device)
        self.precision_setting = precision
        self._model, self._preprocess, self._tokenizer = _load(open_clip, self._spec, self.device)
        self._text_batch_size = text_batch_size
        self._autocast_dtype = _autocast_dtype(torch, self.device, precision)
        self._choices: dict[str, PrecisionChoice] = {}
        self._choice_lock = threading.Lock()
        self._saved: dict[str, Any] = {}  # fp32 tensors of a tower set_precision cast to bf16
        self._channels_last = _use_channels_last(self._model)
        self._split = _split_preprocess(self._preprocess)
        self._image_dtype = torch.float32
        dim = int(self._encode_text_chunks(["probe"]).shape[1])  # float32: towers are cast on first real use
        self.identity = ModelIdentity(
            name=self._spec.model_name,
            pretrained=self._spec.pretrained,
            dim=dim,
            preprocess=_preprocess_identity(self._model, self._tokenizer),
        )

    @property
    def dim(self) -> int:
        return self.identity.dim

    @property
    def text_tower(self) -> tuple[Any, Any]:
        """The open_clip model and tokenizer, for exporting the text tower (``mmsearch.encoders.onnx_export``).

        The text tower holds its original float32 weights until the first :meth:`encode_texts` call picks its
        precision (the engine exports right after loading, before that); after a bf16 cast they are bf16.
        """
        return self._model, self._tokenizer

    @property
    def open_clip_preprocess(self) -> Any:
        """open_clip's own image transform (PIL image -> normalised float tensor), the reference for exports."""
        return self._preprocess

    @property
    def precision(self) -> dict[str, dict[str, Any]]:
        """Per tower used so far: ``{"image": {"dtype": "bf16", "reason": ..., "worst_cosine": ...}, ...}``."""
        return {tower: choice.to_dict() for tower, choice in self._choices.items()}

    @property
    def min_decode_size(self) -> tuple[int, int]:
        """The smallest (width, height) a JPEG may be decoded at (reduced-scale ``draft``, see ``load_image``):
        :data:`DRAFT_MARGIN` times the input side in both directions, so any resize mode and either EXIF
        orientation are covered and the final resize still has pixels to spare."""
        size = getattr(self._model.visual, "image_size", None) or self.identity.preprocess.get("size") or 224
        side = max(size) if isinstance(size, (tuple, list)) else int(size)
        return math.ceil(side * DRAFT_MARGIN), math.ceil(side * DRAFT_MARGIN)

    @property
    def context_length(self) -> int:
        return int(getattr(self._tokenizer, "context_length", None) or 77)

    def count_tokens(self, text: str) -> int:
        tokenizer = self._tokenizer
        hf_tokenizer = getattr(tokenizer, "tokenizer", None)
        if hf_tokenizer is not None:  # open_clip's HFTokenizer wraps a Hugging Face tokenizer
            return len(hf_tokenizer(text, add_special_tokens=True, truncation=False)["input_ids"])
        return len(tokenizer.encode(text)) + 2  # SimpleTokenizer: start and end of text around the BPE tokens

    def prepare_image(self, image: Image.Image) -> Any:
        """Per image, in any thread: the PIL steps of the preprocessing (a uint8 tensor when it splits)."""
        return self._split.prepare(image) if self._split is not None else self._preprocess(image)

    @contextlib.contextmanager
    def parallel_batches(self, requested: int = 0) -> Iterator[int]:
        """How many :meth:`encode_prepared` calls to run at once, with torch's CPU threads shared out among them
        for the duration (restored after). On the CPU the default is 2 where torch has 2 or more threads: two
        batches on one thread each encode ~20% more images/s than one batch on two threads (72-76 vs 57-62 on 2
        vCPUs, same vectors) and share the cores with the decoders without stalling each other. On a GPU: 1.
        torch's thread count is process-wide, so encoding elsewhere in the process sees the shared-out count."""
        threads = self._torch.get_num_threads()
        streams = requested or (2 if threads >= 2 else 1)
        if self.device != "cpu" or streams <= 1:
            yield 1
            return
        self._torch.set_num_threads(max(1, threads // streams))
        try:
            yield streams
        finally:
            self._torch.set_num_threads(threads)

    def encode_prepared(self, prepared: Sequence[Any]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._choose("image")
        return self._encode_image_batch(self._model_input(prepared))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_prepared([self.prepare_image(image) for image in images])

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if texts:
            self._choose("text")
        return self._encode_text_chunks(texts)

    def _model_input(self, prepared: Sequence[Any]) -> Any:
        """Prepared images as one float32 batch on the device (normalised here when the preprocessing splits)."""
        if self._split is not None:
            return self._split.batch(prepared, self.device)
        batch = self._torch.stack(list(prepared))
        if self.device != "cpu":
            batch = batch.pin_memory().to(self.device, non_blocking=True)  # page-locked: a truly async copy
        return batch

    def _encode_image_batch(self, batch: Any) -> np.ndarray:
        torch = self._torch
        batch = batch.to(dtype=self._image_dtype)
        memory_format = torch.channels_last if self._channels_last else torch.contiguous_format
        batch = batch.contiguous(memory_format=memory_format)
        with self._inference():
            features = self._model.encode_image(batch)
        return l2_normalise(features.float().cpu().numpy())

    def _encode_text_chunks(self, texts: Sequence[str]) -> np.ndarray:
        chunks = []
        for start in range(0, len(texts), self._text_batch_size):
            tokens = self._tokenizer(list(texts[start : start + self._text_batch_size])).to(self.device)
            with self._inference():
                features = self._model.encode_text(tokens)
            chunks.append(features.float().cpu().numpy())
        if not chunks:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        return l2_normalise(np.concatenate(chunks))

    def set_precision(self, tower: str, dtype: str, reason: str) -> None:
        """Run ``tower`` in ``dtype`` (``fp32`` or ``bf16``) from now on, on the CPU, whatever ``precision`` said:
        the engine calibration (``mmsearch.encoders.calibration``) measures both and picks. Reversible exactly."""
        from mmsearch.encoders.towers import cast_tower, restore_tower, snapshot, tower_dtype

        with self._choice_lock:
            current = tower_dtype(self._model, tower)
            if dtype == "bf16" and current != self._torch.bfloat16:
                self._saved[tower] = snapshot(self._model, tower)
                cast_tower(self._model, tower, self._torch.bfloat16)
            elif dtype == "fp32" and current != self._torch.float32:
                restore_tower(self._model, tower, self._saved.pop(tower))
            self._choices[tower] = PrecisionChoice(dtype, reason)
            self._image_dtype = tower_dtype(self._model, "image")

    def _choose(self, tower: str) -> None:
        """Settle ``tower``'s precision on its first use (thread-safe; casts it when bf16 wins)."""
        if tower in self._choices:
            return
        with self._choice_lock:
            if tower not in self._choices:
                self._choices[tower] = self._decide(tower)

    def _decide(self, tower: str) -> PrecisionChoice:
        from mmsearch.encoders.towers import cast_tower, restore_tower, snapshot, tower_dtype

        if self.device != "cpu":
            dtype = self._autocast_dtype
            name = "fp32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"
            return PrecisionChoice(name, f"{self.device}: {self.precision_setting}")
        saved: dict[str, Any] = {}

        def check() -> Agreement:
            reference = self._probe(tower)
            saved.update(snapshot(self._model, tower))
            cast_tower(self._model, tower, self._torch.bfloat16)
            self._image_dtype = tower_dtype(self._model, "image")
            return agreement(reference, self._probe(tower))

        support = cpu_bf16_support(torch_check=getattr(self._torch.cpu, "_is_avx512_bf16_supported", None))
        choice = choose_cpu_precision(self.precision_setting, support, check)
        if choice.dtype == "fp32" and saved:
            restore_tower(self._model, tower, saved)
        elif choice.dtype == "bf16" and not saved:
            cast_tower(self._model, tower, self._torch.bfloat16)
        if tower == "image":
            self._image_dtype = tower_dtype(self._model, "image")
        log.info("open_clip %s tower in %s: %s", tower, choice.dtype, choice.reason)
        return choice

    def _probe(self, tower: str) -> np.ndarray:
        """The probe set's vectors through ``tower`` as it is now."""
        if tower == "text":
            return self._encode_text_chunks(PROBE_TEXTS)
        return self._encode_image_batch(self._model_input([self.prepare_image(image) for image in probe_images()]))

    @contextlib.contextmanager
    def _inference(self):
        torch = self._torch
        with torch.inference_mode():
            if self._autocast_dtype is None:
                yield
            else:
                with torch.autocast(device_type="cuda", dtype=self._autocast_dtype):
                    yield


def _load(open_clip: Any, spec: OpenClipSpec, device: str) -> tuple[Any, Any, Any]:
    arch = spec.model_name
    if not arch.startswith((HF_HUB_PREFIX, LOCAL_DIR_PREFIX)):
        if arch not in open_clip.list_models():
            raise UnknownModelError(f"unknown open_clip architecture {arch!r} (see open_clip.list_models())")
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if spec.pretrained and not _looks_like_path(spec.pretrained) and spec.pretrained not in tags:
            raise UnknownModelError(
                f"unknown pretrained tag {spec.pretrained!r} for {arch}; known tags: {', '.join(tags) or 'none'}"
            )
        if spec.pretrained and _looks_like_path(spec.pretrained) and not Path(spec.pretrained).is_file():
            raise UnknownModelError(f"checkpoint file not found: {spec.pretrained}")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=spec.pretrained, device=device)
        tokenizer = open_clip.get_tokenizer(arch)
    except Exception as exc:  # open_clip raises many kinds (hub, file, config errors)
        name = f"{arch}{':' + spec.pretrained if spec.pretrained else ''}"
        raise UnknownModelError(f"cannot load model {name}: {_load_failure(exc)}") from exc
    model.eval()
    return model, preprocess, tokenizer


def _load_failure(exc: Exception) -> str:
    """Why open_clip could not load a model, in one short clause (its download errors repeat themselves)."""
    text = str(exc)
    if isinstance(exc, RuntimeError) and text.startswith("Failed to download"):
        found = re.search(r"Failed to download file \((.+?)\) for (\S+?)\.(\s|$)", text)
        what = f" ({found[1]} of {found[2]})" if found else ""
        return f"its weights{what} are not in the local cache and could not be downloaded (offline?)"
    return f"{type(exc).__name__}: {text}"


def _autocast_dtype(torch: Any, device: str, precision: str) -> Any:
    """The CUDA autocast dtype: none on the CPU or for ``fp32``; bf16 where the GPU has it, else fp16."""
    if device != "cuda" or precision == "fp32":
        return None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if precision == "bf16":
        raise ConfigError("precision 'bf16' was asked for, but this GPU has no bf16; use auto (fp16) or fp32")
    return torch.float16


def _split_preprocess(preprocess: Any) -> Any:
    """open_clip's preprocessing as PIL steps per image plus float steps per batch, where it splits cleanly."""
    from mmsearch.encoders.imageprep import SplitPreprocess

    return SplitPreprocess.of(preprocess)


def _use_channels_last(model: Any) -> bool:
    """Lay a convolutional image tower out channels_last (faster conv kernels, same results); True if done."""
    from mmsearch.encoders.towers import has_conv_layers, to_channels_last

    if not has_conv_layers(model.visual):
        return False
    to_channels_last(model.visual)
    return True


def _preprocess_identity(model: Any, tokenizer: Any) -> dict[str, Any]:
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    identity = {key: list(value) if isinstance(value, tuple) else value for key, value in cfg.items()}
    identity["context_length"] = getattr(tokenizer, "context_length", None)
    return identity
