"""Serialization like LlamaIndex's own memories: to_dict/from_dict, pickle, a FunctionAgent's reused Context.

Copies reconnect to the same storage from their ``connection`` settings (SQLite directories in tmp_path, and the
Redis + PostgreSQL servers of the test machine); where a copy could not reconnect, serializing raises a typed
SerializationError and the original keeps working.
"""

from __future__ import annotations

import pickle
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from agentmem_plugin import InvalidArgumentError, MemoryManager
from agentmem_plugin.errors import SerializationError
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context
from workflows.context.state_store import UnserializableKeyWarning

from agentmem_llamaindex import AgentMemChatMemory, AgentMemMemoryBlock

REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = "postgresql://127.0.0.1:5432/test"


def _msg(role: str, text: str) -> ChatMessage:
    return ChatMessage(role=role, content=text)


def _texts(messages: Sequence[ChatMessage]) -> list[str | None]:
    return [m.content for m in messages]


# -- AgentMemChatMemory ---------------------------------------------------------------------------------------


def test_chat_memory_to_dict_from_dict_reconnects_to_the_same_messages(tmp_path: Path) -> None:
    with AgentMemChatMemory.from_defaults(storage_path=tmp_path / "s", session_id="u1") as memory:
        memory.put_messages([_msg("user", "hello"), _msg("assistant", "hi there")])
        data = memory.to_dict()
        assert data["connection"] == {"storage_path": str(tmp_path / "s")}
        copy = AgentMemChatMemory.from_dict(data)
        assert _texts(copy.get_all()) == ["hello", "hi there"]
        copy.put(_msg("user", "written through the copy"))
        assert _texts(memory.get_all())[-1] == "written through the copy"
        again = AgentMemChatMemory.from_dict(copy.to_dict())
        assert again.manager is copy.manager  # one reconnected manager per settings and process


def test_chat_memory_pickles_and_keeps_its_settings(tmp_path: Path) -> None:
    with AgentMemChatMemory.from_defaults(
        storage_path=tmp_path / "s", session_id="u2", token_limit=7, tokenizer_fn=str.split
    ) as memory:
        memory.put(_msg("user", "one two three"))
        copy = pickle.loads(pickle.dumps(memory))
        assert isinstance(copy, AgentMemChatMemory)
        assert (copy.session_id, copy.token_limit, copy.tokenizer_fn) == ("u2", 7, str.split)
        assert _texts(copy.get_all()) == ["one two three"]
        copy.put(_msg("assistant", "four"))
        assert _texts(memory.get_all()) == ["one two three", "four"]


def test_chat_memory_over_a_directory_manager_passed_in_reads_its_settings(
    manager: MemoryManager,
) -> None:
    memory = AgentMemChatMemory(manager=manager.with_namespace("team"), session_id="s")
    memory.put(_msg("user", "in the team namespace"))
    assert memory.connection == {"storage_path": str(manager.storage_path), "namespace": "team"}
    copy = AgentMemChatMemory.from_dict(memory.to_dict())
    assert copy.namespace == "team/s"
    assert _texts(copy.get_all()) == ["in the team namespace"]


def test_chat_memory_over_an_in_memory_manager_passed_in_refuses_to_serialize() -> None:
    mm = MemoryManager()
    memory = AgentMemChatMemory(manager=mm, session_id="s")
    memory.put(_msg("user", "kept only in this process"))
    with pytest.raises(SerializationError, match="cannot be serialized"):
        memory.to_dict()
    with pytest.raises(SerializationError, match="storage_path"):
        pickle.dumps(memory)
    with pytest.raises(SerializationError):
        memory.to_json()
    assert _texts(memory.get_all()) == ["kept only in this process"]  # the original still works
    mm.close()


def test_an_in_memory_chat_memory_it_owns_carries_its_messages(tmp_path: Path) -> None:
    memory = AgentMemChatMemory.from_defaults(session_id="s")  # its own in-memory manager
    memory.put_messages([_msg("user", "a"), _msg("assistant", "b")])
    data = memory.to_dict()
    assert data["connection"] is None
    assert [m["blocks"][0]["text"] for m in data["chat_history"]] == ["a", "b"]
    for copy in (AgentMemChatMemory.from_dict(data), pickle.loads(pickle.dumps(memory))):
        assert _texts(copy.get_all()) == ["a", "b"]
        copy.put(
            _msg("user", "only in the copy")
        )  # a separate in-memory store, like ChatMemoryBuffer's copy
        copy.close()
    assert _texts(memory.get_all()) == ["a", "b"]
    memory.close()


def test_chat_memory_on_redis_and_postgres_reconnects_from_the_urls() -> None:
    session = f"ser-{uuid.uuid4().hex[:12]}"
    memory = AgentMemChatMemory.from_defaults(
        session_id=session, short_term=REDIS, long_term=POSTGRES
    )
    try:
        memory.put(_msg("user", "on the servers"))
        data = memory.to_dict()
        assert data["connection"] == {"short_term": REDIS, "long_term": POSTGRES}
        copy = pickle.loads(pickle.dumps(AgentMemChatMemory.from_dict(data)))
        assert _texts(copy.get_all()) == ["on the servers"]
    finally:
        memory.reset()
        memory.close()


def test_a_server_manager_passed_in_needs_its_connection_given() -> None:
    mm = MemoryManager(short_term=REDIS, long_term=POSTGRES)
    session = f"ser-{uuid.uuid4().hex[:12]}"
    try:
        bare = AgentMemChatMemory(manager=mm, session_id=session)
        with pytest.raises(SerializationError):
            bare.to_dict()  # its URLs cannot be read off the manager
        told = AgentMemChatMemory(
            manager=mm, session_id=session, connection={"short_term": REDIS, "long_term": POSTGRES}
        )
        told.put(_msg("user", "hi"))
        assert _texts(AgentMemChatMemory.from_dict(told.to_dict()).get_all()) == ["hi"]
        told.reset()
    finally:
        mm.close()


@pytest.mark.parametrize(
    ("connection", "match"),
    [
        ("/tmp/x", "must be a dict"),
        ({"storage_path": "/tmp/x", "password": "p"}, "unknown connection settings"),
        ({"storage_path": 3}, "non-empty str"),
        ({"storage_path": "/tmp/x", "embedder": "openai"}, "only be 'default'"),
        ({"namespace": "a"}, "names no durable storage"),
    ],
)
def test_bad_connection_settings_are_typed_errors(
    manager: MemoryManager, connection: object, match: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        AgentMemChatMemory(manager=manager, session_id="s", connection=connection)
    with pytest.raises(InvalidArgumentError, match=match):
        AgentMemMemoryBlock(manager, connection=connection)


# -- AgentMemMemoryBlock ----------------------------------------------------------------------------------------


async def test_memory_block_round_trips_and_recalls_through_the_copy(
    manager: MemoryManager, llama_memory: Any
) -> None:
    manager.with_namespace("u1").store(
        "fact", "The user keeps bees on the roof", memory_type="long_term"
    )
    block = AgentMemMemoryBlock(manager, namespace="u1", k=2)
    data = block.to_dict()
    assert data["connection"] == {"storage_path": str(manager.storage_path)}
    question = [_msg("user", "what about the bees?")]
    for copy in (AgentMemMemoryBlock.from_dict(data), pickle.loads(pickle.dumps(block))):
        assert copy.namespace == "u1" and copy.k == 2
        assert await copy.aget(question) == "- The user keeps bees on the roof"
    memory = llama_memory(session_id="s1", memory_blocks=[block])
    (restored,) = pickle.loads(pickle.dumps(memory.memory_blocks))  # how Memory pickles its blocks
    assert await restored.aget(question) == "- The user keeps bees on the roof"


def test_memory_block_over_an_in_memory_manager_refuses_to_serialize() -> None:
    mm = MemoryManager()
    block = AgentMemMemoryBlock(mm)
    with pytest.raises(SerializationError, match="AgentMemMemoryBlock cannot be serialized"):
        block.to_dict()
    with pytest.raises(SerializationError):
        pickle.dumps(block)
    with pytest.raises(InvalidArgumentError, match="needs a manager"):
        AgentMemMemoryBlock()
    mm.close()


# -- a FunctionAgent over several turns with one reused Context ---------------------------------------------


class ScriptedLLM:
    """A scripted tool-calling FAKE LLM: saves a note when asked to remember, else answers from the history.

    It records the messages of every call, so the test can check what the agent's memory gave it.
    """

    def __init__(self) -> None:
        self.calls: list[list[ChatMessage]] = []

    def __call__(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        self.calls.append(list(messages))
        last = messages[-1]
        if last.role == MessageRole.TOOL:
            return ChatMessage(role="assistant", content=f"Noted: {last.content}")
        text = last.content or ""
        if text.startswith("remember "):
            call = ToolCallBlock(
                tool_call_id=f"call-{len(self.calls)}",
                tool_name="save_note",
                tool_kwargs={"note": text.removeprefix("remember ")},
            )
            return ChatMessage(role="assistant", blocks=[call])
        earlier = [m.content for m in messages[:-1] if m.role == MessageRole.USER]
        return ChatMessage(role="assistant", content=f"You told me before: {earlier}")


def _agent(script: ScriptedLLM, notes: list[str]) -> FunctionAgent:
    def save_note(note: str) -> str:
        """Save a note about the user."""
        notes.append(note)
        return f"saved {note!r}"

    return FunctionAgent(
        tools=[FunctionTool.from_defaults(save_note)],
        llm=MockFunctionCallingLLM(response_generator=script),
        system_prompt="You are a helpful assistant.",
    )


# workflows inspects the agent with inspect.getmembers, touching pydantic attributes deprecated on instances
@pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")
async def test_function_agent_reuses_its_context_over_several_turns(tmp_path: Path) -> None:
    script, notes = ScriptedLLM(), []
    agent = _agent(script, notes)
    memory = AgentMemChatMemory.from_defaults(
        storage_path=tmp_path / "agent", session_id="alice", tokenizer_fn=str.split
    )
    ctx = Context(agent)
    first = await agent.run("remember I am allergic to peanuts", ctx=ctx, memory=memory)
    assert str(first) == "Noted: saved 'I am allergic to peanuts'"
    second = await agent.run("what do you know?", ctx=ctx, memory=memory)
    assert str(second) == "You told me before: ['remember I am allergic to peanuts']"
    third = await agent.run("and now?", ctx=ctx)  # the memory comes from the Context's state
    assert str(third) == (
        "You told me before: ['remember I am allergic to peanuts', 'what do you know?']"
    )
    assert notes == ["I am allergic to peanuts"]
    stored = memory.get_all()  # every turn went to the same storage, through the reconnected copies
    assert [m.role.value for m in stored] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    # the Context itself serializes and comes back in another "process" (a fresh Context from its dict)
    restored = Context.from_dict(agent, ctx.to_dict())
    fourth = await agent.run("last one", ctx=restored)
    assert "'and now?'" in str(fourth)
    assert len(memory.get_all()) == 10
    memory.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning:inspect")
async def test_function_agent_with_an_unserializable_memory_warns_and_keeps_working() -> None:
    script, notes = ScriptedLLM(), []
    agent = _agent(script, notes)
    mm = MemoryManager()
    memory = AgentMemChatMemory(manager=mm, session_id="bob", tokenizer_fn=str.split)
    ctx = Context(agent)
    await agent.run("remember I like tea", ctx=ctx, memory=memory)
    # the typed error makes the workflow skip the memory key (its documented fallback) instead of
    # rebuilding a broken object; passing memory= again keeps the conversation going
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answer = await agent.run("what do you know?", ctx=ctx, memory=memory)
    skipped = [w for w in caught if issubclass(w.category, UnserializableKeyWarning)]
    assert skipped and "memory" in str(skipped[0].message)
    assert str(answer) == "You told me before: ['remember I like tea']"
    mm.close()
