"""Re-ranking a fused list: diversity (maximal marginal relevance), near-duplicate collapse, and the adaptive
cut-off that decides where the useful results end. Pure functions, like :mod:`.fusion`; the same rules."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmsearch.kinds import CUTOFF_METHODS
from mmsearch.search.scores import (
    FusionError,
    Ranked,
    check_choice,
    check_k,
    dedupe,
    finite_array,
    normalise,
    positive_int,
    scaled,
    zscores,
)

_COSINE_SLACK = 1e-9  # float rounding of a cosine between identical unit vectors


def mmr(candidates: Ranked, vectors: Mapping[int, np.ndarray], k: int, lambda_: float = 0.7) -> Ranked:
    """Maximal marginal relevance: pick, one at a time, the candidate maximising
    ``lambda_ * relevance - (1 - lambda_) * max cosine to those already picked``.

    Relevance is the candidate's score min-max normalised to [0, 1] over ``candidates``. The first candidate
    is always picked first; ties go to the earlier candidate. Returns min(k, number of candidates) entries,
    in pick order, each with its original score. ``lambda_=1`` keeps the input order; an asset without a
    vector is never similar to anything.
    """
    check_k(k)
    if not (0.0 <= lambda_ <= 1.0):
        raise FusionError(f"lambda_ must be between 0 and 1, not {lambda_}")
    entries = dedupe(candidates)
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
    entries = dedupe(candidates)
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


def _cutoff_params(method: str, params: dict[str, Any]) -> tuple[int, int | None, float, float]:
    """The checked parameters of :func:`adaptive_cutoff`: min_keep, top_n, min_gap, threshold."""
    check_choice("cutoff method", method, CUTOFF_METHODS)
    allowed = {"gap": {"top_n", "min_keep", "min_gap"}, "zscore": {"threshold", "min_keep"}}[method]
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise FusionError(f"unknown parameter(s) for the {method!r} cutoff: {', '.join(unknown)}")
    min_keep = positive_int("min_keep", params.get("min_keep", 1))
    top_n = None if params.get("top_n") is None else positive_int("top_n", params["top_n"])
    min_gap = float(params.get("min_gap", 0.0))
    if not (0.0 <= min_gap <= 1.0):
        raise FusionError(f"min_gap must be between 0 and 1, not {min_gap}")
    threshold = float(params.get("threshold", 1.0))
    if math.isnan(threshold):
        raise FusionError("threshold must not be NaN")
    return min_keep, top_n, min_gap, threshold


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
    min_keep, top_n, min_gap, threshold = _cutoff_params(method, params)
    values = finite_array(scores, "score")
    n = int(values.size)
    if n == 0:
        return 0
    if np.any(np.diff(values) > 0):
        raise FusionError("adaptive_cutoff needs scores sorted in descending order")
    if values[0] == values[-1]:
        return n
    values = scaled(values)
    if method == "zscore":
        keep = int(np.count_nonzero(zscores(values) >= threshold))
    else:
        keep = _largest_gap(values, n if top_n is None else top_n, min_keep, min_gap)
    return min(n, max(keep, min_keep))


# ---------------------------------------------------------------- helpers


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
