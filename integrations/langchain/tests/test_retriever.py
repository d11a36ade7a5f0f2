"""AgentMemRetriever: real semantic retrieval, namespaces, filters, per-call options, async, bad input."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest
from agentmem_plugin import Memory, MemoryManager
from agentmem_plugin.errors import InvalidArgumentError

from langchain_agentmem import AgentMemRetriever

DOCS = {
    "pets": "My golden retriever loves chasing tennis balls in the park",
    "food": "I cooked spaghetti carbonara with pancetta and parmesan for dinner",
    "travel": "Our flight to Tokyo departs from Heathrow next Tuesday",
    "money": "The quarterly budget shows revenue exceeded projections",
}
QUERIES = {  # no word in common with the document they must find
    "puppy playing outside": "pets",
    "Italian pasta meal": "food",
    "airplane journey in Japan": "travel",
    "company finances and earnings": "money",
}


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_real_embedder_finds_the_document_with_no_shared_words(semantic_manager):
    semantic_manager.store_many(DOCS, "long_term")
    for mode in ("semantic", "hybrid", None):
        retriever = AgentMemRetriever(memory=semantic_manager, k=1, mode=mode)
        for query, expected in QUERIES.items():
            assert not words(query) & words(DOCS[expected])  # meaning, not keywords, must find it
            [doc] = retriever.invoke(query)
            assert doc.id == expected, (mode, query, doc)
            assert doc.page_content == DOCS[expected]
            assert doc.metadata["tier"] == "long_term"


def test_keyword_mode_does_not_find_it_without_shared_words(semantic_manager):
    semantic_manager.store_many(DOCS, "long_term")
    assert (
        AgentMemRetriever(memory=semantic_manager, mode="keyword").invoke("puppy playing outside")
        == []
    )


def test_document_carries_key_score_tier_tags_and_entry_metadata():
    with MemoryManager() as mm:
        mm.store(
            "profile",
            {"name": "Ada", "city": "Lisbon"},
            "long_term",
            metadata={"source": "form"},
            tags=["user"],
        )
        [doc] = AgentMemRetriever(memory=mm).invoke("Lisbon")
    assert doc.id == "profile"
    assert (
        doc.page_content == '{"name": "Ada", "city": "Lisbon"}'
    )  # a non-str value is rendered as JSON
    assert doc.metadata == {
        "source": "form",
        "key": "profile",
        "score": 1.0,
        "tier": "long_term",
        "tags": ["user"],
    }


def test_over_a_plain_memory_the_tier_is_its_memory_type(tmp_path):
    with Memory(persistence=True, storage_path=tmp_path / "m", memory_type="long_term") as memory:
        memory.store("a", "the lighthouse keeper", tags=["sea"])
        [doc] = AgentMemRetriever(memory=memory).invoke("lighthouse")
    assert (doc.id, doc.metadata["tier"], doc.metadata["tags"]) == ("a", "long_term", ["sea"])


def test_manager_search_spans_every_tier():
    with MemoryManager() as mm:
        mm.store("s", "orbit notes short", "short_term")
        mm.store("l", "orbit notes long", "long_term")
        mm.store("x", "orbit notes archived", "external")
        docs = AgentMemRetriever(memory=mm, k=10).invoke("orbit notes")
    assert {d.id: d.metadata["tier"] for d in docs} == {
        "s": "short_term",
        "l": "long_term",
        "x": "external",
    }


# -- namespaces -----------------------------------------------------------------------------------------------


def test_namespace_isolation(semantic_manager):
    alice = semantic_manager.with_namespace(("user", "alice"))
    bob = semantic_manager.with_namespace("user/bob")
    alice.store("colour", "My favourite colour is blue", "long_term")
    bob.store("colour", "My favourite colour is red", "long_term")
    bob.store("pet", "My favourite animal is a cat named Tom", "long_term")
    for mode in ("keyword", "semantic", "hybrid"):
        for_alice = AgentMemRetriever(
            memory=semantic_manager, namespace=("user", "alice"), k=10, mode=mode
        )
        for_bob = AgentMemRetriever(memory=semantic_manager, namespace="user/bob", k=10, mode=mode)
        root = AgentMemRetriever(memory=semantic_manager, k=10, mode=mode)
        alice_texts = {"My favourite colour is blue"}
        bob_texts = {"My favourite colour is red", "My favourite animal is a cat named Tom"}
        assert [d.page_content for d in for_alice.invoke("favourite colour")] == [
            "My favourite colour is blue"
        ]
        assert "My favourite colour is red" in {
            d.page_content for d in for_bob.invoke("favourite colour")
        }
        for query in ("favourite colour", "what pet does the user have", "red cat Tom"):
            assert {d.page_content for d in for_alice.invoke(query)} <= alice_texts, mode
            assert {d.page_content for d in for_bob.invoke(query)} <= bob_texts, mode
            assert root.invoke(query) == []  # the root namespace holds nothing


def test_namespace_given_as_list_is_accepted():
    with MemoryManager() as mm:
        mm.with_namespace(("team", "x")).store("k", "shared roadmap")
        retriever = AgentMemRetriever(memory=mm, namespace=["team", "x"])
        assert retriever.namespace == ("team", "x")
        assert [d.id for d in retriever.invoke("roadmap")] == ["k"]


# -- filters and per-call options -----------------------------------------------------------------------------


def test_filter_by_tags_and_metadata_with_a_manager():
    with MemoryManager() as mm:
        mm.store("a", "project status report", tags=["work", "q1"], metadata={"author": "ann"})
        mm.store("b", "project status update", tags=["work"], metadata={"author": "bob"})
        mm.store("c", "project status draft", tags=["home"], metadata={"author": "ann"})
        retriever = AgentMemRetriever(memory=mm, k=10, filter={"tags": ["work"]})
        assert {d.id for d in retriever.invoke("project status")} == {"a", "b"}
        assert {d.id for d in retriever.invoke("project status", filter={"author": "ann"})} == {
            "a",
            "c",
        }
        assert [
            d.id
            for d in retriever.invoke("project status", filter={"tags": ["work"], "author": "ann"})
        ] == ["a"]
        assert {d.id for d in retriever.invoke("project status", filter=None)} == {"a", "b", "c"}
        assert retriever.invoke("project status", filter={"author": "zed"}) == []


@pytest.mark.parametrize("k", [1, 3])
def test_filter_on_a_plain_memory_fetches_more_until_k_hits_pass(k):
    with Memory(capacity=None) as memory:
        for i in range(40):
            memory.store(f"n{i:02d}", f"meeting notes number {i}", metadata={"pick": i >= 37})
        docs = AgentMemRetriever(memory=memory, k=k, filter={"pick": True}).invoke("meeting notes")
    assert len(docs) == k
    assert all(d.metadata["pick"] is True and d.id in {"n37", "n38", "n39"} for d in docs)


def test_k_and_mode_can_be_overridden_per_call(semantic_manager):
    semantic_manager.store_many(DOCS, "long_term")
    retriever = AgentMemRetriever(memory=semantic_manager, k=1, mode="keyword")
    assert len(retriever.invoke("the", k=3)) <= 3
    assert len(retriever.invoke("puppy playing outside", k=3, mode="semantic")) == 3
    assert retriever.invoke("puppy playing outside") == []  # constructor settings are unchanged


async def test_ainvoke_matches_invoke_and_searches_in_a_worker_thread(monkeypatch):
    with MemoryManager() as mm:
        mm.store_many({"a": "alpha centauri star", "b": "beta star cluster"}, "long_term")
        retriever = AgentMemRetriever(memory=mm, k=2)
        threads: list[threading.Thread] = []
        search = mm.search

        def recording_search(*args, **kwargs):
            threads.append(threading.current_thread())
            return search(*args, **kwargs)

        monkeypatch.setattr(mm, "search", recording_search)
        sync_docs = retriever.invoke("star")
        async_docs, _ = await asyncio.gather(retriever.ainvoke("star"), asyncio.sleep(0))
        batch = await retriever.abatch(["alpha", "cluster"])
    assert async_docs == sync_docs and {d.id for d in sync_docs} == {"a", "b"}
    assert [[d.id for d in docs] for docs in batch] == [["a"], ["b"]]
    assert threads[0] is threading.main_thread()
    assert all(t is not threading.main_thread() for t in threads[1:])


def test_reopened_manager_serves_the_same_memories(tmp_path):
    with MemoryManager(storage_path=tmp_path / "p", embedder="default") as mm:
        mm.store_many(DOCS, "long_term")
    with MemoryManager(storage_path=tmp_path / "p", embedder="default") as mm:
        [doc] = AgentMemRetriever(memory=mm, k=1, mode="semantic").invoke(
            "airplane journey in Japan"
        )
    assert doc.id == "travel"


# -- bad input ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be a positive int, got 0"),
        ({"k": -2}, "got -2"),
        ({"k": True}, "got True"),
        ({"k": "3"}, "got '3'"),
        ({"mode": "fuzzy"}, "got 'fuzzy'"),
        ({"mode": "semantic"}, "mode='semantic' needs an embedder"),
        ({"mode": "hybrid"}, "mode='hybrid' needs an embedder"),
        ({"namespace": ("user", "")}, "('user', '')"),
        ({"namespace": "a//b"}, "'a//b'"),
        ({"namespace": ""}, "got ''"),
        ({"namespace": 7}, "got 7"),
        ({"namespace": ("a/b",)}, "('a/b',)"),
        ({"filter": "tags"}, "filter must be a dict"),
        ({"filter": {"tags": "work"}}, "filter['tags'] must be a list of str, got 'work'"),
    ],
)
def test_bad_constructor_arguments_raise_a_clear_error(kwargs, message):
    with MemoryManager() as mm, pytest.raises(InvalidArgumentError) as caught:
        AgentMemRetriever(memory=mm, **kwargs)
    assert message in str(caught.value)


def test_bad_memory_and_namespace_on_a_plain_memory():
    with pytest.raises(InvalidArgumentError, match="got str"):
        AgentMemRetriever(memory="memories")
    with Memory() as memory, pytest.raises(InvalidArgumentError, match="needs a MemoryManager"):
        AgentMemRetriever(memory=memory, namespace="user/u1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "got 0"),
        ({"k": 2.5}, "got 2.5"),
        ({"mode": "vector"}, "got 'vector'"),
        ({"filter": ["a"]}, "filter must be a dict"),
        ({"top_k": 3}, "unknown search options ['top_k']"),
    ],
)
def test_bad_per_call_options_raise_a_clear_error(kwargs, message):
    with MemoryManager() as mm:
        retriever = AgentMemRetriever(memory=mm)
        with pytest.raises(InvalidArgumentError) as caught:
            retriever.invoke("anything", **kwargs)
    assert message in str(caught.value)


async def test_bad_per_call_options_raise_in_async_too():
    with MemoryManager() as mm, pytest.raises(InvalidArgumentError, match="got 0"):
        await AgentMemRetriever(memory=mm).ainvoke("anything", k=0)


def test_a_retriever_beside_a_chat_history_in_one_namespace_returns_memories_only(tmp_path):
    from langchain_core.messages import AIMessage, HumanMessage

    from langchain_agentmem import AgentMemChatMessageHistory

    mm = MemoryManager(storage_path=tmp_path / "m")
    try:
        history = AgentMemChatMessageHistory("s1", manager=mm, namespace="user/u1")
        history.add_messages(
            [HumanMessage("my dog is called Rex"), AIMessage("Rex is a nice dog name")]
        )
        user = mm.with_namespace("user/u1")
        user.store("dog", "The user's dog is a beagle called Rex", memory_type="long_term")
        user.store(  # a history written before histories were marked: left out by its shape
            "chat_history:old",
            {"session_id": "old", "messages": [{"type": "human", "data": {"content": "Rex"}}]},
        )
        retriever = AgentMemRetriever(memory=mm, namespace="user/u1", k=5)
        docs = retriever.invoke("Rex dog")
        assert [d.id for d in docs] == ["dog"]
        assert all('"messages"' not in d.page_content for d in docs)
        assert [d.id for d in retriever.invoke("Rex dog", memory_types=["short_term"])] == []
        with_chat = AgentMemRetriever(
            memory=mm, namespace="user/u1", k=5, include_chat_history=True
        )
        assert {d.id for d in with_chat.invoke("Rex dog")} == {
            "dog",
            history.key,
            "chat_history:old",
        }
        long_only = AgentMemRetriever(
            memory=mm, namespace="user/u1", memory_types=["long_term"], include_chat_history=True
        )
        assert [d.metadata["tier"] for d in long_only.invoke("Rex dog")] == ["long_term"]
    finally:
        mm.close()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"memory_types": "long_term"}, "memory_types must be a list"),
        ({"memory_types": ["mid_term"]}, "mid_term"),
        ({"memory_types": []}, "at least one tier"),
        ({"include_chat_history": "yes"}, "include_chat_history"),
    ],
)
def test_memory_types_and_include_chat_history_are_checked(options, match):
    mm = MemoryManager()
    with pytest.raises(InvalidArgumentError, match=match):
        AgentMemRetriever(memory=mm, **options)
    with pytest.raises(InvalidArgumentError, match="needs a MemoryManager"):
        AgentMemRetriever(memory=Memory(), memory_types=["long_term"])
    mm.close()
