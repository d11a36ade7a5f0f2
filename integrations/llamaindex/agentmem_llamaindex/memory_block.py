"""`AgentMemMemoryBlock`: long-term memory for ``llama_index.core.memory.Memory``, backed by a MemoryManager."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.manager import MemoryManager
from agentmem_plugin.validation import validate_tags, validate_ttl
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import (
    Field,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from llama_index.core.memory.memory import BaseMemoryBlock

from agentmem_llamaindex._common import (
    check_filter,
    check_manager,
    check_memory_type,
    check_mode,
    check_positive_int,
    message_text,
    role_of,
    scoped,
    search_memories,
    stable_key,
    value_text,
)
from agentmem_llamaindex._connection import (
    check_connection,
    connect,
    connection_of,
    unserializable,
)

__all__ = ["MEMORY_KEY_PREFIX", "SOURCE", "AgentMemMemoryBlock"]

logger = logging.getLogger(__name__)

MEMORY_KEY_PREFIX = "memory:"
"""Prefix of the keys of the memories this block stores (the rest is a hash: see ``_aput``)."""

SOURCE = "llamaindex.memory_block"
"""The ``source`` metadata field of the memories this block stores."""

_ITEM_BOUNDARY = re.compile(r"\n(?=- )")


class AgentMemMemoryBlock(BaseMemoryBlock[str]):
    """A memory block that recalls relevant long-term memories and stores the messages Memory flushes.

    Plug it into ``llama_index.core.memory.Memory.from_defaults(memory_blocks=[...])``:

    * **get** (each time the agent or chat engine reads its memory): searches the manager for the latest user
      message (``mode``, ``k``, ``filter``) and returns the hits as text, one ``- role: text`` item per memory,
      best first (``""`` when nothing is found); Memory inserts it into the system message.
    * **put** (when Memory's short-term FIFO overflows): stores the flushed messages as JSON memories
      ``{"role", "content"}`` (``per_message=True``), or the whole batch as ``{"messages": [...]}``, in
      ``memory_type`` (long-term by default, so they are embedded and found by meaning). Keys are stable:
      ``"memory:"`` + a hash of the session id, role and text, so flushing the same message twice stores it
      once. Messages without text (e.g. bare tool calls) are skipped.
    * **truncate**: drops the lowest-ranked items first (only when ``priority`` > 0; 0 never truncates).

    Any memory of the namespace is recalled, not only those this block stored: facts stored with
    ``manager.store(...)`` are found too, but never the messages of a chat history kept beside it (those of
    :class:`~agentmem_llamaindex.AgentMemChatMemory` or LangChain's ``AgentMemChatMessageHistory``).

    **Serialization** (``to_dict``/``from_dict``, pickle, a ``Memory`` pickled with its blocks): a copy keeps
    the fields and ``connection``, the settings that reopen the manager's storage, and reconnects (one manager
    per settings and process). ``connection`` is read off a manager over a ``storage_path`` directory; pass it
    for a manager on servers. A block over an in-memory manager raises
    :class:`~agentmem_plugin.errors.SerializationError` when serialized.

    Args:
        manager: The memory to search and write (shared with retrievers, other blocks, your own code).
        namespace: Work in this namespace (``"u1"`` or ``("user", "u1")``), below the manager's own.
        name: The block's name (the XML tag around its content in the system message).
        description: A description of the block.
        priority: Truncation priority as defined by ``BaseMemoryBlock`` (0: never truncate).
        accept_short_term_memory: Whether to store the messages Memory flushes.
        k: Maximum memories recalled per get.
        mode: ``"hybrid"``, ``"keyword"`` or ``"semantic"`` for long-term memory; None: the manager's default.
        filter: ``{"tags": [...]}`` and/or metadata fields the recalled memories must match.
        memory_type: Tier the flushed messages go to (``"long_term"``, ``"short_term"`` or ``"external"``).
        per_message: One memory per message (True) or one per flushed batch (False).
        session_scoped: Keep each Memory session's memories in its own namespace (``<namespace>/<session_id>``)
            instead of sharing them across sessions.
        tags: Tags given to the memories this block stores.
        ttl: Seconds the stored memories live (None: forever).
        connection: The settings that reopen *manager*'s storage (``storage_path``, ``namespace``, ``embedder``
            ``"default"``, ``short_term``/``long_term``/``semantic`` URLs); default: read off *manager*.

    Raises:
        InvalidArgumentError: a bad manager, namespace, k, mode, filter, memory_type, tags or ttl.

    Example:
        >>> from agentmem_plugin import MemoryManager
        >>> from llama_index.core.memory import Memory
        >>> mm = MemoryManager()
        >>> mm.store("diet", "The user is vegetarian", memory_type="long_term")
        >>> block = AgentMemMemoryBlock(mm, k=2)
        >>> memory = Memory.from_defaults(session_id="s1", memory_blocks=[block])
        >>> import asyncio
        >>> asyncio.run(block.aget([ChatMessage(role="user", content="is the user vegetarian?")]))
        '- The user is vegetarian'

    """

    name: str = Field(default="agentmem_memories", description="The name of the memory block.")
    description: str | None = Field(
        default="Relevant long-term memories recalled from agentmem.",
        description="A description of the memory block.",
    )
    namespace: str | tuple[str, ...] | None = Field(
        default=None, description="Namespace below the manager's own (None: the manager's)."
    )
    k: int = Field(default=3, description="Maximum memories recalled per get.")
    mode: str | None = Field(default=None, description="Search mode for long-term memory.")
    filter: dict[str, Any] | None = Field(
        default=None, description="Tags/metadata recalled memories match."
    )
    memory_type: str = Field(
        default="long_term", description="Tier the flushed messages are stored in."
    )
    per_message: bool = Field(
        default=True, description="One memory per message (else one per batch)."
    )
    session_scoped: bool = Field(default=False, description="One namespace per Memory session.")
    tags: list[str] = Field(
        default_factory=list, description="Tags of the memories this block stores."
    )
    ttl: float | None = Field(default=None, description="Seconds the stored memories live.")
    connection: Any = Field(
        default=None,
        description="Settings that reopen the manager's storage (storage_path, namespace, embedder, "
        "short_term, long_term, semantic): what a serialized copy reconnects from.",
    )

    _store: MemoryManager = PrivateAttr()

    def __init__(self, manager: MemoryManager | None = None, **data: Any) -> None:
        super().__init__(**data)
        self.connection = check_connection(self.connection)
        if manager is None:
            if self.connection is None:
                raise InvalidArgumentError(
                    "AgentMemMemoryBlock needs a manager (or connection={'storage_path': ...} to open one)"
                )
            manager = connect(self.connection)  # a copy being rebuilt (from_dict, pickle)
        else:
            manager = check_manager(manager)
            if self.connection is None:
                self.connection = connection_of(manager)
        check_positive_int("k", self.k)
        check_mode(self.mode, manager)
        check_filter(self.filter)
        check_memory_type(self.memory_type)
        validate_tags(self.tags)
        validate_ttl(self.ttl)
        self._store = scoped(manager, self.namespace)

    # -- serialization -------------------------------------------------------------------------------------------

    def _check_serializable(self) -> None:
        if self.connection is None:
            raise unserializable(type(self).__name__)

    @model_serializer(mode="wrap")
    def custom_model_dump(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        """Dump the fields (with ``connection``); refuse when a copy could not reconnect."""
        self._check_serializable()
        data: dict[str, Any] = handler(self)
        data["class_name"] = type(self).__name__
        return data

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """Return the block as a dict :meth:`from_dict` rebuilds (reconnecting through ``connection``).

        Raises:
            SerializationError: the manager cannot be reopened from settings (in memory, or on servers whose
                URLs the block was not given with ``connection=``).

        """
        self._check_serializable()
        return {**self.model_dump(**kwargs), "class_name": type(self).__name__}

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> AgentMemMemoryBlock:
        """Rebuild a block from :meth:`to_dict` output, reconnecting to its storage.

        Raises:
            InvalidArgumentError: no ``connection``, or bad settings or fields.

        """
        fields = {**data, **kwargs}
        fields.pop("class_name", None)
        return cls(**fields)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the fields and settings (never the live manager); see :meth:`to_dict` for what can fail."""
        self._check_serializable()
        state = self.model_dump()
        state.pop("class_name", None)
        return {"__dict__": state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild from :meth:`__getstate__`: reconnect (never a half-built object: errors propagate)."""
        self.__init__(**state["__dict__"])  # type: ignore[misc]

    @property
    def manager(self) -> MemoryManager:
        """The manager view this block reads and writes (its namespace applied)."""
        return self._store

    def _store_for(self, session_id: str | None) -> MemoryManager:
        if self.session_scoped and session_id:
            return scoped(self._store, session_id)
        return self._store

    # -- the work, synchronous (the async hooks run it in a worker thread) -----------------------------------

    def _recall(self, messages: list[ChatMessage] | None, session_id: str | None) -> str:
        query = _latest_user_text(messages or [])
        if not query.strip():
            return ""
        hits = search_memories(
            self._store_for(session_id),
            query,
            self.k,
            include_chat_history=False,
            mode=self.mode,
            filter=self.filter,
        )
        logger.debug("recalled %d memories for %r", len(hits), query[:80])
        return "\n".join(_format_hit(hit) for hit in hits)

    def _remember(self, messages: list[ChatMessage]) -> int:
        by_session: dict[str | None, list[tuple[str, str]]] = {}
        for message in messages:
            text = message_text(message)
            if not text.strip():
                continue
            session = message.additional_kwargs.get("session_id")
            session = session if isinstance(session, str) and session else None
            by_session.setdefault(session, []).append((role_of(message), text))
        stored = 0
        for session, rows in by_session.items():
            store = self._store_for(session)
            metadata: dict[str, Any] = {"source": SOURCE}
            if session is not None:
                metadata["session_id"] = session
            if self.per_message:
                entries = [
                    MemoryEntry(
                        stable_key(MEMORY_KEY_PREFIX, session, role, text),
                        {"role": role, "content": text},
                        ttl=self.ttl,
                        metadata={**metadata, "role": role},
                        tags=self.tags,
                        clock=store.clock,
                    )
                    for role, text in rows
                ]
            else:
                entries = [
                    MemoryEntry(
                        stable_key(MEMORY_KEY_PREFIX, session, rows),
                        {"messages": [{"role": role, "content": text} for role, text in rows]},
                        ttl=self.ttl,
                        metadata={**metadata, "message_count": len(rows)},
                        tags=self.tags,
                        clock=store.clock,
                    )
                ]
            stored += store.store_many(entries, self.memory_type)
        logger.debug("stored %d memories from %d flushed messages", stored, len(messages))
        return stored

    # -- BaseMemoryBlock hooks -----------------------------------------------------------------------------------

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        """Return the memories relevant to the latest user message, as text (``""``: none)."""
        session_id = block_kwargs.get("session_id")
        return await asyncio.to_thread(
            self._recall, messages, session_id if isinstance(session_id, str) else None
        )

    async def _aput(self, messages: list[ChatMessage]) -> None:
        """Store *messages* (flushed from Memory's short-term queue) as memories."""
        await asyncio.to_thread(self._remember, messages)

    async def atruncate(self, content: str, tokens_to_truncate: int) -> str | None:
        """Drop recalled items from the end (the least relevant) until about *tokens_to_truncate* are gone.

        Tokens are estimated as whitespace-separated words. Returns None when nothing is left.
        """
        items = _ITEM_BOUNDARY.split(content) if content else []
        removed = 0
        while items and removed < tokens_to_truncate:
            removed += len(items.pop().split())
        return "\n".join(items) if items else None


def _latest_user_text(messages: list[ChatMessage]) -> str:
    """Return the text of the latest user message; failing that, of the latest message with text."""
    for message in reversed(messages):
        if role_of(message) == "user" and message_text(message).strip():
            return message_text(message)
    for message in reversed(messages):
        if message_text(message).strip():
            return message_text(message)
    return ""


def _format_hit(hit: Mapping[str, Any]) -> str:
    value = hit["value"]
    text = value_text(value).replace("\n", "\n  ")
    role = value.get("role") if isinstance(value, Mapping) else None
    return f"- {role}: {text}" if isinstance(role, str) and role else f"- {text}"
