from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.policies import (
    ConsolidationPolicy,
    ImportanceConsolidationPolicy,
    LRUEvictionPolicy,
    TTLEvictionPolicy,
)

# -- LRU -------------------------------------------------------------------------------------------


def test_lru_plain_order() -> None:
    p = LRUEvictionPolicy(max_size=10, priority_aware=False)
    for k in "abc":
        p.add(k, priority=5 if k == "a" else 0)  # priority ignored when not priority-aware
    assert p.select_victim() == "a"
    p.update_access("a")
    assert p.select_victim() == "b"
    p.add("b")  # re-add moves to the end
    assert p.select_victim() == "c"


def test_lru_empty() -> None:
    p = LRUEvictionPolicy(max_size=1)
    assert p.select_victim() is None
    assert len(p) == 0


def test_lru_priority_aware_victim_is_lru_of_lowest_priority() -> None:
    p = LRUEvictionPolicy(max_size=10)
    p.add("hi1", priority=5)
    p.add("lo1", priority=0)
    p.add("mid", priority=2)
    p.add("lo2", priority=0)
    assert p.select_victim() == "lo1"
    p.update_access("lo1")
    assert p.select_victim() == "lo2"
    p.remove("lo2")
    assert p.select_victim() == "lo1"
    p.remove("lo1")
    assert p.select_victim() == "mid"
    p.remove("mid")
    assert p.select_victim() == "hi1"


def test_lru_negative_priorities_go_first() -> None:
    p = LRUEvictionPolicy(max_size=10)
    p.add("a", priority=0)
    p.add("b", priority=-1)
    assert p.select_victim() == "b"


def test_lru_readd_with_new_priority_moves_it() -> None:
    p = LRUEvictionPolicy(max_size=10)
    p.add("a", priority=0)
    p.add("b", priority=0)
    assert p.select_victim() == "a"
    p.add("a", priority=3)
    assert p.select_victim() == "b"
    p.add("b", priority=5)
    assert p.select_victim() == "a"
    p.add("a", priority=5)  # same bucket as b, now more recent
    assert p.select_victim() == "b"
    assert len(p) == 2


def test_lru_update_access_unknown_key_is_ignored() -> None:
    p = LRUEvictionPolicy(max_size=10)
    p.update_access("ghost")
    assert "ghost" not in p
    assert p.select_victim() is None


def test_lru_remove_and_contains() -> None:
    p = LRUEvictionPolicy(max_size=10)
    p.add("a")
    p.add("b", priority=1)
    assert "a" in p
    p.remove("a")
    p.remove("a")  # no error
    p.remove("never")
    assert "a" not in p
    assert len(p) == 1
    assert p.select_victim() == "b"
    p.clear()
    assert len(p) == 0
    assert p.select_victim() is None


def test_lru_should_evict_vs_max_size() -> None:
    p = LRUEvictionPolicy(max_size=2)
    p.add("a")
    assert not p.should_evict()
    p.add("b")
    assert not p.should_evict()
    p.add("b")
    assert not p.should_evict()
    p.add("c")
    assert p.should_evict()
    p.remove(p.select_victim())  # type: ignore[arg-type]
    assert not p.should_evict()


@pytest.mark.parametrize("bad", [0, -1, True, 1.5, None, "3"])
def test_lru_bad_max_size(bad: object) -> None:
    with pytest.raises(InvalidArgumentError):
        LRUEvictionPolicy(max_size=bad)  # type: ignore[arg-type]


_KEYS = st.sampled_from(list("abcdefgh"))
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), _KEYS, st.integers(-2, 3)),
        st.tuples(st.just("touch"), _KEYS, st.just(0)),
        st.tuples(st.just("remove"), _KEYS, st.just(0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_OPS, st.booleans())
def test_lru_matches_brute_force_model(ops: list[tuple[str, str, int]], aware: bool) -> None:
    p = LRUEvictionPolicy(max_size=4, priority_aware=aware)
    model: dict[str, tuple[int, int]] = {}  # key -> (priority, last_use_tick)
    for tick, (op, key, prio) in enumerate(ops):
        if op == "add":
            p.add(key, priority=prio)
            model[key] = (prio if aware else 0, tick)
        elif op == "touch":
            p.update_access(key)
            if key in model:
                model[key] = (model[key][0], tick)
        else:
            p.remove(key)
            model.pop(key, None)
        expected = min(model, key=lambda k: model[k]) if model else None
        assert p.select_victim() == expected
        assert len(p) == len(model)
        assert p.should_evict() == (len(model) > 4)
        for k in "abcdefgh":
            assert (k in p) == (k in model)


# -- TTL -------------------------------------------------------------------------------------------


def test_ttl_track_and_pop_expired() -> None:
    p = TTLEvictionPolicy()
    p.track("a", 10.0)
    p.track("b", None)
    p.track("c", 20.0)
    p.track("d", 15.0)
    assert not p.should_evict(9.99)
    assert p.pop_expired(9.99) == []
    assert p.should_evict(10.0)  # expiry is inclusive
    assert p.pop_expired(15.0) == ["a", "d"]
    assert p.pop_expired(15.0) == []  # popped keys are no longer tracked
    assert p.pop_expired(1e9) == ["c"]
    assert not p.should_evict(1e18)


def test_ttl_forget() -> None:
    p = TTLEvictionPolicy()
    p.track("a", 10.0)
    p.track("b", 11.0)
    p.forget("a")
    p.forget("never")
    assert p.pop_expired(100.0) == ["b"]


def test_ttl_retrack_with_different_expiry_skips_stale_items() -> None:
    p = TTLEvictionPolicy()
    p.track("a", 10.0)
    p.track("a", 30.0)  # later expiry: the (10, a) heap item is stale
    p.track("b", 20.0)
    assert not p.should_evict(15.0)
    assert p.pop_expired(25.0) == ["b"]
    p.track("a", 5.0)  # earlier expiry wins too
    assert p.pop_expired(6.0) == ["a"]
    assert p.pop_expired(100.0) == []


def test_ttl_retrack_to_none_stops_expiry() -> None:
    p = TTLEvictionPolicy()
    p.track("a", 10.0)
    p.track("a", None)
    assert not p.should_evict(100.0)
    assert p.pop_expired(100.0) == []


def test_ttl_many_retracks_compact_without_losing_keys() -> None:
    p = TTLEvictionPolicy()
    for i in range(1000):
        p.track("k", float(1000 + i))
    p.track("other", 5000.0)
    assert p.pop_expired(1998.0) == []
    assert p.pop_expired(1999.0) == ["k"]
    assert p.pop_expired(5000.0) == ["other"]


def test_ttl_clear_and_get_expired_keys() -> None:
    p = TTLEvictionPolicy()
    p.track("a", 1.0)
    p.clear()
    assert p.pop_expired(10.0) == []
    entries = [
        MemoryEntry("x", 1, ttl=5, created_at=0.0),
        MemoryEntry("y", 1, created_at=0.0),
        MemoryEntry("z", 1, ttl=50, created_at=0.0),
    ]
    assert p.get_expired_keys(entries, now=5.0) == ["x"]
    assert p.get_expired_keys(entries, now=4.9) == []


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, True, "5"])
def test_ttl_bad_default(bad: object) -> None:
    with pytest.raises(InvalidArgumentError):
        TTLEvictionPolicy(default_ttl=bad)  # type: ignore[arg-type]


def test_ttl_default_kept() -> None:
    assert TTLEvictionPolicy(default_ttl=5).default_ttl == 5
    assert TTLEvictionPolicy().default_ttl is None


# -- consolidation ---------------------------------------------------------------------------------

NOW = 10_000.0


def _entry(key: str = "k", **kw: object) -> MemoryEntry:
    kw.setdefault("created_at", NOW - 100)
    return MemoryEntry(key, "v", **kw)  # type: ignore[arg-type]


def test_importance_policy_is_a_consolidation_policy() -> None:
    assert isinstance(ImportanceConsolidationPolicy(), ConsolidationPolicy)


def test_score_monotonic_in_priority_access_and_importance() -> None:
    pol = ImportanceConsolidationPolicy()
    base = pol.score(_entry(), NOW)
    assert pol.score(_entry(priority=1), NOW) > base
    assert pol.score(_entry(priority=5), NOW) > pol.score(_entry(priority=1), NOW)
    assert pol.score(_entry(access_count=3, last_accessed=NOW - 100), NOW) > base
    assert pol.score(_entry(access_count=30, last_accessed=NOW - 100), NOW) > pol.score(
        _entry(access_count=3, last_accessed=NOW - 100), NOW
    )
    lo = pol.score(_entry(metadata={"importance": 0.1}), NOW)
    mid = pol.score(_entry(metadata={"importance": 0.5}), NOW)
    hi = pol.score(_entry(metadata={"importance": 0.9}), NOW)
    assert lo < mid < hi
    assert mid == pytest.approx(base)  # missing importance counts as 0.5
    assert pol.score(_entry(metadata={"importance": "very"}), NOW) == pytest.approx(base)


def test_score_recency() -> None:
    pol = ImportanceConsolidationPolicy()
    recent = pol.score(_entry(created_at=NOW - 10), NOW)
    old = pol.score(_entry(created_at=NOW - 100_000), NOW)
    assert recent > old


def test_should_consolidate_min_score_and_expiry() -> None:
    pol = ImportanceConsolidationPolicy(min_score=2.0)
    assert not pol.should_consolidate(_entry(), NOW)
    assert pol.should_consolidate(_entry(priority=3), NOW)
    expired = _entry(priority=100, ttl=10, created_at=NOW - 10)
    assert not pol.should_consolidate(expired, NOW)


def test_select_orders_highest_first_and_skips_expired() -> None:
    pol = ImportanceConsolidationPolicy()
    entries = [
        _entry("low"),
        _entry("high", priority=5),
        _entry("dead", priority=50, ttl=1, created_at=NOW - 2),
        _entry("mid", priority=2),
        _entry("mid_tie", priority=2),
    ]
    picked = pol.select_entries_to_consolidate(entries, NOW)
    assert [e.key for e in picked] == ["high", "mid", "mid_tie", "low"]
    scores = [pol.score(e, NOW) for e in picked]
    assert scores == sorted(scores, reverse=True)


def test_select_applies_min_score() -> None:
    pol = ImportanceConsolidationPolicy(min_score=3.0)
    entries = [_entry("a", priority=1), _entry("b", priority=4), _entry("c", priority=9)]
    assert [e.key for e in pol.select_entries_to_consolidate(entries, NOW)] == ["c", "b"]


def test_bad_half_life() -> None:
    with pytest.raises(InvalidArgumentError):
        ImportanceConsolidationPolicy(recency_half_life=0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 30), st.integers(-2, 2)), min_size=1, max_size=30),
    st.integers(-2, 2),
    st.booleans(),
)
def test_swap_is_remove_then_add(tracked: list[tuple[int, int]], priority: int, aware: bool) -> None:
    """``swap(victim, key, p)`` leaves the policy exactly as ``remove(victim); add(key, p)`` does."""
    one = LRUEvictionPolicy(100, priority_aware=aware)
    two = LRUEvictionPolicy(100, priority_aware=aware)
    for key, p in tracked:
        one.add(f"k{key}", p)
        two.add(f"k{key}", p)
    victim = one.select_victim()
    assert victim is not None
    one.swap(victim, "new", priority)
    two.remove(victim)
    two.add("new", priority)
    assert len(one) == len(two) and "new" in one and victim not in one
    assert one.preview_victims(len(two)) == two.preview_victims(len(two))  # the same eviction order


def test_swap_of_an_untracked_victim_raises_and_changes_nothing() -> None:
    lru = LRUEvictionPolicy(10)
    lru.add("a")
    with pytest.raises(KeyError):
        lru.swap("missing", "new")
    assert "new" not in lru and lru.preview_victims(1) == ["a"]


def test_a_store_into_a_full_buffer_tracks_the_newcomers_ttl_and_feeds_both_keys(clock) -> None:  # type: ignore[no-untyped-def]
    """The one-victim fast path of ``BufferTier.put``: the new key's expiry is tracked, the victim's dropped, and
    the change feed (what the semantic index follows) hears of the new key, then of the victim."""
    from agentmem_plugin.tiers.buffer import BufferTier

    tier = BufferTier(capacity=2, clock=clock)
    tier.set_index_meta("fake", 4)  # starts the change feed
    tier.put(MemoryEntry("old", 1))
    tier.put(MemoryEntry("mid", 2))
    tier.ack_changes(tier.changes(10))
    tier.put(MemoryEntry("new", 3, ttl=5, clock=clock))  # evicts "old"
    assert sorted(tier.keys()) == ["mid", "new"]
    assert [key for _, key in tier.changes(10)] == ["new", "old"]
    clock.advance(6)
    assert tier.get("new") is None and tier.count() == 1
    tier.put(MemoryEntry("again", 4))  # the full-tier path again, with nothing expiring left
    assert sorted(tier.keys()) == ["again", "mid"]
