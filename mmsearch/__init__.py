"""mmsearch: cross-modal semantic search over your own photos, captions and recordings.

>>> from mmsearch import Engine
>>> with Engine.open(home="~/.local/share/mmsearch") as eng:    # doctest: +SKIP
...     eng.ingest("~/Pictures")
...     hits = eng.search("a dog on the beach", k=10)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmsearch.errors import MmsearchError

__all__ = ["Engine", "Hit", "IngestReport", "MmsearchError", "__version__"]

if TYPE_CHECKING:
    from mmsearch.engine import Engine
    from mmsearch.ingest.report import IngestReport
    from mmsearch.search import Hit


def __getattr__(name: str) -> Any:
    # Imported on first use so that `import mmsearch` (and `mmsearch --help`) stays light.
    if name == "__version__":
        from importlib.metadata import version

        return version("mmsearch")  # the one version: pyproject.toml's, as installed
    if name == "Engine":
        from mmsearch.engine import Engine

        return Engine
    if name == "Hit":
        from mmsearch.search import Hit

        return Hit
    if name == "IngestReport":
        from mmsearch.ingest.report import IngestReport

        return IngestReport
    raise AttributeError(f"module 'mmsearch' has no attribute {name!r}")
