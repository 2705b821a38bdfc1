"""The JSON Schema of every JSON document mmsearch writes (docs/json.md): ``hits``, ``status``, ``eval``,
``reindex`` (and, with the ingest and check reports, ``ingest`` and ``check``). Shipped with the package."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

NAMES = ("hits", "ingest", "status", "eval", "reindex", "check")


def load(name: str) -> dict[str, Any]:
    """The schema ``name`` (one of :data:`NAMES`) as a dictionary."""
    if name not in NAMES:
        raise ValueError(f"no schema {name!r}; there are: {', '.join(NAMES)}")
    return json.loads(resources.files(__name__).joinpath(f"{name}.json").read_text(encoding="utf-8"))
