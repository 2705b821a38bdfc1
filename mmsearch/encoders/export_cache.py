"""The shared cache of ONNX exports and engine choices, one per model, for every home on this machine.

Layout (under :func:`cache_root`: ``$MMSEARCH_CACHE_DIR``, else the platform's user cache folder, e.g.
``$XDG_CACHE_HOME/mmsearch`` or ``~/.cache/mmsearch``)::

    onnx/models/<spec key>.json        the model name -> its ModelIdentity (so no model is loaded to know it)
    onnx/<fingerprint>/image/           image.onnx (+ .data) and manifest.json (onnx_image)
    onnx/<fingerprint>/text/            text.onnx (+ .data), tokenizer.json and manifest.json (onnx_text)
    engines.json                        per model fingerprint and CPU: the calibrated engine of each tower

Torch-free: reading the cache imports neither torch nor open_clip.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from mmsearch.cachedir import CACHE_ENV as CACHE_ENV  # re-exported: its home is mmsearch.cachedir
from mmsearch.cachedir import cache_root as cache_root
from mmsearch.encoders.base import ModelIdentity

ONNX_FOLDER = "onnx"
MODELS_FOLDER = "models"
ALIAS_FORMAT = 1


def model_folder(fingerprint: str) -> Path:
    """Where one model's exports live (``image/`` and ``text/`` inside)."""
    return cache_root() / ONNX_FOLDER / fingerprint


def spec_key(spec: str) -> str:
    """A file name for a model name; a checkpoint file or a local model folder adds its size and mtime, so a
    changed file at the same path is a new key (a hub model is taken to be what its name says)."""
    parts = [spec]
    for piece in spec.replace("local-dir:", "").split(":"):
        path = Path(piece)
        if path.is_absolute() and (path.is_file() or path.is_dir()):
            files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
            parts += [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


def _alias_path(spec: str) -> Path:
    return cache_root() / ONNX_FOLDER / MODELS_FOLDER / f"{spec_key(spec)}.json"


def known_identity(spec: str) -> ModelIdentity | None:
    """The identity recorded for ``spec`` by :func:`remember_identity`, or None."""
    data = read_json(_alias_path(spec))
    if data is None or data.get("format") != ALIAS_FORMAT or data.get("spec") != spec:
        return None
    try:
        return ModelIdentity.from_dict(data["identity"])
    except (KeyError, TypeError, ValueError):
        return None


def remember_identity(spec: str, identity: ModelIdentity) -> None:
    """Record what ``spec`` loads as; never raises (a read-only cache just means loading the model next time)."""
    with contextlib.suppress(OSError):
        write_json(_alias_path(spec), {"format": ALIAS_FORMAT, "spec": spec, "identity": identity.to_dict()})


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None when missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (a temporary file renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
