"""Listing the namespaces under a prefix costs what the prefix holds, not what the store holds (issue 16 item 3).

Counted, never timed: beside 1,000 other namespaces, each backend is asked for a prefix holding three, and the
work it does is counted where it is done (SQLite's virtual-machine steps and query plan, the rows PostgreSQL's
plan reads, the names Redis hands back for checking), then compared with the work for every namespace. The
neighbours of the prefix in sort order (``user-x``, ``users``, ``user0``...) are not below it and never listed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from integration.backends import (
    DisposablePostgresTier,
    delete_redis_prefix,
    require_redis,
    unique_prefix,
)

from agentmem_plugin import MemoryManager
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.tiers.redis import RedisTier
from agentmem_plugin.tiers.sqlite import SqliteTier

OTHERS = 1000
BELOW = ["user", "user/a", "user/a/b"]  # what namespaces("user") lists
NEIGHBOURS = [
    "use",
    "user-x",
    "user.x",
    "user0",
    "users",
    "usera/b",
]  # beside it in sort order, not below


def _names(count: int, start: int = 0) -> list[str]:
    return [f"tenant/{i:05d}" for i in range(start, start + count)]


# -- SQLite --------------------------------------------------------------------------------------------------------


def _sqlite_fill(root: SqliteTier, names: list[str]) -> None:
    for ns in names:
        view = SqliteTier(root.path, table=root.table, namespace=ns, share_connection_with=root)
        view.put(MemoryEntry("k", ns))
        view.close()


def _steps(tier: SqliteTier, prefix: str | None) -> tuple[list[str], int]:
    """Run ``tier.namespaces(prefix)``; return it and the SQLite virtual-machine steps it took."""
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    tier._conn.set_progress_handler(count, 1)
    try:
        listed = tier.namespaces(prefix)
    finally:
        tier._conn.set_progress_handler(None, 1)
    return listed, steps[0]


def test_sqlite_lists_a_prefix_from_an_index_range_whatever_else_the_store_holds(
    tmp_path: Path,
) -> None:
    root = SqliteTier(tmp_path / "m.db", table="long_term")
    try:
        _sqlite_fill(root, BELOW + NEIGHBOURS + _names(OTHERS))
        listed, few = _steps(root, "user")
        assert listed == BELOW
        every, all_steps = _steps(root, None)
        assert len(every) == len(BELOW + NEIGHBOURS) + OTHERS
        _sqlite_fill(root, _names(OTHERS, start=OTHERS))  # twice as many others
        listed, few_again = _steps(root, "user")
        _, all_again = _steps(root, None)
        assert listed == BELOW
        assert few_again <= few + 20  # the b-tree may grow a level; nothing grows with the others
        assert (
            all_again > 1.8 * all_steps
        )  # the counter does count the work: listing everything doubled
        assert few < all_steps / 50
        plan = root._conn.execute(
            'EXPLAIN QUERY PLAN SELECT namespace FROM "long_term_counts" WHERE n > 0 '
            "AND (namespace = ? OR (namespace >= ? AND namespace < ?)) ORDER BY namespace",
            ("user", "user/", "user0"),
        ).fetchall()
        details = [row[3] for row in plan]
        assert any("USING INDEX" in d and "namespace>? AND namespace<?" in d for d in details)
        assert not any(d.startswith("SCAN") for d in details), details
    finally:
        root.close()


def test_a_bad_prefix_is_refused_naming_it(tmp_path: Path) -> None:
    root = SqliteTier(tmp_path / "m.db", table="long_term")
    try:
        with pytest.raises(InvalidArgumentError, match="a//b"):
            root.namespaces("a//b")
        assert root.namespaces("") == root.namespaces(None) == []
    finally:
        root.close()


# -- PostgreSQL ----------------------------------------------------------------------------------------------------


def _rows_read(plan: dict[str, Any]) -> int:
    """Sum the rows every scan node of an EXPLAIN ANALYZE plan returned, over all its loops."""
    total = 0
    if "Scan" in plan["Node Type"] and plan["Node Type"] not in ("CTE Scan", "WorkTable Scan"):
        total += plan["Actual Rows"] * plan["Actual Loops"]
    for child in plan.get("Plans", []):
        total += _rows_read(child)
    return total


def test_postgres_lists_a_prefix_with_one_index_probe_per_namespace() -> None:
    root = DisposablePostgresTier()
    try:
        names = BELOW + NEIGHBOURS + _names(OTHERS)
        with (
            root.pool.connection() as conn
        ):  # 20 rows per namespace: the listing must not read them
            conn.execute(
                f'INSERT INTO "{root.table}" (namespace, key, value, created_at) '
                "SELECT ns, 'k' || g, '\\x00'::bytea, 0 FROM unnest(%s::text[]) AS ns, "
                "generate_series(1, 20) AS g",
                (names,),
            )
            conn.execute(f'ANALYZE "{root.table}"')
        assert root.namespaces("user") == BELOW
        assert root.namespaces() == sorted(names)
        assert root.namespaces("tenant") == _names(OTHERS)
        with root.pool.connection() as conn:
            below = conn.execute(
                b"EXPLAIN (ANALYZE, FORMAT JSON) " + root._x["namespaces_below"],
                ("user/", "user0", "user0", "user", "user"),
            ).fetchone()[0]
            every = conn.execute(
                b"EXPLAIN (ANALYZE, FORMAT JSON) " + root._x["namespaces"]
            ).fetchone()[0]
        plans = [p if isinstance(p, list) else json.loads(p) for p in (below, every)]
        text = json.dumps(plans[0])
        assert "Seq Scan" not in text and "ns_c" in text
        assert (
            _rows_read(plans[0][0]["Plan"]) <= 8
        )  # the prefix's names, not its 60 rows or the others'
        assert (
            len(names) <= _rows_read(plans[1][0]["Plan"]) <= 2 * len(names) + 2
        )  # one per namespace
    finally:
        root.close()


# -- Redis ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    require_redis()
    name = unique_prefix()
    yield name
    delete_redis_prefix(name)


def test_redis_lists_a_prefix_from_its_sorted_set_of_names(
    redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = require_redis()
    root = RedisTier(url, prefix=redis_prefix)
    try:
        for ns in BELOW + NEIGHBOURS + _names(OTHERS) + ["user/emptied"]:
            tier = RedisTier(url, prefix=redis_prefix, namespace=ns, client=root.client)
            tier.put(MemoryEntry("k", ns))
            if ns == "user/emptied":
                tier.clear()
            tier.close()
        checked: list[int] = []
        import redis

        execute = redis.client.Pipeline.execute

        def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
            checked.append(sum(1 for args, _ in self.command_stack if args[0] == "HLEN"))
            return execute(self, *args, **kwargs)

        monkeypatch.setattr(redis.client.Pipeline, "execute", counting)
        assert root.namespaces("user") == BELOW
        assert (
            sum(checked) == len(BELOW) + 1
        )  # the prefix's names only ("user/emptied" is checked, not listed)
        checked.clear()
        assert len(root.namespaces()) == len(BELOW + NEIGHBOURS) + OTHERS
        # every name of the set: those above, "user/emptied" and the root's own "" (opened, never written)
        assert sum(checked) == len(BELOW + NEIGHBOURS) + OTHERS + 2
    finally:
        root.close()


def test_redis_finds_namespaces_written_before_the_set_of_names_existed(redis_prefix: str) -> None:
    url = require_redis()
    root = RedisTier(url, prefix=redis_prefix)
    try:
        for ns in ("old/a", "old/b", "new"):
            tier = RedisTier(url, prefix=redis_prefix, namespace=ns, client=root.client)
            tier.put(MemoryEntry("k", ns))
            tier.close()
        root.client.delete(f"{redis_prefix}:namespaces")  # as an earlier version left the store
        assert root.namespaces("old") == ["old/a", "old/b"]  # one SCAN fills the set
        assert root.client.zcard(f"{redis_prefix}:namespaces") >= 3
        assert root.namespaces() == ["new", "old/a", "old/b"]
    finally:
        root.close()


# -- the manager, the archive and the LangGraph store ---------------------------------------------------------------


def _recording(tier: Any, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str | None, int]]:
    """Record each ``tier.namespaces(prefix)`` call as (prefix, how many names the backend returned)."""
    calls: list[tuple[str | None, int]] = []
    listing = tier.namespaces

    def recorded(prefix: str | None = None) -> Any:
        found = listing(prefix)
        calls.append((prefix, -1 if found is None else len(found)))
        return found

    monkeypatch.setattr(tier, "namespaces", recorded)
    return calls


@pytest.mark.parametrize("where", ["memory", "disk"])
def test_the_manager_asks_each_backend_for_the_prefix_alone(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mm = MemoryManager(
        storage_path=None if where == "memory" else tmp_path, embedder=None, view_cache_size=8
    )
    try:
        for ns in BELOW + NEIGHBOURS + _names(OTHERS):
            mm.with_namespace(ns).store("k", ns, memory_type="long_term")
        mm.with_namespace("user/short").store("k", 1)  # in the buffer in memory, in SQLite on disk
        calls = _recording(mm.tiers.long, monkeypatch)
        assert mm.namespaces("user") == [*BELOW, "user/short"]
        assert calls == [("user", len(BELOW))]  # long-term's names under the prefix, none other
        user = mm.with_namespace("user")
        calls.clear()
        assert user.namespaces("a") == ["a", "a/b"]
        assert calls == [("user/a", 2)]
    finally:
        mm.close()


def test_the_archive_directory_is_matched_by_name_under_a_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MemoryManager(storage_path=tmp_path, embedder=None, view_cache_size=4) as mm:
        for ns in ["user/a", "user/b", "users", *(_names(50))]:
            mm.with_namespace(ns).store("k", ns, memory_type="external")
        assert mm.tiers.archived_namespaces is not None
        assert mm.tiers.archived_namespaces("user") == ["user/a", "user/b"]
        opened: list[str] = []
        view = MemoryManager._view

        def counting(self: MemoryManager, full: str) -> MemoryManager:
            opened.append(full)
            return view(self, full)

        monkeypatch.setattr(MemoryManager, "_view", counting)
        assert mm.namespaces("user") == ["user/a", "user/b"]
        assert sorted(opened) == ["user/a", "user/b"]  # only the prefix's archives are looked into


def test_the_langgraph_store_lists_and_searches_a_prefix_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agentmem_langgraph = pytest.importorskip("agentmem_langgraph")
    store = agentmem_langgraph.AgentMemStore()
    try:
        for i in range(OTHERS):
            store.put(("tenant", f"{i:05d}"), "k", {"text": f"tenant {i}"})
        for label in ("u1", "u2", "u3"):
            store.put(("users", label), "k", {"text": f"likes jazz {label}"})
        store.put(("users-x",), "k", {"text": "likes jazz too"})
        calls = _recording(store.manager.tiers.long, monkeypatch)
        assert store.get(("users", "u1"), "k") is not None
        store.put(("users", "u1"), "k2", {"text": "more jazz"})
        assert calls == []  # a get and a put open their namespace, no listing
        assert sorted(i.namespace for i in store.search(("users",), query="jazz", limit=10)) == [
            ("users", "u1"),
            ("users", "u1"),
            ("users", "u2"),
            ("users", "u3"),
        ]
        assert store.list_namespaces(prefix=("users",)) == [
            ("users", "u1"),
            ("users", "u2"),
            ("users", "u3"),
        ]
        assert [n for _, n in calls] == [3, 3]  # three names each, not a thousand
        assert len(store.list_namespaces(limit=2000)) == OTHERS + 4
    finally:
        store.close()
