"""AgentMemMemoryBlock inside llama-index's own Memory: flushed messages become memories, and are recalled."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from agentmem_plugin import InvalidArgumentError, MemoryManager
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import ChatMessage
from llama_index.core.llms.mock import MockLLMWithChatMemoryOfLastCall
from llama_index.core.memory import Memory

from agentmem_llamaindex import AgentMemMemoryBlock
from agentmem_llamaindex.memory_block import MEMORY_KEY_PREFIX, SOURCE


def _user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def _assistant(text: str) -> ChatMessage:
    return ChatMessage(role="assistant", content=text)


def _system_text(llm: MockLLMWithChatMemoryOfLastCall) -> str:
    messages = llm.last_chat_messages or []
    return "\n".join(m.content or "" for m in messages if m.role.value == "system")


def test_chat_engine_flushes_messages_into_the_manager_and_recalls_them(
    manager: MemoryManager,
    llm: MockLLMWithChatMemoryOfLastCall,
    llama_memory: Callable[..., Memory],
) -> None:
    block = AgentMemMemoryBlock(manager, k=2)
    # History above 0.5 * 60 = 30 words is flushed to the block in chunks of about 10 words.
    memory = llama_memory(
        session_id="s1",
        token_limit=60,
        chat_history_token_ratio=0.5,
        token_flush_size=10,
        memory_blocks=[block],
    )
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)

    engine.chat("My sister Ingrid lives in Bergen and teaches violin.")
    engine.chat("Please book a table for four people on Friday evening.")
    engine.chat("Also remind me to water the tomato plants tomorrow morning.")

    tiers = {key: manager.tier_of(key) for key in manager.keys()}  # before reads promote them
    stored = {manager.get_entry(k).value["content"]: manager.get_entry(k) for k in tiers}
    ingrid = stored["My sister Ingrid lives in Bergen and teaches violin."]
    assert ingrid.key.startswith(MEMORY_KEY_PREFIX)
    assert ingrid.value == {
        "role": "user",
        "content": "My sister Ingrid lives in Bergen and teaches violin.",
    }
    assert ingrid.metadata == {"source": SOURCE, "role": "user", "session_id": "s1"}
    assert tiers[ingrid.key] == "long_term"
    # Memory archived the flushed messages in its own store too (nothing lost there either).
    archived = [m.content for m in memory.get_all(status=None) if m.content]
    assert "My sister Ingrid lives in Bergen and teaches violin." in archived

    engine.chat("Where does Ingrid live?")

    assert "- user: My sister Ingrid lives in Bergen and teaches violin." in _system_text(llm)


async def test_recall_by_meaning_with_the_real_embedder(
    semantic_manager: MemoryManager, llama_memory: Callable[..., Memory]
) -> None:
    block = AgentMemMemoryBlock(semantic_manager, k=1, mode="semantic")
    await block.aput(
        [
            _user("I am allergic to peanuts."),
            _assistant("Noted."),
            _user("My car is a red hatchback."),
            _user("I work as a nurse on night shifts."),
        ],
        session_id="s1",
    )
    memory = llama_memory(session_id="s1", memory_blocks=[block])

    messages = await memory.aget(input="Which foods could make me ill?")

    system = messages[0]
    assert system.role.value == "system"
    assert "<agentmem_memories>" in (system.content or "")
    assert "- user: I am allergic to peanuts." in (system.content or "")
    assert "hatchback" not in (system.content or "")


async def test_aget_searches_for_the_latest_user_message(manager: MemoryManager) -> None:
    manager.store("a", "The user's dog is called Rex.", memory_type="long_term")
    manager.store("b", "The user's flat is on the third floor.", memory_type="long_term")
    block = AgentMemMemoryBlock(manager)

    text = await block.aget(
        [_user("tell me about my dog"), _assistant("about the third floor flat?")]
    )

    assert text == "- The user's dog is called Rex."
    assert await block.aget([]) == ""
    assert await block.aget([_user("zebra")]) == ""


async def test_the_same_flush_twice_stores_each_message_once(manager: MemoryManager) -> None:
    block = AgentMemMemoryBlock(manager)
    batch = [_user("I like jazz"), _assistant("Great choice"), _user("I like jazz")]

    await block.aput([m.model_copy() for m in batch], session_id="s1")
    keys = sorted(manager.keys())
    await block.aput([m.model_copy() for m in batch], session_id="s1")

    assert sorted(manager.keys()) == keys
    assert len(keys) == 2  # the repeated message has the same key
    await block.aput([_user("I like jazz")], session_id="s2")
    assert len(manager.keys()) == 3  # the same text in another session is another memory


async def test_per_batch_stores_one_memory_per_flush(manager: MemoryManager) -> None:
    block = AgentMemMemoryBlock(manager, per_message=False, tags=["chat"], memory_type="short_term")

    await block.aput([_user("I like jazz"), _assistant("Great choice")], session_id="s1")

    [key] = manager.keys()
    entry = manager.get_entry(key)
    assert entry.value == {
        "messages": [
            {"role": "user", "content": "I like jazz"},
            {"role": "assistant", "content": "Great choice"},
        ]
    }
    assert entry.metadata == {"source": SOURCE, "session_id": "s1", "message_count": 2}
    assert entry.tags == ("chat",)
    assert manager.tier_of(key) == "short_term"
    assert await block.aget([_user("jazz")]) == "- user: I like jazz\n  assistant: Great choice"


async def test_messages_without_text_are_skipped(manager: MemoryManager) -> None:
    block = AgentMemMemoryBlock(manager)
    await block.aput([ChatMessage(role="assistant", content=None), _user("   ")])
    assert manager.keys() == []


async def test_blocks_of_different_namespaces_do_not_see_each_other(manager: MemoryManager) -> None:
    alice = AgentMemMemoryBlock(manager, namespace="alice")
    bob = AgentMemMemoryBlock(manager, namespace=("bob",))

    await alice.aput([_user("my locker code is 4711")])

    assert await alice.aget([_user("locker code")]) == "- user: my locker code is 4711"
    assert await bob.aget([_user("locker code")]) == ""
    assert manager.keys() == []  # nothing in the root namespace
    assert alice.manager.namespace == "alice"


async def test_session_scoped_blocks_keep_memory_sessions_apart(
    manager: MemoryManager, llama_memory: Callable[..., Memory]
) -> None:
    block = AgentMemMemoryBlock(manager, namespace="team", session_scoped=True)
    await block.aput([_user("the deploy key rotates on Mondays")], session_id="s1")
    one = llama_memory(session_id="s1", memory_blocks=[block])
    two = llama_memory(session_id="s2", memory_blocks=[block])

    seen_by_one = await one.aget(input="when does the deploy key rotate?")
    seen_by_two = await two.aget(input="when does the deploy key rotate?")

    assert "the deploy key rotates on Mondays" in (seen_by_one[0].content or "")
    assert all("deploy key rotates" not in (m.content or "") for m in seen_by_two)
    assert manager.with_namespace(("team", "s1")).keys() != []
    assert manager.with_namespace("team").keys() == []


async def test_memory_truncates_the_block_when_over_the_token_limit(
    manager: MemoryManager, llama_memory: Callable[..., Memory]
) -> None:
    for i, fact in enumerate(["apples are red", "apples grow on trees", "apples make cider"]):
        manager.store(f"f{i}", fact, memory_type="long_term")
    block = AgentMemMemoryBlock(manager, k=3, priority=1)
    memory = llama_memory(session_id="s1", token_limit=12, memory_blocks=[block])

    # 3 words of input + 3 recalled facts of 4-5 words each: above the limit of 12.
    messages = await memory.aget(input="apples apples apples")

    content = messages[0].content or ""
    kept = [line for line in content.splitlines() if line.startswith("- ")]
    assert 0 < len(kept) < 3
    full = await block.aget([_user("apples apples apples")])
    assert kept == full.splitlines()[: len(kept)]  # the best-ranked items are kept


async def test_atruncate_drops_the_least_relevant_items_first(manager: MemoryManager) -> None:
    block = AgentMemMemoryBlock(manager)
    content = "- one two three\n- four five\n  six\n- seven"

    assert await block.atruncate(content, 1) == "- one two three\n- four five\n  six"
    assert await block.atruncate(content, 2) == "- one two three\n- four five\n  six"
    assert await block.atruncate(content, 3) == "- one two three"
    assert await block.atruncate(content, 100) is None


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"k": 0}, "0"),
        ({"mode": "fuzzy"}, "'fuzzy'"),
        ({"mode": "hybrid"}, "'hybrid'"),  # the manager has no embedder
        ({"memory_type": "forever"}, "'forever'"),
        ({"namespace": "a//b"}, "'a//b'"),
        ({"tags": [""]}, "''"),
        ({"ttl": -5}, "-5"),
        ({"filter": {"tags": "x"}}, "'x'"),
    ],
)
def test_bad_arguments_raise_an_error_naming_the_value(
    manager: MemoryManager, kwargs: dict[str, object], named: str
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        AgentMemMemoryBlock(manager, **kwargs)
    assert named in str(info.value)


def test_a_manager_is_required() -> None:
    with pytest.raises(InvalidArgumentError, match="got dict"):
        AgentMemMemoryBlock({})  # type: ignore[arg-type]
