"""WorkingMemory: routing by importance, active context, persistence, bad input, async twins."""

from __future__ import annotations

import asyncio
import math

import pytest

from agentmem_plugin.adapters.working import WorkingMemory
from agentmem_plugin.errors import InvalidArgumentError


@pytest.fixture
def wm(clock):  # type: ignore[no-untyped-def]
    memory = WorkingMemory(clock=clock)
    yield memory
    memory.close()


def test_high_importance_goes_long_term_with_tags_and_importance(wm) -> None:  # type: ignore[no-untyped-def]
    wm.store_context("current_user", "Alice", importance=0.9)
    assert "current_user" not in wm.short_term
    entry = wm.long_term.get_entry("current_user")
    assert entry.value == "Alice"
    assert set(entry.tags) == {"important", "context"}
    assert entry.metadata["importance"] == 0.9
    assert entry.expires_at is None


def test_low_importance_goes_short_term_and_expires(wm, clock) -> None:  # type: ignore[no-untyped-def]
    wm.store_context("temporary_calculation", 42, importance=0.3)
    assert "temporary_calculation" not in wm.long_term
    assert wm.short_term.retrieve("temporary_calculation") == 42
    clock.advance(3599)
    assert wm.short_term.retrieve("temporary_calculation") == 42
    clock.advance(1)
    assert wm.short_term.retrieve("temporary_calculation") is None
    assert wm.get_active_context() == []


def test_threshold_is_strict_and_configurable(clock) -> None:  # type: ignore[no-untyped-def]
    with WorkingMemory(clock=clock) as wm:
        wm.store_context("edge", "x", importance=0.8)
        assert "edge" in wm.short_term and "edge" not in wm.long_term
    with WorkingMemory(clock=clock, importance_threshold=0.5, short_term_ttl=10) as wm:
        wm.store_context("mid", "y", importance=0.6)
        assert "mid" in wm.long_term
        wm.store_context("low", "z", importance=0.5)
        clock.advance(10)
        assert "low" not in wm.short_term


def test_restoring_a_key_moves_it_between_memories(wm) -> None:  # type: ignore[no-untyped-def]
    wm.store_context("k", "first", importance=0.2)
    wm.store_context("k", "second", importance=0.95)
    assert "k" not in wm.short_term and wm.long_term.retrieve("k") == "second"
    wm.store_context("k", "third", importance=0.1)
    assert "k" not in wm.long_term and wm.short_term.retrieve("k") == "third"


@pytest.mark.parametrize("bad", [-0.1, 1.01, math.nan, math.inf, "high", None, True])
def test_importance_outside_unit_interval_is_refused(wm, bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="importance") as info:
        wm.store_context("k", "v", importance=bad)
    assert isinstance(info.value, InvalidArgumentError)
    assert repr(bad) in str(info.value)
    assert len(wm.short_term) == 0 and len(wm.long_term) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"importance_threshold": 1.5},
        {"short_term_ttl": 0},
        {"short_term_ttl": None},
        {"short_term_capacity": 0},
        {"long_term_capacity": -1},
    ],
)
def test_bad_construction_arguments(kwargs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError):
        WorkingMemory(**kwargs)


@pytest.mark.parametrize("bad", [0, -3, 2.5, "5", True])
def test_bad_max_items(wm, bad) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match="max_items"):
        wm.get_active_context(max_items=bad)


def test_bad_query_type(wm) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match="query"):
        wm.get_active_context(query=42)  # type: ignore[arg-type]


def test_active_context_recent_short_term_first_then_long_term(wm, clock) -> None:  # type: ignore[no-untyped-def]
    wm.store_context("billing_owner", "Carol owns the billing service", importance=0.9)
    wm.store_context("step_one", "open the billing dashboard", importance=0.2)
    clock.advance(1)
    wm.store_context("step_two", "check the billing invoices", importance=0.4)
    context = wm.get_active_context()
    assert [(c["key"], c["source"], c["importance"]) for c in context] == [
        ("step_two", "short_term", 0.4),
        ("step_one", "short_term", 0.2),
        ("billing_owner", "long_term", 0.9),
    ]
    assert context[2]["value"] == "Carol owns the billing service"


def test_active_context_respects_max_items(wm) -> None:  # type: ignore[no-untyped-def]
    for i in range(5):
        wm.store_context(f"s{i}", f"billing step {i}", importance=0.1)
    wm.store_context("billing_owner", "Carol owns billing", importance=0.9)
    context = wm.get_active_context(max_items=3)
    assert [c["key"] for c in context] == ["s4", "s3", "s2"]
    context = wm.get_active_context(max_items=6)
    assert [c["key"] for c in context][-1] == "billing_owner"


def test_without_query_long_term_is_searched_by_recent_context_not_a_literal(wm) -> None:  # type: ignore[no-untyped-def]
    # The spec searched the literal string "recent context": this item would win that search.
    wm.store_context("recent_context_notes", "recent context recent context", importance=0.9)
    wm.store_context("billing_owner", "Carol owns the billing service", importance=0.9)
    wm.store_context("task", "fix the billing service outage", importance=0.3)
    context = wm.get_active_context(max_items=2)
    assert [c["key"] for c in context] == ["task", "billing_owner"]


def test_explicit_query_picks_matching_long_term_item(wm) -> None:  # type: ignore[no-untyped-def]
    wm.store_context("billing_owner", "Carol owns the billing service", importance=0.9)
    wm.store_context("deploy_window", "deploys happen on Tuesday mornings", importance=0.9)
    wm.store_context("task", "fix the billing service outage", importance=0.3)
    context = wm.get_active_context(max_items=2, query="when are deploys")
    assert [c["key"] for c in context] == ["task", "deploy_window"]


def test_without_query_or_short_term_long_term_comes_by_importance(wm) -> None:  # type: ignore[no-untyped-def]
    wm.store_context("a", "alpha", importance=0.85)
    wm.store_context("b", "beta", importance=0.99)
    wm.store_context("c", "gamma", importance=0.9)
    assert [c["key"] for c in wm.get_active_context()] == ["b", "c", "a"]


def test_no_duplicates_when_a_key_is_in_both_memories(wm) -> None:  # type: ignore[no-untyped-def]
    wm.short_term.store("shared", "billing note short")
    wm.long_term.store("shared", "billing note long")
    wm.long_term.store("other", "billing note other")
    context = wm.get_active_context(query="billing note")
    keys = [c["key"] for c in context]
    assert keys == ["shared", "other"]
    assert context[0]["source"] == "short_term"
    assert context[0]["importance"] is None  # stored directly, without an importance


def test_long_term_persists_across_reopen(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    with WorkingMemory(storage_path=tmp_path / "wm", clock=clock) as wm:
        wm.store_context("current_user", "Alice", importance=0.9)
        wm.store_context("scratch", 1, importance=0.1)
    assert (tmp_path / "wm").is_dir()
    with WorkingMemory(storage_path=tmp_path / "wm", clock=clock) as wm:
        assert wm.long_term.retrieve("current_user") == "Alice"
        assert wm.long_term.get_entry("current_user").metadata["importance"] == 0.9
        assert wm.short_term.retrieve("scratch") is None  # short-term is never persisted
        assert wm.get_active_context() == [
            {"key": "current_user", "value": "Alice", "source": "long_term", "importance": 0.9}
        ]


def test_query_pulls_the_semantically_relevant_long_term_item(real_embedder, clock) -> None:  # type: ignore[no-untyped-def]
    with WorkingMemory(embedder=real_embedder, clock=clock) as wm:
        wm.store_context(
            "reply_language", "Alice wants responses written in French", importance=0.9
        )
        wm.store_context("db_port", "The database server listens on port 5432", importance=0.9)
        wm.store_context("lunch", "The cafeteria serves pasta on Fridays", importance=0.9)
        wm.store_context("step", "draft an email", importance=0.2)
        context = wm.get_active_context(max_items=2, query="which tongue should I answer in")
        assert [c["key"] for c in context] == ["step", "reply_language"]


def test_async_twins(wm) -> None:  # type: ignore[no-untyped-def]
    async def main() -> list[dict[str, object]]:
        await wm.astore_context("current_user", "Alice", importance=0.9)
        await wm.astore_context("step", "greet Alice", importance=0.2)
        with pytest.raises(InvalidArgumentError):
            await wm.astore_context("bad", 1, importance=2.0)
        return await wm.aget_active_context(max_items=5, query="Alice")

    context = asyncio.run(main())
    assert [(c["key"], c["source"]) for c in context] == [
        ("step", "short_term"),
        ("current_user", "long_term"),
    ]
