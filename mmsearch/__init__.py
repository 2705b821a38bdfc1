"""mmsearch: cross-modal semantic search over your own photos, captions and recordings.

>>> from mmsearch import Engine
>>> with Engine.open(home="~/.local/share/mmsearch") as eng:    # doctest: +SKIP
...     eng.ingest("~/Pictures")
...     hits = eng.search("a dog on the beach", k=10)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mmsearch.errors import MmsearchError

_EXPORTS = {
    "Engine": "mmsearch.engine",
    "EvalReport": "mmsearch.evaluation",
    "Filters": "mmsearch.search.filters",
    "Hit": "mmsearch.search.hits",
    "IndexRebuilt": "mmsearch.reports",
    "IngestReport": "mmsearch.ingest.report",
    "ReindexReport": "mmsearch.reports",
    "SearchOptions": "mmsearch.search.options",
    "Searcher": "mmsearch.searcher",
    "StatusReport": "mmsearch.status",
    "open_searcher": "mmsearch.searcher",
}
"""Public name -> the module that defines it (imported on first use)."""

__all__ = [
    "Engine",
    "EvalReport",
    "Filters",
    "Hit",
    "IndexRebuilt",
    "IngestReport",
    "MmsearchError",
    "ReindexReport",
    "SearchOptions",
    "Searcher",
    "StatusReport",
    "__version__",
    "open_searcher",
]

if TYPE_CHECKING:
    from mmsearch.engine import Engine
    from mmsearch.evaluation import EvalReport
    from mmsearch.ingest.report import IngestReport
    from mmsearch.reports import IndexRebuilt, ReindexReport
    from mmsearch.search.filters import Filters
    from mmsearch.search.hits import Hit
    from mmsearch.search.options import SearchOptions
    from mmsearch.searcher import Searcher, open_searcher
    from mmsearch.status import StatusReport


def __getattr__(name: str) -> Any:
    # Imported on first use so that `import mmsearch` (and `mmsearch --help`) stays light.
    if name == "__version__":
        from importlib.metadata import version

        return version("mmsearch")  # the one version: pyproject.toml's, as installed
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mmsearch' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
