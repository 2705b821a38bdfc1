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

import numpy as np

from mmsearch.errors import MmsearchError
from mmsearch.kinds import CUTOFF_METHODS, FUSION_METHODS, NORMALISATIONS

Ranked = list[tuple[int, float]]
"""``(asset_id, score)`` pairs, best first."""

MISSING_RULES = ("min", "mean")
Missing: TypeAlias = "float | str | None"
"""How weighted fusion fills a retriever's value for an asset it did not return: a number, ``"min"``
(the default: its lowest normalised value) or ``"mean"`` (neutral: its average normalised value)."""
_COSINE_SLACK = 1e-9  # float rounding of a cosine between identical unit vectors


class FusionError(MmsearchError, ValueError):
    """An invalid argument to a fusion or re-ranking function (a negative weight, k < 1, ...)."""

    exit_code = 2


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


def normalise(scores: Sequence[float], method: str = "zscore") -> list[float]:
    """Calibrate one retriever's scores for one query so that retrievers can be added up.

    ``"zscore"``: ``z = (s - mean) / std`` over the list (population std), then squashed with the logistic
    function ``1 / (1 + exp(-z))`` into (0, 1), 0.5 at the mean. Raw z-scores are unbounded, so a single
    outlier in one retriever would swamp the others; squashed, every retriever contributes at most its
    weight, on the same scale as ``"minmax"``, and the order is kept (not strictly: rounding can tie scores
    that differ only in their last digits).

    ``"minmax"``: ``(s - min) / (max - min)`` into [0, 1].

    A list with fewer than two distinct values carries no calibration information: it gives 0.5 for every
    entry with ``"zscore"`` and 1.0 with ``"minmax"``. The output never holds NaN; non-finite input is
    refused.
    """
    _check_choice("normalisation", method, NORMALISATIONS)
    values = _finite_array(scores, "score")
    if values.size == 0:
        return []
    if values.max() == values.min():
        return [0.5 if method == "zscore" else 1.0] * int(values.size)
    values = _scaled(values)
    if method == "minmax":
        low, high = values.min(), values.max()
        out = np.clip((values - low) / (high - low), 0.0, 1.0)
    else:
        with np.errstate(over="ignore"):
            out = 1.0 / (1.0 + np.exp(-_zscores(values)))
    return [float(v) for v in out]


# ---------------------------------------------------------------- fusion


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
    _check_k(k)
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
    _check_k(k)
    _check_choice("normalisation", method, NORMALISATIONS)
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
    _check_choice("fusion method", method, FUSION_METHODS)
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
    _check_choice("fusion method", method, FUSION_METHODS)
    resolved = _resolve_weights(results, weights)
    parts = _contributions(results, resolved, method, c=c, missing=missing, keep_zero=True)
    lists = {name: _dedupe(ranked) for name, ranked in results.items()}
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


def mmr(candidates: Ranked, vectors: Mapping[int, np.ndarray], k: int, lambda_: float = 0.7) -> Ranked:
    """Maximal marginal relevance: pick, one at a time, the candidate maximising
    ``lambda_ * relevance - (1 - lambda_) * max cosine to those already picked``.

    Relevance is the candidate's score min-max normalised to [0, 1] over ``candidates``. The first candidate
    is always picked first; ties go to the earlier candidate. Returns min(k, number of candidates) entries,
    in pick order, each with its original score. ``lambda_=1`` keeps the input order; an asset without a
    vector is never similar to anything.
    """
    _check_k(k)
    if not (0.0 <= lambda_ <= 1.0):
        raise FusionError(f"lambda_ must be between 0 and 1, not {lambda_}")
    entries = _dedupe(candidates)
    if not entries:
        return []
    relevance = np.asarray(normalise([s for _, s in entries], "minmax"))
    matrix = _unit_rows([a for a, _ in entries], vectors)
    picked = [0]
    taken = np.zeros(len(entries), dtype=bool)
    taken[0] = True
    closest = matrix @ matrix[0]
    while len(picked) < min(k, len(entries)):
        gain = lambda_ * relevance - (1.0 - lambda_) * closest
        gain[taken] = -np.inf
        best = int(np.argmax(gain))
        picked.append(best)
        taken[best] = True
        closest = np.maximum(closest, matrix @ matrix[best])
    return [entries[i] for i in picked]


def collapse_near_duplicates(candidates: Ranked, vectors: Mapping[int, np.ndarray], threshold: float = 0.95) -> Ranked:
    """Drop each candidate whose cosine to an already kept, better-ranked candidate is >= ``threshold``.

    Survivors keep their order and scores; the first candidate always survives; an asset without a vector
    is never a duplicate. Cosines are taken within 1e-9, so ``threshold=1.0`` drops exact duplicates.
    """
    if not math.isfinite(threshold):
        raise FusionError(f"threshold must be a finite number, not {threshold}")
    entries = _dedupe(candidates)
    if not entries:
        return []
    matrix = _unit_rows([a for a, _ in entries], vectors)
    kept_rows = np.zeros_like(matrix)
    n_kept_rows = 0
    out: Ranked = []
    for row, entry in zip(matrix, entries, strict=True):
        has_vector = bool(row.any())
        if has_vector and n_kept_rows and float(np.max(kept_rows[:n_kept_rows] @ row)) >= threshold - _COSINE_SLACK:
            continue
        out.append(entry)
        if has_vector:
            kept_rows[n_kept_rows] = row
            n_kept_rows += 1
    return out


def adaptive_cutoff(scores: Sequence[float], method: str = "gap", **params: Any) -> int:
    """How many of ``scores`` (sorted descending) to keep: 0 when empty, else between 1 and len(scores).

    ``"gap"`` cuts at the largest drop between consecutive scores. Parameters: ``top_n`` (default: all)
    looks for the drop only after each of the first ``top_n`` scores, so at most ``top_n`` are kept when a
    cut is made; ``min_keep`` (default 1) never cuts before that many; ``min_gap`` (default 0.0, in [0, 1])
    is the smallest drop, as a fraction of the spread of all the scores (first minus last), that counts
    as a cliff.
    With no qualifying drop (all equal, or every drop below ``min_gap``) everything is kept. Equal largest
    drops: the first one wins.

    ``"zscore"`` keeps the scores whose z-score over the whole list (population std) is >= ``threshold``
    (default 1.0), and at least ``min_keep`` (default 1). All-equal scores carry no signal: all are kept.

    Both rules are unchanged by adding a constant to the scores or multiplying them by a positive one
    (up to float rounding; exactly for powers of two).
    """
    _check_choice("cutoff method", method, CUTOFF_METHODS)
    allowed = {"gap": {"top_n", "min_keep", "min_gap"}, "zscore": {"threshold", "min_keep"}}[method]
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise FusionError(f"unknown parameter(s) for the {method!r} cutoff: {', '.join(unknown)}")
    min_keep = _positive_int("min_keep", params.get("min_keep", 1))
    top_n = None if params.get("top_n") is None else _positive_int("top_n", params["top_n"])
    min_gap = float(params.get("min_gap", 0.0))
    if not (0.0 <= min_gap <= 1.0):
        raise FusionError(f"min_gap must be between 0 and 1, not {min_gap}")
    threshold = float(params.get("threshold", 1.0))
    if math.isnan(threshold):
        raise FusionError("threshold must not be NaN")
    values = _finite_array(scores, "score")
    n = int(values.size)
    if n == 0:
        return 0
    if np.any(np.diff(values) > 0):
        raise FusionError("adaptive_cutoff needs scores sorted in descending order")
    if values[0] == values[-1]:
        return n
    values = _scaled(values)
    if method == "zscore":
        keep = int(np.count_nonzero(_zscores(values) >= threshold))
    else:
        keep = _largest_gap(values, n if top_n is None else top_n, min_keep, min_gap)
    return min(n, max(keep, min_keep))


# ---------------------------------------------------------------- helpers


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
        entries = _dedupe(ranked)
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


def _dedupe(ranked: Iterable[tuple[int, float]]) -> Ranked:
    seen: set[int] = set()
    out: Ranked = []
    for asset_id, score in ranked:
        if asset_id not in seen:
            seen.add(asset_id)
            out.append((asset_id, float(score)))
    return out


def _resolve_weights(results: Mapping[str, Ranked], weights: Mapping[str, float] | None) -> dict[str, float]:
    given = dict(weights or {})
    for name, weight in given.items():
        if not (isinstance(weight, numbers.Real) and math.isfinite(weight) and weight >= 0):
            raise FusionError(f"the weight of retriever {name!r} must be a finite number >= 0, not {weight!r}")
    return {name: float(given.get(name, 1.0)) for name in results}


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise FusionError(f"k must be an integer >= 1, not {k!r}")


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise FusionError(f"{name} must be an integer >= 1, not {value!r}")
    return int(value)


def _check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise FusionError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")


def _finite_array(values: Sequence[float], what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise FusionError(f"every {what} must be a finite number")
    return array


def _scaled(values: np.ndarray) -> np.ndarray:
    """``values`` divided by the power of two at or above their largest magnitude: into [-1, 1], so nothing
    below can overflow, and exactly (no rounding), so scaling the input by a power of two changes nothing."""
    _, exponent = np.frexp(np.abs(values).max())
    return np.ldexp(values, -int(exponent))


def _zscores(values: np.ndarray) -> np.ndarray:
    """Population z-scores of values that are not all equal (scaled to [-1, 1] by the caller)."""
    centred = values - values.mean()
    std = float(np.sqrt(np.mean(centred * centred)))
    return centred / std if std > 0 else np.zeros_like(values)


def _largest_gap(values: np.ndarray, top_n: int, min_keep: int, min_gap: float) -> int:
    """The rank after which the largest qualifying drop falls, or len(values) when no drop qualifies."""
    n = int(values.size)
    last = min(top_n, n - 1)  # drops after positions 1..last; cutting after position i keeps i
    if last < min_keep:
        return n
    drops = values[:last] - values[1 : last + 1]
    spread = float(values[0] - values[-1])
    candidates = drops[min_keep - 1 :]
    best = int(np.argmax(candidates))
    drop = float(candidates[best])
    if drop <= 0 or spread <= 0 or drop < min_gap * spread:
        return n
    return min_keep + best


def _unit_rows(asset_ids: Sequence[int], vectors: Mapping[int, np.ndarray]) -> np.ndarray:
    """One unit row per asset (float64); a zero row for an asset without a vector or with a zero vector."""
    rows = [None if vectors.get(a) is None else np.asarray(vectors[a], dtype=np.float64).reshape(-1) for a in asset_ids]
    widths = {row.size for row in rows if row is not None}
    if len(widths) > 1:
        raise FusionError(f"the vectors have different widths: {sorted(widths)}")
    width = widths.pop() if widths else 1
    matrix = np.zeros((len(rows), width))
    for i, row in enumerate(rows):
        if row is not None:
            if not np.all(np.isfinite(row)):
                raise FusionError(f"the vector of asset {asset_ids[i]} holds a non-finite value")
            norm = float(np.linalg.norm(row))
            if norm > 0:
                matrix[i] = row / norm
    return matrix
