"""The search options of the API, as query parameters (so a search is a URL), turned into ``Engine.search``
keywords with the same meaning as the CLI's options (``--kind``, ``--mode``, ``--weight NAME=W``, ``--path``...)."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Query

from mmsearch.errors import MmsearchError
from mmsearch.search.filters import Filters

Kind = Literal["image", "caption", "transcript", "audio", "any"]
Mode = Literal["hybrid", "dense", "keyword"]
Fusion = Literal["zscore", "minmax", "rrf"]
Cutoff = Literal["gap", "zscore"]
RETRIEVERS = ("image", "caption", "transcript", "keyword")
MAX_ID = 2**62


class ParameterError(MmsearchError):
    """A search parameter that is well-typed but not acceptable (a malformed weight or date, ...)."""

    exit_code = 2


@dataclass(frozen=True)
class SearchParams:
    text: str | None
    k: int
    kind: str
    like: int | None
    model: str | None
    options: dict[str, Any]
    """``Engine.search`` keywords: mode, fusion, weights, filters, min_score, cutoff, diverse, explain."""


def search_params(
    q: Annotated[str | None, Query(max_length=2000, description="Query text (query arithmetic as in the CLI).")] = None,
    kind: Kind = "image",
    mode: Mode = "hybrid",
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    fusion: Fusion | None = None,
    weight: Annotated[list[str] | None, Query(description="Retriever weight NAME=W (repeatable).")] = None,
    path: Annotated[str | None, Query(max_length=4096, description="Path prefix or glob.")] = None,
    ext: Annotated[list[str] | None, Query(description="Extensions (repeatable, or comma-separated).")] = None,
    since: Annotated[str | None, Query(max_length=40, description="Unix seconds or an ISO date/time.")] = None,
    until: Annotated[str | None, Query(max_length=40, description="Unix seconds or an ISO date/time.")] = None,
    min_score: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    cutoff: Cutoff | None = None,
    diverse: bool = False,
    explain: bool = False,
    like: Annotated[int | None, Query(ge=1, le=MAX_ID, description="More like this indexed asset.")] = None,
    model: Annotated[str | None, Query(max_length=500, description="Refuse unless the index uses it.")] = None,
) -> SearchParams:
    text = _clean(q)
    filters = Filters(path=_clean(path), ext=_extensions(ext or []), since=_time(since), until=_time(until, True))
    options = {
        "mode": mode,
        "fusion": fusion,
        "weights": _weights(weight or []),
        "filters": filters,
        "min_score": min_score,
        "cutoff": cutoff,
        "diverse": diverse or None,
        "explain": explain or None,
    }
    given = {name: value for name, value in options.items() if value is not None}
    return SearchParams(text, k, kind, like, model, given)


def _clean(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if "\x00" in value:
        raise ParameterError("text with a NUL character is refused")
    return value


def _extensions(values: list[str]) -> tuple[str, ...]:
    found = tuple(part.strip().lower().lstrip(".") for value in values for part in value.split(","))
    extensions = tuple(e for e in found if e)
    if len(extensions) > 32 or any(len(e) > 16 or not e.isalnum() for e in extensions):
        raise ParameterError("ext takes up to 32 extensions of letters and digits (jpg, mp3...)")
    return extensions


def _weights(values: list[str]) -> dict[str, float] | None:
    weights: dict[str, float] = {}
    for value in values:
        name, sep, number = value.partition("=")
        try:
            weight = float(number) if sep else math.nan
        except ValueError:
            weight = math.nan
        if name.strip() not in RETRIEVERS or not math.isfinite(weight) or weight < 0:
            raise ParameterError(
                f"weight {value[:60]!r} is not NAME=W with NAME one of {', '.join(RETRIEVERS)} and W >= 0"
            )
        weights[name.strip()] = weight
    return weights or None


def _time(value: str | None, end_of_day: bool = False) -> float | None:
    """Unix seconds from a number or an ISO date (a bare date ``until`` means the end of that day)."""
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        if not math.isfinite(seconds):
            raise ParameterError(f"{value!r} is not a time")
        return seconds
    try:
        moment = dt.datetime.fromisoformat(value.strip())
        if end_of_day and len(value.strip()) == 10:
            moment += dt.timedelta(days=1) - dt.timedelta(microseconds=1)
        return moment.timestamp()
    except (ValueError, OverflowError, OSError):
        raise ParameterError(f"{value[:40]!r} is not Unix seconds or an ISO date (2024-05-01)") from None
