"""How to search: :class:`SearchOptions` and the target of a search (``k``, ``kind``), each checked once,
when it is made (callers do not check again)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mmsearch.errors import MmsearchError
from mmsearch.kinds import (
    CAPTION,
    CUTOFF_METHODS,
    DEFAULT_FUSION,
    DEFAULT_MODE,
    FRAME,
    FUSION_METHODS,
    IMAGE,
    KEYWORD,
    MODES,
    SEARCH_KINDS,
    TRANSCRIPT,
)
from mmsearch.search.filters import Filters

DEFAULT_WEIGHTS: dict[str, float] = {IMAGE: 1.0, CAPTION: 1.0, TRANSCRIPT: 1.0, FRAME: 1.0, KEYWORD: 0.5}
"""Tuned on the DEV mixed library (bench/hybrid.py; see bench/RESULTS.md)."""
MAX_K = 10_000
"""The most hits one search may ask for (a bound on memory: every hit is built in full)."""


class SearchError(MmsearchError):
    """A search that cannot be made as asked (keyword mode without words, ...)."""

    exit_code = 2


class OptionError(SearchError, ValueError):
    """An option value that is not valid (an unknown weight name, a NaN, ``k`` out of range, ...): a usage
    error (exit code 2), and a ValueError for callers of the library."""


class UnknownOptionError(SearchError, TypeError):
    """A search keyword that is no option (a TypeError, as for any unknown keyword argument)."""


def check_number(name: str, value: Any, minimum: float | None = None) -> float:
    """``value`` as a finite float (at least ``minimum``); OptionError otherwise (strings, NaN, inf, bools)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise OptionError(f"{name} must be a number, not {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise OptionError(f"{name} must be a finite number, not {value!r}")
    if minimum is not None and number < minimum:
        raise OptionError(f"{name} cannot be below {minimum:g}, not {value!r}")
    return number


def check_weights(weights: Any) -> None:
    """Retriever weights: a mapping of known retriever names to finite numbers >= 0."""
    if not isinstance(weights, Mapping):
        raise OptionError(f"weights must be a mapping of retriever names to numbers, not {weights!r}")
    for name, value in weights.items():
        if name not in DEFAULT_WEIGHTS:
            raise OptionError(f"unknown weight {name!r}; valid names: {', '.join(DEFAULT_WEIGHTS)}")
        check_number(f"weight {name!r}", value, minimum=0.0)


@dataclass(frozen=True)
class SearchOptions:
    """How to search: mode, fusion method and weights, filters, score cut-offs, diversity, explanations.

    ``fusion``: ``zscore`` or ``minmax`` (each retriever's scores calibrated per query, then weighted and
    summed) or ``rrf`` (reciprocal-rank fusion). ``cutoff``: ``gap`` or ``zscore`` drops the tail of results
    that falls away from the rest (an adaptive, per-query relevance cut). ``diverse``: near-duplicates
    (cosine >= 0.95) are collapsed and the rest re-ordered by maximal marginal relevance.
    Checked when made: an unknown mode, fusion or cutoff, an unknown weight name, a weight or ``min_score``
    that is not a finite number raise :class:`OptionError` (a ValueError).
    """

    mode: str = DEFAULT_MODE
    fusion: str = DEFAULT_FUSION
    weights: Mapping[str, float] = field(default_factory=dict)
    filters: Filters = field(default_factory=Filters)
    min_score: float | None = None
    cutoff: str | None = None
    diverse: bool = False
    explain: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.fusion not in FUSION_METHODS:
            raise OptionError(f"fusion must be one of {', '.join(FUSION_METHODS)}, not {self.fusion!r}")
        if self.cutoff is not None and self.cutoff not in CUTOFF_METHODS:
            raise OptionError(f"cutoff must be one of {', '.join(CUTOFF_METHODS)}, not {self.cutoff!r}")
        check_weights(self.weights)
        if self.min_score is not None:
            check_number("min_score", self.min_score)
        if not isinstance(self.filters, Filters):
            raise OptionError(f"filters must be Filters, not {self.filters!r}")
        for name, flag in (("diverse", self.diverse), ("explain", self.explain)):
            if not isinstance(flag, bool):
                raise OptionError(f"{name} must be true or false, not {flag!r}")

    @classmethod
    def from_keywords(cls, options: Mapping[str, Any]) -> SearchOptions:
        """Options from ``Engine.search`` keywords (None: the default); an unknown keyword raises TypeError."""
        given = {name: value for name, value in options.items() if value is not None}
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            raise UnknownOptionError(f"unknown search option(s): {', '.join(sorted(unknown))}")
        return cls(**given)

    def weight(self, retriever: str) -> float:
        return float(self.weights.get(retriever, DEFAULT_WEIGHTS.get(retriever, 1.0)))


@dataclass(frozen=True)
class Target:
    """What a search returns: the top ``k`` hits of ``kind`` (one of :data:`~mmsearch.kinds.SEARCH_KINDS`)."""

    k: int = 10
    kind: str = IMAGE

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int):
            raise OptionError(f"k must be an integer, not {self.k!r}")
        if self.k < 1:
            raise OptionError("k must be at least 1")
        if self.k > MAX_K:
            raise OptionError(f"k must be at most {MAX_K}, not {self.k}")
        if self.kind not in SEARCH_KINDS:
            raise OptionError(f"kind must be one of {', '.join(SEARCH_KINDS)}, not {self.kind!r}")
