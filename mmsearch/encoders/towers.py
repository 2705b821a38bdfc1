"""Casting one tower of an open_clip model in place: ``image`` is ``model.visual``, ``text`` is everything else.

Needs torch; imported only by :mod:`mmsearch.encoders.openclip`.
"""

from __future__ import annotations

from typing import Any

import torch

TOWERS = ("image", "text")
SCALARS = ("logit_scale", "logit_bias")
"""Root parameters that belong to neither tower (the contrastive temperature and bias); never cast."""


def tower_tensors(model: torch.nn.Module, tower: str) -> dict[str, torch.Tensor]:
    """The tower's floating-point parameters and buffers (non-persistent ones too), by qualified name."""
    named = [*model.named_parameters(), *model.named_buffers()]
    return {name: tensor for name, tensor in named if tensor.is_floating_point() and _in_tower(name, tower)}


def _in_tower(name: str, tower: str) -> bool:
    in_image = name == "visual" or name.startswith("visual.")
    if tower == "image":
        return in_image
    return not in_image and name not in SCALARS


def snapshot(model: torch.nn.Module, tower: str) -> dict[str, torch.Tensor]:
    """Copies of the tower's tensors, to undo a cast exactly (bf16 -> fp32 would not give the weights back)."""
    return {name: tensor.detach().clone() for name, tensor in tower_tensors(model, tower).items()}


def cast_tower(model: torch.nn.Module, tower: str, dtype: torch.dtype) -> None:
    """Cast the tower's floating-point tensors to ``dtype`` in place; the other tower is untouched."""
    if tower == "image":
        model.visual.to(dtype)
        return
    for name, child in model.named_children():
        if name != "visual":
            child.to(dtype)
    for name, param in model.named_parameters(recurse=False):
        if name not in SCALARS and param.is_floating_point():
            param.data = param.data.to(dtype)
    for name, buffer in list(model.named_buffers(recurse=False)):
        if buffer.is_floating_point():
            model._buffers[name] = buffer.to(dtype)


def restore_tower(model: torch.nn.Module, tower: str, saved: dict[str, torch.Tensor]) -> None:
    """Put back the tensors :func:`snapshot` copied (dtype and values)."""
    cast_tower(model, tower, torch.float32)
    current = tower_tensors(model, tower)
    with torch.no_grad():
        for name, value in saved.items():
            current[name].copy_(value)


def tower_dtype(model: torch.nn.Module, tower: str) -> torch.dtype:
    """The dtype of the tower's first floating-point tensor (float32 when it has none)."""
    return next(iter(tower_tensors(model, tower).values()), torch.zeros(0)).dtype


def has_conv_layers(module: torch.nn.Module, at_least: int = 2) -> bool:
    """True for a convolutional tower (a ViT has a single patch-embedding conv): channels_last helps those."""
    count = 0
    for child in module.modules():
        if isinstance(child, torch.nn.Conv2d):
            count += 1
            if count >= at_least:
                return True
    return False


def to_channels_last(module: Any) -> None:
    """Lay the module's 4-d weights out as NHWC (no copy of values, no change of results beyond rounding)."""
    module.to(memory_format=torch.channels_last)
