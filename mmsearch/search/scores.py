"""Checks and numeric helpers shared by fusion (:mod:`.fusion`) and re-ranking (:mod:`.rerank`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from mmsearch.errors import MmsearchError
from mmsearch.kinds import NORMALISATIONS

Ranked = list[tuple[int, float]]
"""``(asset_id, score)`` pairs, best first."""


class FusionError(MmsearchError, ValueError):
    """An invalid argument to a fusion or re-ranking function (a negative weight, k < 1, ...)."""

    exit_code = 2


def check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise FusionError(f"k must be an integer >= 1, not {k!r}")


def positive_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or value < 1:
        raise FusionError(f"{name} must be an integer >= 1, not {value!r}")
    return int(value)


def check_choice(what: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise FusionError(f"unknown {what} {value!r}; choose one of: {', '.join(choices)}")


def finite_array(values: Sequence[float], what: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise FusionError(f"every {what} must be a finite number")
    return array


def scaled(values: np.ndarray) -> np.ndarray:
    """``values`` divided by the power of two at or above their largest magnitude: into [-1, 1], so nothing
    below can overflow, and exactly (no rounding), so scaling the input by a power of two changes nothing."""
    _, exponent = np.frexp(np.abs(values).max())
    return np.ldexp(values, -int(exponent))


def zscores(values: np.ndarray) -> np.ndarray:
    """Population z-scores of values that are not all equal (scaled to [-1, 1] by the caller)."""
    centred = values - values.mean()
    std = float(np.sqrt(np.mean(centred * centred)))
    return centred / std if std > 0 else np.zeros_like(values)


def dedupe(ranked: Iterable[tuple[int, float]]) -> Ranked:
    seen: set[int] = set()
    out: Ranked = []
    for asset_id, score in ranked:
        if asset_id not in seen:
            seen.add(asset_id)
            out.append((asset_id, float(score)))
    return out


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
    check_choice("normalisation", method, NORMALISATIONS)
    values = finite_array(scores, "score")
    if values.size == 0:
        return []
    if values.max() == values.min():
        return [0.5 if method == "zscore" else 1.0] * int(values.size)
    values = scaled(values)
    if method == "minmax":
        low, high = values.min(), values.max()
        out = np.clip((values - low) / (high - low), 0.0, 1.0)
    else:
        with np.errstate(over="ignore"):
            out = 1.0 / (1.0 + np.exp(-zscores(values)))
    return [float(v) for v in out]


# ---------------------------------------------------------------- fusion
