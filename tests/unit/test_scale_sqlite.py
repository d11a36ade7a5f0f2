"""A namespace of the SQLite tier costs what it holds: keyword search reads only its own postings (counted, not
timed), ranks with its own BM25 statistics, and the per-namespace statements use an index, never a scan of the
store. Plus: the keyword index stays exact through every write path, and old stores are migrated."""

from __future__ import annotations

import random
import sqlite3
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentmem_plugin import MemoryEntry
from agentmem_plugin.search import SearchIndex, document_text, tokenize
from agentmem_plugin.tiers import postings
from agentmem_plugin.tiers.base import entry_to_row
from agentmem_plugin.tiers.sqlite import SqliteTier, _migrations

POSTING = np.dtype([("doc", "<i8"), ("tf", "<i4"), ("dl", "<i4")])

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


def test_a_namespace_spread_thin_among_others_ranks_as_alone(tmp_path):
    # The target's rows are far apart (other namespaces' rows between them): scores are then summed by sorting
    # the ids (postings.py, _sum_by_doc) instead of a dense array over their span; the same hits either way.
    alone = SqliteTier(tmp_path / "alone.db", namespace="target")
    spread = SqliteTier(tmp_path / "spread.db", namespace="target")
    other = SqliteTier(tmp_path / "spread.db", namespace="other", share_connection_with=spread)
    rng = random.Random(9)
    for i in range(6):
        entry = MemoryEntry(f"k{i}", " ".join(rng.choices(WORDS, k=4)))
        alone.put(entry)
        spread.put(entry)
        fill(other, 2000, seed=i, prefix=f"o{i}-")
    assert spread._conn.execute(f'SELECT max(id) FROM "{spread.table}"').fetchone()[0] > 10_000
    for query in ["alpha bravo", "kilo lima", "echo delta foxtrot golf hotel india"]:
        a = [(e.key, s) for e, s in alone.keyword_search(query, limit=4)]
        b = [(e.key, s) for e, s in spread.keyword_search(query, limit=4)]
        assert a and b == a
    alone.close()
    spread.close()


@pytest.mark.parametrize("block_size", [postings.BLOCK_SIZE, 7])
def test_scores_are_bm25_as_the_buffer_tier_computes_it(tmp_path, monkeypatch, block_size):
    monkeypatch.setattr(postings, "BLOCK_SIZE", block_size)  # 7: every term spans many blocks
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
        "postings": (kw._sql["term"], (1, "alpha")),
        "block_at": (kw._sql["at"], (1, "alpha", 5)),
        "first_block": (kw._sql["head"], (1, "alpha")),
        "next_block": (kw._sql["next"], (1, "alpha", 5)),
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
    blocks: dict[tuple[int, str], list[tuple[int, int, bytes]]] = {}
    for ns, term, first, n, blob in conn.execute(
        f"SELECT ns, term, first, n, postings FROM {kw.blocks} ORDER BY ns, term, first"
    ):
        blocks.setdefault((ns, term), []).append((first, n, blob))
    for (ns, term), run in blocks.items():
        bounds = [first for first, _, _ in run[1:]] + [2**63 - 1]
        for (first, n, blob), end in zip(run, bounds):
            docs = [int(d) for d in np.frombuffer(blob, dtype=POSTING)["doc"]]
            # a block: 1 to BLOCK_SIZE postings, sorted, within [first, the next block's first)
            assert 0 < n == len(docs) <= postings.BLOCK_SIZE, (term, first, n, docs)
            assert docs == sorted(set(docs)) and first <= docs[0] and docs[-1] < end, (
                term,
                first,
                docs,
            )
            for doc, tf, dl in np.frombuffer(blob, dtype=POSTING).tolist():
                held.setdefault(ids[ns], {"docs": 0, "length": 0, "post": set(), "df": {}})[
                    "post"
                ].add(  # type: ignore[union-attr]
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
@pytest.mark.parametrize("block_size", [postings.BLOCK_SIZE, 2])
def test_the_index_stays_exact_through_every_write_path(
    tmp_path_factory, clock_factory, monkeypatch, block_size, ops
):
    # block size 2: blocks split, empty and take documents before their first on almost every write
    monkeypatch.setattr(postings, "BLOCK_SIZE", block_size)
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


def test_blocks_split_take_earlier_documents_and_empty_out(tmp_path, monkeypatch):
    monkeypatch.setattr(postings, "BLOCK_SIZE", 2)
    tier = SqliteTier(tmp_path / "b.db")
    tier.put_many([MemoryEntry(f"k{i}", "alpha" if i < 5 else "bravo") for i in range(8)])
    kw = tier._kw
    conn = tier._conn

    def firsts(term: str) -> list[tuple[int, int]]:
        return conn.execute(
            f"SELECT first, n FROM {kw.blocks} WHERE term = ? ORDER BY first", (term,)
        ).fetchall()

    assert [n for _, n in firsts("alpha")] == [2, 2, 1]  # 5 postings in blocks of 2
    tier.put(MemoryEntry("k0", "bravo"))  # doc 1 joins "bravo" before its first block
    assert firsts("bravo")[0][0] == 1
    tier.put(MemoryEntry("k2", "bravo"))  # a full block takes a document in its middle: it splits
    assert sum(n for _, n in firsts("bravo")) == 5
    for key in ("k1", "k3", "k4"):
        tier.delete(key)
    assert firsts("alpha") == []  # every block emptied: gone, and so is the term's df
    assert (
        conn.execute(f"SELECT count(*) FROM {kw.df} WHERE term = ?", ("alpha",)).fetchone()[0] == 0
    )
    held, want = index_state(tier)
    assert held == want
    assert [e.key for e, _ in tier.keyword_search("bravo", limit=10)] == [
        "k0",
        "k2",
        "k5",
        "k6",
        "k7",
    ]
    tier.close()


def test_a_store_with_a_posting_per_row_is_packed_into_blocks(tmp_path, clock, monkeypatch):
    # A store written by the version of migration 0005 alone: one row per posting in {table}_kw_post.
    from sqlite_utils import Database

    monkeypatch.setattr(postings, "BLOCK_SIZE", 3)
    path = tmp_path / "rows.db"
    db = Database(str(path))
    _migrations("memories").apply(db, stop_before="0006_keyword_blocks")
    rng = random.Random(4)
    texts = {f"k{i}": " ".join(rng.choices(WORDS[:5], k=3)) for i in range(20)}
    for key, value in texts.items():
        row = entry_to_row(MemoryEntry(key, value, created_at=1.0), compression_threshold=None)
        db.execute(
            "INSERT INTO memories (namespace, key, value, search_text, created_at, expires_at, ttl, priority, tags, "
            "metadata, access_count, last_accessed, version, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,0)",
            ["", *row],
        )
    db.execute(
        "DELETE FROM memories_kw_queue"
    )  # what 0005's own sync left: the queue applied, as rows
    db.execute("INSERT INTO memories_kw_ns (id, namespace) VALUES (1, '')")
    total = 0
    for doc, text in db.execute("SELECT id, search_text FROM memories").fetchall():
        terms = Counter(tokenize(text))
        total += sum(terms.values())
        for term, tf in terms.items():
            db.execute(
                "INSERT INTO memories_kw_post VALUES (1, ?, ?, ?, ?)",
                [term, doc, tf, sum(terms.values())],
            )
            db.execute(
                "INSERT INTO memories_kw_df VALUES (1, ?, 1) ON CONFLICT DO UPDATE SET df = df + 1",
                [term],
            )
    db.execute("UPDATE memories_kw_ns SET docs = 20, length = ?", [total])
    db.conn.commit()
    db.close()
    tier = SqliteTier(path, clock=clock)
    assert not tier._conn.execute(
        "SELECT count(*) FROM sqlite_master WHERE name = 'memories_kw_post'"
    ).fetchone()[0]
    held, want = index_state(tier)
    assert held == want and len(held[""]["post"]) > 20  # type: ignore[arg-type]
    index = SearchIndex()
    for key, value in texts.items():
        index.add_entry(key, document_text(key, value))
    got = [(e.key, round(s, 9)) for e, s in tier.keyword_search("alpha echo", limit=5)]
    assert [s for _, s in got] == [round(s, 9) for _, s in index.search("alpha echo", 5)]
    tier.close()
