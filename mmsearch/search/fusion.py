"""Hybrid search, the pure part: per-asset evidence, score calibration, rank fusion and re-ranking.

Every retriever (dense "image", "caption", "transcript"; "keyword" BM25) gives a :data:`Ranked` list of
``(asset_id, score)`` pairs, best first. The functions here turn several such lists into one ranked list
per asset, explain how each asset got its score, diversify it (MMR), drop near-duplicates and decide
where the useful results end. Nothing here touches a database or a model.

Shared rules of the fusion functions:

* the output is sorted by fused score, descending, ties broken by asset id ascending, and holds at most
  ``k`` distinct assets, each of which appears in a retriever with a non-zero weight;
* weights default to 1.0 for any retriever not named; negative or non-finite weights are refused;
  a retriever with weight 0 is dropped before anything is computed, so it changes nothing at all;
* an input list is taken as given (best first, as :func:`best_per_asset` returns it); a repeated asset
  keeps its first entry;
* fused scores are the correctly rounded value of the exact weighted sum, so scaling every weight by the
  same positive constant scales the exact scores and cannot reorder them (beyond float rounding of scores
  that are equal to within one unit in the last place).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, TypeAlias

from mmsearch.kinds import FUSION_METHODS, NORMALISATIONS
from mmsearch.search.rerank import adaptive_cutoff, collapse_near_duplicates, mmr
from mmsearch.search.scores import (
    FusionError,
    Ranked,
    check_choice,
    check_k,
    dedupe,
    normalise,
)

MISSING_RULES = ("min", "mean")
Missing: TypeAlias = "float | str | None"
"""How weighted fusion fills a retriever's value for an asset it did not return: a number, ``"min"``
(the default: its lowest normalised value) or ``"mean"`` (neutral: its average normalised value)."""


# ---------------------------------------------------------------- per-asset evidence and calibration


def best_per_asset(items: Iterable[tuple[int, float]]) -> Ranked:
    """The best (maximum) score of each asset, sorted by score descending, ties by asset id ascending.

    Reduces item-level hits (caption rows, transcript segments, ...) to one score per asset.
    """
    best: dict[int, float] = {}
    for asset_id, score in items:
        score = float(score)
        if math.isnan(score):
            raise FusionError(f"asset {asset_id} has a NaN score")
        if asset_id not in best or score > best[asset_id]:
            best[asset_id] = score
    return _sorted(best)


def reciprocal_rank_fusion(
    results: Mapping[str, Ranked],
    weights: Mapping[str, float] | None = None,
    k: int = 10,
    c: float = 60.0,
) -> Ranked:
    """Reciprocal rank fusion: ``score(asset) = sum_r w_r / (c + rank_r(asset))``, rank 1-based within r.

    Only ranks matter, so retrievers need no calibration; an asset a retriever did not return gets nothing
    from it. ``c`` (>= 0) damps the advantage of the very top ranks.
    """
    check_k(k)
    return _top(_fused_scores(_contributions(results, weights, "rrf", c=c)), k)


def weighted_fusion(
    results: Mapping[str, Ranked],
    weights: Mapping[str, float] | None = None,
    k: int = 10,
    method: str = "zscore",
    missing: float | str | Mapping[str, float | str | None] | None = None,
) -> Ranked:
    """Normalise each retriever's scores for this query (:func:`normalise`), then add them up, weighted.

    An asset a retriever did not return gets that retriever's normalised minimum, unless ``missing`` gives
    a value. Retrievers return only their top-N, so an absent asset scored at most as well as the last one
    returned: the minimum is the tightest bound we know, and it neither rewards nor heavily punishes an
    asset just for falling outside one retriever's cut-off (a fill of 0 would punish it for every
    retriever that merely did not reach it). The flip side: a retriever that returned one asset, or only
    equal scores, does not lift its assets above the others. Pass ``missing=0.0`` when absence is real
    evidence (a keyword retriever that found no match). An active retriever that returned nothing
    contributes 0 (or ``missing``) to every asset.
    """
    check_k(k)
    check_choice("normalisation", method, NORMALISATIONS)
    return _top(_fused_scores(_contributions(results, weights, method, missing=missing)), k)


def fuse(
    results: Mapping[str, Ranked],
    weights: Mapping[str, float] | None = None,
    k: int = 10,
    method: str = "rrf",
    *,
    c: float = 60.0,
    missing: float | str | Mapping[str, float | str | None] | None = None,
) -> Ranked:
    """One entry point: ``method`` is ``"rrf"`` (:func:`reciprocal_rank_fusion`) or a normalisation
    (``"zscore"``, ``"minmax"``) for :func:`weighted_fusion`."""
    check_choice("fusion method", method, FUSION_METHODS)
    if method == "rrf":
        return reciprocal_rank_fusion(results, weights, k=k, c=c)
    return weighted_fusion(results, weights, k=k, method=method, missing=missing)


@dataclass(frozen=True)
class Contribution:
    """What one retriever gave one asset.

    ``raw_score`` and ``rank`` (1-based) are None when the retriever did not return the asset.
    ``normalised`` is ``1 / (c + rank)`` for RRF (0 when absent), else the calibrated score (the fill value
    when absent); ``contribution = weight * normalised``.
    """

    weight: float
    raw_score: float | None
    rank: int | None
    normalised: float
    contribution: float


@dataclass(frozen=True)
class Explanation:
    """Why an asset has its fused score: its place in the fused list and each retriever's share."""

    asset_id: int
    rank: int
    score: float
    method: str
    contributions: dict[str, Contribution] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def explain(
    results: Mapping[str, Ranked],
    fused: Ranked,
    weights: Mapping[str, float] | None = None,
    method: str = "rrf",
    *,
    c: float = 60.0,
    missing: float | str | Mapping[str, float | str | None] | None = None,
) -> dict[int, Explanation]:
    """For each asset of ``fused`` (by asset id, in fused order): every retriever's raw score, rank and
    normalised contribution, for ``--explain``. Pass the arguments the fused list was made with.

    Retrievers with weight 0 are listed too (contribution 0), so the output shows what they would say.
    The contributions of an asset add up to its fused score.
    """
    check_choice("fusion method", method, FUSION_METHODS)
    resolved = _resolve_weights(results, weights)
    parts = _contributions(results, resolved, method, c=c, missing=missing, keep_zero=True)
    lists = {name: dedupe(ranked) for name, ranked in results.items()}
    ranks = {name: {asset_id: i for i, (asset_id, _) in enumerate(entries, start=1)} for name, entries in lists.items()}
    out: dict[int, Explanation] = {}
    for position, (asset_id, score) in enumerate(fused, start=1):
        per_retriever: dict[str, Contribution] = {}
        for name, entries in lists.items():
            rank = ranks[name].get(asset_id)
            normalised = parts.normalised[name].get(asset_id, parts.fill[name])
            per_retriever[name] = Contribution(
                weight=resolved[name],
                raw_score=None if rank is None else entries[rank - 1][1],
                rank=rank,
                normalised=normalised,
                contribution=resolved[name] * normalised,
            )
        out[asset_id] = Explanation(asset_id, position, float(score), method, per_retriever)
    return out


# ---------------------------------------------------------------- re-ranking


@dataclass
class _Parts:
    """Per-retriever normalised values of the assets it returned, the fill for those it did not, weights."""

    weights: dict[str, float]
    normalised: dict[str, dict[int, float]]
    fill: dict[str, float]


def _contributions(
    results: Mapping[str, Ranked],
    weights: Mapping[str, float] | None,
    method: str,
    *,
    c: float = 60.0,
    missing: float | str | Mapping[str, float | str | None] | None = None,
    keep_zero: bool = False,
) -> _Parts:
    resolved = _resolve_weights(results, weights)
    if method == "rrf" and not (math.isfinite(c) and c >= 0):
        raise FusionError(f"c must be a finite number >= 0, not {c}")
    for value in missing.values() if isinstance(missing, Mapping) else [missing]:
        if value is not None and value not in MISSING_RULES and not (_is_number(value) and math.isfinite(float(value))):
            raise FusionError(f"missing must be a finite number, 'min' or 'mean', not {value!r}")
    parts = _Parts({}, {}, {})
    for name, ranked in results.items():
        weight = resolved[name]
        if weight == 0 and not keep_zero:
            continue  # a zero weight is the same as not asking that retriever at all
        entries = dedupe(ranked)
        if method == "rrf":
            values = [1.0 / (c + rank) for rank in range(1, len(entries) + 1)]
            fill = 0.0
        else:
            values = normalise([s for _, s in entries], method)
            fill = _fill(values, missing.get(name) if isinstance(missing, Mapping) else missing)
        parts.weights[name] = weight
        parts.normalised[name] = {asset_id: v for (asset_id, _), v in zip(entries, values, strict=True)}
        parts.fill[name] = float(fill)
    return parts


def _fill(values: list[float], rule: Missing) -> float:
    """The normalised value of an asset a retriever did not return: a number, or the ``min`` (default) or
    ``mean`` of what it did return."""
    if not values:
        return 0.0 if rule is None or isinstance(rule, str) else float(rule)
    if rule is None or rule == "min":
        return min(values)
    if rule == "mean":
        return math.fsum(values) / len(values)
    return float(rule)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _fused_scores(parts: _Parts) -> dict[int, float]:
    assets: dict[int, None] = {}
    for values in parts.normalised.values():
        assets.update(dict.fromkeys(values))
    names = list(parts.normalised)
    weights = [parts.weights[name] for name in names]
    return {
        asset_id: _exact_dot(weights, [parts.normalised[name].get(asset_id, parts.fill[name]) for name in names])
        for asset_id in assets
    }


def _exact_dot(weights: Sequence[float], values: Sequence[float]) -> float:
    """``sum(w * v)`` computed exactly (floats are dyadic rationals), then rounded once to a float."""
    terms = []
    for w, v in zip(weights, values, strict=True):
        wn, wd = float(w).as_integer_ratio()
        vn, vd = float(v).as_integer_ratio()
        terms.append((wn * vn, wd * vd))
    if not terms:
        return 0.0
    denominator = max(d for _, d in terms)  # all powers of two
    return sum(n * (denominator // d) for n, d in terms) / denominator


def _top(scores: Mapping[int, float], k: int) -> Ranked:
    return _sorted(scores)[:k]


def _sorted(scores: Mapping[int, float]) -> Ranked:
    return sorted(((int(a), float(s)) for a, s in scores.items()), key=lambda item: (-item[1], item[0]))


def _resolve_weights(results: Mapping[str, Ranked], weights: Mapping[str, float] | None) -> dict[str, float]:
    given = dict(weights or {})
    for name, weight in given.items():
        if not (isinstance(weight, numbers.Real) and math.isfinite(weight) and weight >= 0):
            raise FusionError(f"the weight of retriever {name!r} must be a finite number >= 0, not {weight!r}")
    return {name: float(given.get(name, 1.0)) for name in results}


__all__ = [
    "Contribution",
    "Explanation",
    "FusionError",
    "Ranked",
    "adaptive_cutoff",
    "best_per_asset",
    "collapse_near_duplicates",
    "explain",
    "fuse",
    "mmr",
    "normalise",
    "reciprocal_rank_fusion",
    "weighted_fusion",
]
