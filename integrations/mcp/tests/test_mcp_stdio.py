"""The server as a real subprocess over stdio, driven by the MCP SDK's own ClientSession."""

from __future__ import annotations

import json

import pytest
from mcp.shared.exceptions import McpError
from mcp_helpers import FACTS, QUESTION, call, stats, stdio_session, text

from agentmem_mcp.server import TOOL_NAMES


async def test_a_session_lists_remembers_searches_by_meaning_recalls_and_forgets(tmp_path):
    async with stdio_session(tmp_path / "store") as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert tuple(tools) == TOOL_NAMES
        remember = tools["remember"].inputSchema
        assert remember["required"] == ["content"]
        assert set(remember["properties"]) == {"content", "key", "tags", "ttl", "importance"}
        assert tools["search_memories"].inputSchema["properties"]["k"]["minimum"] == 1
        assert tools["recall"].annotations.readOnlyHint is True

        # Started, listed its tools and stored facts: the embedding model is not loaded yet.
        for key, fact in FACTS.items():
            assert await call(session, "remember", content=fact, key=key, tags=["ada"]) == {
                "key": key,
                "status": "created",
            }
        before = (await stats(session))["server"]
        assert before == {**before, "semantic_index_open": False, "heavy_modules_loaded": []}

        # By meaning: the question shares no word with the fact it is about.
        hits = await call(session, "search_memories", query=QUESTION, k=2)
        assert hits[0]["key"] == "diet" and hits[0]["content"] == FACTS["diet"]
        assert len(hits) == 2 and hits[0]["tags"] == ["ada"]
        after = (await stats(session))["server"]
        assert after["semantic_index_open"] is True and "torch" in after["heavy_modules_loaded"]

        pet = await call(session, "recall", key="pet")
        assert pet["content"] == FACTS["pet"] and pet["tags"] == ["ada"]
        resource = await session.read_resource("agentmem://memory/pet")  # type: ignore[arg-type]
        assert json.loads(resource.contents[0].text)["content"] == FACTS["pet"]  # type: ignore[union-attr]

        assert await call(session, "forget", key="pet") == {"key": "pet", "status": "forgotten"}
        assert await call(session, "forget", key="pet") == {"key": "pet", "status": "not_found"}
        missing = await session.call_tool("recall", {"key": "pet"})
        assert missing.isError and "KeyNotFoundError: no memory under key 'pet'" in text(missing)
        assert [
            h["key"]
            for h in await call(session, "search_memories", query="cat Miso", mode="keyword")
        ] == []

        # Without a key, the content is the key: the same fact twice is one memory.
        first = await call(session, "remember", content="Ada prefers tea to coffee", importance=0.9)
        again = await call(session, "remember", content="Ada prefers tea to coffee")
        assert first["key"] == again["key"] and (first["status"], again["status"]) == (
            "created",
            "updated",
        )
        newest = await call(session, "list_memories", limit=1)
        assert newest[0]["content"] == "Ada prefers tea to coffee"


BAD_CALLS = [
    (
        "remember",
        {"content": "x", "tags": [""]},
        "InvalidArgumentError: each tag must be a non-empty str",
    ),
    ("remember", {"content": "x", "key": "k\x00"}, "InvalidKeyError"),
    ("remember", {"content": "x", "ttl": -1}, "greater than 0"),
    ("remember", {"content": "x", "importance": 3}, "less than or equal to 1"),
    ("remember", {"key": "k"}, "content"),
    ("search_memories", {"query": "x", "k": 0}, "greater than or equal to 1"),
    ("search_memories", {"query": "x", "mode": "fuzzy"}, "mode"),
    ("recall", {"key": "nope"}, "KeyNotFoundError: no memory under key 'nope'"),
    ("list_memories", {"limit": 51}, "less than or equal to 50"),
    ("no_such_tool", {}, "Unknown tool"),
]


async def test_bad_arguments_are_tool_errors_with_the_message_and_the_server_goes_on(tmp_path):
    async with stdio_session(tmp_path / "store", "--no-semantic") as session:
        for tool, arguments, message in BAD_CALLS:
            result = await session.call_tool(tool, arguments)
            assert result.isError and message in text(result), (tool, arguments, text(result))
        assert await call(session, "list_memories") == []  # still serving, nothing was stored
        with pytest.raises(McpError, match="KeyNotFoundError"):
            await session.read_resource("agentmem://memory/nope")  # type: ignore[arg-type]
        no_model = await session.call_tool("search_memories", {"query": "x", "mode": "semantic"})
        assert no_model.isError and "embedder" in text(no_model)


async def test_a_second_session_on_the_same_storage_sees_the_first_ones_memories(tmp_path):
    async with stdio_session(tmp_path / "store") as first:
        for key, fact in FACTS.items():
            await call(first, "remember", content=fact, key=key)
        await call(first, "forget", key="home")
    async with stdio_session(tmp_path / "store") as second:
        assert (await call(second, "recall", key="pet"))["content"] == FACTS["pet"]
        assert sorted(m["key"] for m in await call(second, "list_memories")) == ["diet", "pet"]
        hits = await call(second, "search_memories", query="Miso", mode="keyword")
        assert [h["key"] for h in hits] == ["pet"]
        # Keyword work only: the model was never loaded.
        assert (await stats(second))["server"]["heavy_modules_loaded"] == []


async def test_agentmem_mcp_in_the_core_command_serves_the_same_store(tmp_path):
    async with stdio_session(tmp_path / "store", "--no-semantic", core_cli=True) as session:
        tools = await session.list_tools()
        assert sorted(t.name for t in tools.tools) == sorted(TOOL_NAMES)
        await call(session, "remember", content=FACTS["pet"], key="pet")
    # ... and the package's own command opens the same store
    async with stdio_session(tmp_path / "store", "--no-semantic") as again:
        assert (await call(again, "recall", key="pet"))["content"] == FACTS["pet"]
