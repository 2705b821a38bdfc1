"""Fusion, calibration, explanations, MMR, near-duplicate collapsing and adaptive cut-offs."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mmsearch.errors import MmsearchError
from mmsearch.search.fusion import (
    FusionError,
    Ranked,
    adaptive_cutoff,
    best_per_asset,
    collapse_near_duplicates,
    explain,
    fuse,
    mmr,
    normalise,
    reciprocal_rank_fusion,
    weighted_fusion,
)

FAST = settings(max_examples=40, deadline=None)
FAST_EACH = settings(max_examples=20, deadline=None)  # for properties run once per fusion method
NAMES = ["image", "caption", "transcript", "keyword"]

ids = st.integers(0, 15)
scores = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
ranked_lists = st.dictionaries(ids, scores, max_size=8).map(lambda d: best_per_asset(d.items()))
results_st = st.dictionaries(st.sampled_from(NAMES), ranked_lists, max_size=4)
# Weights in [0, 5]; positive ones stay >= 1e-3 so that no weight is a subnormal that rounds contributions to 0.
weight_st = st.one_of(st.just(0.0), st.floats(1e-3, 5.0))
weights_st = st.dictionaries(st.sampled_from(NAMES), weight_st, max_size=4)
ks = st.integers(1, 20)

Fuser = Callable[..., Ranked]
FUSERS: dict[str, Fuser] = {
    "rrf": reciprocal_rank_fusion,
    "zscore": lambda results, weights=None, k=10: weighted_fusion(results, weights, k, method="zscore"),
    "minmax": lambda results, weights=None, k=10: weighted_fusion(results, weights, k, method="minmax"),
    "zscore-missing0": lambda results, weights=None, k=10: weighted_fusion(results, weights, k, missing=0.0),
}
fusers = pytest.mark.parametrize("fuser", list(FUSERS.values()), ids=list(FUSERS))


def active_ids(results: dict[str, Ranked], weights: dict[str, float]) -> set[int]:
    return {a for name, ranked in results.items() if weights.get(name, 1.0) > 0 for a, _ in ranked}


def assert_well_ordered(fused: Ranked) -> None:
    for (a, s), (b, t) in itertools.pairwise(fused):
        assert s > t or (s == t and a < b), fused


# ---------------------------------------------------------------- best_per_asset and normalise


def test_best_per_asset_keeps_the_maximum_and_sorts() -> None:
    items = [(3, 0.2), (1, 0.5), (3, 0.9), (2, 0.5), (1, 0.1)]
    assert best_per_asset(items) == [(3, 0.9), (1, 0.5), (2, 0.5)]
    assert best_per_asset([]) == []


def test_best_per_asset_refuses_nan() -> None:
    with pytest.raises(FusionError, match="NaN"):
        best_per_asset([(1, math.nan)])


@FAST
@given(st.lists(st.tuples(ids, scores), max_size=30))
def test_best_per_asset_properties(items: list[tuple[int, float]]) -> None:
    out = best_per_asset(items)
    assert_well_ordered(out)
    assert dict(out) == {a: max(s for b, s in items if b == a) for a, _ in items}


def test_minmax_known_values() -> None:
    assert normalise([1.0, 2.0, 3.0], "minmax") == [0.0, 0.5, 1.0]
    assert normalise([3.0, -1.0], "minmax") == [1.0, 0.0]
    assert normalise([], "minmax") == []
    assert normalise([7.0], "minmax") == [1.0]
    assert normalise([2.0, 2.0, 2.0], "minmax") == [1.0, 1.0, 1.0]


def test_zscore_is_squashed_with_the_logistic_function() -> None:
    z = math.sqrt(1.5)  # population z of 1 and 3 in [1, 2, 3]
    expected = [1 / (1 + math.exp(z)), 0.5, 1 / (1 + math.exp(-z))]
    assert normalise([1.0, 2.0, 3.0]) == pytest.approx(expected, abs=1e-12)
    assert normalise([0.3, 0.1]) == pytest.approx([1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))])
    assert normalise([]) == []
    assert normalise([42.0]) == [0.5]
    assert normalise([-3.0, -3.0]) == [0.5, 0.5]


def test_normalise_refuses_unknown_methods_and_non_finite_scores() -> None:
    with pytest.raises(FusionError, match="unknown normalisation 'rank'"):
        normalise([1.0], "rank")
    with pytest.raises(FusionError, match="finite"):
        normalise([1.0, math.inf])
    with pytest.raises(FusionError, match="finite"):
        normalise([math.nan])


@FAST
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=20),
    st.sampled_from(["zscore", "minmax"]),
)
def test_normalise_is_bounded_monotone_and_nan_free_even_for_huge_scores(values: list[float], method: str) -> None:
    out = normalise(values, method)
    assert len(out) == len(values)
    assert all(0.0 <= v <= 1.0 and not math.isnan(v) for v in out)
    for (a, x), (b, y) in itertools.pairwise(zip(values, out, strict=True)):
        if a < b:
            assert x <= y
        if a == b:
            assert x == y
    if method == "minmax" and len(set(values)) > 1:
        assert min(out) == 0.0 and max(out) == 1.0


# Scores that stay normal floats when scaled by 2**-20 (a subnormal loses bits, so scaling is no longer exact).
unscaled_scores = scores.filter(lambda v: v == 0 or abs(v) >= 1e-290)


@FAST
@given(st.lists(unscaled_scores, min_size=1, max_size=20), st.integers(-20, 20), st.sampled_from(["zscore", "minmax"]))
def test_normalise_ignores_power_of_two_scaling(values: list[float], exponent: int, method: str) -> None:
    assert normalise([math.ldexp(v, exponent) for v in values], method) == normalise(values, method)


@FAST
@given(st.lists(scores, min_size=2, max_size=20))
def test_zscore_of_a_distinct_list_is_centred_on_one_half(values: list[float]) -> None:
    assume(max(values) - min(values) > 1e-6)
    out = normalise(values)
    assert max(out) > 0.5 > min(out)


# ---------------------------------------------------------------- fusion: known values


A = [(1, 0.9), (2, 0.8), (3, 0.7)]
B = [(3, 5.0), (1, 4.0), (4, 1.0)]


def test_rrf_by_hand() -> None:
    fused = reciprocal_rank_fusion({"a": A, "b": B}, c=60)
    assert [a for a, _ in fused] == [1, 3, 2, 4]
    assert [s for _, s in fused] == pytest.approx([1 / 61 + 1 / 62, 1 / 61 + 1 / 63, 1 / 62, 1 / 63])


def test_rrf_weights_and_k() -> None:
    fused = reciprocal_rank_fusion({"a": A, "b": B}, {"b": 2.0}, k=2)
    # 3: 1/63 + 2/61 = 0.048662 beats 1: 1/61 + 2/62 = 0.048651
    assert fused == [(3, pytest.approx(1 / 63 + 2 / 61)), (1, pytest.approx(1 / 61 + 2 / 62))]
    assert reciprocal_rank_fusion({"a": A}, c=0) == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]


def test_rrf_uses_positions_and_ignores_repeats() -> None:
    assert reciprocal_rank_fusion({"a": [(5, 0.0), (2, 0.0), (5, 9.0)]}, c=0) == [(5, 1.0), (2, 0.5)]


def test_weighted_minmax_by_hand_fills_absent_assets_with_the_minimum() -> None:
    a = [(1, 10.0), (2, 5.0), (3, 0.0)]  # 1, 0.5, 0
    b = [(3, 1.0), (4, 0.0)]  # 1, 0
    assert weighted_fusion({"a": a, "b": b}, method="minmax") == [(1, 1.0), (3, 1.0), (2, 0.5), (4, 0.0)]
    b = [(3, 1.0), (4, 0.5)]  # still 1, 0: the fill for 1 and 2 is b's minimum, 0
    assert weighted_fusion({"a": a, "b": b}, {"a": 2.0}, method="minmax") == [(1, 2.0), (2, 1.0), (3, 1.0), (4, 0.0)]


def test_weighted_zscore_fill_is_the_normalised_minimum_or_missing() -> None:
    a = [(1, 3.0), (2, 2.0), (3, 1.0)]
    b = [(9, 0.7)]  # one hit: 0.5, and 0.5 is also the fill for every other asset
    low, mid, high = normalise([1.0, 2.0, 3.0])
    assert weighted_fusion({"a": a, "b": b}) == [
        (1, pytest.approx(high + 0.5)),
        (2, pytest.approx(mid + 0.5)),
        (3, pytest.approx(low + 0.5)),
        (9, pytest.approx(low + 0.5)),  # absent from a: a's minimum; tied with 3, so after it
    ]
    # With missing=0 absence costs: 9 only has b's 0.5.
    assert [a for a, _ in weighted_fusion({"a": a, "b": b}, missing=0.0)] == [1, 2, 9, 3]
    assert weighted_fusion({"a": a, "b": b}, missing=0.0)[2] == (9, 0.5)
    assert weighted_fusion({"a": a, "b": b}, missing=-1.0)[2] == (9, pytest.approx(0.5 - 1.0))


def test_an_active_retriever_that_found_nothing_adds_nothing() -> None:
    a = [(1, 3.0), (2, 2.0)]
    assert weighted_fusion({"a": a, "empty": []}) == weighted_fusion({"a": a})
    assert reciprocal_rank_fusion({"a": a, "empty": []}) == reciprocal_rank_fusion({"a": a})
    assert weighted_fusion({}) == reciprocal_rank_fusion({}) == []


def test_fuse_dispatches_on_the_method() -> None:
    results = {"a": A, "b": B}
    assert fuse(results, method="rrf", c=10) == reciprocal_rank_fusion(results, c=10)
    assert fuse(results, {"a": 2}, 3, "minmax", missing=0.0) == weighted_fusion(results, {"a": 2}, 3, "minmax", 0.0)
    with pytest.raises(FusionError, match="unknown fusion method 'max'"):
        fuse(results, method="max")


@pytest.mark.parametrize("bad", [-1.0, -1e-9, math.nan, math.inf, "2"])
@fusers
def test_bad_weights_are_refused(fuser: Fuser, bad: object) -> None:
    with pytest.raises(ValueError, match="weight of retriever 'b'") as caught:
        fuser({"a": A}, {"b": bad})  # refused even for a retriever that returned nothing
    assert isinstance(caught.value, MmsearchError)


@pytest.mark.parametrize("k", [0, -3, 2.5])
@fusers
def test_bad_k_is_refused(fuser: Fuser, k: object) -> None:
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        fuser({"a": A}, k=k)


def test_other_bad_arguments() -> None:
    with pytest.raises(FusionError, match="c must be"):
        reciprocal_rank_fusion({"a": A}, c=-1)
    with pytest.raises(FusionError, match="missing must be"):
        weighted_fusion({"a": A}, missing=math.nan)
    with pytest.raises(FusionError, match="unknown normalisation"):
        weighted_fusion({"a": A}, method="rrf")
    with pytest.raises(FusionError, match="finite"):
        weighted_fusion({"a": [(1, math.inf)]})


# ---------------------------------------------------------------- fusion: shared guarantees


@FAST_EACH
@fusers
@given(results=results_st, weights=weights_st, k=ks)
def test_output_is_ordered_bounded_unique_and_from_active_retrievers(
    fuser: Fuser, results: dict[str, Ranked], weights: dict[str, float], k: int
) -> None:
    fused = fuser(results, weights, k)
    assert_well_ordered(fused)
    ids_out = [a for a, _ in fused]
    assert len(ids_out) == len(set(ids_out)) == min(k, len(active_ids(results, weights)))
    assert set(ids_out) <= active_ids(results, weights)
    assert all(isinstance(a, int) and isinstance(s, float) and math.isfinite(s) for a, s in fused)


@FAST_EACH
@fusers
@given(results=results_st, weights=weights_st, k=ks, extra=ranked_lists, name=st.sampled_from(NAMES))
def test_a_zero_weight_retriever_is_the_same_as_no_retriever(
    fuser: Fuser, results: dict[str, Ranked], weights: dict[str, float], k: int, extra: Ranked, name: str
) -> None:
    without = {n: r for n, r in results.items() if n != name}
    with_zero = {**without, name: extra}
    assert fuser(with_zero, {**weights, name: 0.0}, k) == fuser(without, weights, k)


@FAST_EACH
@fusers
@given(results=results_st, k=ks)
def test_unnamed_retrievers_weigh_one(fuser: Fuser, results: dict[str, Ranked], k: int) -> None:
    assert fuser(results, None, k) == fuser(results, {}, k) == fuser(results, dict.fromkeys(results, 1.0), k)


@FAST_EACH
@fusers
@given(results=results_st, weights=weights_st, k=ks, exponent=st.integers(-4, 4))
def test_scaling_weights_by_a_power_of_two_scales_the_scores_exactly(
    fuser: Fuser, results: dict[str, Ranked], weights: dict[str, float], k: int, exponent: int
) -> None:
    all_weights = {name: weights.get(name, 1.0) for name in results}
    fused = fuser(results, all_weights, k)
    scaled = fuser(results, {n: math.ldexp(w, exponent) for n, w in all_weights.items()}, k)
    assert scaled == [(a, math.ldexp(s, exponent)) for a, s in fused]


@FAST_EACH
@fusers
@given(
    results=results_st,
    weights=st.dictionaries(st.sampled_from(NAMES), st.integers(0, 5).map(float), max_size=4),
    k=ks,
    factor=st.sampled_from([3, 5, 7, 10]),
)
def test_scaling_weights_by_any_positive_constant_keeps_the_order(
    fuser: Fuser, results: dict[str, Ranked], weights: dict[str, float], k: int, factor: int
) -> None:
    all_weights = {name: weights.get(name, 1.0) for name in results}
    fused = fuser(results, all_weights, k)
    scaled = fuser(results, {n: w * factor for n, w in all_weights.items()}, k)
    assert [a for a, _ in scaled] == [a for a, _ in fused]
    assert [s for _, s in scaled] == pytest.approx([s * factor for _, s in fused])


@FAST_EACH
@fusers
@given(results=results_st, weights=weights_st, k=ks, seed=st.randoms(use_true_random=False))
def test_the_order_of_retrievers_does_not_matter(
    fuser: Fuser, results: dict[str, Ranked], weights: dict[str, float], k: int, seed
) -> None:
    names = list(results)
    seed.shuffle(names)
    assert fuser({n: results[n] for n in names}, weights, k) == fuser(results, weights, k)


@FAST_EACH
@fusers
@given(results=results_st, weights=weights_st, k=ks, target=st.integers(0, 20))
def test_an_asset_first_in_every_retriever_is_first(
    fuser: Fuser, results: dict[str, Ranked], weights: dict[str, float], k: int, target: int
) -> None:
    assume(results and any(weights.get(name, 1.0) > 0 for name in results))
    crowned = {}
    for name, ranked in results.items():
        rest = [(a, s) for a, s in ranked if a != target]
        crowned[name] = [(target, max((s for _, s in rest), default=0.0) + 1.0), *rest]
    assert fuser(crowned, weights, k)[0][0] == target


@FAST
@given(ranked=ranked_lists, k=ks, c=st.floats(0, 100))
def test_rrf_of_one_retriever_keeps_its_order(ranked: Ranked, k: int, c: float) -> None:
    fused = reciprocal_rank_fusion({"only": ranked}, k=k, c=c)
    assert [a for a, _ in fused] == [a for a, _ in ranked][:k]


@FAST
@given(ranked=ranked_lists, k=ks, method=st.sampled_from(["zscore", "minmax"]))
def test_weighted_fusion_of_one_retriever_is_its_normalised_list(ranked: Ranked, k: int, method: str) -> None:
    fused = weighted_fusion({"only": ranked}, k=k, method=method)
    expected = best_per_asset(zip([a for a, _ in ranked], normalise([s for _, s in ranked], method), strict=True))
    assert fused == expected[:k]


# ---------------------------------------------------------------- explain


def test_explain_rrf_by_hand() -> None:
    results = {"a": A, "b": B, "off": [(2, 1.0)]}
    weights = {"b": 2.0, "off": 0.0}
    fused = reciprocal_rank_fusion(results, weights)
    why = explain(results, fused, weights, "rrf")
    assert list(why) == [a for a, _ in fused]
    three = why[3]
    assert (three.rank, three.method) == (1, "rrf")
    assert three.contributions["a"].raw_score == 0.7
    assert three.contributions["a"].rank == 3
    assert three.contributions["a"].contribution == pytest.approx(1 / 63)
    assert three.contributions["b"].contribution == pytest.approx(2 / 61)
    assert three.contributions["off"].rank is None
    two = why[2].contributions["off"]  # a zero-weight retriever is shown, adding nothing
    assert (two.weight, two.rank, two.normalised, two.contribution) == (0.0, 1, pytest.approx(1 / 61), 0.0)
    assert why[4].contributions["a"] == why[4].contributions["a"].__class__(1.0, None, None, 0.0, 0.0)
    as_dict = three.to_dict()
    assert as_dict["contributions"]["b"]["rank"] == 1 and as_dict["asset_id"] == 3


def test_explain_weighted_shows_the_fill_for_absent_assets() -> None:
    a = [(1, 10.0), (2, 5.0), (3, 0.0)]
    b = [(3, 1.0), (4, 0.5)]
    fused = weighted_fusion({"a": a, "b": b}, method="minmax")
    why = explain({"a": a, "b": b}, fused, method="minmax")
    assert why[1].contributions["b"].raw_score is None
    assert why[1].contributions["b"].normalised == 0.0
    assert why[2].contributions["a"].normalised == 0.5


@FAST
@given(
    results=results_st,
    weights=weights_st,
    k=ks,
    method=st.sampled_from(["rrf", "zscore", "minmax"]),
    missing=st.one_of(st.none(), st.just(0.0)),
)
def test_explained_contributions_add_up_to_the_fused_score(
    results: dict[str, Ranked], weights: dict[str, float], k: int, method: str, missing: float | None
) -> None:
    fused = fuse(results, weights, k, method, missing=missing)
    why = explain(results, fused, weights, method, missing=missing)
    assert [(e.asset_id, e.score) for e in why.values()] == fused
    for entry in why.values():
        assert set(entry.contributions) == set(results)
        total = math.fsum(c.contribution for c in entry.contributions.values())
        assert total == pytest.approx(entry.score, rel=1e-9, abs=1e-12)
        for name, part in entry.contributions.items():
            assert (part.rank is None) == (part.raw_score is None)
            if part.rank is not None:
                assert results[name][part.rank - 1] == (entry.asset_id, part.raw_score)


# ---------------------------------------------------------------- MMR


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_mmr_by_hand() -> None:
    candidates = [(1, 1.0), (2, 0.9), (3, 0.8), (4, 0.0)]
    vectors = {1: unit(1, 0), 2: unit(1, 0.01), 3: unit(0, 1), 4: unit(1, 0)}
    # after 1: gain(2) = 0.7*0.9 - 0.3*~1 = 0.33, gain(3) = 0.7*0.8 - 0 = 0.56, gain(4) = -0.3
    assert mmr(candidates, vectors, k=4) == [(1, 1.0), (3, 0.8), (2, 0.9), (4, 0.0)]
    assert mmr(candidates, vectors, k=2) == [(1, 1.0), (3, 0.8)]
    assert mmr(candidates, vectors, k=4, lambda_=1.0) == candidates
    assert mmr(candidates, vectors, k=10, lambda_=0.0)[:2] == [(1, 1.0), (3, 0.8)]
    assert mmr([], vectors, k=3) == []


def test_mmr_without_vectors_is_plain_relevance() -> None:
    candidates = [(1, 1.0), (2, 0.9), (3, 0.8)]
    assert mmr(candidates, {}, k=3) == candidates


def test_mmr_bad_arguments() -> None:
    with pytest.raises(FusionError, match="lambda_"):
        mmr([(1, 1.0)], {}, k=1, lambda_=1.5)
    with pytest.raises(FusionError, match="k must be"):
        mmr([(1, 1.0)], {}, k=0)
    with pytest.raises(FusionError, match="different widths"):
        mmr([(1, 1.0), (2, 0.5)], {1: unit(1, 0), 2: unit(1, 0, 0)}, k=2)


vectors_st = st.lists(st.floats(-1, 1, allow_nan=False), min_size=3, max_size=3).map(lambda v: np.asarray(v))


@FAST
@given(
    candidates=ranked_lists,
    vectors=st.dictionaries(ids, vectors_st),
    k=ks,
    lambda_=st.floats(0, 1),
)
def test_mmr_properties(candidates: Ranked, vectors: dict[int, np.ndarray], k: int, lambda_: float) -> None:
    picked = mmr(candidates, vectors, k, lambda_)
    assert len(picked) == min(k, len(candidates))
    assert len({a for a, _ in picked}) == len(picked)
    assert set(picked) <= set(candidates)  # original scores kept
    if candidates:
        assert picked[0] == candidates[0]
    assert mmr(candidates, vectors, k, 1.0) == candidates[:k]


# ---------------------------------------------------------------- near-duplicates


def test_collapse_by_hand() -> None:
    candidates = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6), (5, 0.5)]
    vectors = {1: unit(1, 0), 2: unit(1, 0.01), 3: unit(0, 1), 4: unit(0.02, 1)}  # 5 has no vector
    assert collapse_near_duplicates(candidates, vectors) == [(1, 0.9), (3, 0.7), (5, 0.5)]
    assert collapse_near_duplicates(candidates, vectors, threshold=1.0) == candidates
    assert collapse_near_duplicates(candidates, {**vectors, 2: unit(1, 0)}, threshold=1.0) == [
        (1, 0.9),
        (3, 0.7),
        (4, 0.6),
        (5, 0.5),
    ]
    assert collapse_near_duplicates([], vectors) == []
    with pytest.raises(FusionError, match="threshold"):
        collapse_near_duplicates(candidates, vectors, threshold=math.nan)


def cosine(u: np.ndarray, v: np.ndarray) -> float:
    return float(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)))


@FAST
@given(
    candidates=ranked_lists,
    vectors=st.dictionaries(ids, vectors_st.filter(lambda v: np.linalg.norm(v) > 1e-3)),
    threshold=st.floats(-1, 1),
)
def test_collapse_properties(candidates: Ranked, vectors: dict[int, np.ndarray], threshold: float) -> None:
    kept = collapse_near_duplicates(candidates, vectors, threshold)
    assert kept == [c for c in candidates if c in kept]  # a subsequence, order and scores unchanged
    if candidates:
        assert kept[0] == candidates[0]
    kept_ids = [a for a, _ in kept]
    slack = 1e-6
    for i, a in enumerate(kept_ids):
        for b in kept_ids[:i]:
            if a in vectors and b in vectors:
                assert cosine(vectors[a], vectors[b]) < threshold + slack
    for a, _ in candidates:
        if a not in kept_ids:
            assert a in vectors
            before = kept_ids[: next(i for i, (c, _) in enumerate(candidates) if c == a)]
            assert any(b in vectors and cosine(vectors[a], vectors[b]) >= threshold - slack for b in before)
    assert collapse_near_duplicates(candidates, vectors, 1.5) == candidates


# ---------------------------------------------------------------- adaptive cut-off


def test_gap_cutoff_by_hand() -> None:
    scores = [0.9, 0.88, 0.87, 0.3, 0.29]
    assert adaptive_cutoff(scores) == 3
    assert adaptive_cutoff(scores, "gap", min_keep=4) == 4
    assert adaptive_cutoff(scores, "gap", top_n=2) == 1  # the larger of the first two drops
    assert adaptive_cutoff(scores, "gap", top_n=2, min_gap=0.1) == 5  # 0.02 is not 10% of 0.61: keep all
    assert adaptive_cutoff(scores, "gap", min_gap=0.9) == 3  # 0.57 is 93% of the spread
    assert adaptive_cutoff(scores, "gap", min_gap=0.95) == 5
    assert adaptive_cutoff([0.9, 0.5, 0.45, 0.1], "gap", top_n=2) == 1
    assert adaptive_cutoff([3.0, 2.0, 1.0]) == 1  # equal drops: the first wins
    assert adaptive_cutoff([3.0, 2.0, 1.0], min_gap=0.6) == 3  # no drop is 60% of the spread
    assert adaptive_cutoff([1.0, 0.9, 0.1], min_gap=0.6) == 2
    assert adaptive_cutoff([0.5, 0.5, 0.5]) == 3
    assert adaptive_cutoff([0.5]) == 1
    assert adaptive_cutoff([]) == 0
    assert adaptive_cutoff([1.0, 0.0], min_keep=5) == 2


def test_zscore_cutoff_by_hand() -> None:
    scores = [10.0, 9.0, 1.0, 1.0, 1.0, 0.0]  # mean 3.67, std 4.07: z = 1.56, 1.31, -0.66, ...
    assert adaptive_cutoff(scores, "zscore") == 2
    assert adaptive_cutoff(scores, "zscore", threshold=1.5) == 1
    assert adaptive_cutoff(scores, "zscore", threshold=-1.0) == 6
    assert adaptive_cutoff(scores, "zscore", threshold=5.0) == 1
    assert adaptive_cutoff(scores, "zscore", threshold=5.0, min_keep=3) == 3
    assert adaptive_cutoff([2.0, 2.0], "zscore") == 2
    assert adaptive_cutoff([], "zscore") == 0


def test_cutoff_bad_arguments() -> None:
    with pytest.raises(FusionError, match="descending"):
        adaptive_cutoff([0.1, 0.2])
    with pytest.raises(FusionError, match=r"unknown parameter\(s\) for the 'gap' cutoff: threshold"):
        adaptive_cutoff([0.2, 0.1], "gap", threshold=1.0)
    with pytest.raises(FusionError, match="unknown cutoff method"):
        adaptive_cutoff([0.2, 0.1], "elbow")
    with pytest.raises(FusionError, match="min_keep"):
        adaptive_cutoff([0.2, 0.1], min_keep=0)
    with pytest.raises(FusionError, match="top_n"):
        adaptive_cutoff([0.2, 0.1], top_n=0)
    with pytest.raises(FusionError, match="min_gap"):
        adaptive_cutoff([0.2, 0.1], min_gap=2.0)
    with pytest.raises(FusionError, match="min_gap"):
        adaptive_cutoff([], min_gap=-0.1)  # checked even when there is nothing to cut
    with pytest.raises(FusionError, match="threshold"):
        adaptive_cutoff([1.0, 1.0], "zscore", threshold=math.nan)
    with pytest.raises(FusionError, match="finite"):
        adaptive_cutoff([math.inf, 0.1])


descending = st.lists(scores, max_size=25).map(lambda v: sorted(v, reverse=True))


@FAST
@given(
    values=descending,
    method=st.sampled_from(["gap", "zscore"]),
    min_keep=st.integers(1, 30),
    extra=st.fixed_dictionaries({}, optional={"top_n": st.integers(1, 30), "min_gap": st.floats(0, 1)}),
    threshold=st.floats(-3, 3),
)
def test_cutoff_keeps_between_one_and_all(values, method, min_keep, extra, threshold) -> None:
    params = {"threshold": threshold} if method == "zscore" else extra
    keep = adaptive_cutoff(values, method, min_keep=min_keep, **params)
    if not values:
        assert keep == 0
    else:
        assert min(len(values), min_keep) <= keep <= len(values)


@FAST
@given(
    values=st.lists(st.integers(-50, 50), max_size=20).map(lambda v: sorted(map(float, v), reverse=True)),
    shift=st.integers(-100, 100),
    exponent=st.integers(-10, 10),
    min_gap=st.sampled_from([0.0, 0.25, 0.5]),
)
def test_gap_cutoff_ignores_shifting_and_scaling(values, shift, exponent, min_gap) -> None:
    moved = [math.ldexp(v + shift, exponent) for v in values]
    assert adaptive_cutoff(moved, min_gap=min_gap) == adaptive_cutoff(values, min_gap=min_gap)


@FAST
@given(values=descending, threshold=st.floats(-2, 2), exponent=st.integers(-10, 10))
def test_zscore_cutoff_matches_its_definition(values, threshold, exponent) -> None:
    keep = adaptive_cutoff(values, "zscore", threshold=threshold)
    assert keep == adaptive_cutoff([math.ldexp(v, exponent) for v in values], "zscore", threshold=threshold)
    array = np.asarray(values)
    if len(values) and array.std() > 1e-3:
        z = (array - array.mean()) / array.std()
        margin = np.abs(z - threshold) > 1e-9  # away from the boundary, rounding cannot matter
        expected = max(1, int(np.count_nonzero(z >= threshold)))
        if margin.all():
            assert keep == expected
