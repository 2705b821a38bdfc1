"""Encoder registry: a model name picks its backend by prefix.

``fake:<dim>`` selects the deterministic test encoder; anything else is an
open_clip name. Backends register a factory ``(spec, device, precision) -> Encoder``
(``precision``: ``auto``, ``fp32`` or ``bf16``; backends without a choice ignore it) and how they write a
model name in its identity (:func:`canonical_model_name` asks the backend, as :func:`create_encoder` does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mmsearch.encoders.base import Encoder, EncoderBase, ModelIdentity, l2_normalise
from mmsearch.errors import UnknownModelError

BackendFactory = Callable[[str, str, str], Encoder]
"""``(name after the prefix, device, precision) -> Encoder``: what a backend registers."""
EncoderFactory = Callable[[str, str], Encoder]
"""``(model name, device) -> Encoder``: what the model side loads its encoder with (the default is
:func:`create_encoder` with ``Settings.precision``; tests pass their own)."""


@dataclass(frozen=True)
class _Backend:
    create: BackendFactory
    canonical: Callable[[str], str]


_BACKENDS: dict[str, _Backend] = {}


def register_encoder(prefix: str, factory: BackendFactory, canonical: Callable[[str], str] | None = None) -> None:
    """Route model names that start with ``prefix:`` to ``factory``; ``canonical(rest)`` is the name such a
    model records in its identity (default: the name as given)."""
    _BACKENDS[prefix] = _Backend(factory, canonical or (lambda rest: f"{prefix}:{rest}"))


def _route(spec: str) -> tuple[_Backend, str]:
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _BACKENDS:
        return _BACKENDS[prefix], rest
    return _BACKENDS["open_clip"], spec


def create_encoder(spec: str, device: str = "auto", precision: str = "auto") -> Encoder:
    """Build the encoder a model name describes."""
    backend, rest = _route(spec)
    return backend.create(rest, device, precision)


def canonical_model_name(spec: str) -> str:
    """The name a model records in its identity (``ModelIdentity.spec``), without loading it."""
    backend, rest = _route(spec)
    return backend.canonical(rest)


def _fake_dim(rest: str) -> int:
    try:
        dim = int(rest or 32)
    except ValueError:
        dim = 0
    if dim < 2:
        raise UnknownModelError(f"the fake encoder takes a dimension of at least 2, as in fake:64, not {rest!r}")
    return dim


def _fake_factory(rest: str, device: str, precision: str) -> Encoder:
    from mmsearch.encoders.fake import FakeEncoder

    return FakeEncoder(_fake_dim(rest))


def _fake_canonical(rest: str) -> str:
    return f"fake:{_fake_dim(rest)}"


def _open_clip_canonical(spec: str) -> str:
    from mmsearch.encoders.openclip import OpenClipSpec

    parsed = OpenClipSpec.parse(spec)
    return f"{parsed.model_name}:{parsed.pretrained}" if parsed.pretrained else parsed.model_name


def _open_clip_factory(spec: str, device: str, precision: str) -> Encoder:
    from mmsearch.encoders.openclip import OpenClipEncoder

    return OpenClipEncoder(spec, device=device, precision=precision)


register_encoder("fake", _fake_factory, _fake_canonical)
register_encoder("open_clip", _open_clip_factory, _open_clip_canonical)

__all__ = [
    "BackendFactory",
    "Encoder",
    "EncoderBase",
    "EncoderFactory",
    "ModelIdentity",
    "canonical_model_name",
    "create_encoder",
    "l2_normalise",
    "register_encoder",
]
