"""What makes two sets of vectors comparable: the model identity recorded with every index and vector.

A plain value (no model code): the store and the indexes record it without importing any encoder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class ModelIdentity:
    """What makes two sets of vectors comparable: recorded with every index."""

    name: str
    pretrained: str | None
    dim: int
    preprocess: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def fingerprint(self) -> str:
        """A short stable hash of the whole identity."""
        payload = json.dumps(asdict(self), sort_keys=True, default=str).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    @property
    def spec(self) -> str:
        """The model name as a user writes it (``arch:tag`` or ``hf-hub:org/name``)."""
        return f"{self.name}:{self.pretrained}" if self.pretrained else self.name

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelIdentity:
        return cls(
            name=data["name"],
            pretrained=data.get("pretrained"),
            dim=int(data["dim"]),
            preprocess=dict(data.get("preprocess") or {}),
        )
