"""Memory tools for agents: schemas, results, errors returned to the model, namespaces from the config, and a
LangGraph agent (driven by a FAKE scripted chat model) that remembers in one thread and finds it in a later one."""

from __future__ import annotations

import doctest
import json
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from agentmem_plugin import MemoryManager
from agentmem_plugin.errors import InvalidArgumentError
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.warnings import LangGraphDeprecatedSinceV10
from pydantic import Field

import langchain_agentmem
from langchain_agentmem import create_memory_tools
from langchain_agentmem import tools as tools_module

NAMES = ["remember", "search_memories", "recall", "forget", "list_memories"]
DIET = "Ada is vegetarian and allergic to peanuts"
QUESTION = "what meals could I cook for her?"  # no word in common with DIET


class ScriptedChatModel(GenericFakeChatModel):
    """A FAKE chat model (langchain-core's GenericFakeChatModel) playing scripted turns.

    A turn is an AIMessage (with tool_calls to call tools) or a function of the conversation returning one, so an
    answer can be written from what a tool returned. ``bind_tools`` records the tool names and returns the model.
    """

    bound_tools: list[str] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        self.bound_tools = [t.name for t in tools]
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        step: AIMessage | Callable[[list[BaseMessage]], AIMessage] = next(self.messages)
        message = step(messages) if callable(step) else step
        return ChatResult(generations=[ChatGeneration(message=message)])


def tool_call(name: str, call_id: str, **args: Any) -> AIMessage:
    return AIMessage(
        content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}]
    )


def last_tool_json(messages: Sequence[BaseMessage]) -> Any:
    return json.loads(next(m for m in reversed(messages) if isinstance(m, ToolMessage)).content)


def as_call(name: str, **args: Any) -> dict[str, Any]:
    return {"name": name, "args": args, "id": "call-1", "type": "tool_call"}


@pytest.fixture
def manager():
    with MemoryManager() as mm:  # in memory, keyword search only
        yield mm


@pytest.fixture
def tools(manager):
    return {t.name: t for t in create_memory_tools(manager)}


def test_exported_and_documented():
    assert "create_memory_tools" in langchain_agentmem.__all__
    result = doctest.testmod(tools_module)
    assert result.attempted > 0 and result.failed == 0


def test_the_model_sees_typed_schemas_without_the_config(tools):
    assert list(tools) == NAMES
    remember = tools["remember"].tool_call_schema.model_json_schema()
    assert remember["required"] == ["content"]
    assert set(remember["properties"]) == {"content", "key", "tags", "ttl", "importance"}
    search = tools["search_memories"].tool_call_schema.model_json_schema()["properties"]
    assert search["k"]["minimum"] == 1 and search["k"]["maximum"] == 50
    assert "config" not in search
    assert all(t.description for t in tools.values())


def test_remember_search_recall_list_forget_as_compact_json(tools):
    assert tools["remember"].invoke(
        {"content": DIET, "key": "diet", "tags": ["food"], "importance": 0.9}
    ) == ('{"key":"diet","status":"created"}')
    auto = json.loads(tools["remember"].invoke({"content": "Ada lives in Porto"}))
    assert auto["key"].startswith("mem-") and auto["status"] == "created"
    assert (
        json.loads(tools["remember"].invoke({"content": "Ada lives in Porto"}))["status"]
        == "updated"
    )
    hits = json.loads(tools["search_memories"].invoke({"query": "vegetarian", "mode": "keyword"}))
    assert hits == [{"key": "diet", "content": DIET, "score": 1.0, "tags": ["food"]}]
    assert (
        json.loads(tools["search_memories"].invoke({"query": "vegetarian", "tags": ["other"]}))
        == []
    )
    diet = json.loads(tools["recall"].invoke({"key": "diet"}))
    assert (
        diet["content"] == DIET and diet["importance"] == 0.9 and diet["created"].endswith("+00:00")
    )
    assert [m["key"] for m in json.loads(tools["list_memories"].invoke({"limit": 1}))] == [
        auto["key"]
    ]
    assert json.loads(tools["forget"].invoke({"key": "diet"})) == {
        "key": "diet",
        "status": "forgotten",
    }
    assert json.loads(tools["forget"].invoke({"key": "diet"})) == {
        "key": "diet",
        "status": "not_found",
    }


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        (
            "remember",
            {"content": "x", "tags": [""]},
            "InvalidArgumentError: each tag must be a non-empty str",
        ),
        ("remember", {"content": "x", "key": "k\x00"}, "InvalidKeyError"),
        (
            "remember",
            {"content": "x", "ttl": -5},
            "InvalidArgumentError: ttl: Input should be greater than 0",
        ),
        ("remember", {"content": "   "}, "InvalidArgumentError: content must be a non-empty str"),
        ("remember", {"key": "k"}, "InvalidArgumentError: content: Field required"),
        (
            "search_memories",
            {"query": "x", "k": 0},
            "k: Input should be greater than or equal to 1",
        ),
        ("search_memories", {"query": "x", "mode": "fuzzy"}, "mode: Input should be"),
        ("search_memories", {"query": "x", "mode": "semantic"}, "needs an embedder"),
        ("recall", {"key": "nope"}, "KeyNotFoundError: no memory under key 'nope'"),
        ("list_memories", {"limit": 99}, "limit: Input should be less than or equal to 50"),
    ],
)
def test_errors_come_back_to_the_model_as_tool_errors(tools, manager, name, args, message):
    result = tools[name].invoke(as_call(name, **args))
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert message in result.content
    assert manager.keys() == []  # nothing stored


def test_a_failing_store_is_a_tool_error_not_an_exception(tools, manager, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(manager, "store", broken)
    result = tools["remember"].invoke(as_call("remember", content="x"))
    assert (
        result.status == "error" and result.content == "internal error (RuntimeError): disk on fire"
    )


def test_a_namespace_template_is_filled_from_the_config_per_call(manager):
    remember, search, recall, _, recent = create_memory_tools(
        manager, namespace=("memories", "{user_id}")
    )
    alice, bob = ({"configurable": {"user_id": u}} for u in ("alice", "bob"))
    remember.invoke({"content": "Alice likes jazz", "key": "music"}, alice)
    assert json.loads(recall.invoke({"key": "music"}, alice))["content"] == "Alice likes jazz"
    assert recall.invoke(as_call("recall", key="music"), bob).status == "error"
    assert json.loads(recent.invoke({}, bob)) == []
    assert manager.with_namespace(("memories", "alice")).retrieve("music") == "Alice likes jazz"
    assert manager.retrieve("music") is None
    missing = search.invoke(as_call("search_memories", query="jazz"), {"configurable": {}})
    assert missing.status == "error" and "config['configurable']['user_id']" in missing.content
    escape = remember.invoke(
        as_call("remember", content="x"), {"configurable": {"user_id": "../bob"}}
    )
    assert escape.status == "error" and "must not contain '/'" in escape.content
    # A fixed namespace needs no config.
    (fixed_remember, *_) = create_memory_tools(manager, namespace="notes")
    fixed_remember.invoke({"content": "a note", "key": "n1"})
    assert manager.with_namespace("notes").retrieve("n1") == "a note"


@pytest.mark.parametrize("bad", [("a", ""), "", "a//b", 3])
def test_a_malformed_namespace_or_manager_is_refused_at_creation(manager, bad):
    with pytest.raises(InvalidArgumentError):
        create_memory_tools(manager, namespace=bad)


def test_not_a_manager_is_refused():
    with pytest.raises(InvalidArgumentError, match="MemoryManager or a directory"):
        create_memory_tools(42)  # type: ignore[arg-type]


def test_a_stategraph_with_a_toolnode_runs_the_tools(manager):
    tools = create_memory_tools(manager, namespace=("memories", "{user_id}"))
    model = ScriptedChatModel(
        messages=iter(
            [
                tool_call("remember", "c1", content="Ada's cat is called Miso", key="pet"),
                AIMessage(content="Noted."),
            ]
        )
    )
    bound = model.bind_tools(tools)

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [bound.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode(tools))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    graph = builder.compile()
    out = graph.invoke(
        {"messages": [HumanMessage("My cat is Miso")]}, {"configurable": {"user_id": "ada"}}
    )
    assert [type(m).__name__ for m in out["messages"]] == [
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert manager.with_namespace("memories/ada").retrieve("pet") == "Ada's cat is called Miso"


def test_a_react_agent_remembers_and_a_later_thread_finds_it_by_meaning(tmp_path):
    tools = create_memory_tools(tmp_path / "memory", namespace=("memories", "{user_id}"))
    model = ScriptedChatModel(
        messages=iter(
            [
                tool_call("remember", "c1", content=DIET, key="diet"),
                AIMessage(content="Noted."),
                tool_call("search_memories", "c2", query=QUESTION, k=1),
                lambda messages: AIMessage(
                    content=f"You told me: {last_tool_json(messages)[0]['content']}"
                ),
            ]
        )
    )
    # langgraph 1.x points create_react_agent at langchain.agents.create_agent; the graph is the same.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangGraphDeprecatedSinceV10)
        from langgraph.prebuilt import create_react_agent

        agent = create_react_agent(model, tools, checkpointer=InMemorySaver())
    assert model.bound_tools == NAMES

    first = {"configurable": {"thread_id": "monday", "user_id": "ada"}}
    agent.invoke({"messages": [HumanMessage("Remember: " + DIET)]}, first)
    later = {"configurable": {"thread_id": "friday", "user_id": "ada"}}
    out = agent.invoke({"messages": [HumanMessage(QUESTION)]}, later)

    assert len(out["messages"]) == 4  # a fresh thread: question, tool call, tool result, answer
    assert out["messages"][-1].content == f"You told me: {DIET}"
    # Stored on disk, in Ada's namespace.
    with MemoryManager(storage_path=tmp_path / "memory") as reopened:
        assert reopened.with_namespace("memories/ada").retrieve("diet") == DIET
