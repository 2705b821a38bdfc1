"""How to search: :class:`SearchOptions` and the target of a search (``k``, ``kind``), each checked once,
when it is made (callers do not check again)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mmsearch.errors import MmsearchError
from mmsearch.kinds import (
    CAPTION,
    CUTOFF_METHODS,
    DEFAULT_FUSION,
    DEFAULT_MODE,
    FUSION_METHODS,
    IMAGE,
    KEYWORD,
    MODES,
    SEARCH_KINDS,
    TRANSCRIPT,
)
from mmsearch.search.filters import Filters

DEFAULT_WEIGHTS: dict[str, float] = {IMAGE: 1.0, CAPTION: 1.0, TRANSCRIPT: 1.0, KEYWORD: 0.5}
"""Tuned on the DEV mixed library (bench/hybrid.py; see bench/RESULTS.md)."""


class SearchError(MmsearchError):
    """A search that cannot be made as asked (keyword mode without words, ...)."""

    exit_code = 2


@dataclass(frozen=True)
class SearchOptions:
    """How to search: mode, fusion method and weights, filters, score cut-offs, diversity, explanations.

    ``fusion``: ``zscore`` or ``minmax`` (each retriever's scores calibrated per query, then weighted and
    summed) or ``rrf`` (reciprocal-rank fusion). ``cutoff``: ``gap`` or ``zscore`` drops the tail of results
    that falls away from the rest (an adaptive, per-query relevance cut). ``diverse``: near-duplicates
    (cosine >= 0.95) are collapsed and the rest re-ordered by maximal marginal relevance.
    Checked when made: an unknown mode, fusion or cutoff raises ValueError.
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
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.fusion not in FUSION_METHODS:
            raise ValueError(f"fusion must be one of {', '.join(FUSION_METHODS)}, not {self.fusion!r}")
        if self.cutoff is not None and self.cutoff not in CUTOFF_METHODS:
            raise ValueError(f"cutoff must be one of {', '.join(CUTOFF_METHODS)}, not {self.cutoff!r}")

    @classmethod
    def from_keywords(cls, options: Mapping[str, Any]) -> SearchOptions:
        """Options from ``Engine.search`` keywords (None: the default); an unknown keyword raises TypeError."""
        given = {name: value for name, value in options.items() if value is not None}
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown search option(s): {', '.join(sorted(unknown))}")
        return cls(**given)

    def weight(self, retriever: str) -> float:
        return float(self.weights.get(retriever, DEFAULT_WEIGHTS.get(retriever, 1.0)))


@dataclass(frozen=True)
class Target:
    """What a search returns: the top ``k`` hits of ``kind`` (one of :data:`~mmsearch.kinds.SEARCH_KINDS`)."""

    k: int = 10
    kind: str = IMAGE

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError("k must be at least 1")
        if self.kind not in SEARCH_KINDS:
            raise ValueError(f"kind must be one of {', '.join(SEARCH_KINDS)}, not {self.kind!r}")
