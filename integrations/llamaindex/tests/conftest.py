"""Fixtures: managers over real SQLite files in tmp_path, MockLLMs, and llama-index Memory objects that are closed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from agentmem_plugin import MemoryManager
from llama_index.core import Settings
from llama_index.core.llms import MockLLM
from llama_index.core.llms.mock import MockLLMWithChatMemoryOfLastCall
from llama_index.core.memory import Memory
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


@pytest.fixture(autouse=True)
def _no_remote_llm() -> Iterator[None]:
    """Make llama-index's global LLM a MockLLM, so nothing can fall back to OpenAI (restored afterwards)."""
    previous = Settings._llm
    Settings.llm = MockLLM(max_tokens=4)
    yield
    Settings._llm = previous


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[MemoryManager]:
    """A persistent manager without embedder (keyword search), in tmp_path."""
    mm = MemoryManager(storage_path=tmp_path / "store", embedder=None)
    yield mm
    mm.close()


@pytest.fixture
def semantic_manager(tmp_path: Path) -> Iterator[MemoryManager]:
    """A persistent manager with the real offline MiniLM embedder, in tmp_path (for tests where meaning matters)."""
    mm = MemoryManager(storage_path=tmp_path / "semantic", embedder="default")
    yield mm
    mm.close()


@pytest.fixture
def llm() -> MockLLMWithChatMemoryOfLastCall:
    """A MockLLM answering 'text text text' that records the messages of its last chat call."""
    return MockLLMWithChatMemoryOfLastCall(max_tokens=3)


@pytest_asyncio.fixture
async def llama_memory() -> AsyncIterator[Callable[..., Memory]]:
    """Build ``llama_index.core.memory.Memory`` objects whose in-memory SQL chat stores are disposed after the test.

    Memory's default chat store opens an aiosqlite connection that warns (ResourceWarning) when garbage
    collected unclosed; giving it our own engine lets the test dispose of it. An async fixture, so the test
    runs in pytest-asyncio's event loop: Memory's sync methods (``asyncio_run``) reuse that loop, which
    pytest-asyncio closes, instead of leaving a new unclosed one behind.
    """
    engines: list[AsyncEngine] = []

    def make(**kwargs: Any) -> Memory:
        engine = create_async_engine("sqlite+aiosqlite:///:memory:")
        engines.append(engine)
        kwargs.setdefault("tokenizer_fn", str.split)
        return Memory.from_defaults(async_engine=engine, **kwargs)

    yield make
    for engine in engines:
        await engine.dispose()
