"""One server process over streamable HTTP, driven by the SDK's client and by a LangGraph agent through
langchain-mcp-adapters (the same process serves both, so the embedding model loads once)."""

from __future__ import annotations

import socket
import warnings
from urllib.parse import urlsplit

import httpx
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_mcp_adapters.client import MultiServerMCPClient
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.warnings import LangGraphDeprecatedSinceV10
from mcp_helpers import (
    FACTS,
    QUESTION,
    ScriptedChatModel,
    call,
    http_server,
    http_session,
    last_tool_result,
    tool_call,
)

from agentmem_mcp import main
from agentmem_mcp.server import TOOL_NAMES


async def test_http_sessions_remember_search_by_meaning_recall_forget_and_share_the_store(http_url):
    async with http_session(http_url) as first:
        assert [t.name for t in (await first.list_tools()).tools] == list(TOOL_NAMES)
        for key, fact in FACTS.items():
            await call(first, "remember", content=fact, key=f"http-{key}")
        bad = await first.call_tool("remember", {"content": "x", "tags": [""]})
        assert bad.isError and "InvalidArgumentError" in bad.content[0].text  # type: ignore[union-attr]
    async with http_session(http_url) as second:  # another session, same server and store
        hits = await call(second, "search_memories", query=QUESTION, k=1)
        assert hits[0]["key"] == "http-diet"
        assert (await call(second, "recall", key="http-home"))["content"] == FACTS["home"]
        assert (await call(second, "forget", key="http-home"))["status"] == "forgotten"
        assert (await second.call_tool("recall", {"key": "http-home"})).isError


def test_http_refuses_another_host_header(http_url):
    response = httpx.post(http_url, headers={"Host": "attacker.example"}, json={}, timeout=10)
    assert response.status_code in (400, 403, 421)  # the SDK's DNS-rebinding protection on loopback


def test_the_announced_address_already_accepts_connections(tmp_path):
    """A client connecting the moment the address is printed is queued, never refused."""
    with http_server(tmp_path / "store", tmp_path / "server.log") as url:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port), timeout=30):
            pass
        assert httpx.post(url, json={}, timeout=30).status_code < 500


def test_http_refuses_a_non_loopback_address_without_allow_remote(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--storage", str(tmp_path / "store"), "--http", "0.0.0.0:0"])
    assert exit_.value.code == 2 and "--allow-remote" in capsys.readouterr().err
    assert not (tmp_path / "store").exists()


async def test_a_langgraph_agent_remembers_and_a_later_thread_finds_it_through_mcp_adapters(
    http_url,
):
    client = MultiServerMCPClient({"memory": {"transport": "streamable_http", "url": http_url}})
    tools = await client.get_tools()
    assert sorted(t.name for t in tools) == sorted(TOOL_NAMES)
    model = ScriptedChatModel(
        messages=iter(
            [
                tool_call("remember", "call-1", content=FACTS["diet"], key="agent-diet"),
                AIMessage(content="Noted."),
                tool_call("search_memories", "call-2", query=QUESTION, k=1),
                lambda messages: AIMessage(
                    content=f"You told me: {last_tool_result(messages)[0]['content']}"
                ),
            ]
        )
    )
    # langgraph 1.x points create_react_agent at langchain.agents.create_agent; the graph is the same.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LangGraphDeprecatedSinceV10)
        from langgraph.prebuilt import create_react_agent

        agent = create_react_agent(model, tools, checkpointer=InMemorySaver())
    assert sorted(model.bound_tools) == sorted(TOOL_NAMES)

    told = await agent.ainvoke(
        {"messages": [HumanMessage("Remember: " + FACTS["diet"])]},
        {"configurable": {"thread_id": "monday"}},
    )
    assert told["messages"][-1].content == "Noted."
    async with http_session(http_url) as session:  # stored on the server, not in the graph's state
        assert (await call(session, "recall", key="agent-diet"))["content"] == FACTS["diet"]

    later = await agent.ainvoke(
        {"messages": [HumanMessage(QUESTION)]}, {"configurable": {"thread_id": "friday"}}
    )
    assert len(later["messages"]) == 4  # a fresh thread: question, tool call, tool result, answer
    assert FACTS["diet"] in later["messages"][-1].content
