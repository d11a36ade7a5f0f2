"""Embedders: vector checks, adapters, the embedding cache, the real offline MiniLM and the missing extra."""

from __future__ import annotations

import array
import hashlib
import json
import math
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeHashEmbedder

from agentmem_plugin.embeddings import (
    DEFAULT_MODEL_NAME,
    CachedEmbedder,
    CallableEmbedder,
    EmbeddingCache,
    LangChainEmbedder,
    SentenceTransformerEmbedder,
    as_embedder,
    check_vectors,
    default_embedder,
)
from agentmem_plugin.errors import EmbeddingError, InvalidArgumentError, MissingDependencyError

EXTRA_HINT = 'pip install "agentmem-plugin[semantic]"'


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (norm(a) * norm(b))


def as_float32(v: list[float]) -> list[float]:
    return array.array("f", v).tolist()


# -- check_vectors --------------------------------------------------------------------------------------------


def test_check_vectors_accepts_lists_tuples_and_numpy():
    assert check_vectors([[1, 2], (3.5, 4)], 2, 2, source="m") == [[1.0, 2.0], [3.5, 4.0]]
    got = check_vectors(np.array([[0.5, 0.25]], dtype=np.float32), 1, 2, source="m")
    assert got == [[0.5, 0.25]] and type(got[0][0]) is float
    assert check_vectors([[1.0, 2.0, 3.0]], 1, None, source="m") == [[1.0, 2.0, 3.0]]  # dim learned
    assert check_vectors([], 0, 4, source="m") == []


@pytest.mark.parametrize(
    ("vectors", "count", "dim", "message"),
    [
        ([[1.0, 2.0]], 2, 2, "1 vectors for 2 texts"),
        ([[1.0, 2.0], [3.0, 4.0]], 1, 2, "2 vectors for 1 texts"),
        ([[1.0, 2.0, 3.0]], 1, 2, "dimension 3 at position 0; expected 2"),
        ([[1.0, 2.0], [1.0, 2.0, 3.0]], 2, None, "dimension 3 at position 1; expected 2"),  # ragged
        ([[1.0, 2.0], [1.0]], 2, 2, "dimension 1 at position 1"),
        ([[]], 1, None, "dimension 0"),
        ([[1.0, float("nan")]], 1, 2, "NaN or infinity at position 0"),
        ([[0.0, 1.0], [float("inf"), 1.0]], 2, 2, "NaN or infinity at position 1"),
        ([[0.0, -math.inf]], 1, None, "NaN or infinity"),
        (np.array([[np.nan, 1.0]]), 1, 2, "NaN or infinity"),
        ([["x", 1.0]], 1, 2, "not vectors"),
        (None, 1, 2, "not vectors"),
        ([1.0, 2.0], 2, 2, "not vectors"),  # flat list: not a list of vectors
    ],
)
def test_check_vectors_rejects_bad_output_naming_the_embedder(vectors, count, dim, message):
    with pytest.raises(EmbeddingError, match="my-model") as info:
        check_vectors(vectors, count, dim, source="my-model")
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


# -- adapters ---------------------------------------------------------------------------------------------------


class LangChainLike:
    """Duck-types LangChain's Embeddings (embed_documents/embed_query) without importing langchain."""

    model = "lc-fake-model"

    def __init__(self) -> None:
        self.document_calls: list[list[str]] = []
        self.query_calls: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.document_calls.append(list(texts))
        return [[3.0, 4.0, 0.0] for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        self.query_calls.append(text)
        return [0.0, 0.0, 2.0]


def test_callable_embedder_learns_dim_and_normalizes():
    calls: list[list[str]] = []

    def fn(texts: list[str]) -> list[list[float]]:
        calls.append(texts)
        return [[float(len(t)), 0.0, 0.0, 2.0 * len(t)] for t in texts]

    emb = CallableEmbedder(fn, name="lengths")
    assert emb.name == "lengths"
    vectors = emb.embed_documents(["ab", "abcd"])
    assert calls == [["ab", "abcd"]]
    assert emb.dim == 4 and len(calls) == 1  # learned from the first call, no probe
    for v in vectors:
        assert norm(v) == pytest.approx(1.0)
        assert v == pytest.approx([1 / math.sqrt(5), 0.0, 0.0, 2 / math.sqrt(5)])
    assert emb.embed_query("q") == pytest.approx(vectors[0])
    assert emb.embed_documents([]) == []


def test_callable_embedder_probes_dim_when_asked_first():
    calls: list[list[str]] = []
    emb = CallableEmbedder(
        lambda texts: calls.append(texts) or [[1.0] * 7 for _ in texts], name="probe"
    )
    assert emb.dim == 7 and len(calls) == 1


def test_callable_embedder_without_normalize_keeps_raw_vectors():
    emb = CallableEmbedder(lambda texts: [[3.0, 4.0] for _ in texts], name="raw", normalize=False)
    assert emb.embed_documents(["a"]) == [[3.0, 4.0]]


def test_callable_embedder_checks_its_output():
    emb = CallableEmbedder(lambda texts: [[1.0, 2.0]], name="always-one", dim=2)
    with pytest.raises(EmbeddingError, match=r"'always-one'.*1 vectors for 2 texts"):
        emb.embed_documents(["a", "b"])
    learned = CallableEmbedder(lambda texts: [[1.0] * (2 + len(t)) for t in texts], name="growing")
    learned.embed_documents(["a"])  # dim 3 from now on
    with pytest.raises(EmbeddingError, match=r"'growing'.*dimension 4 at position 0; expected 3"):
        learned.embed_documents(["ab"])
    nan = CallableEmbedder(lambda texts: [[math.nan, 1.0] for _ in texts], name="nan-model")
    with pytest.raises(EmbeddingError, match=r"'nan-model'.*NaN"):
        nan.embed_query("x")
    with pytest.raises(InvalidArgumentError, match="callable"):
        CallableEmbedder(42, name="x")  # type: ignore[arg-type]


def test_langchain_embedder_uses_both_methods_learns_dim_and_normalizes():
    lc = LangChainLike()
    emb = LangChainEmbedder(lc)
    assert emb.name == "lc-fake-model"  # from the object's `model` attribute
    assert emb.embed_documents(["a", "b"]) == [pytest.approx([0.6, 0.8, 0.0])] * 2
    assert emb.embed_query("q") == pytest.approx([0.0, 0.0, 1.0])
    assert lc.document_calls == [["a", "b"]] and lc.query_calls == ["q"]
    assert emb.dim == 3
    assert LangChainEmbedder(lc, name="custom").name == "custom"


def test_langchain_embedder_names_itself_after_the_class_without_a_model_attribute():
    class Anonymous:
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [[1.0, 0.0] for _ in texts]

        def embed_query(self, text: str) -> list[float]:
            return [0.0, 1.0]

    assert LangChainEmbedder(Anonymous()).name == "Anonymous"
    with pytest.raises(InvalidArgumentError, match="not a LangChain Embeddings"):
        LangChainEmbedder(object())


def test_as_embedder_accepts_default_callables_and_langchain_likes():
    assert as_embedder("default") is default_embedder()
    assert isinstance(as_embedder("default"), SentenceTransformerEmbedder)

    def my_fn(texts: list[str]) -> list[list[float]]:
        return [[1.0, 1.0] for _ in texts]

    wrapped = as_embedder(my_fn)
    assert isinstance(wrapped, CallableEmbedder) and wrapped.name.endswith("my_fn")
    assert wrapped.embed_documents(["x"]) == [pytest.approx([2**-0.5, 2**-0.5])]

    lc = as_embedder(LangChainLike())
    assert isinstance(lc, LangChainEmbedder) and lc.name == "lc-fake-model"

    fake = FakeHashEmbedder()
    assert as_embedder(fake) is fake  # already an Embedder: used as is
    cached = CachedEmbedder(fake)
    assert as_embedder(cached) is cached


@pytest.mark.parametrize("bad", [42, "minilm", None, object(), [[1.0]], b"default"])
def test_as_embedder_rejects_other_things(bad):
    with pytest.raises(InvalidArgumentError, match=r"cannot use .* as an embedder"):
        as_embedder(bad)


# -- the cache --------------------------------------------------------------------------------------------------


def test_embedding_cache_round_trip_in_memory():
    cache = EmbeddingCache()
    vectors = [[0.1, -0.2, 0.3], [1e-8, 2.5, -3.75]]
    cache.put_many("m", ["a", "b"], vectors)
    got = cache.get_many("m", ["b", "zz", "a", "b"])
    assert got == [as_float32(vectors[1]), None, as_float32(vectors[0]), as_float32(vectors[1])]
    assert (cache.hits, cache.misses) == (3, 1)
    assert cache.get_many("other-model", ["a"]) == [None]  # keyed by model too
    assert len(cache) == 2
    cache.put_many("m", ["a"], [[9.0, 9.0, 9.0]])  # existing ones are kept
    assert cache.get_many("m", ["a"]) == [as_float32(vectors[0])]
    cache.replace("m", "a", [7.0, 7.0, 7.0])
    assert cache.get_many("m", ["a"]) == [[7.0, 7.0, 7.0]]
    cache.close()


def test_embedding_cache_file_survives_reopen_at_float32_precision(tmp_path):
    path = tmp_path / "sub" / "cache.sqlite3"
    rng = np.random.default_rng(7)
    texts = [f"text {i} ✓" for i in range(600)]  # more than one 500-hash chunk
    vectors = rng.normal(size=(600, 8)).tolist()
    cache = EmbeddingCache(path)
    cache.put_many("m", texts, vectors)
    cache.close()
    assert path.exists()
    reopened = EmbeddingCache(path)
    got = reopened.get_many("m", texts)
    assert got == [as_float32(v) for v in vectors]
    assert all(g == pytest.approx(v, rel=1e-6) for g, v in zip(got, vectors, strict=True))
    assert got[0] != vectors[0]  # really float32, not the float64 we put in
    assert len(reopened) == 600
    reopened.close()


def test_cached_embedder_embeds_each_distinct_text_once(tmp_path):
    inner = FakeHashEmbedder()
    path = tmp_path / "cache.sqlite3"
    emb = CachedEmbedder(inner, EmbeddingCache(path))
    assert (emb.name, emb.dim) == ("fake-hash-embedder", 16)

    first = emb.embed_documents(["a", "b", "a", "c", "b"])
    assert inner.embedded == ["a", "b", "c"]  # duplicates inside one batch: once
    assert first[0] == first[2] and first[1] == first[4]
    assert first[0] == pytest.approx(inner.vector("a"), rel=1e-6)

    # a fresh vector comes back as computed, a cached one as stored (float32)
    second = emb.embed_documents(["c", "d", "a", "d"])
    assert inner.embedded == ["a", "b", "c", "d"]  # across calls: only the new text
    assert second[0] == as_float32(first[3]) and second[2] == as_float32(first[0])
    assert second[1] == second[3]
    calls = inner.calls
    cached = emb.embed_documents(["a", "b", "c", "d"])
    assert cached == [as_float32(v) for v in (first[0], first[1], first[3], second[1])]
    assert inner.calls == calls  # everything cached: the inner embedder is not called at all
    assert emb.embed_documents([]) == []
    emb.cache.close()

    again = FakeHashEmbedder()
    reopened = CachedEmbedder(again, EmbeddingCache(path))
    assert reopened.embed_documents(["d", "a", "e"])[:2] == [cached[3], cached[0]]
    assert again.embedded == ["e"]  # across a reopened file cache: only the new text
    reopened.cache.close()


def test_cached_embedder_caches_query_vectors_apart_from_documents():
    inner = FakeHashEmbedder()
    emb = CachedEmbedder(inner)
    emb.embed_documents(["x"])
    q = emb.embed_query("x")
    assert inner.queries == ["x"]  # a document vector is not reused as the query vector
    assert emb.embed_query("x") == as_float32(q) and inner.queries == ["x"]
    emb.embed_query("y")
    assert inner.queries == ["x", "y"]
    assert inner.embedded == ["x"]
    assert emb.cache.get_many(emb.cache_key + "|query", ["x", "y"]) == [
        as_float32(q),
        as_float32(inner.vector("y")),
    ]


def test_cached_embedder_separates_models_sharing_one_cache():
    cache = EmbeddingCache()
    one, two = FakeHashEmbedder(name="one"), FakeHashEmbedder(name="two")
    CachedEmbedder(one, cache).embed_documents(["t"])
    CachedEmbedder(two, cache).embed_documents(["t"])
    assert one.embedded == ["t"] and two.embedded == ["t"]
    assert len(cache) == 2


def test_cached_embedder_checks_the_inner_output_and_caches_nothing_bad():
    bad = CallableEmbedder(
        lambda texts: [[math.inf, 0.0] for _ in texts], name="inf-model", normalize=False
    )
    emb = CachedEmbedder(bad)
    with pytest.raises(EmbeddingError, match="inf-model"):
        emb.embed_documents(["a"])
    assert len(emb.cache) == 0


def test_cached_embedder_remember_overrides_the_document_vector():
    inner = FakeHashEmbedder()
    emb = CachedEmbedder(inner)
    emb.remember("text", [0.5] * 16)
    assert emb.embed_documents(["text"]) == [[0.5] * 16]
    assert inner.embedded == []


# -- the real offline model -------------------------------------------------------------------------------------


def test_real_embedder_dim_name_and_unit_vectors(real_embedder):
    assert real_embedder.name == DEFAULT_MODEL_NAME == "all-MiniLM-L6-v2"
    assert real_embedder.dim == 384
    vectors = real_embedder.embed_documents(
        ["The cat sat on the mat.", "Quarterly revenue grew 4%."]
    )
    assert len(vectors) == 2 and all(len(v) == 384 for v in vectors)
    assert all(norm(v) == pytest.approx(1.0, abs=1e-5) for v in vectors)
    assert all(type(x) is float for x in vectors[0])
    q = real_embedder.embed_query("The cat sat on the mat.")
    assert cosine(q, vectors[0]) == pytest.approx(1.0, abs=1e-5)
    assert real_embedder.embed_documents([]) == []


def test_real_embedder_puts_similar_sentences_closer(real_embedder):
    a, b, c = real_embedder.embed_documents(
        [
            "The kitten is sleeping on the sofa.",
            "A young cat naps on the couch.",
            "The central bank raised interest rates again.",
        ]
    )
    assert cosine(a, b) > cosine(a, c) + 0.3
    assert cosine(a, b) > cosine(b, c) + 0.3


def test_real_model_is_loaded_once_and_shared(real_embedder):
    one, two = SentenceTransformerEmbedder(), SentenceTransformerEmbedder()
    assert one is not two
    assert one.model is two.model is real_embedder.model
    assert default_embedder() is default_embedder()
    assert SentenceTransformerEmbedder(name="alias").name == "alias"
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        SentenceTransformerEmbedder(batch_size=0)


def test_real_embedder_batches_agree_with_single_calls(real_embedder):
    texts = [f"sentence number {i} about gardening" for i in range(5)]
    small = SentenceTransformerEmbedder(batch_size=2)
    batched = small.embed_documents(texts)
    for text, vector in zip(texts, batched, strict=True):
        assert cosine(vector, real_embedder.embed_query(text)) == pytest.approx(1.0, abs=1e-4)


# -- the missing extra ------------------------------------------------------------------------------------------


def run_child(code: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


REPORT = """
def report(fn):
    try:
        fn()
    except Exception as exc:
        from agentmem_plugin.errors import MissingDependencyError
        return {"type": type(exc).__name__, "message": str(exc),
                "missing": isinstance(exc, MissingDependencyError), "import_error": isinstance(exc, ImportError)}
    return {"type": None}
"""


def test_missing_sentence_transformers_names_the_extra():
    code = (
        "import sys, json\n"
        "sys.modules['sentence_transformers'] = None\n"
        + REPORT
        + "from agentmem_plugin.embeddings import default_embedder\n"
        "emb = default_embedder()\n"
        "print(json.dumps({'name': emb.name, 'call': report(lambda: emb.embed_query('x'))}))\n"
    )
    got = run_child(code)
    assert got["name"] == "all-MiniLM-L6-v2"  # creating the embedder does not need the model
    call = got["call"]
    assert call["type"] == "MissingDependencyError" and call["missing"] and call["import_error"]
    assert "sentence_transformers" in call["message"] and EXTRA_HINT in call["message"]


def test_missing_chromadb_names_the_extra():
    code = (
        "import sys, json\n"
        "sys.modules['chromadb'] = None\n"
        + REPORT
        + "from agentmem_plugin.tiers.chroma import make_client\n"
        "from agentmem_plugin import Memory\n"
        "fake = lambda texts: [[1.0, 0.0] for _ in texts]\n"
        "print(json.dumps({'client': report(make_client), 'memory': report(lambda: Memory(embedder=fake))}))\n"
    )
    got = run_child(code)
    for what in ("client", "memory"):
        err = got[what]
        assert err["type"] == "MissingDependencyError" and err["missing"] and err["import_error"], (
            what
        )
        assert "chromadb" in err["message"] and EXTRA_HINT in err["message"], what


def test_missing_dependency_error_is_an_import_error():
    assert issubclass(MissingDependencyError, ImportError)


# -- one embedding cache per file in a process (issue 16 item 3) -------------------------------------------------


def test_a_shared_cache_is_one_connection_per_file_closed_by_its_last_user(tmp_path: Path) -> None:
    from agentmem_plugin.embeddings import open_shared_cache

    path = tmp_path / "embeddings.sqlite3"
    first, second = open_shared_cache(path), open_shared_cache(tmp_path / "." / "embeddings.sqlite3")
    assert first is second
    first.put_many("m", ["hello"], [[1.0, 0.0]])
    first.close()  # one of two users
    assert second.get_many("m", ["hello"]) == [[1.0, 0.0]]  # still open for the other
    second.close()
    with pytest.raises(sqlite3.ProgrammingError):
        second.get_many("m", ["hello"])
    third = open_shared_cache(path)  # after the last close: a new connection, the same file
    try:
        assert third is not first and third.get_many("m", ["hello"]) == [[1.0, 0.0]]
    finally:
        third.close()
    assert open_shared_cache(None) is not open_shared_cache(None)  # in-memory caches are never shared


def test_every_namespace_of_a_store_embeds_through_one_cache(tmp_path: Path) -> None:
    """Before, each namespace view opened its own connection to embeddings.sqlite3 (up to 2 MB of page cache each:
    2.3 MB of memory per namespace in bench_scale.py layout, 0.2-0.3 MB after)."""
    from agentmem_plugin import MemoryManager

    root = MemoryManager(storage_path=tmp_path / "store", embedder=FakeHashEmbedder())
    try:
        views = [root.with_namespace(f"user-{n}") for n in range(5)]
        for n, view in enumerate(views):
            view.store(f"k{n}", f"note {n}", memory_type="long_term")
        caches = {id(view.long_term._semantic.embedder.cache) for view in views}
        assert len(caches) == 1
        assert views[3].search("note 3", 1, mode="semantic")[0]["key"] == "k3"
    finally:
        root.close()


def test_a_cache_of_the_first_layout_is_moved_to_rowid_rows_without_losing_a_vector(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(  # version 0, as every cache was written before 2026-12-03
        "CREATE TABLE embedding_cache (model TEXT NOT NULL, text_hash BLOB NOT NULL, "
        "vector BLOB NOT NULL, PRIMARY KEY (model, text_hash)) WITHOUT ROWID"
    )
    conn.execute(
        "INSERT INTO embedding_cache VALUES (?, ?, ?)",
        ("m", hashlib.sha256(b"kept").digest(), array.array("f", [0.5, 0.25]).tobytes()),
    )
    conn.commit()
    conn.close()
    cache = EmbeddingCache(path)
    try:
        assert cache.get_many("m", ["kept", "other"]) == [[0.5, 0.25], None]
        sql = cache._conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'embedding_cache'"
        ).fetchone()[0]
        assert "WITHOUT ROWID" not in sql
        assert cache._conn.execute("PRAGMA user_version").fetchone()[0] == 1
    finally:
        cache.close()


def test_a_cached_vector_takes_about_its_own_size_on_disk(tmp_path: Path) -> None:
    """384 float32 = 1,536 bytes; the first layout took 4.7 KB a vector (an overflow page each)."""
    path = tmp_path / "embeddings.sqlite3"
    cache = EmbeddingCache(path)
    rng = np.random.default_rng(0)
    cache.put_many("m", [f"text {i}" for i in range(2000)], rng.standard_normal((2000, 384)).tolist())
    cache._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache.close()
    assert path.stat().st_size / 2000 < 2400  # two rows a 4 KB page


def test_a_failed_open_leaves_no_embedding_cache_open(tmp_path: Path) -> None:
    """Opening a store with another model fails (EmbeddingError); the shared cache it opened is closed again,
    so a store made afresh at that path writes its own embeddings.sqlite3 (not the deleted file's inode)."""
    import shutil

    from agentmem_plugin import Memory, MemoryManager
    from agentmem_plugin.embeddings import _SHARED_CACHES

    where = tmp_path / "store"
    with Memory(persistence=True, storage_path=where, embedder=FakeHashEmbedder()) as memory:
        memory.store("k", "some text")
    cache = str((where / "embeddings.sqlite3").resolve())
    with pytest.raises(EmbeddingError, match="reindex=True"):
        Memory(persistence=True, storage_path=where, embedder=FakeHashEmbedder(name="other"))
    assert cache not in _SHARED_CACHES
    managed = tmp_path / "managed"
    with MemoryManager(storage_path=managed, embedder=FakeHashEmbedder()) as mm:
        mm.store("k", "some text", memory_type="long_term")
    with pytest.raises(EmbeddingError, match="reindex=True"):
        MemoryManager(storage_path=managed, embedder=FakeHashEmbedder(name="other"))
    assert str((managed / "embeddings.sqlite3").resolve()) not in _SHARED_CACHES
    shutil.rmtree(where)
    with Memory(persistence=True, storage_path=where, embedder=FakeHashEmbedder()) as memory:
        memory.store("k", "some text")
    assert (where / "embeddings.sqlite3").exists()


def test_a_migrated_cache_gives_its_old_pages_back(tmp_path: Path) -> None:
    path = tmp_path / "embeddings.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE embedding_cache (model TEXT NOT NULL, text_hash BLOB NOT NULL, "
        "vector BLOB NOT NULL, PRIMARY KEY (model, text_hash)) WITHOUT ROWID"
    )
    rng = np.random.default_rng(1)
    conn.executemany(
        "INSERT INTO embedding_cache VALUES (?, ?, ?)",
        [
            ("m", hashlib.sha256(f"t{i}".encode()).digest(), rng.standard_normal(384).astype("float32").tobytes())
            for i in range(2000)
        ],
    )
    conn.commit()
    conn.close()
    before = path.stat().st_size
    EmbeddingCache(path).close()
    after = path.stat().st_size
    assert before / 2000 > 4000 and after / 2000 < 2400  # 4.7 KB a vector before, about 2 KB after


def test_open_sqlite_makes_the_directory_and_uses_wal(tmp_path: Path) -> None:
    from agentmem_plugin.embeddings import open_sqlite

    conn = open_sqlite(tmp_path / "new" / "dir" / "derived.sqlite3")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.isolation_level is None  # autocommit: callers begin their own transactions
    finally:
        conn.close()
    memory = open_sqlite(None)
    try:
        assert memory.execute("PRAGMA journal_mode").fetchone()[0] == "memory"
    finally:
        memory.close()
