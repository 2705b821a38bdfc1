"""Decoder warnings (Pillow's "Possibly corrupt EXIF data", "Tag data larger than file", pillow-heif's ...)
caught per file instead of printed on stderr.

:func:`routed` wraps an ingest run: while it is active, every warning raised by Pillow or pillow-heif while a
thread is inside :func:`collecting` goes to that file's list (each occurrence, not only the first per code
line); any other warning is shown as usual.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_DECODER_MODULES = r"(PIL|pillow_heif)(\.|$)"
_local = threading.local()


@contextmanager
def routed() -> Iterator[None]:
    """Route decoder warnings raised inside :func:`collecting` to its list, for the duration (restored after)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("always", module=_DECODER_MODULES)
        shown = warnings.showwarning

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            sink: list[str] | None = getattr(_local, "sink", None)
            if sink is None:
                shown(message, category, filename, lineno, file, line)
            else:
                sink.append(f"{category.__name__}: {message}")

        warnings.showwarning = show
        yield


@contextmanager
def collecting(sink: list[str]) -> Iterator[list[str]]:
    """Within a :func:`routed` run, the warnings this thread raises go to ``sink`` (nested calls: the innermost)."""
    previous = getattr(_local, "sink", None)
    _local.sink = sink
    try:
        yield sink
    finally:
        _local.sink = previous
