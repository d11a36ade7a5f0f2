"""`AgentMemChatMessageHistory`: a persistent LangChain chat message history, one memory per session.

Upstream deprecates ``BaseChatMessageHistory``-style memory (and ``RunnableWithMessageHistory``) in favour of
LangGraph persistence (checkpointers and stores); many chains still use it, so it is provided here. For new
LangGraph agents, use ``agentmem_langgraph`` instead.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from os import PathLike
from typing import Any

from agentmem_plugin import MemoryManager
from agentmem_plugin.errors import IntegrityError, InvalidArgumentError
from agentmem_plugin.validation import validate_key
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

from langchain_agentmem._common import (
    CHAT_HISTORY_SOURCE,
    Namespace,
    check_memory_type,
    open_manager,
)

__all__ = ["AgentMemChatMessageHistory"]

_LOCKS = tuple(threading.Lock() for _ in range(64))
"""Striped locks serializing read-modify-write of one session (per manager) within this process."""


def _lock_for(manager: MemoryManager, key: str) -> threading.Lock:
    return _LOCKS[hash((id(manager), key)) % len(_LOCKS)]


class AgentMemChatMessageHistory(BaseChatMessageHistory):
    """The messages of one chat session, kept as one memory in a MemoryManager.

    The session's messages are stored, in order, as one JSON value ``{"session_id": ..., "messages": [...]}``
    (each message serialized with ``langchain_core.messages.message_to_dict``) under the key
    ``key_prefix + session_id``, with metadata ``{"source": "langchain.chat_message_history", "session_id"}``:
    the retrievers and the vector store of this package leave such records out of their results by default.
    ``add_messages`` appends a whole batch with one write; ``clear()`` deletes only
    this session. With ``storage_path`` (or a persistent manager) the history survives a restart: a new object
    for the same session reads it back. Writes to one session are serialized within a process; several processes
    writing the same session at the same time may lose messages.

    Note:
        LangChain deprecates ``BaseChatMessageHistory``-style memory and ``RunnableWithMessageHistory`` in favour
        of LangGraph persistence; many chains still use them, which is what this class is for. Share one manager
        between histories (``manager=``) rather than opening a ``storage_path`` per session.

    Args:
        session_id: The session (a non-empty str).
        manager: Use this MemoryManager (or its namespace view); not closed by :meth:`close`.
        storage_path: Directory of a persistent store (a new manager); None (and no manager) keeps it in memory.
        namespace: Keep the histories in this namespace (for example per user).
        key_prefix: Prefix of the session's key, keeping histories apart from other memories.
        memory_type: The tier the history is written to (default ``"short_term"``; overflow moves to long-term).

    Raises:
        InvalidKeyError: a bad session_id. InvalidArgumentError: a bad namespace or memory_type, both manager and
            storage_path.

    Example:
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> history = AgentMemChatMessageHistory("session-1")
        >>> history.add_messages([HumanMessage("hi"), AIMessage("hello!")])
        >>> [m.content for m in history.messages]
        ['hi', 'hello!']
        >>> history.close()

    """

    def __init__(
        self,
        session_id: str,
        *,
        manager: MemoryManager | None = None,
        storage_path: str | PathLike[str] | None = None,
        namespace: Namespace | None = None,
        key_prefix: str = "chat_history:",
        memory_type: str = "short_term",
    ) -> None:
        super().__init__()
        if not isinstance(key_prefix, str):
            raise InvalidArgumentError(f"key_prefix must be a str, got {key_prefix!r}")
        self.session_id = validate_key(session_id)
        self.key = validate_key(key_prefix + self.session_id)
        self.memory_type = check_memory_type(memory_type)
        self._manager, self._owns_manager = open_manager(
            manager=manager,
            storage_path=storage_path,
            namespace=namespace,
            owner=type(self).__name__,
        )

    @property
    def manager(self) -> MemoryManager:
        """The MemoryManager (namespace view) holding the history."""
        return self._manager

    def _load(self) -> list[dict[str, Any]]:
        entry = self._manager.get_many([self.key])[
            0
        ]  # uncached: another process may have added messages
        if entry is None:
            return []
        stored = entry.value
        messages = stored.get("messages") if isinstance(stored, dict) else None
        if not isinstance(messages, list):
            raise IntegrityError(
                f"key {self.key!r} does not hold a chat history (expected {{'messages': [...]}}, got {stored!r:.60})"
            )
        return messages

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The session's messages, oldest first."""
        return messages_from_dict(self._load())

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append *messages* to the session with one write.

        Raises:
            InvalidArgumentError: an item that is not a ``BaseMessage``. SerializationError: a message that cannot
                be stored as JSON. Nothing is stored in either case.

        """
        batch = list(messages)
        for message in batch:
            if not isinstance(message, BaseMessage):
                raise InvalidArgumentError(
                    f"messages must be BaseMessage objects, got {type(message).__name__}: {message!r:.80}"
                )
        if not batch:
            return
        with _lock_for(self._manager, self.key):
            stored = [*self._load(), *(message_to_dict(m) for m in batch)]
            self._manager.store(
                self.key,
                {"session_id": self.session_id, "messages": stored},
                self.memory_type,
                metadata={"source": CHAT_HISTORY_SOURCE, "session_id": self.session_id},
            )

    def clear(self) -> None:
        """Delete this session's messages (other sessions are untouched)."""
        with _lock_for(self._manager, self.key):
            self._manager.delete(self.key)

    def close(self) -> None:
        """Close the manager if this history created it (a manager passed in is left open)."""
        if self._owns_manager:
            self._manager.close()

    def __enter__(self) -> AgentMemChatMessageHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
