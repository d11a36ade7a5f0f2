"""A namespace of the SQLite tier costs what it holds: keyword search reads only its own postings (counted, not
timed), ranks with its own BM25 statistics, and the per-namespace statements use an index, never a scan of the
store. Plus: the keyword index stays exact through every write path, and old stores are migrated."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentmem_plugin import MemoryEntry
from agentmem_plugin.search import SearchIndex, document_text, tokenize
from agentmem_plugin.tiers.base import entry_to_row
from agentmem_plugin.tiers.sqlite import SqliteTier, _migrations

WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
]


def fill(tier: SqliteTier, n: int, seed: int, prefix: str = "k") -> None:
    rng = random.Random(seed)
    tier.put_many(
        [MemoryEntry(f"{prefix}{i}", " ".join(rng.choices(WORDS, k=6))) for i in range(n)]
    )


def test_search_reads_only_the_namespace_postings_and_ranks_with_its_own_statistics(tmp_path):
    alone = SqliteTier(tmp_path / "alone.db", namespace="target")
    fill(alone, 50, seed=1)
    crowded_path = tmp_path / "crowded.db"
    crowded = SqliteTier(crowded_path, namespace="target")
    fill(crowded, 50, seed=1)
    for n in range(
        20
    ):  # 20 other namespaces x 200 entries with the same vocabulary, 80x the target
        other = SqliteTier(crowded_path, namespace=f"other-{n}", share_connection_with=crowded)
        fill(other, 200, seed=100 + n)
    for query in ["alpha bravo", "kilo", "lima juliet india hotel", "echo echo delta"]:
        a = [(e.key, round(s, 9)) for e, s in alone.keyword_search(query, limit=10)]
        rows_alone = alone._kw.rows_examined
        b = [(e.key, round(s, 9)) for e, s in crowded.keyword_search(query, limit=10)]
        assert b == a  # same hits, same scores: the other namespaces' statistics do not enter
        assert crowded._kw.rows_examined == rows_alone  # same cost
        assert 0 < rows_alone <= 50 * 4
    alone.close()
    crowded.close()


def test_scores_are_bm25_as_the_buffer_tier_computes_it(tmp_path):
    tier = SqliteTier(tmp_path / "s.db", namespace="n")
    fill(tier, 120, seed=3)
    index = SearchIndex()
    for e in tier.scan():
        index.add_entry(e.key, document_text(e.key, e.value, e.tags))
    for query in ["alpha", "bravo charlie", "golf hotel india juliet kilo lima"]:
        got = [(e.key, round(s, 9)) for e, s in tier.keyword_search(query, limit=15)]
        want = [(k, round(s, 9)) for k, s in index.search(query, 15)]
        assert [s for _, s in got] == [s for _, s in want]
        every = dict(index.search(query, 1000))
        assert all(round(every[k], 9) == s for k, s in got)  # each hit has the score BM25 gives it
    tier.close()


def plan(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> str:
    return " | ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))


def test_per_namespace_statements_search_an_index_never_scan_the_store(tmp_path):
    tier = SqliteTier(tmp_path / "p.db", namespace="n", capacity=100)
    fill(tier, 10, seed=5)
    conn = tier._conn
    q = tier._q
    kw = tier._kw
    statements = {
        "get": (q["get"], ("n", "k1")),
        "scan": (q["scan"], ("n", 0.0)),
        "count_all": (q["count_all"], ("n",)),
        "count_expired": (q["count_expired"], ("n", 0.0)),
        "victims": (q["victims"], ("n", 3)),
        "delete_expired": (q["delete_expired"], ("n", 0.0)),
        "clear": (q["clear"], ("n",)),
        "max_seq": (q["max_seq"], ()),
        "ns": (f"SELECT id, docs, length FROM {kw.ns} WHERE namespace = ?", ("n",)),
        "df": (f"SELECT df FROM {kw.df} WHERE ns = ? AND term = ?", (1, "alpha")),
        "postings": (f"SELECT doc, tf, dl FROM {kw.post} WHERE ns = ? AND term = ?", (1, "alpha")),
        "by_ids": (
            f"{q['by_ids']}(?, ?) AND (expires_at IS NULL OR expires_at > ?)",
            ("n", 1, 2, 0.0),
        ),
    }
    for name, (sql, params) in statements.items():
        text = plan(conn, sql, params)
        assert "SCAN" not in text.replace("SCAN CONSTANT ROW", ""), (name, text)
    tier.close()


def index_state(tier: SqliteTier) -> tuple[dict[str, object], dict[str, object]]:
    """(what the keyword index holds, what it should hold computed from the rows) for every namespace."""
    conn = tier._conn
    kw = tier._kw
    ids = dict(conn.execute(f"SELECT id, namespace FROM {kw.ns}").fetchall())
    held: dict[str, dict[str, object]] = {}
    for ns, docs, length in conn.execute(f"SELECT id, docs, length FROM {kw.ns}"):
        if docs:
            held[ids[ns]] = {"docs": docs, "length": length, "post": set(), "df": {}}
    for ns, term, doc, tf, dl in conn.execute(f"SELECT ns, term, doc, tf, dl FROM {kw.post}"):
        held.setdefault(ids[ns], {"docs": 0, "length": 0, "post": set(), "df": {}})["post"].add(  # type: ignore[union-attr]
            (term, doc, tf, dl)
        )
    for ns, term, df in conn.execute(f"SELECT ns, term, df FROM {kw.df}"):
        held.setdefault(ids[ns], {"docs": 0, "length": 0, "post": set(), "df": {}})["df"][term] = df  # type: ignore[index]
    want: dict[str, dict[str, object]] = {}
    for doc, namespace, text in conn.execute(
        f'SELECT id, namespace, search_text FROM "{tier.table}"'
    ):
        terms = Counter(tokenize(text))
        if not terms:
            continue
        w = want.setdefault(namespace, {"docs": 0, "length": 0, "post": set(), "df": {}})
        dl = sum(terms.values())
        w["docs"] += 1  # type: ignore[operator]
        w["length"] += dl  # type: ignore[operator]
        for term, tf in terms.items():
            w["post"].add((term, doc, tf, dl))  # type: ignore[attr-defined]
            w["df"][term] = w["df"].get(term, 0) + 1  # type: ignore[index,attr-defined]
    assert not conn.execute(f"SELECT count(*) FROM {kw.queue}").fetchone()[0]
    return held, want  # type: ignore[return-value]


ops = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "put",
                "put_many",
                "delete",
                "compute",
                "put_if_newer",
                "delete_if",
                "clear",
                "expire",
                "fail",
            ]
        ),
        st.sampled_from(["a", "b"]),
        st.integers(0, 7),
        st.lists(st.sampled_from([*WORDS, "the", "and"]), max_size=4),
    ),
    max_size=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops)
def test_the_index_stays_exact_through_every_write_path(tmp_path_factory, clock_factory, ops):
    clock = clock_factory(1000.0)
    path = tmp_path_factory.mktemp("kw") / "x.db"
    fail = {"on": False}

    def evict(_victims: list[MemoryEntry]) -> None:
        if fail["on"]:
            raise RuntimeError("callback refuses")

    a = SqliteTier(path, namespace="a", capacity=5, clock=clock, on_evict=evict)
    b = SqliteTier(path, namespace="b", clock=clock, share_connection_with=a)
    tiers = {"a": a, "b": b}
    for op, ns, i, text in ops:
        t = tiers[ns]
        key, words = f"k{i}", " ".join(text)
        if op == "put":
            t.put(MemoryEntry(key, words))
        elif op == "put_many":
            t.put_many(
                [
                    MemoryEntry(key, words),
                    MemoryEntry(f"k{i + 1}", words + " golf"),
                    MemoryEntry(key, "x"),
                ]
            )
        elif op == "delete":
            t.delete(key)
        elif op == "compute":
            t.compute(
                key,
                lambda e, w=words, k=key: None if e is not None and not w else MemoryEntry(k, w),
            )
        elif op == "put_if_newer":
            t.put_if_newer([MemoryEntry(key, words, version=i)])
        elif op == "delete_if":
            t.delete_if({key: i}, older=True)
        elif op == "clear":
            t.clear()
        elif op == "expire":
            t.put(MemoryEntry(key, words, ttl=5))
            clock.advance(10)
            t.cleanup()
        elif op == "fail":
            fail["on"] = True
            with pytest.raises(RuntimeError, match="callback refuses"):
                a.put_many([MemoryEntry(f"f{j}", words + " hotel") for j in range(8)])
            fail["on"] = False
        held, want = index_state(a)
        assert held == want
    a.close()


def test_a_store_from_before_the_namespace_index_is_migrated_with_its_entries(tmp_path, clock):
    from sqlite_utils import Database

    path = tmp_path / "old.db"
    db = Database(str(path))
    _migrations("memories").apply(db, stop_before="0005_namespace_keyword_index")
    for ns, key, value in [
        ("", "k1", "alpha bravo"),
        ("", "k2", "bravo"),
        ("x", "k1", "alpha charlie"),
    ]:
        row = entry_to_row(MemoryEntry(key, value, created_at=1.0), compression_threshold=None)
        db.execute(
            "INSERT INTO memories (namespace, key, value, search_text, created_at, expires_at, ttl, priority, tags, "
            "metadata, access_count, last_accessed, version, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
            [ns, *row],
        )
    assert (
        db.execute("SELECT count(*) FROM memories_fts").fetchone()[0] == 3
    )  # the old shared FTS table
    db.close()
    tier = SqliteTier(path, clock=clock)
    assert [e.key for e, _ in tier.keyword_search("bravo")] == [
        "k2",
        "k1",
    ]  # shorter document first
    other = SqliteTier(path, clock=clock, namespace="x", share_connection_with=tier)
    assert [e.key for e, _ in other.keyword_search("alpha bravo charlie")] == ["k1"]
    assert not tier._conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name LIKE 'memories_fts%'"
    ).fetchone()[0]
    held, want = index_state(tier)
    assert held == want
    tier.close()
    reopened = SqliteTier(path, clock=clock)  # idempotent: nothing left to apply
    assert reopened.count() == 2
    reopened.close()
