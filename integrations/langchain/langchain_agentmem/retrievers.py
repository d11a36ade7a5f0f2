"""`AgentMemRetriever`: a LangChain retriever over a MemoryManager (every tier) or a single Memory."""

from __future__ import annotations

from typing import Any

from agentmem_plugin import Memory, MemoryManager
from agentmem_plugin.errors import InvalidArgumentError
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import run_in_executor
from pydantic import PrivateAttr

from langchain_agentmem._common import (
    Namespace,
    check_filter,
    check_k,
    check_memory_types,
    check_mode,
    check_namespace,
    fetch_filtered,
    is_chat_record,
    matches,
    value_text,
)

__all__ = ["AgentMemRetriever"]

_UNSET: Any = object()


def _embedder_of(target: MemoryManager | Memory) -> Any:
    memory = target.long_term if isinstance(target, MemoryManager) else target
    return memory.embedder


def _check_mode_supported(target: MemoryManager | Memory, mode: str | None) -> None:
    if mode in ("semantic", "hybrid") and _embedder_of(target) is None:
        raise InvalidArgumentError(
            f"mode={mode!r} needs an embedder: create the memory with embedder='default' (or your own), "
            "or use mode='keyword'"
        )


class AgentMemRetriever(BaseRetriever):
    """Retrieve memories as LangChain ``Document`` objects.

    Over a :class:`~agentmem_plugin.MemoryManager` it searches every tier (short-term and the archive by
    keyword, long-term by *mode*) and returns one ranked list; over a plain :class:`~agentmem_plugin.Memory` it
    searches that memory. Each hit becomes ``Document(page_content=<value as text>, metadata={...the entry's
    metadata..., "key", "score", "tier", "tags"}, id=<key>)``; a str value is the text as it is, any other value
    is rendered as JSON. The four added fields win over entry metadata fields of the same name.

    Args:
        memory: A MemoryManager or a Memory.
        k: How many documents to return (override per call: ``retriever.invoke(query, k=2)``).
        mode: ``"hybrid"``, ``"keyword"`` or ``"semantic"``; None uses the memory's default (hybrid when it has
            an embedder, keyword otherwise). Override per call with ``mode=``.
        filter: ``{"tags": [...]}`` (every tag required) and/or metadata fields that must be equal, as
            ``MemoryManager.search`` accepts. Override per call with ``filter=``.
        namespace: With a MemoryManager, search only this namespace (``"user/u1"`` or ``("user", "u1")``).
        memory_types: With a MemoryManager, the tiers searched (``["long_term"]``, ...; default: all three).
            Override per call with ``memory_types=``.
        include_chat_history: Also return the records chat histories write (``AgentMemChatMessageHistory``,
            agentmem-llamaindex's chat memory). By default they are left out, so a retriever beside a chat
            history in one namespace returns memories, never a session's raw message JSON.

    Raises:
        InvalidArgumentError: a bad memory, k, mode, filter, namespace or memory_types (checked at construction
            and per call), a namespace or memory_types with a plain Memory, or a semantic/hybrid mode on a memory
            without an embedder.

    Example:
        >>> from agentmem_plugin import MemoryManager
        >>> mm = MemoryManager()
        >>> mm.store("pref", "The user prefers short answers", tags=["profile"])
        >>> retriever = AgentMemRetriever(memory=mm, k=2)
        >>> [doc.page_content for doc in retriever.invoke("short answers")]
        ['The user prefers short answers']
        >>> mm.close()

    """

    memory: MemoryManager | Memory
    """The memory searched (a MemoryManager's namespace view when ``namespace`` is set)."""
    k: int = 4
    """Number of documents returned."""
    mode: str | None = None
    """Search mode: hybrid, keyword, semantic, or None for the memory's default."""
    filter: dict[str, Any] | None = None
    """Required tags and metadata values."""
    namespace: Namespace | None = None
    """The namespace searched (MemoryManager only)."""
    memory_types: list[str] | None = None
    """The tiers searched (MemoryManager only; None: all)."""
    include_chat_history: bool = False
    """Whether chat-history records are returned too."""

    _target: MemoryManager | Memory = PrivateAttr()

    def __init__(self, **data: Any) -> None:
        memory = data.get("memory")
        if not isinstance(memory, (MemoryManager, Memory)):
            raise InvalidArgumentError(
                f"memory must be a MemoryManager or a Memory, got {type(memory).__name__}"
            )
        check_k(data.get("k", 4))
        mode = check_mode(data.get("mode"))
        filter_ = check_filter(data.get("filter"))
        namespace = check_namespace(data.get("namespace"))
        if namespace is not None and not isinstance(memory, MemoryManager):
            raise InvalidArgumentError(
                f"namespace={namespace!r} needs a MemoryManager; a plain Memory has no namespaces"
            )
        memory_types = check_memory_types(data.get("memory_types"))
        if memory_types is not None and not isinstance(memory, MemoryManager):
            raise InvalidArgumentError(
                f"memory_types={memory_types!r} needs a MemoryManager; a plain Memory is one tier"
            )
        include = data.get("include_chat_history", False)
        if not isinstance(include, bool):
            raise InvalidArgumentError(f"include_chat_history must be a bool, got {include!r}")
        target = (
            memory
            if namespace is None or not isinstance(memory, MemoryManager)
            else memory.with_namespace(namespace)
        )
        _check_mode_supported(target, mode)
        super().__init__(
            **{**data, "filter": filter_, "namespace": namespace, "memory_types": memory_types}
        )
        self._target = target

    def _search(
        self,
        query: str,
        *,
        k: int | None = None,
        mode: str | None = _UNSET,
        filter: dict[str, Any] | None = _UNSET,
        memory_types: list[str] | None = _UNSET,
        **unknown: Any,
    ) -> list[Document]:
        """Check the per-call options, search, and convert the hits (the one code path for sync and async)."""
        if unknown:
            raise InvalidArgumentError(
                f"unknown search options {sorted(unknown)}; AgentMemRetriever accepts k, mode, filter and "
                "memory_types"
            )
        if not isinstance(query, str):
            raise InvalidArgumentError(f"query must be a str, got {type(query).__name__}")
        k = self.k if k is None else check_k(k)
        mode = self.mode if mode is _UNSET else check_mode(mode)
        filter_ = self.filter if filter is _UNSET else check_filter(filter)
        target = self._target
        _check_mode_supported(target, mode)
        tiers = self.memory_types if memory_types is _UNSET else check_memory_types(memory_types)
        if tiers is not None and not isinstance(target, MemoryManager):
            raise InvalidArgumentError(
                f"memory_types={tiers!r} needs a MemoryManager; a plain Memory is one tier"
            )
        skip_chat = not self.include_chat_history

        def keep(hit: dict[str, Any]) -> bool:
            return not (skip_chat and is_chat_record(hit)) and (
                not filter_ or matches(hit, filter_)
            )

        def fetch(n: int) -> list[dict[str, Any]]:
            if isinstance(target, MemoryManager):
                return target.search(query, n, mode=mode, memory_types=tiers)
            return target.search(query, n, mode=mode)

        # the core search cannot exclude records, so chat records are left out here (fetching deeper as needed)
        hits = fetch_filtered(fetch, k, keep if (filter_ or skip_chat) else None)
        default_tier = None if isinstance(target, MemoryManager) else target.memory_type
        return [
            Document(
                page_content=value_text(hit["value"]),
                metadata={
                    **hit["metadata"],
                    "key": hit["key"],
                    "score": float(hit["score"]),
                    "tier": hit.get("tier", default_tier),
                    "tags": list(hit["tags"]),
                },
                id=hit["key"],
            )
            for hit in hits
        ]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        """Return the *k* best memories for *query* (``kwargs``: per-call ``k``, ``mode``, ``filter``, ``memory_types``)."""
        return self._search(query, **kwargs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`_get_relevant_documents`: the search runs in a worker thread."""
        return await run_in_executor(None, self._search, query, **kwargs)
