"""Ranking metrics for ``mmsearch eval``."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmsearch.errors import MmsearchError
from mmsearch.metrics import (
    MetricsError,
    fraction_recalled_at_k,
    ndcg_at_k,
    query_metrics,
    recall_at_k,
    reciprocal_rank,
    summarise,
)

FAST = settings(max_examples=60, deadline=None)

RANKED = ["a", "b", "c", "d", "e"]


def test_known_values() -> None:
    relevant = {"b", "d", "z"}
    assert [recall_at_k(RANKED, relevant, k) for k in (1, 2, 5, 10)] == [0.0, 1.0, 1.0, 1.0]
    assert [fraction_recalled_at_k(RANKED, relevant, k) for k in (1, 2, 4, 10)] == [0.0, 1 / 3, 2 / 3, 2 / 3]
    assert reciprocal_rank(RANKED, relevant) == 0.5
    assert reciprocal_rank(RANKED, {"z"}) == 0.0
    assert reciprocal_rank(RANKED, ["e"]) == 0.2
    # DCG@5 = 1/log2(3) + 1/log2(5); ideal over min(5, 3) = 3 hits: 1 + 1/log2(3) + 1/2
    expected = (1 / math.log2(3) + 1 / math.log2(5)) / (1 + 1 / math.log2(3) + 0.5)
    assert ndcg_at_k(RANKED, relevant, 5) == pytest.approx(expected)
    # at k=2 the ideal has only two hits: 1 + 1/log2(3)
    assert ndcg_at_k(RANKED, relevant, 2) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(RANKED, {"a"}, 3) == 1.0
    assert ndcg_at_k([], {"a"}, 3) == 0.0


def test_repeats_keep_their_place_but_count_once() -> None:
    ranked = ["x", "x", "a"]
    assert reciprocal_rank(ranked, {"a"}) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, {"a"}, 2) == 0.0
    assert ndcg_at_k(["a", "a"], {"a", "b"}, 2) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(["a", "a", "a"], {"a"}, 3) == 1.0
    assert fraction_recalled_at_k(["a", "a"], {"a", "b"}, 2) == 0.5


def test_bad_arguments() -> None:
    for k in (0, -1, 1.5, True):
        with pytest.raises(MetricsError, match="k must be"):
            recall_at_k(RANKED, {"a"}, k)
    with pytest.raises(MetricsError, match="at least one relevant item") as caught:
        ndcg_at_k(RANKED, set(), 3)
    assert isinstance(caught.value, MmsearchError) and isinstance(caught.value, ValueError)
    with pytest.raises(MetricsError):
        reciprocal_rank(RANKED, [])


def test_query_metrics_and_summarise() -> None:
    one = query_metrics(RANKED, {"a"}, ks=(1, 5))
    assert one == {
        "recall@1": 1.0,
        "fraction_recalled@1": 1.0,
        "ndcg@1": 1.0,
        "recall@5": 1.0,
        "fraction_recalled@5": 1.0,
        "ndcg@5": 1.0,
        "mrr": 1.0,
    }
    two = query_metrics(RANKED, {"z"}, ks=(1, 5))
    assert set(two.values()) == {0.0}
    assert summarise([one, two]) == dict.fromkeys(one, 0.5)
    assert summarise([]) == {}
    assert summarise([{"mrr": 1.0}, {"mrr": 0.5, "recall@1": 0.0}]) == {"mrr": 0.75, "recall@1": 0.0}


items = st.integers(0, 12).map(str)
rankings = st.lists(items, max_size=12)
relevants = st.sets(items, min_size=1, max_size=6)
ks = st.integers(1, 15)


@FAST
@given(rankings, relevants, ks)
def test_values_lie_in_zero_one(ranked: list[str], relevant: set[str], k: int) -> None:
    for value in query_metrics(ranked, relevant, ks=(k,)).values():
        assert 0.0 <= value <= 1.0


@FAST
@given(rankings, relevants, ks)
def test_recall_is_monotone_in_k(ranked: list[str], relevant: set[str], k: int) -> None:
    assert recall_at_k(ranked, relevant, k) <= recall_at_k(ranked, relevant, k + 1)
    assert fraction_recalled_at_k(ranked, relevant, k) <= fraction_recalled_at_k(ranked, relevant, k + 1)
    assert fraction_recalled_at_k(ranked, relevant, k) <= recall_at_k(ranked, relevant, k)


@FAST
@given(relevants, st.lists(items), ks, st.randoms(use_true_random=False))
def test_a_perfect_ranking_scores_one(relevant: set[str], others: list[str], k: int, rnd) -> None:
    head = sorted(relevant)
    rnd.shuffle(head)
    ranked = head + [item for item in others if item not in relevant]
    assert recall_at_k(ranked, relevant, k) == 1.0
    assert reciprocal_rank(ranked, relevant) == 1.0
    assert ndcg_at_k(ranked, relevant, k) == pytest.approx(1.0)
    assert fraction_recalled_at_k(ranked, relevant, k) == min(k, len(relevant)) / len(relevant)


@FAST
@given(rankings, relevants, ks, st.randoms(use_true_random=False))
def test_ndcg_ignores_the_order_after_k(ranked: list[str], relevant: set[str], k: int, rnd) -> None:
    tail = ranked[k:]
    rnd.shuffle(tail)
    assert ndcg_at_k(ranked[:k] + tail, relevant, k) == ndcg_at_k(ranked, relevant, k)
    assert ndcg_at_k(ranked[:k], relevant, k) == ndcg_at_k(ranked, relevant, k)


@FAST
@given(rankings, relevants, ks)
def test_metrics_agree_with_each_other(ranked: list[str], relevant: set[str], k: int) -> None:
    hit = recall_at_k(ranked, relevant, k)
    assert (ndcg_at_k(ranked, relevant, k) > 0) == (hit == 1.0)
    assert (reciprocal_rank(ranked, relevant) >= 1 / k) == (hit == 1.0)


@FAST
@given(st.lists(st.fixed_dictionaries({"mrr": st.floats(0, 1), "recall@1": st.floats(0, 1)}), min_size=1, max_size=10))
def test_summarise_means_lie_between_the_extremes(per_query: list[dict[str, float]]) -> None:
    summary = summarise(per_query)
    for name in ("mrr", "recall@1"):
        values = [q[name] for q in per_query]
        assert min(values) - 1e-12 <= summary[name] <= max(values) + 1e-12
