"""AgentMemRetriever: nodes from MemoryManager.search, in a real RetrieverQueryEngine and chat engine."""

from __future__ import annotations

import pytest
from agentmem_plugin import InvalidArgumentError, MemoryManager
from llama_index.core.chat_engine import CondensePlusContextChatEngine
from llama_index.core.llms import ChatMessage, MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import QueryBundle, TextNode

from agentmem_llamaindex import AgentMemChatMemory, AgentMemRetriever


def test_query_engine_answers_from_a_stored_memory(manager: MemoryManager) -> None:
    manager.store(
        "trip",
        "The user flies to Oslo on the fifth of May.",
        memory_type="long_term",
        metadata={"source": "calendar"},
        tags=["travel"],
    )
    manager.store("pet", "The user has a cat named Miso.", memory_type="long_term")
    retriever = AgentMemRetriever(manager, similarity_top_k=2)
    engine = RetrieverQueryEngine.from_args(retriever, llm=MockLLM())  # MockLLM echoes its prompt

    response = engine.query("When does the user fly to Oslo?")

    top = response.source_nodes[0]
    assert isinstance(top.node, TextNode)
    assert top.node.id_ == "trip"
    assert top.node.text == "The user flies to Oslo on the fifth of May."
    assert top.node.metadata == {"source": "calendar", "tags": ["travel"], "tier": "long_term"}
    assert top.score is not None and top.score > 0
    # MockLLM echoes its prompt: the memory reached the LLM.
    assert "The user flies to Oslo on the fifth of May." in str(response)


def test_semantic_retrieval_finds_a_memory_sharing_no_words_with_the_query(
    semantic_manager: MemoryManager,
) -> None:
    semantic_manager.store_many(
        {
            "allergy": "I am allergic to peanuts.",
            "car": "My car is a red hatchback.",
            "job": "I work as a nurse on night shifts.",
        },
        memory_type="long_term",
    )
    retriever = AgentMemRetriever(semantic_manager, similarity_top_k=1, mode="semantic")
    query = "Which foods could make me ill?"
    assert not set(query.lower().strip("?").split()) & {"i", "am", "allergic", "to", "peanuts"}

    nodes = retriever.retrieve(query)

    assert [n.node.id_ for n in nodes] == ["allergy"]
    assert nodes[0].node.text == "I am allergic to peanuts."


def test_a_retriever_bound_to_one_namespace_never_returns_another_namespaces_memories(
    manager: MemoryManager,
) -> None:
    manager.with_namespace("alice").store(
        "color", "favourite color is green", memory_type="long_term"
    )
    manager.with_namespace("bob").store(
        "color", "favourite color is purple", memory_type="long_term"
    )
    manager.with_namespace("bob").store(
        "hobby", "favourite hobby is chess", memory_type="long_term"
    )

    alice = AgentMemRetriever(manager, namespace="alice", similarity_top_k=10)
    texts = [n.node.text for n in alice.retrieve("favourite color purple chess hobby")]

    assert texts == ["favourite color is green"]
    assert alice.namespace == "alice"
    bob = AgentMemRetriever(manager, namespace=("bob",), similarity_top_k=10)
    assert {n.node.text for n in bob.retrieve("favourite")} == {
        "favourite color is purple",
        "favourite hobby is chess",
    }


def test_namespace_is_taken_below_the_managers_own_namespace(manager: MemoryManager) -> None:
    user = manager.with_namespace(("user", "u1"))
    user.with_namespace("s1").store("k", "kiwi fruit", memory_type="long_term")  # views nest

    retriever = AgentMemRetriever(user, namespace="s1")

    assert retriever.namespace == "user/u1/s1"
    assert [n.node.id_ for n in retriever.retrieve("kiwi")] == ["k"]


def test_filter_and_memory_types_restrict_the_hits(manager: MemoryManager) -> None:
    manager.store(
        "a", "tea with milk", memory_type="long_term", tags=["drink"], metadata={"who": "ann"}
    )
    manager.store(
        "b", "tea with lemon", memory_type="long_term", tags=["drink"], metadata={"who": "ben"}
    )
    manager.store("c", "tea cake recipe", memory_type="short_term", tags=["food"])

    by_tag = AgentMemRetriever(manager, filter={"tags": ["drink"]}).retrieve("tea")
    by_meta = AgentMemRetriever(manager, filter={"who": "ben"}).retrieve("tea")
    short_only = AgentMemRetriever(manager, memory_types=["short_term"]).retrieve("tea")

    assert {n.node.id_ for n in by_tag} == {"a", "b"}
    assert [n.node.id_ for n in by_meta] == ["b"]
    assert [(n.node.id_, n.node.metadata["tier"]) for n in short_only] == [("c", "short_term")]


def test_values_that_are_not_strings_become_readable_text(manager: MemoryManager) -> None:
    manager.store("msg", {"role": "user", "content": "I moved to Porto"}, memory_type="long_term")
    manager.store("prefs", {"units": "metric", "porto": True}, memory_type="long_term")

    nodes = {n.node.id_: n.node.text for n in AgentMemRetriever(manager).retrieve("porto")}

    assert nodes["msg"] == "I moved to Porto"
    assert nodes["prefs"] == '{"porto": true, "units": "metric"}'


async def test_aretrieve_matches_retrieve(manager: MemoryManager) -> None:
    manager.store("x", "the launch code is blue falcon", memory_type="long_term")
    retriever = AgentMemRetriever(manager)

    nodes = await retriever.aretrieve(QueryBundle("blue falcon"))

    assert [n.node.id_ for n in nodes] == ["x"]
    assert [n.node.id_ for n in retriever.retrieve("blue falcon")] == ["x"]


def test_empty_query_finds_nothing(manager: MemoryManager) -> None:
    manager.store("x", "anything", memory_type="long_term")
    assert AgentMemRetriever(manager).retrieve("   ") == []


def test_condense_plus_context_chat_engine_uses_retriever_and_chat_memory(
    manager: MemoryManager,
) -> None:
    manager.with_namespace("s1").store(
        "wifi", "The office wifi password is orange-tractor-42.", memory_type="long_term"
    )
    retriever = AgentMemRetriever(manager, namespace="s1", similarity_top_k=2)
    chat = AgentMemChatMemory.from_defaults(
        manager=manager, session_id="s1", tokenizer_fn=str.split
    )
    engine = CondensePlusContextChatEngine.from_defaults(
        retriever,
        llm=MockLLM(),
        memory=chat,
        skip_condense=True,  # MockLLM echoes its prompt
    )

    response = engine.chat("What is the office wifi password?")

    assert [n.node.id_ for n in response.source_nodes] == ["wifi"]
    assert "orange-tractor-42" in str(response)  # the retrieved memory was in the LLM's prompt
    assert [m.role.value for m in chat.get_all()] == ["user", "assistant"]
    assert chat.get_all()[0].content == "What is the office wifi password?"


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"similarity_top_k": 0}, "0"),
        ({"similarity_top_k": True}, "True"),
        ({"mode": "fuzzy"}, "'fuzzy'"),
        ({"mode": "semantic"}, "'semantic'"),  # the manager has no embedder
        ({"filter": ["tags"]}, "['tags']"),
        ({"namespace": "a//b"}, "'a//b'"),
        ({"namespace": 7}, "7"),
        ({"memory_types": "long_term"}, "'long_term'"),
        ({"memory_types": ["mid_term"]}, "'mid_term'"),
    ],
)
def test_bad_arguments_raise_an_error_naming_the_value(
    manager: MemoryManager, kwargs: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        AgentMemRetriever(manager, **kwargs)  # type: ignore[arg-type]
    assert named in str(info.value)


def test_a_manager_is_required() -> None:
    with pytest.raises(InvalidArgumentError, match="MemoryManager, got str: 'not a manager'"):
        AgentMemRetriever("not a manager")  # type: ignore[arg-type]


def test_a_retriever_beside_a_chat_memory_returns_memories_not_chat_messages(
    manager: MemoryManager,
) -> None:
    chat = AgentMemChatMemory.from_defaults(manager=manager, session_id="alice")
    for i in range(6):  # more chat records about the query's words than the retriever returns
        chat.put(ChatMessage(role="user", content=f"my bike is red, message {i}"))
    view = manager.with_namespace(
        "alice"
    )  # the retriever searches the chat session's own namespace
    view.store("bike", "Alice rides a red bike to work.", memory_type="long_term")
    retriever = AgentMemRetriever(manager, namespace="alice", similarity_top_k=3)
    nodes = retriever.retrieve("red bike")
    assert [n.node.id_ for n in nodes] == ["bike"]
    everything = AgentMemRetriever(
        manager, namespace="alice", similarity_top_k=10, include_chat_history=True
    ).retrieve("red bike")
    assert {n.node.id_ for n in everything} >= {"bike", *view.keys("short_term")}
    assert len(everything) == 7
    with pytest.raises(InvalidArgumentError, match="include_chat_history"):
        AgentMemRetriever(manager, include_chat_history="no")  # type: ignore[arg-type]
