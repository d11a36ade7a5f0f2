"""LangChain's own standard test suites (langchain-tests), run unchanged against every class here.

Each fixture builds on real storage: SQLite files under tmp_path, Chroma for the vector index. The vector-store
suites use the suite's own FAKE embedding model (DeterministicFakeEmbedding), as the suite requires.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from agentmem_plugin import Memory, MemoryManager
from langchain_core.retrievers import BaseRetriever
from langchain_core.stores import BaseStore
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import (
    BaseStoreAsyncTests,
    BaseStoreSyncTests,
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

from langchain_agentmem import (
    AgentMemByteStore,
    AgentMemRetriever,
    AgentMemStore,
    AgentMemVectorStore,
)

NOTES = {
    f"note-{i}": f"agent memory note {i}: the agent remembers fact number {i}" for i in range(6)
}

# -- retriever ------------------------------------------------------------------------------------------------


class TestRetrieverOverManager(RetrieversIntegrationTests):
    """Over a persistent MemoryManager: notes in long-term and short-term, keyword search across tiers."""

    @pytest.fixture(autouse=True)
    def _memory(self, tmp_path) -> Iterator[None]:  # type: ignore[no-untyped-def]
        with MemoryManager(storage_path=tmp_path / "mm") as manager:
            items = list(NOTES.items())
            manager.store_many(items[:3], "long_term")
            manager.store_many(items[3:], "short_term")
            self.memory = manager
            yield

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return AgentMemRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"memory": self.memory}

    @property
    def retriever_query_example(self) -> str:
        return "what does the agent remember"


class TestRetrieverOverMemory(RetrieversIntegrationTests):
    """Over a plain persistent Memory (one SQLite tier, keyword search)."""

    @pytest.fixture(autouse=True)
    def _memory(self, tmp_path) -> Iterator[None]:  # type: ignore[no-untyped-def]
        with Memory(persistence=True, storage_path=tmp_path / "m") as memory:
            memory.store_many(NOTES)
            self.memory = memory
            yield

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return AgentMemRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"memory": self.memory}

    @property
    def retriever_query_example(self) -> str:
        return "agent memory note"


# -- vector store ---------------------------------------------------------------------------------------------


class TestVectorStoreInMemory(VectorStoreIntegrationTests):
    """A store that creates its own in-memory manager (in-memory SQLite + ephemeral Chroma)."""

    @pytest.fixture
    def vectorstore(self) -> Iterator[VectorStore]:
        with AgentMemVectorStore(self.get_embeddings()) as store:
            yield store


class TestVectorStorePersistentNamespace(VectorStoreIntegrationTests):
    """A store on a namespace view of a persistent manager (SQLite file + persistent Chroma under tmp_path),
    next to another namespace already holding documents that must never show up."""

    @pytest.fixture
    def vectorstore(self, tmp_path) -> Iterator[VectorStore]:  # type: ignore[no-untyped-def]
        embeddings = self.get_embeddings()
        with MemoryManager(storage_path=tmp_path / "vs", embedder=embeddings) as manager:
            other = AgentMemVectorStore(manager=manager, namespace=("kb", "other"))
            other.add_texts(["foo", "bar", "baz"], ids=["1", "2", "3"])
            yield AgentMemVectorStore(embeddings, manager=manager, namespace=("kb", "main"))


# -- key-value stores -----------------------------------------------------------------------------------------

JSON_VALUES = ({"a": 1, "nested": [1, 2, {"b": None}]}, ["list", 2.5, True], "plain ✓ string")
BYTE_VALUES = (b"foo", b"\x00\xff\xfe\x80 not utf-8", "unicode ✓".encode())


class TestJsonStoreSync(BaseStoreSyncTests[Any]):
    @pytest.fixture
    def kv_store(self, tmp_path) -> Iterator[BaseStore[str, Any]]:  # type: ignore[no-untyped-def]
        with AgentMemStore(storage_path=tmp_path / "kv", namespace="json") as store:
            yield store

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:
        return JSON_VALUES


class TestJsonStoreAsync(BaseStoreAsyncTests[Any]):
    @pytest.fixture
    async def kv_store(self, tmp_path) -> AsyncIterator[BaseStore[str, Any]]:  # type: ignore[no-untyped-def]
        with AgentMemStore(storage_path=tmp_path / "kv", namespace="json") as store:
            yield store

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:
        return JSON_VALUES


class TestByteStoreSync(BaseStoreSyncTests[bytes]):
    @pytest.fixture
    def kv_store(self, tmp_path) -> Iterator[BaseStore[str, bytes]]:  # type: ignore[no-untyped-def]
        with AgentMemByteStore(storage_path=tmp_path / "kv", namespace="bytes") as store:
            yield store

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return BYTE_VALUES


class TestByteStoreAsync(BaseStoreAsyncTests[bytes]):
    @pytest.fixture
    async def kv_store(self, tmp_path) -> AsyncIterator[BaseStore[str, bytes]]:  # type: ignore[no-untyped-def]
        with AgentMemByteStore(storage_path=tmp_path / "kv", namespace="bytes") as store:
            yield store

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:
        return BYTE_VALUES
