"""AgentMemVectorStore beyond the standard suite: meaning, persistence, namespaces, filters, scores, bad input."""

from __future__ import annotations

import threading

import pytest
from agentmem_plugin import MemoryManager
from agentmem_plugin.embeddings import default_embedder
from agentmem_plugin.errors import (
    EmbeddingError,
    InvalidArgumentError,
    InvalidKeyError,
    SerializationError,
)
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from langchain_agentmem import AgentMemVectorStore


class MiniLMEmbeddings(Embeddings):
    """The real offline all-MiniLM-L6-v2 (agentmem's default embedder) behind LangChain's Embeddings interface."""

    def __init__(self) -> None:
        self.inner = default_embedder()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


KB = [
    Document(
        page_content="Refunds are issued within 14 days of the return being received",
        metadata={"topic": "billing"},
        id="refund",
    ),
    Document(
        page_content="Our headquarters moved to a new office building downtown",
        metadata={"topic": "company"},
        id="office",
    ),
    Document(
        page_content="Reset your password from the account security page",
        metadata={"topic": "account"},
        id="password",
    ),
]


def test_real_embeddings_find_by_meaning_with_relevance_scores(tmp_path):
    with AgentMemVectorStore(MiniLMEmbeddings(), storage_path=tmp_path / "kb") as store:
        assert store.add_documents(KB) == ["refund", "office", "password"]
        [(doc, score)] = store.similarity_search_with_score("how do I get my money back", k=1)
        assert doc == KB[0]
        assert 0.3 < score <= 1.0 + 1e-6
        scored = store.similarity_search_with_relevance_scores("I forgot my login credentials", k=3)
        assert scored[0][0].id == "password"
        assert all(0.0 <= s <= 1.0 for _, s in scored)
        assert [s for _, s in scored] == sorted((s for _, s in scored), reverse=True)
        threshold = store.as_retriever(
            search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.4, "k": 3}
        )
        assert [d.id for d in threshold.invoke("I forgot my login credentials")] == ["password"]


def test_manager_with_the_default_embedder_and_no_langchain_embeddings(semantic_manager):
    store = AgentMemVectorStore(manager=semantic_manager, namespace="kb")
    assert store.embeddings is None  # the manager embeds with agentmem's own MiniLM
    store.add_documents(KB)
    assert [d.id for d in store.similarity_search("new workplace location", k=1)] == ["office"]
    assert semantic_manager.with_namespace("kb").tier_of("office") == "long_term"


def test_persistence_across_reopen(tmp_path, fake_embeddings):
    with AgentMemVectorStore(
        fake_embeddings, storage_path=tmp_path / "vs", namespace="docs"
    ) as store:
        store.add_texts(["alpha text", "beta text"], [{"n": 1}, {"n": 2}], ids=["a", "b"])
    with AgentMemVectorStore(
        DeterministicFakeEmbedding(size=6), storage_path=tmp_path / "vs", namespace="docs"
    ) as again:
        assert again.get_by_ids(["a", "b"]) == [
            Document(page_content="alpha text", metadata={"n": 1}, id="a"),
            Document(page_content="beta text", metadata={"n": 2}, id="b"),
        ]
        assert [d.id for d in again.similarity_search("beta text", k=1)] == ["b"]
    with pytest.raises(
        EmbeddingError, match="reindex"
    ):  # another model over the same index: refused clearly
        AgentMemVectorStore(
            DeterministicFakeEmbedding(size=8), storage_path=tmp_path / "vs", namespace="docs"
        )


def test_namespace_isolation(tmp_path, fake_embeddings):
    with MemoryManager(storage_path=tmp_path / "ns", embedder=fake_embeddings) as mm:
        a = AgentMemVectorStore(fake_embeddings, manager=mm, namespace=("user", "a"))
        b = AgentMemVectorStore(manager=mm, namespace=("user", "b"))
        assert b.embeddings is fake_embeddings  # found in the manager
        a.add_texts(["a's secret"], ids=["same-id"])
        b.add_texts(["b's secret", "b's other note"], ids=["same-id", "other"])
        assert [d.page_content for d in a.similarity_search("b's secret", k=10)] == ["a's secret"]
        assert a.get_by_ids(["same-id", "other"]) == [
            Document(page_content="a's secret", id="same-id")
        ]
        a.delete(["same-id"])
        assert a.similarity_search("anything", k=10) == []
        assert [d.page_content for d in b.get_by_ids(["same-id"])] == ["b's secret"]
        assert len(b.similarity_search("anything", k=10)) == 2


def test_filter_by_metadata_and_by_predicate(fake_embeddings):
    with AgentMemVectorStore(fake_embeddings) as store:
        store.add_texts(
            [f"chunk {i}" for i in range(40)], [{"page": i, "even": i % 2 == 0} for i in range(40)]
        )
        docs = store.similarity_search("chunk 3", k=3, filter={"page": 37})
        assert [d.metadata["page"] for d in docs] == [37]  # found although ranked far below k*4
        assert all(
            d.metadata["even"]
            for d in store.similarity_search("chunk 3", k=5, filter={"even": True})
        )
        assert len(store.similarity_search("chunk 3", k=5, filter={"even": True})) == 5
        assert store.similarity_search("chunk 3", k=5, filter={"missing": None}) == []
        picked = store.similarity_search("chunk", k=4, filter=lambda d: d.metadata["page"] >= 38)
        assert sorted(d.metadata["page"] for d in picked) == [38, 39]
        retriever = store.as_retriever(search_kwargs={"k": 2, "filter": {"page": 5}})
        assert [d.page_content for d in retriever.invoke("chunk 5")] == ["chunk 5"]


def test_search_by_vector(fake_embeddings):
    with AgentMemVectorStore(fake_embeddings) as store:
        store.add_texts(
            ["red", "green", "blue"], ids=["r", "g", "b"], metadatas=[{"w": 1}, {"w": 2}, {"w": 3}]
        )
        vector = fake_embeddings.embed_query("green")
        assert [d.id for d in store.similarity_search_by_vector(vector, k=1)] == ["g"]
        assert [d.id for d in store.similarity_search_by_vector(vector, k=3, filter={"w": 3})] == [
            "b"
        ]
        with pytest.raises(EmbeddingError, match="dimension 2"):
            store.similarity_search_by_vector([0.1, 0.2], k=1)


def test_reads_and_searches_never_move_documents_and_promoted_ones_are_still_found(fake_embeddings):
    with MemoryManager(embedder=fake_embeddings) as mm:
        store = AgentMemVectorStore(manager=mm)
        store.add_texts(["one", "two"], ids=["1", "2"])
        store.similarity_search("one", k=2)
        store.get_by_ids(["1", "2"])
        assert (mm.tier_of("1"), mm.tier_of("2")) == ("long_term", "long_term")
        mm.retrieve("2")  # the manager promotes on read; get_by_ids still finds it in short-term
        assert mm.tier_of("2") == "short_term"
        assert [d.id for d in store.get_by_ids(["2", "1", "2"])] == ["2", "1"]


def test_from_texts_and_from_documents(tmp_path, fake_embeddings):
    with AgentMemVectorStore.from_texts(
        ["x", "y"], fake_embeddings, ids=["1", "2"], namespace="t"
    ) as store:
        assert [d.page_content for d in store.get_by_ids(["1", "2"])] == ["x", "y"]
    with AgentMemVectorStore.from_documents(
        KB, fake_embeddings, storage_path=tmp_path / "fd"
    ) as store:
        assert [d.id for d in store.get_by_ids(["password"])] == ["password"]


async def test_async_twins_run_in_worker_threads(fake_embeddings, monkeypatch):
    with AgentMemVectorStore(fake_embeddings) as store:
        threads: list[threading.Thread] = []
        for name in (
            "add_texts",
            "similarity_search_with_score",
            "similarity_search_by_vector",
            "get_by_ids",
            "delete",
        ):
            original = getattr(store, name)

            def recording(*args, _original=original, **kwargs):
                threads.append(threading.current_thread())
                return _original(*args, **kwargs)

            monkeypatch.setattr(store, name, recording)
        assert await store.aadd_texts(["p", "q"], ids=["p", "q"]) == ["p", "q"]
        assert [d.id for d, _ in await store.asimilarity_search_with_score("q", k=1)] == ["q"]
        assert [
            d.id
            for d in await store.asimilarity_search_by_vector(fake_embeddings.embed_query("p"), k=1)
        ] == ["p"]
        assert [d.id for d in await store.aget_by_ids(["p"])] == ["p"]
        assert await store.adelete(["p"]) is True
        assert await store.aget_by_ids(["p"]) == []
        other = await AgentMemVectorStore.afrom_texts(["z"], fake_embeddings, ids=["z"])
        assert [d.id for d in await other.asimilarity_search("z", k=1)] == ["z"]
        other.close()
    assert len(threads) == 6 and all(t is not threading.main_thread() for t in threads)


# -- bad input ------------------------------------------------------------------------------------------------


def test_bad_writes_raise_and_store_nothing(fake_embeddings):
    with AgentMemVectorStore(fake_embeddings) as store:
        with pytest.raises(InvalidArgumentError, match="got 1 ids for 2 texts"):
            store.add_texts(["a", "b"], ids=["1"])
        with pytest.raises(InvalidArgumentError, match="got 3 metadatas for 2 texts"):
            store.add_texts(["a", "b"], [{}, {}, {}])
        with pytest.raises(InvalidArgumentError, match="each text must be a str, got int: 5"):
            store.add_texts(["a", 5])
        with pytest.raises(InvalidKeyError, match="got ''"):
            store.add_texts(["a", "b"], ids=["ok", ""])
        with pytest.raises(SerializationError):
            store.add_texts(["a", "b"], [{"n": 1}, {"bad": object()}], ids=["a", "b"])
        with pytest.raises(InvalidArgumentError, match=r"unknown add_texts options \['upsert'\]"):
            store.add_texts(["a"], upsert=True)
        with pytest.raises(InvalidArgumentError, match="batch_size must be a positive int, got 0"):
            store.add_texts(["a"], batch_size=0)
        assert store.similarity_search("a", k=10) == []
        assert store.get_by_ids(["ok", "a", "b"]) == []


def test_bad_queries_and_deletes(fake_embeddings):
    with AgentMemVectorStore(fake_embeddings) as store:
        store.add_texts(["kept"], ids=["kept"])
        with pytest.raises(InvalidArgumentError, match="k must be a positive int, got 0"):
            store.similarity_search("kept", k=0)
        with pytest.raises(InvalidArgumentError, match="query must be a str"):
            store.similarity_search(["kept"])
        with pytest.raises(InvalidArgumentError, match=r"unknown search options \['fetch_k'\]"):
            store.similarity_search("kept", fetch_k=3)
        with pytest.raises(InvalidArgumentError, match="filter must be a dict"):
            store.similarity_search("kept", filter="topic")
        with pytest.raises(InvalidArgumentError, match="needs the ids"):
            store.delete()
        with pytest.raises(InvalidArgumentError, match="keys must be a sequence of str"):
            store.delete("kept")  # a single str is not a list of ids
        assert [d.id for d in store.get_by_ids(["kept"])] == ["kept"]


def test_bad_construction(tmp_path, fake_embeddings):
    with pytest.raises(InvalidArgumentError, match="needs embedding="):
        AgentMemVectorStore()
    with (
        MemoryManager() as plain,
        pytest.raises(InvalidArgumentError, match="manager has no embedder"),
    ):
        AgentMemVectorStore(manager=plain)
    with MemoryManager(embedder=fake_embeddings) as mm:
        with pytest.raises(InvalidArgumentError, match="not both"):
            AgentMemVectorStore(manager=mm, storage_path=tmp_path / "x")
        with pytest.raises(
            InvalidArgumentError, match="not the embedder the manager was built with"
        ):
            AgentMemVectorStore(DeterministicFakeEmbedding(size=6), manager=mm)
        with pytest.raises(InvalidArgumentError, match="long_term_limit applies"):
            AgentMemVectorStore(manager=mm, long_term_limit=10)
        with pytest.raises(InvalidArgumentError, match=r"\('kb', ''\)"):
            AgentMemVectorStore(manager=mm, namespace=("kb", ""))
    with pytest.raises(
        InvalidArgumentError, match="long_term_limit must be a positive int, got -1"
    ):
        AgentMemVectorStore(fake_embeddings, long_term_limit=-1)
    assert not (tmp_path / "x").exists()


# -- max marginal relevance -------------------------------------------------------------------------------------

CATS = [
    Document(page_content="The cat sat on the mat", id="cat1"),
    Document(page_content="A cat was sitting on the mat", id="cat2"),
    Document(page_content="The cat is lying on a mat", id="cat3"),
    Document(page_content="Stock markets fell sharply on Tuesday", id="stocks", metadata={"k": 1}),
]


@pytest.fixture(scope="module")
def cat_store(tmp_path_factory):
    with AgentMemVectorStore(
        MiniLMEmbeddings(), storage_path=tmp_path_factory.mktemp("mmr")
    ) as store:
        store.add_documents(CATS)
        yield store


def test_mmr_trades_relevance_for_diversity(cat_store):
    similar = [d.id for d in cat_store.similarity_search("a cat on a mat", k=2)]
    assert set(similar) <= {"cat1", "cat2", "cat3"}  # plain similarity: two near-duplicates
    diverse = cat_store.max_marginal_relevance_search(
        "a cat on a mat", k=2, fetch_k=4, lambda_mult=0.1
    )
    assert diverse[0].id in {"cat1", "cat2", "cat3"} and diverse[1].id == "stocks"
    relevant = cat_store.max_marginal_relevance_search(
        "a cat on a mat", k=2, fetch_k=4, lambda_mult=1.0
    )
    assert [
        d.id for d in relevant
    ] == similar  # lambda_mult=1: relevance only, the similarity order


def test_mmr_by_vector_filter_and_retriever(cat_store):
    vector = cat_store.embeddings.embed_query("a cat on a mat")
    by_vector = cat_store.max_marginal_relevance_search_by_vector(
        vector, k=2, fetch_k=4, lambda_mult=0.1
    )
    assert by_vector[1].id == "stocks"
    only = cat_store.max_marginal_relevance_search("a cat", k=3, filter={"k": 1})
    assert [d.id for d in only] == ["stocks"]
    retriever = cat_store.as_retriever(
        search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4, "lambda_mult": 0.1}
    )
    assert [d.id for d in retriever.invoke("a cat on a mat")][1] == "stocks"


async def test_mmr_async_twins(cat_store):
    docs = await cat_store.amax_marginal_relevance_search(
        "a cat on a mat", k=2, fetch_k=4, lambda_mult=0.1
    )
    assert docs[1].id == "stocks"
    vector = cat_store.embeddings.embed_query("a cat on a mat")
    docs = await cat_store.amax_marginal_relevance_search_by_vector(vector, k=1)
    assert docs[0].id in {"cat1", "cat2", "cat3"}
    retriever = cat_store.as_retriever(
        search_type="mmr", search_kwargs={"k": 2, "fetch_k": 4, "lambda_mult": 0.1}
    )
    assert [d.id for d in await retriever.ainvoke("a cat on a mat")][1] == "stocks"


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"lambda_mult": 1.5}, "lambda_mult"),
        ({"fetch_k": 0}, "fetch_k"),
        ({"k": -1}, "k"),
        ({"score_threshold": 0.2}, "unknown search options"),
    ],
)
def test_mmr_bad_options_are_typed_errors(cat_store, options, match):
    with pytest.raises(InvalidArgumentError, match=match):
        cat_store.max_marginal_relevance_search("cat", **options)


def test_the_vector_store_leaves_out_a_chat_history_beside_it(tmp_path):
    from langchain_core.messages import HumanMessage

    from langchain_agentmem import AgentMemChatMessageHistory

    mm = MemoryManager(
        storage_path=tmp_path / "m", embedder=MiniLMEmbeddings(), long_term_limit=10**9
    )
    try:
        history = AgentMemChatMessageHistory("s1", manager=mm, memory_type="long_term")
        history.add_messages([HumanMessage("I adopted a kitten called Pixel")])
        store = AgentMemVectorStore(manager=mm)
        store.add_documents([Document(page_content="The user has a young cat", id="pet")])
        assert [d.id for d in store.similarity_search("the user's pet cat", k=4)] == ["pet"]
        assert [d.id for d in store.max_marginal_relevance_search("the user's pet cat", k=4)] == [
            "pet"
        ]
        everything = AgentMemVectorStore(manager=mm, include_chat_history=True)
        assert {d.id for d in everything.similarity_search("the user's pet cat", k=4)} == {
            "pet",
            history.key,
        }
        with pytest.raises(InvalidArgumentError, match="include_chat_history"):
            AgentMemVectorStore(manager=mm, include_chat_history=1)
    finally:
        mm.close()
