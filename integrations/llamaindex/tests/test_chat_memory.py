"""AgentMemChatMemory: a llama-index BaseMemory per session, persistent, with ChatMemoryBuffer's token window."""

from __future__ import annotations

from pathlib import Path

import pytest
from agentmem_plugin import InvalidArgumentError, MemoryManager
from llama_index.core.base.llms.types import TextBlock
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import ChatMessage, MockLLM
from llama_index.core.llms.mock import MockLLMWithChatMemoryOfLastCall
from llama_index.core.memory import ChatMemoryBuffer

from agentmem_llamaindex import AgentMemChatMemory, AgentMemMemoryBlock


def _msg(role: str, text: str) -> ChatMessage:
    return ChatMessage(role=role, content=text)


HISTORY = [
    _msg("user", "one two three four"),
    _msg("assistant", "five six"),
    _msg("tool", "seven"),
    _msg("assistant", "eight nine ten"),
    _msg("user", "eleven twelve"),
    _msg("assistant", "thirteen fourteen fifteen sixteen"),
    _msg("user", "seventeen"),
]


@pytest.mark.parametrize("token_limit", [1, 2, 5, 7, 10, 14, 20, 100])
@pytest.mark.parametrize("initial", [0, 1])
def test_get_keeps_the_same_recent_window_as_chat_memory_buffer(
    manager: MemoryManager, token_limit: int, initial: int
) -> None:
    if initial > token_limit:
        pytest.skip("initial token count above the limit is an error (tested below)")
    ours = AgentMemChatMemory.from_defaults(
        manager=manager, token_limit=token_limit, tokenizer_fn=str.split, chat_history=HISTORY
    )
    reference = ChatMemoryBuffer.from_defaults(
        chat_history=HISTORY, token_limit=token_limit, tokenizer_fn=str.split
    )

    window = ours.get(initial_token_count=initial)

    assert window == reference.get(initial_token_count=initial)
    assert window == HISTORY[-len(window) :]  # a suffix: the most recent messages are kept
    assert ours.get_all() == HISTORY


def test_default_tokenizer_works_offline(manager: MemoryManager) -> None:
    # No tokenizer_fn: llama-index's tiktoken tokenizer, whose encoding ships with llama-index-core.
    memory = AgentMemChatMemory.from_defaults(manager=manager, token_limit=6)
    memory.put_messages([_msg("user", "alpha beta gamma delta"), _msg("user", "epsilon zeta")])
    assert [m.content for m in memory.get()] == ["epsilon zeta"]


def test_history_persists_across_reopen_with_roles_and_extras(tmp_path: Path) -> None:
    call = ChatMessage(
        role="assistant",
        blocks=[TextBlock(text="Checking the weather.")],
        additional_kwargs={
            "tool_calls": [{"id": "c1", "name": "weather", "args": {"city": "Oslo"}}]
        },
    )
    with AgentMemChatMemory.from_defaults(storage_path=tmp_path, session_id="s1") as memory:
        memory.put(_msg("user", "Weather in Oslo?"))
        memory.put(call)
        memory.put(_msg("tool", "4 degrees and rain"))

    with AgentMemChatMemory.from_defaults(storage_path=tmp_path, session_id="s1") as reopened:
        history = reopened.get_all()
        assert history == [
            _msg("user", "Weather in Oslo?"),
            call,
            _msg("tool", "4 degrees and rain"),
        ]
        reopened.put(_msg("user", "And tomorrow?"))  # numbering continues after the stored messages
        assert [m.content for m in reopened.get_all()][-2:] == [
            "4 degrees and rain",
            "And tomorrow?",
        ]

    with AgentMemChatMemory.from_defaults(storage_path=tmp_path, session_id="other") as other:
        assert other.get_all() == []


def test_reset_removes_only_that_sessions_history(manager: MemoryManager) -> None:
    a = AgentMemChatMemory.from_defaults(manager=manager, session_id="a")
    b = AgentMemChatMemory.from_defaults(manager=manager, session_id="b")
    a.put_messages([_msg("user", "a1"), _msg("assistant", "a2")])
    b.put_messages([_msg("user", "b1")])
    manager.with_namespace("a").store("fact", "a long-term fact", memory_type="long_term")

    a.reset()

    assert a.get_all() == []
    assert b.get_all() == [_msg("user", "b1")]
    assert manager.with_namespace("a").keys() == ["fact"]  # other memories of the session stay
    assert manager.namespaces() == ["a", "b"]


def test_set_replaces_the_history(manager: MemoryManager) -> None:
    memory = AgentMemChatMemory.from_defaults(manager=manager, session_id="s")
    memory.put_messages([_msg("user", f"m{i}") for i in range(5)])

    memory.set([_msg("user", "x"), _msg("assistant", "y")])
    assert memory.get_all() == [_msg("user", "x"), _msg("assistant", "y")]

    memory.set([_msg("user", f"n{i}") for i in range(4)])
    assert [m.content for m in memory.get_all()] == ["n0", "n1", "n2", "n3"]

    memory.set([])
    assert memory.get_all() == []
    assert manager.with_namespace("s").keys() == []


def test_messages_are_stored_as_json_memories_in_the_session_namespace(
    manager: MemoryManager,
) -> None:
    memory = AgentMemChatMemory.from_defaults(manager=manager, session_id="s")
    memory.put(_msg("user", "hello"))

    [key] = manager.with_namespace("s").keys()
    entry = manager.with_namespace("s").get_entry(key)
    assert key.startswith("chat:") and key[5:].isdigit() and len(key) == 25
    assert entry.value == _msg("user", "hello").model_dump(mode="json")
    assert entry.metadata == {"role": "user", "source": "llamaindex.chat_memory"}
    assert manager.keys() == []  # nothing in the root namespace
    assert memory.namespace == "s"


def test_history_survives_short_term_overflow(tmp_path: Path) -> None:
    mm = MemoryManager(short_term_limit=3, storage_path=tmp_path, embedder=None)
    try:
        memory = AgentMemChatMemory.from_defaults(manager=mm, session_id="s")
        sent = [_msg("user" if i % 2 == 0 else "assistant", f"message {i}") for i in range(8)]
        memory.put_messages(sent[:5])
        for message in sent[5:]:
            memory.put(message)

        assert memory.get_all() == sent
        # Reading promotes entries back into short-term memory; it neither reorders nor loses any.
        assert memory.get_all() == sent
    finally:
        mm.close()


async def test_async_twins(manager: MemoryManager) -> None:
    memory = AgentMemChatMemory.from_defaults(
        manager=manager, session_id="s", tokenizer_fn=str.split
    )

    await memory.aput(_msg("user", "one two"))
    await memory.aput_messages([_msg("assistant", "three"), _msg("user", "four five six")])
    assert [m.content for m in await memory.aget_all()] == ["one two", "three", "four five six"]
    memory.token_limit = 4
    assert [m.content for m in await memory.aget(initial_token_count=1)] == ["four five six"]
    await memory.aset([_msg("user", "only")])
    assert await memory.aget_all() == [_msg("user", "only")]
    await memory.areset()
    assert await memory.aget_all() == []


def test_simple_chat_engine_sees_the_history_and_a_new_engine_after_reopen(tmp_path: Path) -> None:
    llm = MockLLMWithChatMemoryOfLastCall(max_tokens=2)
    with AgentMemChatMemory.from_defaults(
        storage_path=tmp_path, session_id="u1", llm=llm
    ) as memory:
        engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
        engine.chat("My favourite number is 17.")
        engine.chat("What else?")
        sent = [m.content for m in llm.last_chat_messages or []]
        assert sent == ["My favourite number is 17.", "text text", "What else?"]

    llm2 = MockLLMWithChatMemoryOfLastCall(max_tokens=2)
    with AgentMemChatMemory.from_defaults(storage_path=tmp_path, session_id="u1") as memory:
        engine = SimpleChatEngine.from_defaults(llm=llm2, memory=memory)
        engine.chat("What is my favourite number?")
        assert (llm2.last_chat_messages or [])[0].content == "My favourite number is 17."
        assert len(engine.chat_history) == 6
        engine.reset()
        assert memory.get_all() == []


def test_from_defaults_takes_the_token_limit_from_the_llm(manager: MemoryManager) -> None:
    llm = MockLLM()
    memory = AgentMemChatMemory.from_defaults(manager=manager, llm=llm)
    assert memory.token_limit == int(llm.metadata.context_window * 0.75)
    assert AgentMemChatMemory.from_defaults(manager=manager).token_limit == 3000


def test_direct_construction_and_serialization(manager: MemoryManager) -> None:
    memory = AgentMemChatMemory(manager=manager, session_id="s", token_limit=10)
    memory.put(_msg("user", "hi"))
    assert memory.get() == [_msg("user", "hi")]
    assert memory.to_dict() == {
        "session_id": "s",
        "token_limit": 10,
        "memory_type": "short_term",
        "connection": {"storage_path": str(manager.storage_path)},
        "class_name": "AgentMemChatMemory",
    }
    copy = AgentMemChatMemory.from_dict(memory.to_dict())
    assert copy.get_all() == [_msg("user", "hi")]
    memory.close()  # a manager passed in is not closed
    (key,) = manager.with_namespace("s").keys()
    assert key.startswith("chat:") and key[5:].isdigit()


def test_chat_memory_and_memory_block_share_a_session_namespace(manager: MemoryManager) -> None:
    chat = AgentMemChatMemory.from_defaults(manager=manager, session_id="s")
    block = AgentMemMemoryBlock(manager, namespace="s")
    chat.put(_msg("user", "I collect stamps"))
    block.manager.store("memory:x", "collects stamps since 1999", memory_type="long_term")

    assert chat.get_all() == [_msg("user", "I collect stamps")]  # only chat: keys are history


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"session_id": "a/b"}, "'a/b'"),
        ({"session_id": ""}, "''"),
        ({"token_limit": 0}, "0"),
        ({"memory_type": "mid_term"}, "'mid_term'"),
        ({"colour": "blue"}, "'colour'"),
        ({"storage_path": "x"}, "storage_path"),
    ],
)
def test_bad_arguments_raise_an_error_naming_the_value(
    manager: MemoryManager, kwargs: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        AgentMemChatMemory.from_defaults(manager=manager, **kwargs)  # type: ignore[arg-type]
    assert named in str(info.value)


def test_bad_messages_are_refused_and_nothing_is_stored(manager: MemoryManager) -> None:
    memory = AgentMemChatMemory.from_defaults(manager=manager, session_id="s")
    memory.put(_msg("user", "kept"))

    with pytest.raises(InvalidArgumentError, match="got str: 'hello'"):
        memory.put("hello")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="got dict"):
        memory.put_messages([_msg("user", "fine"), {"role": "user"}])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="got 'not a list'"):
        memory.set("not a list")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="initial_token_count 5000"):
        memory.get(initial_token_count=5000)

    assert memory.get_all() == [_msg("user", "kept")]


def test_a_bad_session_id_fails_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="'bad/id'"):
        AgentMemChatMemory.from_defaults(
            storage_path=tmp_path, session_id="bad/id", chat_history=[_msg("user", "lost")]
        )
    with AgentMemChatMemory.from_defaults(storage_path=tmp_path, session_id="ok") as memory:
        assert memory.get_all() == []
        assert memory.manager.namespaces() == []  # no session holds anything


def test_two_memories_of_one_session_never_overwrite_each_other() -> None:
    """Regression: both objects picked max(seq) + 1 and replaced each other's messages."""
    from agentmem_plugin import MemoryManager
    from llama_index.core.llms import ChatMessage

    from agentmem_llamaindex import AgentMemChatMemory

    with MemoryManager() as manager:
        one = AgentMemChatMemory.from_defaults(manager=manager, session_id="s")
        two = AgentMemChatMemory.from_defaults(manager=manager, session_id="s")
        for i in range(20):
            one.put(ChatMessage(role="user", content=f"one {i}"))
            two.put(ChatMessage(role="user", content=f"two {i}"))
        contents = [m.content for m in one.get_all()]
        assert len(contents) == 40
        assert contents[:4] == ["one 0", "two 0", "one 1", "two 1"]
