"""The vector layout behind semantic search (issue 16 item 3): small namespaces are rows of one shared table,
a namespace that grows past the limit moves to its own Chroma collection, and a move cut short loses nothing.

Real SQLite files and a real persistent Chroma client throughout; vectors are random or from the FAKE hash
embedder (the layout, not meaning, is under test)."""

from __future__ import annotations

import math
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeHashEmbedder

pytest.importorskip("chromadb")

from agentmem_plugin import MemoryManager
from agentmem_plugin.errors import EmbeddingError, StorageError
from agentmem_plugin.tiers.chroma import ChromaIndex, make_client
from agentmem_plugin.tiers.vectors import GrowingIndex, TableIndex, VectorTable

DIM = 8


def unit(rng: random.Random) -> list[float]:
    v = [rng.gauss(0.0, 1.0) for _ in range(DIM)]
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def cosine(a: list[float], b: list[float]) -> float:
    """The reference: cosine similarity in plain Python."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture
def table(tmp_path: Path) -> Any:
    t = VectorTable(tmp_path / "vectors.sqlite3")
    yield t
    t.close()


@pytest.fixture
def client(tmp_path: Path) -> Any:
    c = make_client(path=tmp_path / "chroma")
    yield c
    c.close()


def growing(table: VectorTable, client: Any, name: str = "ns-1", limit: int = 20) -> GrowingIndex:
    def drop() -> None:
        client.delete_collection(name)

    return GrowingIndex(
        table,
        name,
        dim=DIM,
        open_collection=lambda: ChromaIndex(client, name, dim=DIM),
        drop_collection=drop,
        limit=limit,
    )


def collections_with_vectors(client: Any) -> dict[str, int]:
    return {c.name: client.get_collection(c.name).count() for c in client.list_collections()}


def test_a_table_index_ranks_exactly_by_cosine(table: VectorTable) -> None:
    rng = random.Random(7)
    stored = {f"k{i:03d}": [x * rng.uniform(0.5, 3.0) for x in unit(rng)] for i in range(200)}  # not unit
    index = TableIndex(table, "ns", dim=DIM)
    index.upsert(list(stored), list(stored.values()))
    for _ in range(20):
        query = unit(rng)
        expected = sorted(stored, key=lambda k: -cosine(stored[k], query))[:10]
        hits = index.query(query, 10)
        assert [k for k, _ in hits] == expected
        for key, sim in hits:
            assert sim == pytest.approx(cosine(stored[key], query), abs=1e-5)
    assert index.query(unit(rng), 0) == []
    assert len(index.query(unit(rng), 1000)) == 200


def test_collections_of_one_table_never_see_each_other(table: VectorTable) -> None:
    rng = random.Random(1)
    a, b = TableIndex(table, "alice", dim=DIM), TableIndex(table, "bob", dim=DIM)
    shared = unit(rng)
    a.upsert(["same-key"], [shared])
    b.upsert(["same-key", "b2"], [unit(rng), unit(rng)])
    assert a.count() == 1 and b.count() == 2
    assert a.query(shared, 5)[0] == ("same-key", pytest.approx(1.0, abs=1e-6))
    b.delete(["same-key"])
    assert a.present(["same-key", "b2"]) == {"same-key"} and b.present(["same-key", "b2"]) == {"b2"}
    b.clear()
    assert a.count() == 1 and b.count() == 0


def test_a_search_reads_its_namespace_rows_through_the_primary_key(table: VectorTable) -> None:
    """The cost of a namespace's search is its own rows: SQLite's plan is a primary-key range, not a scan."""
    plan = table._conn.execute(
        "EXPLAIN QUERY PLAN SELECT key, vector FROM vectors WHERE collection = ? ORDER BY key", ("ns",)
    ).fetchall()
    details = " ".join(str(row[-1]) for row in plan)
    assert "SEARCH vectors USING INDEX sqlite_autoindex_vectors_1 (collection=?)" in details
    assert "SCAN" not in details and "TEMP B-TREE" not in details


def test_bad_vectors_are_refused_and_change_nothing(table: VectorTable) -> None:
    rng = random.Random(2)
    index = TableIndex(table, "ns", dim=DIM)
    index.upsert(["ok"], [unit(rng)])
    with pytest.raises(EmbeddingError, match="dimension 3"):
        index.upsert(["short"], [[1.0, 2.0, 3.0]])
    with pytest.raises(EmbeddingError, match="NaN"):
        index.upsert(["nan"], [[float("nan")] * DIM])
    with pytest.raises(EmbeddingError, match="dimension 2"):
        index.query([1.0, 0.0], 3)
    assert index.present(["ok", "short", "nan"]) == {"ok"}


def test_a_table_written_by_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vectors.sqlite3"
    VectorTable(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StorageError, match="schema version 99"):
        VectorTable(path)


def test_an_index_moves_to_its_own_collection_past_the_limit(table: VectorTable, client: Any) -> None:
    rng = random.Random(3)
    index = growing(table, client, limit=20)
    vectors = {f"k{i:02d}": unit(rng) for i in range(30)}
    keys = list(vectors)
    index.upsert(keys[:20], [vectors[k] for k in keys[:20]])
    assert index.layout == "table" and collections_with_vectors(client) == {}
    query = unit(rng)
    before = index.query(query, 5)
    index.upsert(keys[20:21], [vectors[keys[20]]])  # the 21st vector passes the limit of 20
    assert index.layout == "collection"
    assert collections_with_vectors(client) == {"ns-1": 21}
    assert table.count("ns-1") == 0 and table.is_moved("ns-1")  # the rows left the table with the move
    index.upsert(keys[21:], [vectors[k] for k in keys[21:]])
    assert index.count() == 30 and index.present(keys) == set(keys)
    expected = sorted(vectors, key=lambda k: -cosine(vectors[k], query))[:5]
    assert [k for k, _ in index.query(query, 5)] == expected  # 30 vectors: HNSW is exact here
    assert {k for k, _ in before} <= set(vectors)
    reopened = growing(table, client, limit=20)  # the move is recorded: a reopen finds the collection
    assert reopened.layout == "collection" and reopened.count() == 30


def test_a_move_cut_short_between_filling_and_recording_loses_nothing(
    table: VectorTable, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic interleaving: the process 'dies' after the collection is filled, before the move is
    recorded. The rows stay the index; the next move clears the half-made collection and completes."""
    rng = random.Random(4)
    index = growing(table, client, limit=10)
    vectors = {f"k{i:02d}": unit(rng) for i in range(12)}
    keys = list(vectors)
    index.upsert(keys[:10], [vectors[k] for k in keys[:10]])
    real_record = table.record_move

    def killed(name: str) -> None:
        raise KeyboardInterrupt("killed between filling the collection and recording the move")

    monkeypatch.setattr(table, "record_move", killed)
    with pytest.raises(KeyboardInterrupt):
        index.upsert(keys[10:11], [vectors[keys[10]]])
    monkeypatch.setattr(table, "record_move", real_record)
    # What a restarted process sees: not moved, every vector a row, a stray collection beside it.
    assert not table.is_moved("ns-1") and table.count("ns-1") == 11
    assert collections_with_vectors(client) == {"ns-1": 11}
    restarted = growing(table, client, limit=10)
    assert restarted.layout == "table" and restarted.count() == 11
    restarted.delete([keys[0]])  # a write after the restart, before the next move
    restarted.upsert(keys[11:], [vectors[keys[11]]])
    restarted.upsert(keys[10:11], [[-x for x in vectors[keys[10]]]])  # an overwrite
    assert restarted.layout == "collection"
    assert collections_with_vectors(client) == {"ns-1": 11}  # the stray copy was cleared, not added to
    assert restarted.present(keys) == set(keys[1:])
    assert restarted.query([-x for x in vectors[keys[10]]], 1)[0][0] == keys[10]


def test_clearing_a_moved_index_drops_its_collection(table: VectorTable, client: Any) -> None:
    rng = random.Random(5)
    index = growing(table, client, limit=5)
    index.upsert([f"k{i}" for i in range(8)], [unit(rng) for _ in range(8)])
    assert index.layout == "collection"
    index.clear()
    assert index.layout == "table" and index.count() == 0
    assert "ns-1" not in collections_with_vectors(client) and not table.is_moved("ns-1")
    index.upsert(["again"], [unit(rng)])
    assert index.layout == "table" and index.present(["again"]) == {"again"}


def test_many_small_namespaces_make_no_collection_and_a_large_one_makes_one(tmp_path: Path) -> None:
    """Through the manager, as the integrations use it: 40 users of a few memories each are rows of the shared
    table (no Chroma collection at all); the one user past the limit gets a collection of their own, and every
    user still finds only their own memories by meaning."""
    from agentmem_plugin.tiers import vectors as layout

    where = tmp_path / "store"
    root = MemoryManager(long_term_limit=None, storage_path=where, embedder=FakeHashEmbedder())
    try:
        for user in range(40):
            view = root.with_namespace(f"user-{user}")
            view.store_many({f"m{i}": f"user {user} note {i}" for i in range(5)}, memory_type="long_term")
        big = root.with_namespace("big")
        big.store_many(
            {f"m{i}": f"big note {i}" for i in range(layout.DEFAULT_LIMIT + 1)}, memory_type="long_term"
        )
        for user in (0, 17, 39):
            hits = root.with_namespace(f"user-{user}").search(f"user {user} note 3", 3, mode="semantic")
            assert hits[0]["key"] == "m3" and hits[0]["value"] == f"user {user} note 3"
        assert big.search("big note 7", 1, mode="semantic")[0]["value"] == "big note 7"
    finally:
        root.close()
    client = make_client(path=where / "chroma")
    try:
        populated = {n: c for n, c in collections_with_vectors(client).items() if c}
    finally:
        client.close()
    assert list(populated.values()) == [layout.DEFAULT_LIMIT + 1]
    conn = sqlite3.connect(where / "chroma" / "agentmem-vectors.sqlite3")
    try:
        partitions = conn.execute("SELECT count(DISTINCT collection), count(*) FROM vectors").fetchone()
    finally:
        conn.close()
    assert partitions == (40, 200)


def test_an_index_object_that_missed_the_move_writes_to_the_collection(
    table: VectorTable, client: Any
) -> None:
    """Two index objects on one table and name (two ``Memory`` objects on one store in a process): the one that
    did not move sees the move on its next call; its writes never become rows of a moved collection."""
    rng = random.Random(6)
    mover, other = growing(table, client, limit=5), growing(table, client, limit=5)
    other.upsert(["early"], [unit(rng)])
    mover.upsert([f"k{i}" for i in range(6)], [unit(rng) for _ in range(6)])
    assert mover.layout == "collection"
    late = unit(rng)
    other.upsert(["late"], [late])
    other.delete(["early"])
    assert table.count("ns-1") == 0  # no row beside the moved collection
    assert collections_with_vectors(client) == {"ns-1": 7}
    assert mover.query(late, 1)[0][0] == "late" and mover.present(["early"]) == set()
    other.clear()  # and a clear by either is seen by the other
    assert mover.layout == "table" and mover.count() == 0


def test_a_write_during_a_move_waits_for_it_and_lands_in_the_collection(
    table: VectorTable, client: Any
) -> None:
    """Deterministic interleaving: right after the move filled the collection (before it is recorded), another
    index object on the same table writes from a second thread. It must wait for the move (the table's lock),
    then find the collection: written into the table there, its vector would be dropped with the rows."""
    import threading

    rng = random.Random(8)
    late = unit(rng)
    other = growing(table, client, limit=5)
    writer: list[threading.Thread] = []

    def open_with_hook() -> ChromaIndex:
        index = ChromaIndex(client, "ns-1", dim=DIM)
        real = index.upsert

        def upsert(keys: Any, vectors: Any, **kwargs: Any) -> None:
            real(keys, vectors, **kwargs)
            if not writer:  # the move's fill: now run the concurrent write
                writer.append(threading.Thread(target=other.upsert, args=(["late"], [late])))
                writer[0].start()
                writer[0].join(0.3)
                assert writer[0].is_alive(), "the concurrent write did not wait for the move"

        index.upsert = upsert  # type: ignore[method-assign]
        return index

    mover = GrowingIndex(
        table,
        "ns-1",
        dim=DIM,
        open_collection=open_with_hook,
        drop_collection=lambda: client.delete_collection("ns-1"),
        limit=5,
    )
    mover.upsert([f"k{i}" for i in range(6)], [unit(rng) for _ in range(6)])
    writer[0].join(10)
    assert not writer[0].is_alive()
    assert table.count("ns-1") == 0 and collections_with_vectors(client) == {"ns-1": 7}
    assert mover.query(late, 1)[0][0] == "late"


def test_a_write_checked_against_the_table_just_before_a_move_is_not_left_behind(
    table: VectorTable, client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic interleaving: one index object decides "the vectors are rows" and, before its row is
    written, another records the move. The table refuses the row (the moved check is in the write's own
    transaction) and the write goes to the collection."""
    rng = random.Random(9)
    mover, other = growing(table, client, limit=5), growing(table, client, limit=5)
    late = unit(rng)
    real = other._small.upsert

    def move_first(keys: Any, vectors: Any) -> bool:
        mover.upsert([f"k{i}" for i in range(6)], [unit(rng) for _ in range(6)])  # the move lands here
        return real(keys, vectors)

    monkeypatch.setattr(other._small, "upsert", move_first)
    other.upsert(["late"], [late])
    assert table.count("ns-1") == 0
    assert collections_with_vectors(client) == {"ns-1": 7}
    assert mover.query(late, 1)[0][0] == "late"


def test_a_read_waits_for_a_move_running_in_another_thread(table: VectorTable, client: Any) -> None:
    """Deterministic interleaving: while one index object reads the table part (its moved check done), another
    moves the collection from a second thread. The move must wait for the read (the check and the read are one
    step under the table's lock): read after the rows left, a count of 0 made a second Memory opening meanwhile
    rebuild the index and drop the collection the first had just filled."""
    import threading

    rng = random.Random(10)
    mover, reader = growing(table, client, limit=5), growing(table, client, limit=5)
    mover.upsert([f"k{i}" for i in range(5)], [unit(rng) for _ in range(5)])
    real_count = reader._small.count
    moving: list[threading.Thread] = []

    def count_during_move() -> int:
        moving.append(threading.Thread(target=mover.upsert, args=(["k5"], [unit(rng)])))
        moving[0].start()
        moving[0].join(0.3)  # the move waits for this read
        return real_count()

    reader._small.count = count_during_move  # type: ignore[method-assign]
    assert reader.count() == 5  # the rows as they were: not 0 mid-move
    moving[0].join(10)
    reader._small.count = real_count  # type: ignore[method-assign]
    assert mover.layout == "collection" and reader.count() == 6


def test_an_index_object_survives_another_rebuilding_the_collection(
    table: VectorTable, client: Any
) -> None:
    """One index object clears and refills the moved collection (a rebuild: the collection is dropped and made
    again); the other, holding the old collection, reopens it by name instead of failing with NotFoundError."""
    rng = random.Random(11)
    first, second = growing(table, client, limit=3), growing(table, client, limit=3)
    first.upsert([f"a{i}" for i in range(4)], [unit(rng) for _ in range(4)])
    assert first.layout == "collection" and first.count() == 4  # first holds the collection object now
    second.clear()
    fresh = unit(rng)
    second.upsert(["b0", "b1", "b2", "b3"], [fresh, unit(rng), unit(rng), unit(rng)])
    assert second.layout == "collection"
    assert first.query(fresh, 1)[0][0] == "b0"
    first.upsert(["c0"], [unit(rng)])
    assert second.count() == 5 and first.present(["a0", "b0", "c0"]) == {"b0", "c0"}


def test_a_damaged_vector_table_is_moved_aside_and_the_index_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from agentmem_plugin import Memory

    where = tmp_path / "store"
    with Memory(persistence=True, storage_path=where, embedder=FakeHashEmbedder()) as memory:
        memory.store_many({"tea": "green tea in the morning", "maps": "old maps of the city"})
    table = where / "chroma" / "agentmem-vectors.sqlite3"
    table.write_bytes(b"this is not a database" * 200)
    for journal in ("-wal", "-shm"):
        Path(str(table) + journal).unlink(missing_ok=True)
    with (
        caplog.at_level("WARNING"),
        Memory(persistence=True, storage_path=where, embedder=FakeHashEmbedder()) as memory,
    ):
        hits = memory.search("old maps of the city", 1, mode="semantic")
        assert hits[0]["key"] == "maps"
    assert (where / "chroma" / "agentmem-vectors.sqlite3.damaged-1").read_bytes().startswith(b"this is not")
    assert any("cannot be read" in r.getMessage() for r in caplog.records)


def test_vectors_an_older_version_wrote_to_a_collection_are_not_lost(tmp_path: Path) -> None:
    """A store opened by an older version (a Chroma collection per namespace) after this one: that version
    acknowledged its changes into the collection, so the table's rows are stale. The index is rebuilt from the
    store (the stray collection dropped), and the memory it wrote is found."""
    from agentmem_plugin import Memory

    where = tmp_path / "store"
    embedder = FakeHashEmbedder()
    with Memory(persistence=True, storage_path=where, embedder=embedder) as memory:
        memory.store("a", "written by this version")
        name = memory._semantic.index.name
        tier = memory.tier.inner  # type: ignore[attr-defined]
    # What the older version did: wrote "b" and its vector into the collection, acknowledged the change.
    from agentmem_plugin.entry import MemoryEntry
    from agentmem_plugin.tiers.sqlite import SqliteTier

    tier = SqliteTier(where / "memory.sqlite3", table=tier.table, namespace=tier.namespace)
    tier.put(MemoryEntry("b", "written by the older version"))
    tier.ack_changes(tier.changes(100))
    tier.close()
    old = make_client(path=where / "chroma")
    try:
        ChromaIndex(old, name, dim=embedder.dim).upsert(
            ["a", "b"], [embedder.vector("written by this version"), embedder.vector("written by the older version")]
        )
    finally:
        old.close()
    with Memory(persistence=True, storage_path=where, embedder=embedder) as memory:
        assert memory.search("written by the older version", 1, mode="semantic")[0]["key"] == "b"
        assert memory._semantic.index.layout == "table"
    client = make_client(path=where / "chroma")
    try:
        assert collections_with_vectors(client).get(name, 0) == 0  # the stray collection was dropped
    finally:
        client.close()
