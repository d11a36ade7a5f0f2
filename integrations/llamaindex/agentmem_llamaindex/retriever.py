"""`AgentMemRetriever`: a LlamaIndex retriever over a :class:`~agentmem_plugin.MemoryManager`'s search."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.manager import MemoryManager
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks.base import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from agentmem_llamaindex._common import (
    check_filter,
    check_manager,
    check_memory_type,
    check_mode,
    check_positive_int,
    scoped,
    search_memories,
    value_text,
)

__all__ = ["AgentMemRetriever", "hit_to_node"]

logger = logging.getLogger(__name__)


def hit_to_node(hit: Mapping[str, Any]) -> NodeWithScore:
    """Turn one :meth:`MemoryManager.search` hit into a scored :class:`TextNode`.

    The node's ``id_`` is the memory key, its text the value's text (see ``value_text``), its metadata the
    entry's metadata plus ``tags`` and ``tier``. ``tier`` is hidden from the LLM and from embedding.
    """
    metadata = {
        **hit.get("metadata", {}),
        "tags": list(hit.get("tags", [])),
        "tier": hit.get("tier"),
    }
    node = TextNode(
        id_=hit["key"],
        text=value_text(hit["value"]),
        metadata=metadata,
        excluded_llm_metadata_keys=["tier"],
        excluded_embed_metadata_keys=["tier"],
    )
    return NodeWithScore(node=node, score=float(hit["score"]))


class AgentMemRetriever(BaseRetriever):
    """Retrieve memories of a :class:`MemoryManager` as LlamaIndex nodes.

    Each query runs :meth:`MemoryManager.search` (short-term and the archive by keyword, long-term by *mode*:
    hybrid by default when the manager has an embedder) and returns one :class:`NodeWithScore` per hit, best
    first: a :class:`TextNode` whose ``id_`` is the memory key, whose text is the value's text and whose
    metadata is the entry's metadata plus ``tags`` and ``tier``.

    Args:
        manager: The memory to search.
        similarity_top_k: Maximum nodes per query.
        mode: ``"hybrid"``, ``"keyword"`` or ``"semantic"`` for long-term memory; None: the manager's default.
            The meaning-based modes need a manager built with an embedder (``embedder="default"``).
        filter: ``{"tags": [...]}`` (all required) and/or metadata fields that must be equal.
        namespace: Search only this namespace (``"s1"`` or ``("user", "u1")``), taken below the manager's own
            namespace; None searches the manager's namespace.
        memory_types: Tiers to search (default: all three).
        include_chat_history: Also return the records chat histories write (the messages of
            :class:`~agentmem_llamaindex.AgentMemChatMemory`, LangChain's ``AgentMemChatMessageHistory``); by
            default they are left out, so a retriever beside a chat history returns memories, not raw messages.
        callback_manager: LlamaIndex callback manager.
        verbose: LlamaIndex's verbose flag.

    Raises:
        InvalidArgumentError: a bad manager, similarity_top_k, mode, filter, namespace or memory type.

    Example:
        >>> from agentmem_plugin import MemoryManager
        >>> mm = MemoryManager()
        >>> mm.store("diet", "The user is vegetarian", memory_type="long_term", tags=["profile"])
        >>> nodes = AgentMemRetriever(mm, similarity_top_k=3).retrieve("vegetarian")
        >>> nodes[0].node.id_, nodes[0].node.text, nodes[0].node.metadata["tags"]
        ('diet', 'The user is vegetarian', ['profile'])

    """

    def __init__(
        self,
        manager: MemoryManager,
        *,
        similarity_top_k: int = 5,
        mode: str | None = None,
        filter: Mapping[str, Any] | None = None,
        namespace: str | Sequence[str] | None = None,
        memory_types: Sequence[str] | None = None,
        include_chat_history: bool = False,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        manager = check_manager(manager)
        self.similarity_top_k = check_positive_int("similarity_top_k", similarity_top_k)
        self.mode = check_mode(mode, manager)
        self.filter = check_filter(filter)
        if memory_types is not None:
            if isinstance(memory_types, str):
                raise InvalidArgumentError(
                    f"memory_types must be a list of tier names, not the str {memory_types!r}"
                )
            memory_types = [check_memory_type(t) for t in memory_types]
        self.memory_types: list[str] | None = memory_types
        if not isinstance(include_chat_history, bool):
            raise InvalidArgumentError(
                f"include_chat_history must be a bool, got {include_chat_history!r}"
            )
        self.include_chat_history = include_chat_history
        self.manager: MemoryManager = scoped(manager, namespace)
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    @property
    def namespace(self) -> str:
        """The full namespace searched (``""``: the root)."""
        return self.manager.namespace

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Search the manager for ``query_bundle.query_str``; an empty query finds nothing."""
        hits = search_memories(
            self.manager,
            query_bundle.query_str,
            self.similarity_top_k,
            include_chat_history=self.include_chat_history,
            mode=self.mode,
            memory_types=self.memory_types,
            filter=self.filter,
        )
        logger.debug("retrieved %d memories from namespace %r", len(hits), self.namespace)
        return [hit_to_node(hit) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        """Async :meth:`_retrieve` (runs in a worker thread)."""
        return await asyncio.to_thread(self._retrieve, query_bundle)
