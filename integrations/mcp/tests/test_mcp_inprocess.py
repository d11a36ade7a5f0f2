"""The server in this process, through the SDK's in-memory client session: failures, namespaces, the service."""

from __future__ import annotations

import doctest
import importlib

import pytest
from agentmem_plugin.errors import InvalidArgumentError
from mcp.shared.memory import create_connected_server_and_client_session
from mcp_helpers import call, text

import agentmem_mcp
from agentmem_mcp import MemoryService, create_server
from agentmem_mcp.server import TOOL_NAMES


def test_exports_are_pinned():
    assert agentmem_mcp.__all__ == ["MemoryService", "create_server", "main"]


@pytest.mark.parametrize("module", ["agentmem_mcp", "agentmem_mcp.service", "agentmem_mcp.server"])
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


async def test_a_failing_store_fails_each_call_and_never_ends_the_server(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / "memory.sqlite3").write_bytes(b"this is not a SQLite database" * 100)
    service = MemoryService(store, embedder=None)
    async with create_connected_server_and_client_session(create_server(service)) as session:
        for _ in range(2):
            result = await session.call_tool("remember", {"content": "x"})
            assert result.isError and "StoreCorruptError" in text(result)
        assert [t.name for t in (await session.list_tools()).tools] == list(TOOL_NAMES)
    service.close()


async def test_an_unexpected_exception_is_a_tool_error_and_the_next_call_works(
    tmp_path, monkeypatch
):
    service = MemoryService(tmp_path / "store", embedder=None)
    calls = []

    def broken(**kwargs):
        calls.append(kwargs)
        raise RuntimeError("boom")

    async with create_connected_server_and_client_session(create_server(service)) as session:
        monkeypatch.setattr(service, "recent", broken)
        result = await session.call_tool("list_memories", {})
        assert result.isError and "internal error (RuntimeError): boom" in text(result)
        monkeypatch.undo()
        assert await call(session, "list_memories") == []
    assert calls == [{"limit": 10}]
    service.close()


async def test_a_namespace_sees_only_its_own_memories(tmp_path):
    alice = MemoryService(tmp_path / "store", namespace="user/alice", embedder=None)
    bob = MemoryService(tmp_path / "store", namespace=("user", "bob"), embedder=None)
    async with create_connected_server_and_client_session(create_server(alice)) as session:
        await call(session, "remember", content="Alice likes jazz", key="music")
    async with create_connected_server_and_client_session(create_server(bob)) as session:
        assert await call(session, "list_memories") == []
        assert (await session.call_tool("recall", {"key": "music"})).isError
    assert alice.stats()["namespace"] == "user/alice"
    alice.close()
    bob.close()


def test_the_service_checks_its_arguments_before_storing(tmp_path):
    service = MemoryService(tmp_path / "store", embedder=None)
    for bad in (
        {"content": ""},
        {"content": 3},
        {"content": "x", "importance": True},
        {"content": "x", "importance": float("nan")},
        {"content": "x", "ttl": 0},
    ):
        with pytest.raises(InvalidArgumentError):
            service.remember(**bad)
    with pytest.raises(InvalidArgumentError, match="k must be an int"):
        service.search("x", k=True)
    assert service.recent() == []
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidArgumentError, match="storage must be a directory"):
        MemoryService(tmp_path / "file")
    service.close()


def test_remember_with_ttl_and_importance_is_recalled_with_them(tmp_path):
    service = MemoryService(tmp_path / "store", embedder=None)
    service.remember("A meeting at noon", key="meeting", ttl=3600, importance=0.8, tags=["work"])
    entry = service.recall("meeting")
    assert entry["importance"] == 0.8 and entry["tags"] == ["work"] and "expires" in entry
    assert service.search("meeting", mode="keyword", tags=["home"]) == []
    assert [h["key"] for h in service.search("meeting", mode="keyword", tags=["work"])] == [
        "meeting"
    ]
    service.close()


def test_the_readme_configs_are_json_and_name_real_options():
    import json
    import re
    from pathlib import Path

    from agentmem_mcp.cli import _parser

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    configs = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", readme, flags=re.DOTALL)]
    assert len(configs) == 3 and all("agentmem" in c["mcpServers"] for c in configs)
    options = {a for action in _parser()._actions for a in action.option_strings}
    named = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", readme))
    assert named <= options, named - options
