"""Media Fragments (W3C) temporal URIs as relevant answers: ``clip.mp4#t=12,19`` names seconds 12 to 19 of
``clip.mp4``. Accepted forms: ``#t=12,19``, ``#t=12`` (from 12 on), ``#t=,19`` (up to 19), an ``npt:`` prefix, and
times as seconds (``12.5``), ``mm:ss`` or ``hh:mm:ss(.fff)``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mmsearch.errors import MmsearchError


class FragmentError(MmsearchError, ValueError):
    """A malformed media fragment (``#t=...``)."""

    exit_code = 2


@dataclass(frozen=True)
class Fragment:
    """A relevant answer: a path (or suffix, name or stem) and, for a moment, its span in seconds."""

    target: str
    start: float = 0.0
    end: float = math.inf

    @property
    def is_moment(self) -> bool:
        return self.start > 0.0 or self.end < math.inf

    def overlaps(self, start: float | None, end: float | None) -> bool:
        """Whether a hit's span [start, end] meets this one (an unknown end counts as the start: a point)."""
        if not self.is_moment:
            return True
        if start is None:
            return False
        end = start if end is None else end
        return start < self.end and self.start < end if end > start else self.start <= start <= self.end


_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")


def parse_fragment(entry: str) -> Fragment:
    """Split ``path#t=a,b`` into a :class:`Fragment`; an entry without ``#t=`` is a whole file."""
    target, hash_sign, fragment = entry.partition("#")
    if not hash_sign:
        return Fragment(entry)
    if not fragment.startswith("t="):
        raise FragmentError(f"{entry}: only temporal media fragments (#t=start,end) are understood")
    value = fragment[2:].removeprefix("npt:")
    first, comma, second = value.partition(",")
    start = _seconds(first, entry) if first else 0.0
    end = _seconds(second, entry) if comma and second else math.inf
    if (comma and not first and not second) or end <= start:
        raise FragmentError(f"{entry}: a fragment needs start < end")
    return Fragment(target, start, end)


def _seconds(text: str, entry: str) -> float:
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        match = _CLOCK.match(text)
        if match is None:
            raise FragmentError(f"{entry}: cannot read the time {text!r}") from None
        hours, minutes, seconds = match.groups()
        value = int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    if not math.isfinite(value) or value < 0:
        raise FragmentError(f"{entry}: a time must be a finite number of seconds >= 0")
    return value
