"""Which assets a search may return: path, extension and time filters (no heavy imports: the CLI builds these)."""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmsearch.errors import MmsearchError

if TYPE_CHECKING:
    from mmsearch.store.records import StoredFile

GLOB_CHARS = "*?["


class FilterError(MmsearchError, ValueError):
    """A filter value that is not valid (a path that is not text, a time that is not a finite number, ...)."""

    exit_code = 2


@dataclass(frozen=True)
class Filters:
    """Which assets may be returned. Applied before the top-k cut, so ``k`` results come back when they exist.

    ``path``: a folder (matched on whole path components: ``/lib/20`` holds ``/lib/20/x.jpg``, not
    ``/lib/2021/x.jpg``) or a glob (``*``, ``?``, ``[``) matched against the whole path. Stored paths are
    absolute: a caller resolves a relative path first (:func:`mmsearch.search.paths.path_filter`, as the CLI
    does). ``ext``: extensions without dots; ``since``/``until``: Unix seconds, compared with when a photo was
    taken (EXIF) where its header says, else with the file's modification time. Checked when made.
    """

    path: str | None = None
    ext: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        if self.path is not None and not isinstance(self.path, str):
            raise FilterError(f"the path filter must be text, not {self.path!r}")
        if not isinstance(self.ext, tuple) or not all(isinstance(e, str) for e in self.ext):
            raise FilterError(f"extensions must be a list of text, not {self.ext!r}")
        for name, value in (("since", self.since), ("until", self.until)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value)
            ):
                raise FilterError(f"{name} must be a time in Unix seconds, not {value!r}")

    @property
    def is_glob(self) -> bool:
        return self.path is not None and any(char in self.path for char in GLOB_CHARS)

    def accepts(self, file: StoredFile) -> bool:
        if self.path and not self._path_matches(file.path):
            return False
        if self.ext and os.path.splitext(file.path)[1].lower().lstrip(".") not in self.ext:
            return False
        seconds = file.time
        if self.since is not None and seconds < self.since:
            return False
        return self.until is None or seconds <= self.until

    def _path_matches(self, path: str) -> bool:
        assert self.path is not None
        if self.is_glob:
            return fnmatch.fnmatchcase(path, self.path)
        prefix = self.path if self.path == os.sep else self.path.rstrip(os.sep)
        return path == prefix or path.startswith(prefix if prefix.endswith(os.sep) else prefix + os.sep)

    def describe(self) -> str:
        """The filters in words, for a note when they let nothing through."""
        parts = [f"path {self.path}"] if self.path else []
        if self.ext:
            parts.append("extension " + ", ".join(self.ext))
        if self.since is not None:
            parts.append(f"since {_when(self.since)}")
        if self.until is not None:
            parts.append(f"until {_when(self.until)}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "ext": list(self.ext), "since": self.since, "until": self.until}


def timestamp(value: dt.datetime, end_of_day: bool = False) -> float:
    """Unix seconds of a naive local date and time (the last microsecond of the day for a bare date with
    ``end_of_day``); dates the platform cannot convert (year 1, year 9999) are converted as UTC."""
    if end_of_day and value.time() == dt.time(0, 0):
        value = value.replace(hour=23, minute=59, second=59, microsecond=999_999)
    try:
        return value.timestamp()
    except (ValueError, OverflowError, OSError):
        return value.replace(tzinfo=dt.timezone.utc).timestamp()


def _when(seconds: float) -> str:
    try:
        return dt.datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")
    except (ValueError, OverflowError, OSError):
        return f"{seconds:g} s"
