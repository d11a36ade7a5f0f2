"""Helpers of the MCP tests: the server as a real subprocess, the SDK's client, a FAKE scripted chat model."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult
from pydantic import Field

# Three facts and a question that shares no word with the one it is about.
FACTS = {
    "diet": "Ada is vegetarian and allergic to peanuts",
    "home": "Ada lives in Porto near the river",
    "pet": "Ada's cat is called Miso",
}
QUESTION = "what meals could I cook for her?"


def server_command(storage: Path, *extra: str) -> list[str]:
    """The server's command line: this interpreter running ``agentmem_mcp`` (= the ``agentmem-mcp`` script)."""
    return [sys.executable, "-m", "agentmem_mcp", "--storage", str(storage), *extra]


@asynccontextmanager
async def stdio_session(
    storage: Path, *extra: str, core_cli: bool = False
) -> AsyncIterator[ClientSession]:
    """A fresh server process over stdio and an initialized SDK ClientSession to it.

    *core_cli*: start it as ``agentmem mcp`` (the core package's command) instead of ``agentmem-mcp``.
    """
    command = server_command(storage, *extra)
    if core_cli:
        command = [sys.executable, "-m", "agentmem_plugin", "mcp", *command[3:]]
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def http_session(url: str) -> AsyncIterator[ClientSession]:
    """An initialized SDK ClientSession over streamable HTTP."""
    async with (
        streamable_http_client(url) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


@contextmanager
def http_server(storage: Path, log: Path, *extra: str) -> Iterator[str]:
    """Start ``agentmem-mcp --http 127.0.0.1:0`` as a subprocess; yield its URL; stop it."""
    with log.open("wb") as err:
        proc = subprocess.Popen(
            server_command(storage, "--http", "127.0.0.1:0", *extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            found = re.search(
                r"serving streamable HTTP on (http://\S+)", log.read_text(errors="replace")
            )
            if found:
                break
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "the HTTP server did not start"
            time.sleep(0.05)
        yield found.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def text(result: CallToolResult) -> str:
    """The text of a tool result."""
    return "".join(getattr(block, "text", "") for block in result.content)


def data(result: CallToolResult) -> Any:
    """A successful tool result's JSON."""
    assert not result.isError, text(result)
    return json.loads(text(result))


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    """Call *tool* and return its JSON (asserting it succeeded)."""
    return data(await session.call_tool(tool, arguments))


async def stats(session: ClientSession) -> dict[str, Any]:
    """The server's ``agentmem://stats`` resource."""
    result = await session.read_resource("agentmem://stats")  # type: ignore[arg-type]
    return json.loads(result.contents[0].text)  # type: ignore[union-attr]


Step = AIMessage | Callable[[Sequence[BaseMessage]], AIMessage]


class ScriptedChatModel(GenericFakeChatModel):
    """A FAKE chat model (langchain-core's GenericFakeChatModel) that plays a script of turns.

    Each turn is an ``AIMessage`` (with ``tool_calls`` to call tools) or a function of the conversation so far
    returning one, so a final answer can be written from what a tool returned. ``bind_tools`` records the tool
    schemas the model was given and returns the model itself.
    """

    bound_tools: list[str] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:  # type: ignore[override]
        self.bound_tools = [getattr(t, "name", str(t)) for t in tools]
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        step = next(self.messages)
        message = step(messages) if callable(step) else step
        return ChatResult(generations=[ChatGeneration(message=message)])


def last_tool_result(messages: Sequence[BaseMessage]) -> Any:
    """The JSON of the last ToolMessage in *messages*."""
    tool_message = next(m for m in reversed(messages) if isinstance(m, ToolMessage))
    content = tool_message.content
    if isinstance(content, list):  # content blocks (langchain-mcp-adapters)
        content = "".join(b["text"] if isinstance(b, dict) else str(b) for b in content)
    return json.loads(content)


def tool_call(name: str, call_id: str, **args: Any) -> AIMessage:
    """An AIMessage that calls one tool."""
    return AIMessage(
        content="", tool_calls=[{"name": name, "args": args, "id": call_id, "type": "tool_call"}]
    )
