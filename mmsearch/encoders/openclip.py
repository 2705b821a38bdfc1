"""open_clip dual encoder backend. torch and open_clip are imported lazily."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmsearch.encoders.base import ModelIdentity, l2_normalise
from mmsearch.errors import ConfigError, MissingDependencyError, UnknownModelError

HF_HUB_PREFIX = "hf-hub:"
LOCAL_DIR_PREFIX = "local-dir:"
INSTALL_HINT = "the open_clip encoder needs extra packages: pip install 'mmsearch[clip]'"


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


class OpenClipEncoder:
    """An open_clip model: fp32 on CPU, autocast (bf16 or fp16) on CUDA; unit-length float32 output."""

    def __init__(self, spec: str, device: str = "auto", text_batch_size: int = 256) -> None:
        self._spec = OpenClipSpec.parse(spec)
        try:
            import open_clip
            import torch
        except ImportError as exc:
            raise MissingDependencyError(f"{INSTALL_HINT} ({exc})") from exc
        self._torch = torch
        self.device = resolve_device(device)
        self._model, self._preprocess, self._tokenizer = _load(open_clip, self._spec, self.device)
        self._text_batch_size = text_batch_size
        self._autocast_dtype = _autocast_dtype(torch, self.device)
        dim = int(self.encode_texts(["probe"]).shape[1])
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
        """The open_clip model and tokenizer, for exporting the text tower (``mmsearch.encoders.onnx_export``)."""
        return self._model, self._tokenizer

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
        return self._preprocess(image)

    def encode_prepared(self, prepared: Sequence[Any]) -> np.ndarray:
        if not prepared:
            return np.zeros((0, self.dim), dtype=np.float32)
        batch = self._torch.stack(list(prepared)).to(self.device, non_blocking=True)
        with self._inference():
            features = self._model.encode_image(batch)
        return l2_normalise(features.float().cpu().numpy())

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.encode_prepared([self.prepare_image(image) for image in images])

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        chunks = []
        for start in range(0, len(texts), self._text_batch_size):
            tokens = self._tokenizer(list(texts[start : start + self._text_batch_size])).to(self.device)
            with self._inference():
                features = self._model.encode_text(tokens)
            chunks.append(features.float().cpu().numpy())
        if not chunks:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        return l2_normalise(np.concatenate(chunks))

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
        raise UnknownModelError(
            f"cannot load model {arch}{':' + spec.pretrained if spec.pretrained else ''}: {type(exc).__name__}: {exc}"
        ) from exc
    model.eval()
    return model, preprocess, tokenizer


def _autocast_dtype(torch: Any, device: str) -> Any:
    if device != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _preprocess_identity(model: Any, tokenizer: Any) -> dict[str, Any]:
    cfg = dict(getattr(model.visual, "preprocess_cfg", {}) or {})
    identity = {key: list(value) if isinstance(value, tuple) else value for key, value in cfg.items()}
    identity["context_length"] = getattr(tokenizer, "context_length", None)
    return identity
