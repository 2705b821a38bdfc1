"""Many text queries read from a file (``mmsearch query --from-file``): read with a bound, line by line, each
line checked on its own, so one bad line is reported by its number and the others are still answered."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

from mmsearch.errors import MmsearchError
from mmsearch.search.paths import resolve_query_images
from mmsearch.search.query import Query

MAX_BYTES = 16 << 20
"""The most a query file may hold (``/dev/zero`` must not take the memory)."""


class QueryFileError(MmsearchError):
    """A query file that cannot be read as a whole (too large, unreadable)."""

    exit_code = 2


@dataclass(frozen=True)
class QueryLines:
    """The queries of a file, with their line numbers (``texts``), and the lines that are none (``errors``:
    line number and why), in file order."""

    texts: list[tuple[int, str]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)


def read_query_lines(stream: BinaryIO, name: str = "query file") -> QueryLines:
    """One query per non-blank line of ``stream`` (UTF-8), with ``image:`` paths made absolute; a line that is
    not UTF-8 or not a valid query is an error of that line. Raises QueryFileError past :data:`MAX_BYTES`."""
    try:
        data = stream.read(MAX_BYTES + 1)
    except OSError as exc:
        raise QueryFileError(f"cannot read {name}: {exc}") from exc
    if len(data) > MAX_BYTES:
        raise QueryFileError(f"{name} is larger than {MAX_BYTES >> 20} MiB: split it")
    lines = QueryLines()
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            lines.errors.append((number, f"not valid UTF-8 (byte {exc.start + 1})"))
            continue
        if not text:
            continue
        try:
            text = resolve_query_images(text)
            Query.parse(text)
        except (MmsearchError, ValueError) as exc:
            lines.errors.append((number, str(exc)))
            continue
        lines.texts.append((number, text))
    return lines
