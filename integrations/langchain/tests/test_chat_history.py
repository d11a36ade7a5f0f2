"""AgentMemChatMessageHistory: order, batching, per-session clear, persistence, namespaces, concurrency, errors."""

from __future__ import annotations

import threading

import pytest
from agentmem_plugin import MemoryManager
from agentmem_plugin.errors import IntegrityError, InvalidArgumentError, InvalidKeyError
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_agentmem import AgentMemChatMessageHistory

CONVERSATION = [
    SystemMessage("You are terse."),
    HumanMessage("What's 2+2?", id="h1"),
    AIMessage("", tool_calls=[{"name": "add", "args": {"a": 2, "b": 2}, "id": "call-1"}]),
    ToolMessage("4", tool_call_id="call-1"),
    AIMessage("4 ✓", response_metadata={"model": "fake"}),
]


def test_messages_round_trip_in_order():
    with AgentMemChatMessageHistory("s1") as history:
        assert history.messages == []
        history.add_messages(CONVERSATION[:2])
        history.add_messages(CONVERSATION[2:])
        assert history.messages == CONVERSATION
        history.add_user_message("and 3+3?")
        assert [m.content for m in history.messages[-2:]] == ["4 ✓", "and 3+3?"]


def test_add_messages_is_one_write_per_batch(monkeypatch):
    with MemoryManager() as mm:
        writes: list[str] = []
        store = mm.store
        monkeypatch.setattr(
            mm, "store", lambda key, *a, **kw: (writes.append(key), store(key, *a, **kw))
        )
        history = AgentMemChatMessageHistory("s1", manager=mm)
        history.add_messages(CONVERSATION)
        history.add_messages([])
        assert writes == ["chat_history:s1"]
        assert len(history.messages) == len(CONVERSATION)


def test_clear_removes_only_that_session():
    with MemoryManager() as mm:
        mm.store("unrelated", "keep me")
        one = AgentMemChatMessageHistory("one", manager=mm)
        two = AgentMemChatMessageHistory("two", manager=mm)
        one.add_messages([HumanMessage("first session")])
        two.add_messages([HumanMessage("second session")])
        one.clear()
        assert one.messages == []
        assert [m.content for m in two.messages] == ["second session"]
        assert mm.retrieve("unrelated") == "keep me"


def test_history_survives_reopening_the_store(tmp_path):
    with AgentMemChatMessageHistory(
        "s1", storage_path=tmp_path / "chat", namespace="user/u1"
    ) as history:
        history.add_messages(CONVERSATION)
    with AgentMemChatMessageHistory(
        "s1", storage_path=tmp_path / "chat", namespace="user/u1"
    ) as again:
        assert again.messages == CONVERSATION
        again.add_ai_message("later")
    with AgentMemChatMessageHistory(
        "s1", storage_path=tmp_path / "chat", namespace="user/u2"
    ) as other_user:
        assert other_user.messages == []  # same session id, another namespace
    with MemoryManager(storage_path=tmp_path / "chat") as mm:
        history = AgentMemChatMessageHistory("s1", manager=mm, namespace=("user", "u1"))
        assert [m.content for m in history.messages][-1] == "later"


def test_concurrent_writers_to_one_session_lose_nothing():
    with MemoryManager() as mm:

        def writer(n: int) -> None:
            history = AgentMemChatMessageHistory(
                "busy", manager=mm
            )  # a new object per writer, as chains do
            for i in range(10):
                history.add_messages([HumanMessage(f"{n}-{i}")])

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        contents = [m.content for m in AgentMemChatMessageHistory("busy", manager=mm).messages]
    assert sorted(contents) == sorted(f"{n}-{i}" for n in range(6) for i in range(10))
    for n in range(6):  # each writer's messages stay in its order
        assert [c for c in contents if c.startswith(f"{n}-")] == [f"{n}-{i}" for i in range(10)]


async def test_async_methods():
    with AgentMemChatMessageHistory("s1") as history:
        await history.aadd_messages(CONVERSATION[:2])
        assert await history.aget_messages() == CONVERSATION[:2]
        await history.aclear()
        assert await history.aget_messages() == []


def test_bad_input():
    with pytest.raises(InvalidKeyError, match="got ''"):
        AgentMemChatMessageHistory("")
    with pytest.raises(InvalidKeyError, match="got int"):
        AgentMemChatMessageHistory(42)
    with pytest.raises(InvalidArgumentError, match="memory_type must be one of"):
        AgentMemChatMessageHistory("s", memory_type="ram")
    with pytest.raises(InvalidArgumentError, match="'a//b'"):
        AgentMemChatMessageHistory("s", namespace="a//b")
    with AgentMemChatMessageHistory("s") as history:
        history.add_messages([HumanMessage("kept")])
        with pytest.raises(InvalidArgumentError, match="got str: 'not a message'"):
            history.add_messages([HumanMessage("dropped"), "not a message"])
        assert [m.content for m in history.messages] == ["kept"]


def test_a_foreign_value_under_the_session_key_is_reported():
    with MemoryManager() as mm:
        mm.store("chat_history:s", ["not", "a", "history"])
        with pytest.raises(IntegrityError, match="'chat_history:s' does not hold a chat history"):
            AgentMemChatMessageHistory("s", manager=mm).messages  # noqa: B018


def test_two_managers_on_one_directory_see_each_others_messages(tmp_path) -> None:
    """Regression: reads went through a per-process cache, so a second worker appended to a stale history."""
    from agentmem_plugin import MemoryManager

    from langchain_agentmem import AgentMemChatMessageHistory, AgentMemStore

    with MemoryManager(storage_path=tmp_path) as one, MemoryManager(storage_path=tmp_path) as two:
        first, second = (
            AgentMemChatMessageHistory("s", manager=one),
            AgentMemChatMessageHistory("s", manager=two),
        )
        first.add_user_message("m1")
        assert [m.content for m in second.messages] == ["m1"]
        second.add_user_message("m2")
        first.add_user_message("m3")
        assert [m.content for m in second.messages] == ["m1", "m2", "m3"]
        AgentMemStore(manager=one).mset([("k", 1)])
        assert AgentMemStore(manager=two).mget(["k"]) == [1]
        AgentMemStore(manager=two).mset([("k", 2)])
        assert AgentMemStore(manager=one).mget(["k"]) == [2]
        AgentMemStore(manager=two).mdelete(["k"])
        assert AgentMemStore(manager=one).mget(["k"]) == [None]
