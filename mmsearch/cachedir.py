"""The per-user cache folder every home on this machine shares (ONNX exports, engine choices, schema templates).

A leaf: imports nothing of mmsearch, so ``store/`` and ``encoders/`` can both use it.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MMSEARCH_CACHE_DIR"


def cache_root() -> Path:
    """``$MMSEARCH_CACHE_DIR``, else the user cache folder (``$XDG_CACHE_HOME/mmsearch`` on Linux)."""
    override = os.environ.get(CACHE_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("mmsearch", appauthor=False))
