"""Encoder registry: a model name picks its backend by prefix.

``fake:<dim>`` selects the deterministic test encoder; anything else is an
open_clip name. Backends register a factory ``(spec, device, precision, engine) -> Encoder``
(``precision``: ``auto``, ``fp32`` or ``bf16``; ``engine``: ``auto``, ``onnx`` or ``torch``, see
``mmsearch.encoders.selection``; backends without a choice ignore them).
"""

from __future__ import annotations

from collections.abc import Callable

from mmsearch.encoders.base import Encoder, ModelIdentity, l2_normalise
from mmsearch.errors import UnknownModelError

EncoderFactory = Callable[[str, str, str, str], Encoder]

_FACTORIES: dict[str, EncoderFactory] = {}


def register_encoder(prefix: str, factory: EncoderFactory) -> None:
    """Route model names that start with ``prefix:`` to ``factory``."""
    _FACTORIES[prefix] = factory


def create_encoder(spec: str, device: str = "auto", precision: str = "auto", engine: str = "torch") -> Encoder:
    """Build the encoder a model name describes. ``engine`` defaults to ``torch`` here (the open_clip encoder, as
    this function always gave); the Engine passes ``Settings.engine`` (default ``auto``)."""
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _FACTORIES:
        return _FACTORIES[prefix](rest, device, precision, engine)
    return _FACTORIES["open_clip"](spec, device, precision, engine)


def canonical_model_name(spec: str) -> str:
    """The name a model records in its identity (``ModelIdentity.spec``), without loading it."""
    prefix, sep, rest = spec.partition(":")
    if sep and prefix == "fake":
        return f"fake:{_fake_dim(rest)}"
    from mmsearch.encoders.openclip import OpenClipSpec

    parsed = OpenClipSpec.parse(rest if prefix == "open_clip" else spec)
    return f"{parsed.model_name}:{parsed.pretrained}" if parsed.pretrained else parsed.model_name


def _fake_dim(rest: str) -> int:
    try:
        dim = int(rest or 32)
    except ValueError:
        dim = 0
    if dim < 2:
        raise UnknownModelError(f"the fake encoder takes a dimension of at least 2, as in fake:64, not {rest!r}")
    return dim


def _fake_factory(rest: str, device: str, precision: str, engine: str) -> Encoder:
    from mmsearch.encoders.fake import FakeEncoder

    return FakeEncoder(_fake_dim(rest))


def _open_clip_factory(spec: str, device: str, precision: str, engine: str) -> Encoder:
    from mmsearch.encoders.selection import open_clip_encoder

    return open_clip_encoder(spec, device=device, precision=precision, engine=engine)


register_encoder("fake", _fake_factory)
register_encoder("open_clip", _open_clip_factory)

__all__ = ["Encoder", "ModelIdentity", "canonical_model_name", "create_encoder", "l2_normalise", "register_encoder"]
