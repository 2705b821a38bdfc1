"""A cold query's text encoded speculatively, from the very start of the process, beside the engine's imports.

A one-shot ``mmsearch query`` spends about 0.25 s importing the engine (SQLAlchemy, numpy) before it learns from
the database which model the home uses, and only then loads the ONNX text encoder (``encoders.onnx_text``,
about 0.1 s). The home remembers the model of its last query in a small file (:data:`RECORD_FILE` in its index
folder: the model fingerprint and the export folder, written by :mod:`mmsearch.models` when it loads that text
encoder), so :func:`start` can load the same export and encode the query's texts in a second thread right away:
building the session and running it release the GIL, so this overlaps the engine's imports on a second core.

The engine takes the result (:meth:`TextAside.take`) only for the model and export folder it opens itself, and
only for the very texts it needs; anything else (another model, a missing, stale or damaged record, an image
query, a failure of any kind in the thread) means no speculation: the engine encodes as it always did, and
raises what it always raised. This module imports nothing heavy; the thread imports what it needs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RECORD_FILE = "query-model.json"
RECORD_FORMAT = 1
ENV_SWITCH = "MMSEARCH_TEXT_ASIDE"
"""Set to 0/false/no/off to start no speculative thread (the record is still kept)."""


def read_record(index_dir: Path) -> tuple[str, Path] | None:
    """The (fingerprint, export folder) recorded for queries in ``index_dir``, or None (none, damaged, stale)."""
    try:
        data = json.loads((Path(index_dir) / RECORD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != RECORD_FORMAT:
        return None
    fingerprint, folder = data.get("fingerprint"), data.get("folder")
    if not isinstance(fingerprint, str) or not isinstance(folder, str) or not fingerprint or not folder:
        return None
    return fingerprint, Path(folder)


def write_record(index_dir: Path, fingerprint: str, folder: Path) -> None:
    """Remember the model a query in ``index_dir`` loaded (atomically; only when it changed). Never raises: the
    record only saves time, and a home may be read-only."""
    if read_record(index_dir) == (fingerprint, Path(folder)):
        return
    target = Path(index_dir) / RECORD_FILE
    temporary = target.with_name(f".{RECORD_FILE}.{os.getpid()}.tmp")
    record = {"format": RECORD_FORMAT, "fingerprint": fingerprint, "folder": str(folder)}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temporary, target)
    except OSError as exc:
        log.debug("cannot record the query model in %s: %s", index_dir, exc)
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)


class TextAside:
    """The encoder and the vectors of one query's texts, made in a thread started by :func:`start`."""

    def __init__(self, fingerprint: str, folder: Path, text: str) -> None:
        self.fingerprint = fingerprint
        self.folder = folder
        self._text = text
        self._encoder: Any = None  # an OnnxTextEncoder once loaded
        self._vectors: dict[str, Any] = {}  # text -> unit float32 vector
        self._cancelled = False
        self._thread = threading.Thread(target=self._run, name="mmsearch-text-aside")

    def begin(self) -> TextAside:
        """Start the thread; returns this."""
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            from mmsearch.encoders import onnx_text
            from mmsearch.search.querylang import parse_query

            terms = parse_query(self._text)
            if any(term.image is not None for term in terms) or not onnx_text.enabled():
                return
            manifest = onnx_text.read_manifest(self.folder)
            if self._cancelled or manifest is None or manifest.get("fingerprint") != self.fingerprint:
                return
            if onnx_text.missing_runtime_modules():
                return
            encoder = onnx_text.OnnxTextEncoder(self.folder, manifest)
            if self._cancelled or not onnx_text.usable(manifest, encoder.identity):
                return
            texts = list(dict.fromkeys(term.text for term in terms if term.text is not None))
            vectors = encoder.encode_texts(texts)
            self._encoder, self._vectors = encoder, dict(zip(texts, vectors, strict=True))
        except Exception as exc:  # any failure only means no speculation: the engine encodes as it always did
            log.debug("speculative text encoding failed (%s: %s)", type(exc).__name__, exc)

    def take(self, fingerprint: str, folder: Path) -> tuple[Any, dict[str, Any]]:
        """The loaded encoder and the vectors by text, once the thread is done, when they are of the model
        ``fingerprint`` read from ``folder``; else (None, {})."""
        self._thread.join()
        if self._encoder is None or fingerprint != self.fingerprint or Path(folder) != self.folder:
            return None, {}
        if self._encoder.fingerprint != fingerprint:
            return None, {}
        return self._encoder, dict(self._vectors)

    def cancel(self) -> None:
        """Stop at the thread's next step (the engine needs no encoding); the process still waits for the step."""
        self._cancelled = True


def start(index_dir: Path, text: str | None) -> TextAside | None:
    """Start encoding ``text`` with the model recorded for ``index_dir``; None when nothing is recorded (then
    nothing is started), there is no text, or ``MMSEARCH_TEXT_ASIDE`` switches it off."""
    if not text or os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    recorded = read_record(index_dir)
    if recorded is None:
        return None
    return TextAside(recorded[0], recorded[1], text).begin()
