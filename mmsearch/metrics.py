"""Ranking metrics for ``mmsearch eval``: binary relevance, one ranked list of item keys per query.

``ranked`` is the system's answer, best first; ``relevant`` the items judged relevant (at least one).
An item repeated in ``ranked`` counts only at its first position: a repeat keeps its place in the list
but gains nothing. Every metric lies in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable, Sequence

from mmsearch.errors import MmsearchError


class MetricsError(MmsearchError, ValueError):
    """An invalid argument to a metric (k < 1, no relevant items, ...)."""

    exit_code = 2


def recall_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Success@k: 1.0 if any relevant item is among the top ``k``, else 0.0.

    This is what retrieval papers (Flickr8k/30k, COCO) call "Recall@K" for one query: averaged over
    queries it is the fraction of queries answered within the top k. For the fraction of a query's
    relevant items found, see :func:`fraction_recalled_at_k`.
    """
    _check_k(k)
    wanted = _relevant(relevant)
    return 1.0 if any(item in wanted for item in ranked[:k]) else 0.0


def fraction_recalled_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """The fraction of the relevant items found among the top ``k``: ``|top k ∩ relevant| / |relevant|``."""
    _check_k(k)
    wanted = _relevant(relevant)
    return len(wanted.intersection(ranked[:k])) / len(wanted)


def reciprocal_rank(ranked: Sequence[str], relevant: Collection[str]) -> float:
    """``1 / rank`` of the first relevant item (rank 1-based), 0.0 if none is ranked."""
    wanted = _relevant(relevant)
    for rank, item in enumerate(ranked, start=1):
        if item in wanted:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Normalised discounted cumulative gain at ``k`` with binary gains and a ``log2(rank + 1)`` discount.

    The ideal DCG puts ``min(k, |relevant|)`` relevant items first, so a ranking that does that scores 1.0.
    """
    _check_k(k)
    wanted = _relevant(relevant)
    dcg = math.fsum(_discount(rank) for rank, item in _first_positions(ranked[:k]) if item in wanted)
    ideal = math.fsum(_discount(rank) for rank in range(1, min(k, len(wanted)) + 1))
    return min(1.0, dcg / ideal)


def query_metrics(ranked: Sequence[str], relevant: Collection[str], ks: Iterable[int] = (1, 5, 10)) -> dict[str, float]:
    """Every metric for one query: ``recall@k``, ``fraction_recalled@k`` and ``ndcg@k`` for each k, and ``mrr``."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(ranked, relevant, k)
        out[f"fraction_recalled@{k}"] = fraction_recalled_at_k(ranked, relevant, k)
        out[f"ndcg@{k}"] = ndcg_at_k(ranked, relevant, k)
    out["mrr"] = reciprocal_rank(ranked, relevant)
    return out


def summarise(per_query: Sequence[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over the queries that report it (keys in first-seen order); {} for none."""
    values: dict[str, list[float]] = {}
    for metrics in per_query:
        for name, value in metrics.items():
            values.setdefault(name, []).append(float(value))
    return {name: math.fsum(vs) / len(vs) for name, vs in values.items()}


def _discount(rank: int) -> float:
    return 1.0 / math.log2(rank + 1)


def _first_positions(ranked: Iterable[Hashable]) -> list[tuple[int, Hashable]]:
    """``(rank, item)`` for the first occurrence of each item, ranks 1-based in ``ranked``."""
    seen: set[Hashable] = set()
    out = []
    for rank, item in enumerate(ranked, start=1):
        if item not in seen:
            seen.add(item)
            out.append((rank, item))
    return out


def _relevant(relevant: Collection[Hashable]) -> set[Hashable]:
    wanted = set(relevant)
    if not wanted:
        raise MetricsError("a query needs at least one relevant item to be scored")
    return wanted


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise MetricsError(f"k must be an integer >= 1, not {k!r}")
