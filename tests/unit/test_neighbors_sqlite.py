"""SqliteTier.neighbors (two statements for all keys, a row-by-row look-up where other namespaces' rows sit in
between) returns what the insertion order of the namespace's live rows says, whatever the interleaving."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentmem_plugin import MemoryEntry
from agentmem_plugin.tiers.base import neighbors_in
from agentmem_plugin.tiers.sqlite import SqliteTier


def live_order(tier: SqliteTier, now: float) -> list[str]:
    return [
        r[0]
        for r in tier._conn.execute(
            f'SELECT key FROM "{tier.table}" WHERE namespace = ? '
            "AND (expires_at IS NULL OR expires_at > ?) ORDER BY id",
            (tier.namespace, now),
        )
    ]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    writes=st.lists(
        st.tuples(st.sampled_from("aab"), st.integers(0, 25), st.sampled_from([None, None, 5])),
        min_size=1,
        max_size=60,
    ),
    deletes=st.lists(st.integers(0, 25), max_size=8),
    radius=st.integers(0, 4),
    seed=st.integers(0, 1000),
)
def test_neighbors_are_the_live_rows_next_in_insertion_order(
    tmp_path_factory, clock_factory, writes, deletes, radius, seed
):
    clock = clock_factory(100.0)
    path = tmp_path_factory.mktemp("nb") / "n.db"
    a = SqliteTier(path, namespace="a", clock=clock)
    b = SqliteTier(path, namespace="b", clock=clock, share_connection_with=a)
    try:
        for ns, i, ttl in writes:
            (a if ns == "a" else b).put(MemoryEntry(f"k{i}", f"text {i}", ttl=ttl))
        for i in deletes:
            a.delete(f"k{i}")
        clock.advance(10)  # the ttl=5 rows expire
        keys = [f"k{i}" for i in random.Random(seed).sample(range(30), 12)]
        for tier in (a, b):
            want = neighbors_in(live_order(tier, clock()), keys, radius)
            assert tier.neighbors(keys, radius) == want
    finally:
        a.close()
        b.close()


def test_the_window_statement_searches_the_rowid_never_scans(tmp_path):
    tier = SqliteTier(tmp_path / "p.db")
    tier.put_many([MemoryEntry(f"k{i}", "x") for i in range(50)])
    statements: list[str] = []
    tier._conn.set_trace_callback(statements.append)
    assert tier.neighbors(["k10", "k30"], 2) == {
        "k10": ["k8", "k9", "k11", "k12"],
        "k30": ["k28", "k29", "k31", "k32"],
    }
    tier._conn.set_trace_callback(None)
    assert len(statements) == 2  # keys to ids, then the windows: no row-by-row look-up
    window = statements[1]
    plan = " | ".join(str(r[-1]) for r in tier._conn.execute(f"EXPLAIN QUERY PLAN {window}"))
    # each window is a rowid range (the namespace is checked on the few rows in it)
    assert "SEARCH t USING INTEGER PRIMARY KEY" in plan and "SCAN t" not in plan, plan
    tier.close()


def test_neighbor_entries_are_the_neighbours_and_their_live_entries_but_the_known(tmp_path, clock):
    from agentmem_plugin.tiers.buffer import BufferTier

    sqlite = SqliteTier(tmp_path / "e.db", clock=clock)
    buffer = BufferTier(None, clock=clock)
    try:
        for tier in (sqlite, buffer):
            tier.put_many(
                [MemoryEntry(f"k{i}", f"text {i}", tags=["t"], clock=clock) for i in range(10)]
            )
            tier.put(
                MemoryEntry("k5", "short-lived", ttl=1, clock=clock)
            )  # replaced in place: it keeps its position
            clock.advance(2)
            near, entries = tier.neighbor_entries(["k3", "k8", "nope"], 2, known={"k4"})
            assert near == tier.neighbors(["k3", "k8", "nope"], 2)
            assert near == {"k3": ["k1", "k2", "k4", "k6"], "k8": ["k6", "k7", "k9"]}
            assert sorted(entries) == ["k1", "k2", "k6", "k7", "k9"]  # k4 known, k5 expired
            for key, entry in entries.items():
                assert entry == tier.get(key, touch=False), key
    finally:
        sqlite.close()
