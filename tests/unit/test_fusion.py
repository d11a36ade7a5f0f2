"""Rank fusion (search.fuse) and temporal-contiguity spreading (search.spread_to_neighbors): pure logic."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentmem_plugin.search import fuse, spread_to_neighbors

keys = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
# scores on a 0.01 grid: orders are then never blurred by float rounding inside the normalization
bm25 = st.lists(
    st.tuples(keys, st.integers(1, 5000).map(lambda i: i / 100)),
    max_size=8,
    unique_by=lambda kv: kv[0],
)
cosines = st.lists(
    st.tuples(keys, st.integers(-100, 100).map(lambda i: i / 100)),
    max_size=8,
    unique_by=lambda kv: kv[0],
)


def order(ranking: list[tuple[str, float]]) -> list[str]:
    return [k for k, _ in ranking]


# -- fuse --------------------------------------------------------------------------------------------------------


def test_bm25_is_divided_by_the_best_and_cosine_min_max_scaled():
    got = dict(
        fuse([("a", 8.0), ("b", 2.0)], [("c", 0.9), ("d", 0.3), ("e", 0.5)], keyword_weight=0.5)
    )
    assert got["a"] == pytest.approx(0.5 * 1.0)
    assert got["b"] == pytest.approx(0.5 * 0.25)
    assert got["c"] == pytest.approx(0.5 * 1.0)
    assert got["d"] == pytest.approx(0.0)
    assert got["e"] == pytest.approx(0.5 * (0.5 - 0.3) / 0.6)


def test_a_key_on_both_sides_adds_both_contributions():
    got = dict(fuse([("a", 10.0), ("b", 5.0)], [("b", 0.8), ("a", 0.4)], keyword_weight=0.3))
    assert got["a"] == pytest.approx(0.3 * 1.0 + 0.7 * 0.0)
    assert got["b"] == pytest.approx(0.3 * 0.5 + 0.7 * 1.0)


def test_missing_side_scores_zero():
    got = dict(fuse([("kw", 4.0)], [("dense", 0.7), ("low", 0.1)], keyword_weight=0.6))
    assert got["kw"] == pytest.approx(0.6)  # nothing from the dense side
    assert got["dense"] == pytest.approx(0.4)  # nothing from the keyword side
    assert got["low"] == pytest.approx(0.0)


def test_one_empty_side_ranks_by_the_other():
    assert order(fuse([], [("x", 0.2), ("y", 0.9)], keyword_weight=0.5)) == ["y", "x"]
    assert order(fuse([("x", 1.0), ("y", 3.0)], [], keyword_weight=0.5)) == ["y", "x"]
    assert fuse([], [], keyword_weight=0.5) == []


def test_equal_cosines_all_normalize_to_one():
    got = dict(fuse([], [("a", 0.42), ("b", 0.42)], keyword_weight=0.25))
    assert got == {"a": pytest.approx(0.75), "b": pytest.approx(0.75)}


def test_all_zero_bm25_does_not_divide_by_zero():
    got = dict(fuse([("a", 0.0), ("b", 0.0)], [], keyword_weight=1.0))
    assert got == {"a": 0.0, "b": 0.0}


@pytest.mark.parametrize("weight", [-0.01, 1.01, -1.0, 2.0, math.inf, math.nan])
def test_weight_outside_unit_interval_is_a_value_error(weight):
    with pytest.raises(ValueError, match="keyword_weight"):
        fuse([("a", 1.0)], [("a", 0.5)], keyword_weight=weight)


def test_ties_are_broken_by_key():
    ranked = fuse([("b", 2.0), ("c", 2.0), ("a", 2.0)], [], keyword_weight=1.0)
    assert order(ranked) == ["a", "b", "c"]
    ranked = fuse([], [("z", 0.5), ("m", 0.9), ("y", 0.5), ("n", 0.9)], keyword_weight=0.0)
    assert order(ranked) == ["m", "n", "y", "z"]


@given(bm25, cosines)
def test_weight_one_is_the_keyword_order(keyword, dense):
    ranked = fuse(keyword, dense, keyword_weight=1.0)
    expected = sorted(keyword, key=lambda kv: (-kv[1], kv[0]))
    kw_keys = {k for k, _ in keyword}
    assert [k for k in order(ranked) if k in kw_keys] == order(expected)
    top = max((s for _, s in keyword), default=1.0)
    for key, score in ranked:
        if key in kw_keys:
            assert score == pytest.approx(dict(keyword)[key] / top)
        else:
            assert score == 0.0  # dense-only keys get nothing


@given(bm25, cosines)
def test_weight_zero_is_the_dense_order(keyword, dense):
    ranked = fuse(keyword, dense, keyword_weight=0.0)
    expected = sorted(dense, key=lambda kv: (-kv[1], kv[0]))
    dense_keys = {k for k, _ in dense}
    assert [k for k in order(ranked) if k in dense_keys] == order(expected)
    assert all(score == 0.0 for key, score in ranked if key not in dense_keys)


@given(bm25, cosines, st.floats(0.0, 1.0))
def test_fuse_is_sorted_bounded_and_deterministic(keyword, dense, weight):
    ranked = fuse(keyword, dense, keyword_weight=weight)
    assert sorted(order(ranked)) == sorted({k for k, _ in keyword} | {k for k, _ in dense})
    assert ranked == sorted(ranked, key=lambda kv: (-kv[1], kv[0]))
    assert all(-1e-9 <= s <= 1.0 + 1e-9 for _, s in ranked)
    assert fuse(list(reversed(keyword)), list(reversed(dense)), keyword_weight=weight) == ranked


# -- spread_to_neighbors ---------------------------------------------------------------------------------------


def test_weight_zero_is_identity():
    scores = {"a": 0.9, "b": 0.1}
    got = spread_to_neighbors(scores, {"a": ["b", "c"], "b": ["a"]}, weight=0.0)
    assert got == scores and got is not scores


def test_neighbours_get_weight_times_best_neighbour_score():
    got = spread_to_neighbors({"b": 1.0, "d": 0.4}, {"b": ["a", "c"], "d": ["c", "e"]}, weight=0.5)
    assert got["a"] == pytest.approx(0.5)  # only b around
    assert got["c"] == pytest.approx(0.5)  # best of b (1.0) and d (0.4), not their sum
    assert got["e"] == pytest.approx(0.2)
    assert set(got) == {"a", "b", "c", "d", "e"}


def test_scored_keys_keep_their_score_plus_the_bonus():
    got = spread_to_neighbors({"a": 0.8, "b": 0.3}, {"a": ["b"], "b": ["a"]}, weight=0.25)
    assert got["a"] == pytest.approx(0.8 + 0.25 * 0.3)
    assert got["b"] == pytest.approx(0.3 + 0.25 * 0.8)


def test_the_bonus_uses_the_original_scores_not_the_spread_ones():
    # a -> b -> c chain: c only sees b's ORIGINAL score (0), so it gets nothing
    got = spread_to_neighbors({"a": 1.0}, {"a": ["b"], "b": ["c"]}, weight=0.5)
    assert got == {"a": 1.0, "b": pytest.approx(0.5)}


def test_radius_is_symmetric_through_the_neighbours_mapping():
    # the mapping lists, for each scored key, the keys within the radius before AND after it
    order_ = ["k0", "k1", "k2", "k3", "k4", "k5", "k6"]
    radius = 2
    i = order_.index("k3")
    near = {"k3": order_[max(0, i - radius) : i] + order_[i + 1 : i + 1 + radius]}
    got = spread_to_neighbors({"k3": 1.0}, near, weight=0.5)
    assert {k for k, v in got.items() if v > 0} == {"k1", "k2", "k3", "k4", "k5"}
    assert got["k1"] == got["k5"] == pytest.approx(0.5)


def test_zero_scored_neighbours_give_nothing_and_unscored_keys_do_not_appear():
    got = spread_to_neighbors({"a": 0.0, "b": 0.6}, {"a": ["x"], "b": ["a"]}, weight=1.0)
    assert "x" not in got  # a's score is 0: nothing to spread
    assert got["a"] == pytest.approx(0.6)


def test_no_neighbours_changes_nothing():
    assert spread_to_neighbors({"a": 0.5}, {}, weight=0.7) == {"a": 0.5}
    assert spread_to_neighbors({}, {}, weight=0.7) == {}


@given(
    st.dictionaries(keys, st.floats(0.0, 1.0), max_size=6),
    st.dictionaries(keys, st.lists(keys, max_size=4), max_size=6),
    st.floats(0.0, 2.0),
)
def test_spreading_never_lowers_a_score(scores, neighbours, weight):
    got = spread_to_neighbors(scores, neighbours, weight=weight)
    for key, score in scores.items():
        assert got[key] >= score
    for key, score in got.items():
        around = [k for k, near in neighbours.items() if key in near]
        best = max((scores.get(n, 0.0) for n in around), default=0.0)
        expected = scores.get(key, 0.0) + (weight * best if weight > 0 and best > 0 else 0.0)
        assert score == pytest.approx(expected)
