"""Image preprocessing split in two: PIL work per image in the decode workers, the float work per batch.

open_clip's preprocessing is ``Compose([<PIL resize/crop/convert ...>, ToTensor, Normalize])``. The PIL part runs
in the decode workers and hands over an 8-bit HWC tensor (a quarter of the float bytes); ``ToTensor`` and
``Normalize`` then run once per batch on the encoding thread, as the same float32 operations in the same order
(so the same numbers), vectorised over the batch. The NHWC bytes permuted to NCHW are already channels_last, the
layout convolutional towers want, and on CUDA only the bytes cross the bus. Needs torch and torchvision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms


class SplitPreprocess:
    """``prepare`` (per image, any thread) and ``batch`` (per batch) together equal ``preprocess``."""

    def __init__(self, pil_steps: Callable[[Image.Image], Image.Image], to_tensor: Any, normalize: Any) -> None:
        self._pil_steps = pil_steps
        self._tail = transforms.Compose([to_tensor, normalize])
        self._mean = torch.tensor(list(normalize.mean), dtype=torch.float32).view(1, -1, 1, 1)
        self._std = torch.tensor(list(normalize.std), dtype=torch.float32).view(1, -1, 1, 1)

    @classmethod
    def of(cls, preprocess: Any) -> SplitPreprocess | None:
        """The split of a ``Compose`` that ends in ``ToTensor`` then a plain ``Normalize``; else None."""
        steps = list(getattr(preprocess, "transforms", None) or [])
        if len(steps) < 2 or not isinstance(steps[-2], transforms.ToTensor):
            return None
        normalize = steps[-1]
        if not isinstance(normalize, transforms.Normalize) or normalize.inplace:
            return None
        if any(isinstance(step, (transforms.ToTensor, transforms.Normalize)) for step in steps[:-2]):
            return None
        return cls(transforms.Compose(steps[:-2]), steps[-2], normalize)

    def prepare(self, image: Image.Image) -> torch.Tensor:
        """The PIL steps, then the RGB bytes as a (height, width, 3) uint8 tensor (other modes: the float tail)."""
        image = self._pil_steps(image)
        if image.mode != "RGB":
            return self._tail(image)
        return torch.from_numpy(np.array(image, dtype=np.uint8))

    def batch(self, prepared: Sequence[torch.Tensor], device: str = "cpu") -> torch.Tensor:
        """A float32 NCHW batch on ``device``, normalised; from uint8 images its strides are channels_last."""
        if any(item.dtype != torch.uint8 for item in prepared):
            return torch.stack([item if item.dtype != torch.uint8 else self._finish(item) for item in prepared]).to(
                device, non_blocking=True
            )
        images = torch.stack(list(prepared))
        if device != "cpu":
            images = images.pin_memory().to(device, non_blocking=True)  # only the bytes cross the bus
        mean, std = self._mean.to(images.device), self._std.to(images.device)
        return images.permute(0, 3, 1, 2).to(torch.float32).div(255).sub_(mean).div_(std)

    def _finish(self, item: torch.Tensor) -> torch.Tensor:
        """One uint8 HWC image as ``ToTensor`` + ``Normalize`` would give it (for a batch of mixed kinds)."""
        return self.batch([item])[0]
