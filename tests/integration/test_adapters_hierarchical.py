"""HierarchicalMemory: levels, promotion on access and by consolidation, rules, persistence, bad input."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agentmem_plugin.adapters.hierarchical import LEVEL_ORDER, HierarchicalMemory
from agentmem_plugin.errors import InvalidArgumentError, KeyNotFoundError


@pytest.fixture
def hm(clock):  # type: ignore[no-untyped-def]
    memory = HierarchicalMemory(clock=clock)
    yield memory
    memory.close()


def where(hm: HierarchicalMemory, key: str) -> list[str]:
    """Every level holding *key* (to check there are never duplicates)."""
    return [name for name, memory in hm.levels.items() if key in memory]


def test_levels_and_default_capacities(hm) -> None:  # type: ignore[no-untyped-def]
    assert list(hm.levels) == list(LEVEL_ORDER)
    assert {n: m.capacity for n, m in hm.levels.items()} == {
        "immediate": 50,
        "recent": 500,
        "important": 5000,
        "learned": 10000,
    }
    assert not any(m.persistence for m in hm.levels.values())


def test_retrieve_returns_the_users_value_and_counters_live_in_metadata(hm, clock) -> None:  # type: ignore[no-untyped-def]
    value = {"value": "mine", "access_count": "not a counter"}
    hm.store("k", value, metadata={"source": "chat"})
    assert hm.retrieve("k") == value
    entry = hm.levels["immediate"].get_entry("k")
    assert entry.value == value
    meta = entry.metadata
    assert meta["access_count"] == 1
    assert meta["importance_score"] == 0.5
    assert meta["validation_count"] == 0
    assert meta["source"] == "chat"
    assert meta["timestamp"] == clock.now
    assert meta["last_accessed"] == clock.now
    assert hm.retrieve("missing") is None


def test_store_places_a_key_in_one_level_only(hm) -> None:  # type: ignore[no-untyped-def]
    hm.store("k", 1, level="important")
    hm.store("k", 2, level="recent")
    assert where(hm, "k") == ["recent"]
    assert hm.retrieve("k") == 2


def test_promotion_on_access_with_the_default_rule(hm) -> None:  # type: ignore[no-untyped-def]
    hm.store("k", "v")
    for _ in range(3):
        assert hm.retrieve("k") == "v"
    assert where(hm, "k") == ["immediate"]  # access_count 3 is not > 3
    assert hm.retrieve("k") == "v"
    assert where(hm, "k") == ["recent"]
    item = hm.get_item("k")
    assert item is not None
    assert item["access_count"] == 4 and item["level"] == "recent"


def test_declarative_thresholds_mean_strictly_greater(clock) -> None:  # type: ignore[no-untyped-def]
    rules = {"immediate_to_recent": {"access_count": 1, "importance_score": 0.6}}
    with HierarchicalMemory(promotion_rules=rules, clock=clock) as hm:
        hm.store("low", "x", metadata={"importance_score": 0.6})
        hm.store("high", "y", metadata={"importance_score": 0.7})
        for _ in range(2):
            hm.retrieve("low")
            hm.retrieve("high")
        assert hm.level_of("low") == "immediate"  # importance 0.6 is not > 0.6
        assert hm.level_of("high") == "recent"


def test_callable_rules_receive_the_item_dict(clock) -> None:  # type: ignore[no-untyped-def]
    seen: list[dict[str, object]] = []

    def rule(item: dict[str, object]) -> bool:
        seen.append(item)
        return item.get("topic") == "keep"

    with HierarchicalMemory(promotion_rules={"immediate_to_recent": rule}, clock=clock) as hm:
        hm.store("a", 1, metadata={"topic": "keep"})
        hm.store("b", 2, metadata={"topic": "drop"})
        hm.retrieve("a")
        hm.retrieve("b")
        assert hm.level_of("a") == "recent" and hm.level_of("b") == "immediate"
        assert seen[0]["key"] == "a" and seen[0]["value"] == 1 and seen[0]["level"] == "immediate"
        assert seen[0]["access_count"] == 1


def test_a_rule_set_to_none_disables_that_step(clock) -> None:  # type: ignore[no-untyped-def]
    with HierarchicalMemory(promotion_rules={"immediate_to_recent": None}, clock=clock) as hm:
        hm.store("k", "v")
        for _ in range(10):
            hm.retrieve("k")
        assert hm.consolidate_memory()["promoted"] == 0
        assert hm.level_of("k") == "immediate"


def test_consolidation_promotes_one_level_per_call_without_duplicates(clock) -> None:  # type: ignore[no-untyped-def]
    always = {step: (lambda item: True) for step in
              ("immediate_to_recent", "recent_to_important", "important_to_learned")}
    with HierarchicalMemory(promotion_rules=always, clock=clock) as hm:
        hm.store("k", "v")
        for expected in ("recent", "important", "learned", "learned"):
            hm.consolidate_memory()
            assert where(hm, "k") == [expected]
        assert hm.retrieve("k") == "v"


def test_consolidation_uses_importance_and_validation(hm) -> None:  # type: ignore[no-untyped-def]
    hm.store("pref", "detailed", level="recent", metadata={"importance_score": 0.9})
    hm.store("meh", "whatever", level="recent", metadata={"importance_score": 0.8})
    hm.store("strategy", "batch", level="important")
    for _ in range(5):
        hm.validate("strategy")
    counts = hm.consolidate_memory()
    assert counts == {
        "promoted": 1,
        "expired": 0,
        "immediate_to_recent": 0,
        "recent_to_important": 1,
        "important_to_learned": 0,
    }
    assert where(hm, "pref") == ["important"] and where(hm, "meh") == ["recent"]
    assert hm.validate("strategy") == 6
    assert hm.consolidate_memory()["important_to_learned"] == 1
    assert where(hm, "strategy") == ["learned"]
    assert hm.get_item("strategy")["validation_count"] == 6  # type: ignore[index]


def test_a_raising_rule_is_logged_and_the_item_stays(clock, caplog) -> None:  # type: ignore[no-untyped-def]
    def broken(item: dict[str, object]) -> bool:
        raise RuntimeError("rule bug")

    with HierarchicalMemory(promotion_rules={"immediate_to_recent": broken}, clock=clock) as hm:
        hm.store("k", "v")
        with caplog.at_level(logging.ERROR, logger="agentmem_plugin.adapters.hierarchical"):
            assert hm.retrieve("k") == "v"
            counts = hm.consolidate_memory()
        assert counts["promoted"] == 0
        assert where(hm, "k") == ["immediate"]
        assert hm.get_item("k")["access_count"] == 1  # type: ignore[index]
        records = [r for r in caplog.records if "immediate_to_recent" in r.getMessage()]
        assert len(records) == 2
        assert "'k'" in records[0].getMessage()
        assert records[0].exc_info is not None and "rule bug" in str(records[0].exc_info[1])


def test_important_and_learned_persist_across_reopen(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "hier"
    with HierarchicalMemory(storage_path=path, clock=clock) as hm:
        assert [n for n, m in hm.levels.items() if m.persistence] == ["important", "learned"]
        hm.store("scratch", 1)
        hm.store("strategy", {"mode": "batch"}, level="important")
        hm.store("fact", "water is wet", level="learned", metadata={"importance_score": 1.0})
        hm.validate("strategy")
        hm.validate("strategy")
    assert (path / "important").is_dir() and (path / "learned").is_dir()
    with HierarchicalMemory(storage_path=path, clock=clock) as hm:
        assert hm.level_of("scratch") is None  # immediate is in memory only
        assert hm.level_of("strategy") == "important"
        assert hm.get_item("strategy")["validation_count"] == 2  # type: ignore[index]
        assert hm.retrieve("strategy") == {"mode": "batch"}
        assert hm.retrieve("fact") == "water is wet"
        assert hm.get_item("fact")["importance_score"] == 1.0  # type: ignore[index]


def test_promoted_item_reaches_the_persistent_level(tmp_path, clock) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "hier"
    with HierarchicalMemory(storage_path=path, clock=clock) as hm:
        hm.store("pref", "short answers", level="recent", metadata={"importance_score": 0.95})
        assert hm.retrieve("pref") == "short answers"  # promoted on access
        assert where(hm, "pref") == ["important"]
    with HierarchicalMemory(storage_path=path, clock=clock) as hm:
        assert hm.level_of("pref") == "important"


def test_custom_capacities(clock) -> None:  # type: ignore[no-untyped-def]
    with HierarchicalMemory(levels={"immediate": 2, "learned": None}, clock=clock) as hm:
        assert hm.levels["immediate"].capacity == 2 and hm.levels["learned"].capacity is None
        for key in "abc":
            hm.store(key, key)
        assert len(hm.levels["immediate"]) == 2


def test_unknown_level_is_refused_by_name(hm) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match="'archive'"):
        hm.store("k", "v", level="archive")
    assert all(len(m) == 0 for m in hm.levels.values())
    with pytest.raises(InvalidArgumentError, match="'bogus'"):
        HierarchicalMemory(levels={"bogus": 10})


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"immediate_to_learned": {"access_count": 1}}, "immediate_to_learned"),
        ({"immediate_to_recent": {"clicks": 1}}, "clicks"),
        ({"immediate_to_recent": {"access_count": "3"}}, "access_count"),
        ({"immediate_to_recent": {}}, "no thresholds"),
        ({"immediate_to_recent": 3}, "immediate_to_recent"),
    ],
)
def test_bad_promotion_rules(rules, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError, match=message):
        HierarchicalMemory(promotion_rules=rules)


@pytest.mark.parametrize(
    "metadata",
    [{"importance_score": 1.5}, {"access_count": -1}, {"validation_count": 1.5}, ["x"]],
)
def test_bad_metadata(hm, metadata) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidArgumentError):
        hm.store("k", "v", metadata=metadata)
    assert hm.level_of("k") is None


def test_validate_missing_key(hm) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(KeyNotFoundError, match="'nope'"):
        hm.validate("nope")


def test_async_twins(hm) -> None:  # type: ignore[no-untyped-def]
    async def main() -> dict[str, int]:
        await hm.astore("pref", "detailed", level="recent", metadata={"importance_score": 0.9})
        assert await hm.aretrieve("pref") == "detailed"
        with pytest.raises(InvalidArgumentError):
            await hm.astore("k", 1, level="nowhere")
        return await hm.aconsolidate_memory()

    counts = asyncio.run(main())
    assert counts["promoted"] == 0  # already promoted on access
    assert hm.level_of("pref") == "important"


def test_promotion_into_a_level_full_of_higher_priorities_keeps_the_item() -> None:
    """Regression: the promoted item was evicted by its new level at once and deleted from its old one."""
    from agentmem_plugin.adapters.hierarchical import HierarchicalMemory
    from agentmem_plugin.entry import MemoryEntry

    hm = HierarchicalMemory(
        levels={"recent": 1}, promotion_rules={"immediate_to_recent": {"access_count": 0}}
    )
    hm.levels["recent"].tier.put(MemoryEntry("vip", "kept", priority=9))
    hm.levels["immediate"].tier.put(MemoryEntry("low", "must survive", priority=0))
    assert hm.retrieve("low") == "must survive"
    assert hm.level_of("low") == "immediate"
    assert hm.retrieve("vip") == "kept"


def test_promotion_into_a_full_level_drops_nothing_and_leaves_other_levels_alone() -> None:
    """Regression: the full level's victim was dropped, and a chain of promotions emptied every level a little."""
    from agentmem_plugin.adapters.hierarchical import HierarchicalMemory

    hm = HierarchicalMemory(
        levels={"immediate": 3, "recent": 2, "important": 2},
        promotion_rules={"immediate_to_recent": {"access_count": 0}, "recent_to_important": None},
    )
    hm.store("r1", "first recent", level="recent")
    hm.store("r2", "second recent", level="recent")
    hm.store("i1", "immediate one")
    hm.store("i2", "immediate two")
    hm.store("keep", "important", level="important")
    assert hm.retrieve("i1") == "immediate one"  # promoted into the full "recent" level
    assert hm.level_of("i1") == "recent"
    stepped = [k for k in ("r1", "r2") if hm.level_of(k) == "immediate"]
    assert len(stepped) == 1  # the recent item it displaced stepped down into the freed place
    levels = {k: hm.level_of(k) for k in ("r1", "r2", "i1", "i2", "keep")}
    assert None not in levels.values()  # nothing dropped
    assert [len(hm.levels[n]) for n in ("immediate", "recent", "important")] == [2, 2, 1]
    assert hm.retrieve("keep") == "important" and hm.level_of("keep") == "important"
