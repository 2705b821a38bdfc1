"""Which assets a search may return: path, extension and time filters (no heavy imports: the CLI builds these)."""

from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmsearch.store.records import StoredFile


@dataclass(frozen=True)
class Filters:
    """Which assets may be returned. Applied before the top-k cut, so ``k`` results come back when they exist.

    ``path``: a folder or path prefix, or a glob (``*``, ``?``, ``[``) matched against the whole path;
    ``ext``: extensions without dots; ``since``/``until``: Unix seconds, compared with when a photo was taken
    (EXIF) where its header says, else with the file's modification time.
    """

    path: str | None = None
    ext: tuple[str, ...] = ()
    since: float | None = None
    until: float | None = None

    def accepts(self, file: StoredFile) -> bool:
        if self.path:
            if any(char in self.path for char in "*?["):
                if not fnmatch.fnmatchcase(file.path, self.path):
                    return False
            elif not file.path.startswith(self.path):
                return False
        if self.ext and os.path.splitext(file.path)[1].lower().lstrip(".") not in self.ext:
            return False
        seconds = file.time
        if self.since is not None and seconds < self.since:
            return False
        return self.until is None or seconds <= self.until
