"""Torch-free text encoding for queries: a verified ONNX export of a model's text tower, run with onnxruntime.

``mmsearch.encoders.onnx_export`` writes, once per model fingerprint, a folder in the shared cache
(``export_cache``: ``~/.cache/mmsearch/onnx/<fingerprint>/text/``), read in place by every home; a home keeps a
folder of its own under its index folder only where the shared cache could not be written (or from before it)::

    <index_dir>/text-onnx/<fingerprint>/manifest.json   identity, tokenizer settings, agreement check
                                        text.onnx       token ids (n, context) -> unit vectors (n, dim)
                                        text.onnx.data  its weights (memory-mapped by onnxruntime)
                                        tokenizer.json  a Hugging Face ``tokenizers`` tokenizer (truncation, padding)

This module reads it without importing torch, transformers or open_clip. It is only used when the
manifest's fingerprint and identity equal the index's model and the recorded check passed.
Set ``MMSEARCH_ONNX_TEXT=0`` to neither write nor use such exports.
"""

from __future__ import annotations

import html
import importlib.util
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmsearch.encoders.base import ModelIdentity, l2_normalise
from mmsearch.errors import MmsearchError

log = logging.getLogger(__name__)

EXPORT_FORMAT = 1
"""Bumped when the folder layout or the runtime's reading of it changes: older exports are redone."""
EXPORTS_FOLDER = "text-onnx"
MANIFEST_FILE = "manifest.json"
MODEL_FILE = "text.onnx"
WEIGHTS_FILE = "text.onnx.data"
TOKENIZER_FILE = "tokenizer.json"
INPUT_NAME = "input_ids"
OUTPUT_NAME = "text_embedding"
MAX_COSINE_GAP = 1e-4
"""An export is used only when every probe text's vector has cosine >= 1 - this with open_clip's own."""
ENV_SWITCH = "MMSEARCH_ONNX_TEXT"
CLEAN_MODES = ("whitespace", "lower")
"""open_clip's text cleaning functions this runtime reproduces (``_clean_whitespace``, ``_clean_lower``)."""
RUNTIME_MODULES = ("onnxruntime", "tokenizers", "ftfy")
_BATCH = 64
_PLAIN = re.compile(r"[\t\n\r\x20-\x25\x27-\x7e]*")
"""Printable ASCII without ``&``: text that ftfy.fix_text leaves as it is (up to whitespace)."""


class OnnxTextError(MmsearchError):
    """A text-tower export cannot be written, verified or loaded; the torch encoder is used instead."""


def enabled() -> bool:
    """False when ``MMSEARCH_ONNX_TEXT`` is set to 0/false/no/off."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def export_dir(index_dir: Path, fingerprint: str) -> Path:
    """The folder holding the export for one model fingerprint."""
    return Path(index_dir) / EXPORTS_FOLDER / fingerprint


def query_export_folder(index_dir: Path, fingerprint: str) -> Path:
    """Where queries read the text export: the home's own folder when it has one (a home made before the shared
    cache, or one whose cache could not be written), else the shared cache's (``export_cache``), which every
    home of this user reads in place (one copy per model, not one per home)."""
    folder = export_dir(index_dir, fingerprint)
    if folder.exists():
        return folder
    from mmsearch.encoders.export_cache import model_folder

    return model_folder(fingerprint) / "text"


def missing_runtime_modules() -> list[str]:
    """The runtime's optional packages that are not installed (found without importing them)."""
    return [name for name in RUNTIME_MODULES if importlib.util.find_spec(name) is None]


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest in ``folder``, or None when there is none or it cannot be read."""
    try:
        data = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def usable(manifest: dict[str, Any] | None, identity: ModelIdentity) -> bool:
    """True when ``manifest`` describes a verified export of exactly this model, in this runtime's format."""
    if manifest is None or manifest.get("status") != "verified" or manifest.get("format") != EXPORT_FORMAT:
        return False
    try:
        recorded = ModelIdentity.from_dict(manifest["identity"])
    except (KeyError, TypeError, ValueError):
        return False
    if manifest.get("fingerprint") != identity.fingerprint or recorded.fingerprint != identity.fingerprint:
        return False
    worst = (manifest.get("check") or {}).get("worst_cosine")
    return isinstance(worst, (int, float)) and worst >= 1.0 - MAX_COSINE_GAP


def clean_text(text: str, mode: str) -> str:
    """open_clip's text cleaning: ftfy, HTML entities twice, whitespace collapsed; ``lower`` also lowercases."""
    if _PLAIN.fullmatch(text) is None:
        import ftfy  # only for text that may need it: importing it costs ~0.1 s

        text = ftfy.fix_text(text)
    text = " ".join(html.unescape(html.unescape(text)).split())
    return text.lower() if mode == "lower" else text


@dataclass(frozen=True)
class TokenizerSpec:
    """How token ids are made: cleaning, optionally splitting into words, then a ``tokenizers`` tokenizer
    that truncates and pads."""

    clean: str
    context_length: int
    strip_sep_id: int | None = None
    """Set when open_clip's tokenizer replaces the separator token with 0 (``strip_sep_token``)."""
    word_pattern: str | None = None
    """A ``regex`` (case-insensitive) whose matches are the words, as open_clip's SimpleTokenizer finds them:
    done in Python with the same ``regex`` module, since the tokenizers library's Unicode tables may differ."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "context_length": self.context_length,
            "strip_sep_id": self.strip_sep_id,
            "word_pattern": self.word_pattern,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizerSpec:
        clean = str(data["clean"])
        if clean not in CLEAN_MODES:
            raise OnnxTextError(f"unknown text cleaning {clean!r}")
        strip = data.get("strip_sep_id")
        return cls(clean, int(data["context_length"]), None if strip is None else int(strip), data.get("word_pattern"))


class QueryTokenizer:
    """Text to the token ids the exported text tower reads, as open_clip's tokenizer makes them."""

    def __init__(self, path: Path, spec: TokenizerSpec) -> None:
        from tokenizers import Tokenizer

        self.spec = spec
        self._tokenizer = Tokenizer.from_file(str(path))
        self._words: Any = None
        self._counter: Any = None
        if spec.word_pattern is not None:
            import regex

            self._words = regex.compile(spec.word_pattern, regex.IGNORECASE)

    def count(self, text: str) -> int:
        """Tokens of ``text`` with special tokens, not truncated."""
        if self._counter is None:
            from tokenizers import Tokenizer

            self._counter = Tokenizer.from_str(self._tokenizer.to_str())
            self._counter.no_truncation()
            self._counter.no_padding()
        cleaned = clean_text(text, self.spec.clean)
        if self._words is None:
            return len(self._counter.encode(cleaned).ids)
        return len(self._counter.encode(self._words.findall(cleaned), is_pretokenized=True).ids)

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        cleaned = [clean_text(text, self.spec.clean) for text in texts]
        if self._words is None:
            encodings = self._tokenizer.encode_batch(cleaned)
        else:
            encodings = self._tokenizer.encode_batch([self._words.findall(t) for t in cleaned], is_pretokenized=True)
        rows = [encoding.ids for encoding in encodings]
        if any(len(row) != self.spec.context_length for row in rows):  # tokenizer.json truncates and pads
            raise OnnxTextError(f"the saved tokenizer does not pad to {self.spec.context_length} tokens")
        ids = np.array(rows, dtype=np.int64).reshape(len(rows), self.spec.context_length)
        if self.spec.strip_sep_id is not None:
            ids[ids == self.spec.strip_sep_id] = 0
        return ids


class OnnxTextEncoder:
    """Encodes query texts with an exported text tower; float32 unit rows of shape ``(n, dim)``."""

    def __init__(self, folder: Path, manifest: dict[str, Any], throughput: bool = False) -> None:
        """``throughput``: optimise the graph for this CPU and prepack weights (slower to load, faster per
        batch: for ingest); else load fast (for a handful of queries)."""
        import onnxruntime as ort

        self.folder = folder
        self.identity = ModelIdentity.from_dict(manifest["identity"])
        self.fingerprint = str(manifest["fingerprint"])
        spec = TokenizerSpec.from_dict(manifest["tokenizer"])
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if throughput:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        else:
            # The saved graph is already optimised at export (portable level); prepacking weights costs more
            # at load than it saves on a handful of queries.
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            options.add_session_config_entry("session.disable_prepacking", "1")
            # One thread: no pool to start, and a cold query encodes beside the thread that opens the indexes
            # (search/encode.py: encode_aside); a query's few texts gain nothing from a second one (measured on
            # 2 vCPUs under load: 21-31 vs 41-56 ms for one text, 1.0 vs 1.5 s for 64).
            options.intra_op_num_threads = 1
        # The session first, the tokenizer second: building the session releases the GIL (it overlaps what the
        # other thread of a cold query does), parsing tokenizer.json does not.
        self._session = ort.InferenceSession(str(folder / MODEL_FILE), options, providers=["CPUExecutionProvider"])
        self.tokenizer = QueryTokenizer(folder / TOKENIZER_FILE, spec)
        dim = self._session.get_outputs()[0].shape[-1]
        if dim != self.identity.dim:
            raise OnnxTextError(f"the export in {folder} gives {dim}-d vectors, the model {self.identity.dim}-d")

    @property
    def dim(self) -> int:
        return self.identity.dim

    @property
    def context_length(self) -> int:
        return self.tokenizer.spec.context_length

    def count_tokens(self, text: str) -> int:
        """How many tokens ``text`` takes, special tokens included, before truncation (as open_clip counts)."""
        return self.tokenizer.count(text)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        chunks = []
        for start in range(0, len(texts), _BATCH):
            ids = self.tokenizer(list(texts[start : start + _BATCH]))
            chunks.append(self._session.run([OUTPUT_NAME], {INPUT_NAME: ids})[0])
        return l2_normalise(np.concatenate(chunks))


def load_text_encoder(index_dir: Path, identity: ModelIdentity) -> OnnxTextEncoder | None:
    """The verified export of ``identity``'s text tower (the home's, else the shared cache's), or None (none
    written, another model's, check failed, switched off, runtime packages missing, unreadable). Never raises:
    the caller falls back to torch."""
    if not enabled():
        return None
    folder = query_export_folder(index_dir, identity.fingerprint)
    manifest = read_manifest(folder)
    if not usable(manifest, identity):  # a home's own export that does not match means torch, never another's
        return None
    missing = missing_runtime_modules()
    if missing:
        log.info("not using the ONNX text encoder in %s: %s not installed", folder, ", ".join(missing))
        return None
    try:
        return OnnxTextEncoder(folder, manifest)  # type: ignore[arg-type]
    except Exception as exc:  # onnxruntime and tokenizers raise their own kinds; any of them means "use torch"
        log.warning("cannot load the ONNX text encoder in %s (%s: %s); using torch", folder, type(exc).__name__, exc)
        return None
