"""Semantic search end to end: the real MiniLM and real Chroma where meaning matters, a FAKE hash embedder where it
does not (persistence mechanics, crash recovery, supplied vectors, namespaces)."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import CountingEmbedder, FakeHashEmbedder

from agentmem_plugin import Memory, MemoryEntry, SemanticMemory
from agentmem_plugin.errors import EmbeddingError, InvalidArgumentError
from agentmem_plugin.tiers.chroma import make_client
from agentmem_plugin.tiers.sqlite import SqliteTier
from agentmem_plugin.variants import DEFAULT_SIMILARITY_THRESHOLD

DOCS = {
    "pet": "The feline slept on the rug",
    "finance": "Quarterly revenue grew four percent",
    "train": "The express train leaves the station at noon",
    "code": "Use descriptive variable names and follow PEP 8",
    "weather": "Heavy rain is expected tomorrow afternoon",
}
MODES = ["keyword", "semantic", "hybrid"]


def keys(hits: list[dict]) -> list[str]:
    return [h["key"] for h in hits]


def semantic_keys(memory: Memory, query: str, limit: int = 10) -> list[str]:
    return keys(memory.search(query, limit, mode="semantic"))


@pytest.fixture
def mem(real_embedder, clock):
    memory = Memory(capacity=None, embedder=real_embedder, clock=clock)
    memory.store_many(DOCS)
    yield memory
    memory.close()


@pytest.fixture
def plain(clock):
    memory = Memory(capacity=None, clock=clock)
    memory.store_many(DOCS)
    yield memory
    memory.close()


def chroma_vector_ids(chroma_dir: Path) -> list[str]:
    """Every id with a vector in the index directory *chroma_dir*: in every Chroma collection (read with Chroma's
    own client) and in the shared table of the small namespaces (read with sqlite3)."""
    return sorted(ids for ids in index_layout(chroma_dir).values() for ids in ids)


def index_layout(chroma_dir: Path) -> dict[str, list[str]]:
    """``{"chroma:<collection>" or "table:<collection>": sorted ids}`` for every non-empty part of *chroma_dir*."""
    layout: dict[str, list[str]] = {}
    client = make_client(path=chroma_dir)
    try:
        for c in client.list_collections():
            ids = client.get_collection(c.name).get()["ids"]
            if ids:
                layout[f"chroma:{c.name}"] = sorted(ids)
    finally:
        client.close()
    table = chroma_dir / "agentmem-vectors.sqlite3"
    if table.exists():
        conn = sqlite3.connect(table)
        try:
            for collection, key in conn.execute("SELECT collection, key FROM vectors"):
                layout.setdefault(f"table:{collection}", []).append(key)
        finally:
            conn.close()
    return {name: sorted(ids) for name, ids in layout.items()}


def lose_vectors(chroma_dir: Path) -> None:
    """Delete every vector of *chroma_dir* (collections and table rows), as a lost index would be."""
    client = make_client(path=chroma_dir)
    try:
        for collection in client.list_collections():
            client.delete_collection(collection.name)
    finally:
        client.close()
    conn = sqlite3.connect(chroma_dir / "agentmem-vectors.sqlite3")
    try:
        with conn:
            conn.execute("DELETE FROM vectors")
            conn.execute("DELETE FROM moved")
    finally:
        conn.close()


# -- modes -------------------------------------------------------------------------------------------------------


def test_default_mode_is_hybrid_with_an_embedder_and_keyword_without(mem, plain):
    default = mem.search("revenue", 5)
    assert default == mem.search("revenue", 5, mode="hybrid")
    assert all("similarity" in h and "keyword_score" in h for h in default)
    plain_hits = plain.search("revenue", 5)
    assert plain_hits == plain.search("revenue", 5, mode="keyword") and keys(plain_hits) == [
        "finance"
    ]
    assert all("similarity" not in h for h in plain_hits)
    assert (
        plain.embedder is None
        and mem.embedder is not None
        and mem.embedder.name == "all-MiniLM-L6-v2"
    )


@pytest.mark.parametrize("mode", ["semantic", "hybrid"])
def test_meaning_modes_need_an_embedder(plain, mode):
    with pytest.raises(InvalidArgumentError, match="needs an embedder"):
        plain.search("cat", mode=mode)
    with pytest.raises(InvalidArgumentError, match="needs an embedder"):
        plain.reindex()


@pytest.mark.parametrize("mode", ["dense", "", "HYBRID", "bm25", 3])
def test_bad_mode_is_refused(mem, plain, mode):
    for memory in (mem, plain):
        with pytest.raises(InvalidArgumentError, match="mode must be one of"):
            memory.search("cat", mode=mode)


def test_semantic_finds_a_paraphrase_keyword_search_misses(mem):
    assert mem.search("cat", mode="keyword") == []
    hits = mem.search("cat", 3, mode="semantic")
    assert hits[0]["key"] == "pet" and hits[0]["value"] == DOCS["pet"]
    assert hits[0]["similarity"] == hits[0]["score"] > hits[1]["similarity"] + 0.2
    assert [h["similarity"] for h in hits] == sorted((h["similarity"] for h in hits), reverse=True)
    assert mem.search("cat", 3)[0]["key"] == "pet"  # hybrid too
    assert semantic_keys(mem, "money and earnings", 1) == ["finance"]
    assert semantic_keys(mem, "a storm is coming", 1) == ["weather"]


def test_hybrid_hits_carry_similarity_and_keyword_score(mem):
    hybrid = {h["key"]: h for h in mem.search("revenue of the railway", 5, mode="hybrid")}
    keyword = {
        h["key"]: h["score"] for h in mem.search("revenue of the railway", 5, mode="keyword")
    }
    semantic = {
        h["key"]: h["similarity"] for h in mem.search("revenue of the railway", 5, mode="semantic")
    }
    assert set(keyword) == {"finance"}
    assert set(hybrid) == set(DOCS)
    for key, hit in hybrid.items():
        assert hit["similarity"] == pytest.approx(semantic[key])
        assert hit["keyword_score"] == (pytest.approx(keyword[key]) if key in keyword else None)
        assert hit["score"] >= 0
    scores = [h["score"] for h in mem.search("revenue of the railway", 5)]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("query", ["", "   ", "\n\t "])
def test_blank_query_returns_nothing_in_every_mode(mem, plain, query):
    for mode in MODES:
        assert mem.search(query, mode=mode) == []
    assert plain.search(query) == []


async def test_async_search_twin(mem):
    assert keys(await mem.asearch("cat", 1, mode="semantic")) == ["pet"]
    assert await mem.areindex() == len(DOCS)


# -- changes reach the index ---------------------------------------------------------------------------------


def test_delete_removes_the_vector(mem):
    assert mem.delete("pet")
    assert "pet" not in semantic_keys(mem, "cat")
    # a stale vector would still be the nearest one and leave the top-1 search empty
    assert len(semantic_keys(mem, "cat", 1)) == 1
    assert "pet" not in keys(mem.search("cat", mode="hybrid"))


def test_update_reembeds_the_new_value(mem):
    before = mem.search(DOCS["pet"], 1, mode="semantic")[0]
    assert before["key"] == "pet" and before["similarity"] == pytest.approx(1.0, abs=1e-4)
    mem.update("pet", lambda _: "Stock markets fell sharply on Monday")
    assert semantic_keys(mem, "cat", 1) != ["pet"]
    hit = mem.search("Stock markets fell sharply on Monday", 1, mode="semantic")[0]
    assert hit["key"] == "pet" and hit["similarity"] == pytest.approx(1.0, abs=1e-4)
    mem.store("pet", "A dog barked at the mailman")  # a plain replace re-embeds too
    assert semantic_keys(mem, "puppy", 1) == ["pet"]


def test_clear_empties_the_index(mem):
    mem.clear()
    for mode in MODES:
        assert mem.search("cat", mode=mode) == []
    mem.store("pet2", "A kitten chased a ball of yarn")
    assert semantic_keys(mem, "cat") == ["pet2"]


def test_expired_entries_are_not_returned(real_embedder, clock):
    with Memory(capacity=None, embedder=real_embedder, clock=clock) as memory:
        memory.store("pet", DOCS["pet"], ttl=10)
        memory.store("finance", DOCS["finance"])
        assert semantic_keys(memory, "cat", 1) == ["pet"]
        clock.advance(10)
        assert semantic_keys(memory, "cat") == ["finance"]
        assert keys(memory.search("cat")) == ["finance"]
        memory.cleanup()  # (the buffer may have dropped it already while searching)
        assert "pet" not in memory.tier.keys()
        assert semantic_keys(memory, "cat", 1) == ["finance"]  # once cleaned up, its vector is gone


def test_expired_entries_do_not_crowd_out_live_hits(real_embedder, clock):
    """`limit` hits come back when that many live entries exist, expired ones (not yet cleaned up) or not."""
    with Memory(capacity=None, embedder=real_embedder, clock=clock) as memory:
        memory.store("pet", DOCS["pet"], ttl=10)
        memory.store("kitten", "A kitten played with yarn", ttl=10)
        memory.store("finance", DOCS["finance"])
        clock.advance(10)
        assert semantic_keys(memory, "cat", 1) == ["finance"]


def test_capacity_eviction_removes_the_vector(real_embedder, clock):
    evicted: list[str] = []
    with Memory(capacity=2, embedder=real_embedder, clock=clock,
                on_evict=lambda es: evicted.extend(e.key for e in es)) as memory:
        memory.store("pet", DOCS["pet"])
        clock.advance(1)
        memory.store("finance", DOCS["finance"])
        clock.advance(1)
        memory.store("weather", DOCS["weather"])
        assert evicted == ["pet"]
        assert "pet" not in semantic_keys(memory, "cat")
        assert len(semantic_keys(memory, "cat", 1)) == 1  # no stale vector left on top
        assert memory.reindex() == 2


# -- persistence ------------------------------------------------------------------------------------------------


def test_persistent_store_reopens_without_reembedding(tmp_path, real_embedder):
    where = tmp_path / "store"
    first = CountingEmbedder(real_embedder)
    memory = SemanticMemory(embedder=first, persistence=True, storage_path=where)
    memory.store_many(DOCS)
    assert sorted(first.documents) == sorted(DOCS.values())
    assert memory.semantic_search("cat", 1)[0]["key"] == "pet"
    memory.close()
    assert (where / "chroma").is_dir()
    assert (where / "embeddings.sqlite3").is_file()
    assert (where / "memory.sqlite3").is_file()
    assert chroma_vector_ids(where / "chroma") == sorted(DOCS)

    second = CountingEmbedder(real_embedder)
    reopened = SemanticMemory(embedder=second, persistence=True, storage_path=where)
    try:
        assert reopened.semantic_search("kitty", 1)[0]["key"] == "pet"
        assert keys(reopened.search("cat", 1)) == ["pet"]  # hybrid
        assert reopened.semantic_search("cat", 1)[0]["key"] == "pet"
        assert second.documents == []  # nothing re-embedded
        assert second.queries == ["kitty"]  # "cat" came from the persistent query cache
        assert reopened.tier.changes(100) == []
        assert reopened.retrieve("pet") == DOCS["pet"]
    finally:
        reopened.close()


def test_lost_vector_index_is_rebuilt_from_the_embedding_cache(tmp_path):
    """An empty vector index beside a non-empty store is rebuilt on open, re-using cached embeddings."""
    where = tmp_path / "store"
    with Memory(persistence=True, storage_path=where, embedder=FakeHashEmbedder()) as memory:
        memory.store_many(DOCS)
    lose_vectors(where / "chroma")
    assert chroma_vector_ids(where / "chroma") == []
    fake = FakeHashEmbedder()
    with Memory(persistence=True, storage_path=where, embedder=fake) as memory:
        assert semantic_keys(memory, DOCS["train"], 1) == ["train"]
        assert fake.embedded == []  # every vector came from embeddings.sqlite3
    assert chroma_vector_ids(where / "chroma") == sorted(DOCS)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(
            lambda: FakeHashEmbedder(name="all-MiniLM-L6-v2", dim=16), id="same-name-other-dim"
        ),
        pytest.param(
            lambda: FakeHashEmbedder(name="fake-hash-embedder", dim=384), id="other-name-same-dim"
        ),
    ],
)
def test_another_embedder_is_refused_until_reindex(tmp_path, real_embedder, other):
    where = tmp_path / "store"
    with Memory(persistence=True, storage_path=where, embedder=real_embedder) as memory:
        memory.store_many(DOCS)
    new = other()
    with pytest.raises(EmbeddingError, match="reindex") as info:
        Memory(persistence=True, storage_path=where, embedder=new)
    assert "all-MiniLM-L6-v2" in str(info.value) and new.name in str(info.value)
    assert new.embedded == []

    with Memory(persistence=True, storage_path=where, embedder=new, reindex=True) as memory:
        assert sorted(new.embedded) == sorted(DOCS.values())
        assert memory.tier.index_meta() == (new.name, new.dim)
        hit = memory.search(DOCS["code"], 1, mode="semantic")[0]
        assert hit["key"] == "code" and hit["similarity"] == pytest.approx(1.0, abs=1e-5)
    again = other()
    with Memory(persistence=True, storage_path=where, embedder=again) as memory:
        assert semantic_keys(memory, DOCS["train"], 1) == ["train"]
        assert again.embedded == []
    with pytest.raises(EmbeddingError, match="reindex"):
        Memory(persistence=True, storage_path=where, embedder=real_embedder)


# -- bad embedder output ---------------------------------------------------------------------------------------


class PoisonEmbedder(FakeHashEmbedder):
    """FAKE: like FakeHashEmbedder, but texts containing "poison" get a NaN vector or one of the wrong size."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def vector(self, text: str) -> list[float]:
        if "poison" not in text:
            return super().vector(text)
        return [math.nan] * self.dim if self.kind == "nan" else [0.5] * (self.dim // 2)


@pytest.mark.parametrize("kind", ["nan", "wrong-dim"])
def test_bad_vectors_are_refused_and_never_indexed(tmp_path, kind):
    where = tmp_path / "store"
    with Memory(persistence=True, storage_path=where, embedder=PoisonEmbedder(kind)) as memory:
        memory.store("ok", "a perfectly fine text")
        with pytest.raises(EmbeddingError, match=r"fake-hash-embedder|dimension"):
            memory.store("bad", "a poison pill")
        assert chroma_vector_ids(where / "chroma") == ["ok"]


@pytest.mark.parametrize("kind", ["nan", "wrong-dim"])
def test_bad_vectors_store_nothing_and_leave_the_memory_usable(kind):
    """embeddings.py: bad vectors raise EmbeddingError "before anything is stored"."""
    with Memory(embedder=PoisonEmbedder(kind)) as memory:
        memory.store("ok", "a perfectly fine text")
        with pytest.raises(EmbeddingError):
            memory.store("bad", "a poison pill")
        assert memory.retrieve("bad") is None
        memory.store("good", "another fine text")
        assert semantic_keys(memory, "another fine text", 1) == ["good"]


# -- crash between the SQLite commit and the vector index ------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    from conftest import FakeHashEmbedder
    from agentmem_plugin import Memory
    from agentmem_plugin.tiers.chroma import SemanticIndex
    from agentmem_plugin.tiers.sqlite import SqliteTier

    where, point, op = sys.argv[1:4]
    memory = Memory(persistence=True, storage_path=where, embedder=FakeHashEmbedder())
    memory.store("first", "the first memory")
    memory.store("second", "the second memory")
    if point == "before-index":  # die as soon as the committed change is handed to the index
        SemanticIndex.sync = lambda self, **kw: os._exit(17)
    else:  # die after Chroma was written, before the outbox is acknowledged
        SqliteTier.ack_changes = lambda self, changes: os._exit(17)
    if op == "store":
        memory.store("crash", "written just before the crash")
    else:
        memory.delete("first")
    os._exit(3)  # not reached
    """
)


@pytest.mark.parametrize("point", ["before-index", "before-ack"])
@pytest.mark.parametrize("op", ["store", "delete"])
def test_outbox_finishes_what_a_crash_interrupted(tmp_path, point, op):
    where = tmp_path / "store"
    code = CHILD.format(tests=str(Path(__file__).parents[1]))
    child = subprocess.run([sys.executable, "-c", code, str(where), point, op],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 17, child.stderr
    changed = "crash" if op == "store" else "first"

    tier = SqliteTier(where / "memory.sqlite3", table="short_term")  # a Memory is its type's table
    try:
        assert [key for _, key in tier.changes(100)] == [changed]  # committed, not yet indexed
        assert (tier.get(changed, touch=False) is None) == (op == "delete")
    finally:
        tier.close()

    fake = FakeHashEmbedder()
    with Memory(persistence=True, storage_path=where, embedder=fake) as memory:
        assert memory.tier.changes(100) == []  # the outbox was drained on open
        if op == "store":
            hit = memory.search("written just before the crash", 1, mode="semantic")[0]
            assert hit["key"] == "crash" and hit["similarity"] == pytest.approx(1.0, abs=1e-5)
            assert sorted(memory.keys()) == ["crash", "first", "second"]
        else:
            # a stale "first" vector would be the top hit and leave this search empty
            assert semantic_keys(memory, "the first memory", 1) == ["second"]
    assert chroma_vector_ids(where / "chroma") == (
        ["crash", "first", "second"] if op == "store" else ["second"]
    )


# -- SemanticMemory --------------------------------------------------------------------------------------------


def test_store_with_embedding_uses_the_supplied_vector():
    fake = FakeHashEmbedder()
    with SemanticMemory(embedder=fake) as memory:
        memory.store_with_embedding(
            "k", "text about gardening", embedding=fake.vector("needle"), tags=["x"]
        )
        memory.store_with_embedding("plain", "another text")  # no vector: the embedder's
        assert "text about gardening" not in " ".join(fake.embedded)
        hits = memory.semantic_search("needle", similarity_threshold=0.99)
        assert [h["key"] for h in hits] == ["k"] and hits[0]["similarity"] == pytest.approx(
            1.0, abs=1e-5
        )
        assert hits[0]["value"] == "text about gardening"
        assert memory.get_entry("k").tags == ("x",)
        assert memory.semantic_search("text about gardening", similarity_threshold=0.99) == []
        assert [
            h["key"] for h in memory.semantic_search("another text", similarity_threshold=0.99)
        ] == ["plain"]


@pytest.mark.parametrize(
    "bad",
    [[0.25] * 15, [0.25] * 17, [math.nan] + [0.25] * 15, [math.inf] * 16, []],
    ids=["15", "17", "nan", "inf", "empty"],
)
def test_store_with_a_bad_embedding_stores_nothing(bad):
    fake = FakeHashEmbedder()
    with SemanticMemory(embedder=fake) as memory:
        with pytest.raises(EmbeddingError, match="supplied embedding"):
            memory.store_with_embedding("k", "some text", embedding=bad)
        assert memory.retrieve("k") is None and len(memory) == 0
        assert memory.semantic_search("some text", similarity_threshold=-1.0) == []
        assert fake.embedded == []


def test_semantic_search_threshold(real_embedder):
    with SemanticMemory(embedder=FakeHashEmbedder()) as default_floor:
        assert default_floor.similarity_threshold == DEFAULT_SIMILARITY_THRESHOLD
    with SemanticMemory(embedder=real_embedder) as memory:
        memory.store_many(DOCS)
        everything = memory.semantic_search("cat", similarity_threshold=-1.0)
        assert sorted(h["key"] for h in everything) == sorted(DOCS)
        default = memory.semantic_search("cat")
        expected = [h["key"] for h in everything if h["similarity"] >= DEFAULT_SIMILARITY_THRESHOLD]
        assert [h["key"] for h in default] == expected and expected[0] == "pet"
        assert len(expected) < len(DOCS)  # the floor filtered unrelated memories
        assert all(set(h) == {"key", "value", "similarity"} for h in default)
        assert memory.semantic_search("a purple elephant dances", similarity_threshold=0.99) == []
        assert memory.semantic_search("   ") == []
        assert memory.semantic_search("cat", limit=1, similarity_threshold=-1.0)[0]["key"] == "pet"
    with SemanticMemory(embedder=real_embedder, similarity_threshold=0.99) as strict:
        strict.store_many(DOCS)
        assert strict.semantic_search("cat") == []
    with pytest.raises(InvalidArgumentError, match="similarity_threshold"):
        SemanticMemory(embedder=real_embedder, similarity_threshold=1.5)


def test_semantic_memory_defaults_to_the_offline_model(real_embedder):
    with SemanticMemory() as memory:
        assert memory.embedder is not None and memory.embedder.name == real_embedder.name
        memory.store_with_embedding("python_best_practices", "Use descriptive names, follow PEP 8")
        memory.store_with_embedding("dinner", "Roast the vegetables for forty minutes")
        assert (
            memory.semantic_search("coding guidelines", limit=5)[0]["key"]
            == "python_best_practices"
        )


# -- namespaces --------------------------------------------------------------------------------------------------


def test_namespaces_in_one_file_have_their_own_index(tmp_path):
    db = tmp_path / "shared.sqlite3"
    where = tmp_path / "store"

    def open_ns(namespace: str) -> Memory:
        tier = SqliteTier(db, namespace=namespace)
        return Memory(tier=tier, storage_path=where, persistence=True, embedder=FakeHashEmbedder())

    a, b = open_ns("alice"), open_ns("bob")
    plain = SqliteTier(db, namespace="no-index")
    try:
        a.store("a1", "alice likes green tea")
        b.store("b1", "bob collects old maps")
        b.store("b2", "bob rides a red bicycle")
        plain.put(MemoryEntry("p", "no index here"))
        # with a shared collection bob's vector would be alice's top hit and leave this empty
        assert semantic_keys(a, "bob collects old maps", 1) == ["a1"]
        assert sorted(semantic_keys(b, "alice likes green tea")) == ["b1", "b2"]
        assert semantic_keys(b, "bob collects old maps", 1) == ["b1"]
        assert a.tier.changes(100) == [] and b.tier.changes(100) == []
        assert plain.changes(100) == []  # a namespace without an index records no changes
        assert (where / "chroma").is_dir()
    finally:
        a.close()
        b.close()
        plain.close()
    a = open_ns("alice")
    try:
        assert semantic_keys(a, "alice likes green tea") == ["a1"]
        layout = index_layout(where / "chroma")
        assert sorted(layout.values()) == [["a1"], ["b1", "b2"]]  # three vectors, in two partitions
        assert all(name.startswith("table:") for name in layout)  # small namespaces: rows of one table
    finally:
        a.close()
    assert not (where / "memory.sqlite3").exists()  # the database is the tier's own file
