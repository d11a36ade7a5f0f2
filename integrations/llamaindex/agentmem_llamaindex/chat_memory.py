"""`AgentMemChatMemory`: a LlamaIndex ``BaseMemory`` (chat history) kept in a MemoryManager, one namespace per session."""

from __future__ import annotations

import logging
import pickle
import secrets
import threading
import time
from collections.abc import Callable
from os import PathLike
from typing import Any

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.manager import MemoryManager
from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import (
    Field,
    PrivateAttr,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from llama_index.core.llms.llm import LLM
from llama_index.core.memory.types import BaseMemory
from llama_index.core.utils import get_tokenizer

from agentmem_llamaindex._common import (
    check_manager,
    check_memory_type,
    check_positive_int,
    message_from_json,
    message_to_json,
    role_of,
    scoped,
)
from agentmem_llamaindex._connection import (
    check_connection,
    connect,
    connection_of,
    open_manager,
    unserializable,
)

__all__ = ["CHAT_KEY_PREFIX", "DEFAULT_TOKEN_LIMIT", "AgentMemChatMemory"]

logger = logging.getLogger(__name__)

CHAT_KEY_PREFIX = "chat:"
"""Prefix of the keys of chat messages: ``chat:`` + a zero-padded, time-based sequence number (keys sort in order)."""

DEFAULT_TOKEN_LIMIT = 3000
"""Token limit of :meth:`AgentMemChatMemory.get` when neither ``token_limit`` nor ``llm`` is given."""

DEFAULT_TOKEN_LIMIT_RATIO = 0.75
"""Share of the LLM's context window used as token limit when ``llm`` is given (as ``ChatMemoryBuffer``)."""

_SEQ_DIGITS = 20


def _chat_key(seq: int) -> str:
    return f"{CHAT_KEY_PREFIX}{seq:0{_SEQ_DIGITS}d}"


def _seq_of(key: str) -> int | None:
    if not key.startswith(CHAT_KEY_PREFIX):
        return None
    digits = key[len(CHAT_KEY_PREFIX) :]
    return int(digits) if digits.isdigit() else None


class AgentMemChatMemory(BaseMemory):
    """Chat history of one session, stored in a :class:`MemoryManager` and read back within a token limit.

    Each message is one memory in the namespace ``<manager namespace>/<session_id>``: key ``chat:<seq>``, value
    the message as JSON (``ChatMessage.model_dump(mode="json")``, rebuilt with ``ChatMessage.model_validate``),
    metadata ``{"role", "source"}``. A manager with a ``storage_path`` makes the history persistent: a new
    object over the same directory and session sees it. Other sessions (namespaces) are never read or changed.

    :meth:`get` works like ``ChatMemoryBuffer.get``: the most recent messages whose text fits in
    ``token_limit`` (minus ``initial_token_count``), never starting on an assistant or tool message, and at
    least the latest message. The async twins (``aget``, ``aput``, ``aput_messages``, ``aset``, ``areset``,
    ``aget_all``) are ``BaseMemory``'s: each runs the sync method in a worker thread.

    The default ``tokenizer_fn`` is llama-index's (tiktoken ``cl100k_base``), which works offline: llama-index
    ships the encoding (``llama_index/core/_static/tiktoken_cache``). Pass ``tokenizer_fn=str.split`` for a
    dependency-free word count.

    Build it with :meth:`from_defaults`, or directly with ``AgentMemChatMemory(manager=mm, session_id="s1")``.

    **Serialization** works as for LlamaIndex's own memories (``to_dict``/``from_dict``, ``to_json``, pickle,
    the state of a workflow ``Context`` that a ``FunctionAgent`` reuses over several runs): a copy keeps the
    fields and ``connection``, the settings that reopen the manager's storage, and reconnects to the same
    messages (one manager per settings and process, shared by the copies). ``connection`` is filled in by
    :meth:`from_defaults` (``storage_path=`` or backend URLs) and read off a manager you pass in when it is a
    ``storage_path`` directory; pass ``connection=`` yourself for a manager on servers. A memory over its own
    in-memory manager carries its messages instead (as ``ChatMemoryBuffer`` does). Any other memory raises
    :class:`~agentmem_plugin.errors.SerializationError` when serialized, never a copy that cannot work. As in
    ``ChatMemoryBuffer``, ``tokenizer_fn`` is not part of ``to_dict`` (a copy uses the default tokenizer).

    Example:
        >>> from agentmem_plugin import MemoryManager
        >>> memory = AgentMemChatMemory.from_defaults(manager=MemoryManager(), session_id="alice")
        >>> memory.put(ChatMessage(role="user", content="Hi, I am Alice."))
        >>> [m.content for m in memory.get()]
        ['Hi, I am Alice.']

    """

    session_id: str = Field(
        default="default", description="The session: one namespace of the manager."
    )
    token_limit: int = Field(default=DEFAULT_TOKEN_LIMIT, description="Token budget of get().")
    tokenizer_fn: Callable[[str], list[Any]] = Field(
        default_factory=get_tokenizer, exclude=True, description="Counts the tokens of a text."
    )
    memory_type: str = Field(default="short_term", description="Tier new messages are stored in.")
    connection: Any = Field(
        default=None,
        description="Settings that reopen the manager's storage (storage_path, namespace, embedder, "
        "short_term, long_term, semantic): what a serialized copy reconnects from.",
    )

    _manager: MemoryManager = PrivateAttr()
    _store: MemoryManager = PrivateAttr()
    _owns_manager: bool = PrivateAttr(default=False)
    _lock: threading.RLock = PrivateAttr(default_factory=threading.RLock)

    def __init__(
        self,
        *,
        manager: MemoryManager | None = None,
        chat_history: list[Any] | None = None,
        **data: Any,
    ) -> None:
        super().__init__(**data)
        self.connection = check_connection(self.connection)
        owns = False
        if manager is None:
            if (
                self.connection is not None
            ):  # a copy being rebuilt (from_dict, pickle, a workflow Context)
                manager = connect(self.connection)
            else:  # in memory, like ChatMemoryBuffer(); a copy carries the messages
                manager, owns = MemoryManager(), True
        else:
            manager = check_manager(manager)
            if self.connection is None:
                self.connection = connection_of(manager)
        self._manager, self._owns_manager = manager, owns
        try:
            if (
                not isinstance(self.session_id, str)
                or not self.session_id
                or "/" in self.session_id
            ):
                raise InvalidArgumentError(
                    f"session_id must be a non-empty str without '/', got {self.session_id!r}"
                )
            check_positive_int("token_limit", self.token_limit)
            check_memory_type(self.memory_type)
            self._store = scoped(manager, (self.session_id,))
            if chat_history is not None:
                self.set([_message(m) for m in chat_history])
        except BaseException:
            if owns:
                manager.close()
            raise

    @classmethod
    def class_name(cls) -> str:
        """Return the name LlamaIndex serializes this class under."""
        return "AgentMemChatMemory"

    @classmethod
    def from_defaults(
        cls,
        chat_history: list[ChatMessage] | None = None,
        llm: LLM | None = None,
        *,
        manager: MemoryManager | None = None,
        session_id: str = "default",
        storage_path: str | PathLike[str] | None = None,
        embedder: Any = None,
        token_limit: int | None = None,
        tokenizer_fn: Callable[[str], list[Any]] | None = None,
        memory_type: str = "short_term",
        short_term: str | None = None,
        long_term: str | None = None,
        semantic: str | None = None,
        **kwargs: Any,
    ) -> AgentMemChatMemory:
        """Create a chat memory for *session_id*, over *manager* or over a new one.

        Args:
            chat_history: Messages that **replace** the session's stored history (None keeps it).
            llm: Sets ``token_limit`` to 75% of its context window when ``token_limit`` is None.
            manager: The manager to use (shared, not closed by :meth:`close`). None builds one from
                *storage_path* and *embedder*, owned by this memory (closed by :meth:`close`).
            session_id: The session: a namespace below the manager's (non-empty, without ``/``).
            storage_path: Directory making a new manager persistent (only without *manager*).
            embedder: Embedder of a new manager (only without *manager*), e.g. ``"default"`` (another embedder
                object works, but then a copy cannot reconnect: serializing raises SerializationError).
            token_limit: Token budget of :meth:`get` (default 3000, or from *llm*).
            tokenizer_fn: Counts tokens (default: llama-index's tiktoken tokenizer, offline).
            memory_type: Tier new messages go to (``"short_term"`` by default; overflow moves to long-term).
            short_term: A backend URL for short-term memory of a new manager (``"redis://..."``).
            long_term: A backend URL for long-term memory of a new manager (``"postgresql://..."``).
            semantic: A Chroma server URL for the semantic index of a new manager.
            **kwargs: Refused (an unknown argument is an error naming it).

        Raises:
            InvalidArgumentError: an unknown argument, *storage_path*/*embedder* given with *manager*, or a bad
                session_id, token_limit or memory_type.

        """
        if kwargs:
            raise InvalidArgumentError(
                f"unexpected arguments for AgentMemChatMemory: {sorted(kwargs)}"
            )
        owns = manager is None
        settings = {
            "storage_path": None if storage_path is None else str(storage_path),
            "short_term": short_term,
            "long_term": long_term,
            "semantic": semantic,
        }
        given = {k: v for k, v in settings.items() if v is not None}
        if manager is None:
            if embedder is not None and embedder != "default":
                connection = (
                    None  # an embedder object cannot be written down: copies cannot reconnect
                )
            elif given:
                connection = check_connection(
                    {**given, **({"embedder": embedder} if embedder else {})}
                )
            else:
                connection = None
            if connection is not None:
                manager = open_manager(connection)
            else:
                manager = MemoryManager(
                    storage_path=storage_path,
                    embedder=embedder,
                    short_term=short_term,
                    long_term=long_term,
                    semantic=semantic,
                )
        elif given or embedder is not None:
            raise InvalidArgumentError(
                "storage_path, short_term, long_term, semantic and embedder configure a new manager; they "
                "cannot be combined with manager="
            )
        else:
            connection = None
        if token_limit is None:
            token_limit = (
                int(llm.metadata.context_window * DEFAULT_TOKEN_LIMIT_RATIO)
                if llm is not None
                else DEFAULT_TOKEN_LIMIT
            )
        extra: dict[str, Any] = {} if tokenizer_fn is None else {"tokenizer_fn": tokenizer_fn}
        try:
            memory = cls(
                manager=manager,
                connection=connection,
                session_id=session_id,
                token_limit=token_limit,
                memory_type=memory_type,
                **extra,
            )
            memory._owns_manager = owns
            if chat_history is not None:
                memory.set(chat_history)
        except BaseException:
            if owns:
                manager.close()
            raise
        return memory

    # -- serialization -------------------------------------------------------------------------------------------

    def _carries_history(self) -> bool:
        """Return True for a memory over its own in-memory manager: a copy carries its messages."""
        return self.connection is None and self._owns_manager and self._manager.storage_path is None

    def _extra_state(self) -> dict[str, Any]:
        """Return what a copy needs beyond the fields; raise SerializationError when it could not reconnect."""
        if self.connection is not None:
            return {}
        if self._carries_history():
            return {"chat_history": [message_to_json(m) for m in self.get_all()]}
        raise unserializable(type(self).__name__)

    @model_serializer(mode="wrap")
    def custom_model_dump(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        """Dump the fields plus what a copy needs (the messages, for an in-memory memory it owns)."""
        data: dict[str, Any] = handler(self)
        data["class_name"] = self.class_name()
        data.update(self._extra_state())
        return data

    def to_dict(self, **kwargs: Any) -> dict[str, Any]:
        """Return the memory as a dict :meth:`from_dict` rebuilds (reconnecting through ``connection``).

        Raises:
            SerializationError: the manager was passed in and cannot be reopened from settings (in memory, or
                on servers whose URLs this memory was not given).

        """
        extra = self._extra_state()  # raises the typed error before pydantic can wrap it
        return {**self.model_dump(**kwargs), **extra, "class_name": self.class_name()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], **kwargs: Any) -> AgentMemChatMemory:
        """Rebuild a memory from :meth:`to_dict` output: reconnect to its storage, or restore its messages.

        Raises:
            InvalidArgumentError: bad settings or fields.

        """
        fields = {**data, **kwargs}
        fields.pop("class_name", None)
        return cls(**fields)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the fields and settings (never the live manager); see :meth:`to_dict` for what can fail."""
        extra = self._extra_state()  # raises the typed error before pydantic can wrap it
        state = {**self.model_dump(), **extra}
        state.pop("class_name", None)
        try:
            pickle.dumps(self.tokenizer_fn)
        except Exception:  # a lambda or a closure: the copy counts with the default tokenizer
            logger.info("tokenizer_fn cannot be pickled; the copy uses the default tokenizer")
        else:
            state["tokenizer_fn"] = self.tokenizer_fn
        return {"__dict__": state}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Rebuild from :meth:`__getstate__`: reconnect (never a half-built object: errors propagate)."""
        self.__init__(**state["__dict__"])  # type: ignore[misc]

    # -- properties and plumbing ------------------------------------------------------------------------------------

    @property
    def manager(self) -> MemoryManager:
        """The manager view holding this session (its namespace applied)."""
        return self._store

    @property
    def namespace(self) -> str:
        """The full namespace of this session in the manager."""
        return self._store.namespace

    def _chat_keys(self) -> list[tuple[int, str]]:
        """``(seq, key)`` of every stored message of this session, in order."""
        found = ((_seq_of(key), key) for key in self._store.keys())
        return sorted((seq, key) for seq, key in found if seq is not None)

    def _entries(self, messages: list[ChatMessage], first_seq: int) -> list[MemoryEntry]:
        """Validate and encode *messages* as entries ``chat:<first_seq>``, ... (nothing is stored yet)."""
        if isinstance(messages, (str, bytes, ChatMessage)) or not isinstance(
            messages, (list, tuple)
        ):
            raise InvalidArgumentError(
                f"messages must be a list of ChatMessage, got {messages!r:.80}"
            )
        return [
            MemoryEntry(
                _chat_key(first_seq + i),
                message_to_json(message),
                metadata={"role": role_of(message), "source": "llamaindex.chat_memory"},
                clock=self._store.clock,
            )
            for i, message in enumerate(messages)
        ]

    def _token_count(self, messages: list[ChatMessage]) -> int:
        if not messages:
            return 0
        return len(self.tokenizer_fn(" ".join(m.content or "" for m in messages)))

    # -- BaseMemory -------------------------------------------------------------------------------------------------

    def get_all(self) -> list[ChatMessage]:
        """Return the whole stored history of this session, oldest first."""
        keys = [key for _, key in self._chat_keys()]
        # one batch read per tier that moves nothing: reading a history must not churn short-term memory
        entries = self._store.get_many(keys)
        return [
            message_from_json(e.value) for e in entries if e is not None
        ]  # None: gone since the listing

    def get(
        self, input: str | None = None, initial_token_count: int = 0, **kwargs: Any
    ) -> list[ChatMessage]:
        """Return the most recent messages that fit in ``token_limit - initial_token_count`` tokens.

        Like ``ChatMemoryBuffer.get``: the window never starts on an assistant or tool message; when even the
        latest message alone does not fit, it is returned alone (so the LLM reports the overflow).

        Args:
            input: Ignored (the history does not depend on the query).
            initial_token_count: Tokens already used by the prompt around the history.
            **kwargs: Ignored.

        Raises:
            InvalidArgumentError: *initial_token_count* is negative, not an int, or above ``token_limit``.

        """
        if isinstance(initial_token_count, bool) or not isinstance(initial_token_count, int):
            raise InvalidArgumentError(
                f"initial_token_count must be an int, got {initial_token_count!r}"
            )
        if not 0 <= initial_token_count <= self.token_limit:
            raise InvalidArgumentError(
                f"initial_token_count {initial_token_count!r} must be in [0, token_limit={self.token_limit}]"
            )
        history = self.get_all()
        count = len(history)
        tokens = self._token_count(history) + initial_token_count
        while tokens > self.token_limit and count > 1:
            count -= 1
            while count > 1 and history[-count].role in (MessageRole.TOOL, MessageRole.ASSISTANT):
                count -= 1  # the window must not start on an assistant reply or a tool result
            tokens = self._token_count(history[-count:]) + initial_token_count
        if tokens > self.token_limit or count <= 0:
            return history[-1:]
        return history[-count:]

    def put(self, message: ChatMessage) -> None:
        """Append *message* to the session's history."""
        self.put_messages([message])

    def put_messages(self, messages: list[ChatMessage]) -> None:
        """Append *messages* to the session's history in one batch (all or nothing)."""
        with self._lock:
            keys = self._chat_keys()
            # Time-based (microseconds, plus a random tail): two objects or processes writing the same session
            # never pick the same key, and keys still sort in order of writing.
            stamp = time.time_ns() // 1000 * 1000 + secrets.randbelow(1000)
            entries = self._entries(messages, max(keys[-1][0] + 1 if keys else 0, stamp))
            if entries:
                self._store.store_many(entries, self.memory_type)

    def set(self, messages: list[ChatMessage]) -> None:
        """Replace the session's history by *messages* (checked before anything changes)."""
        with self._lock:
            entries = self._entries(messages, 0)
            if entries:
                self._store.store_many(entries, self.memory_type)
            for seq, key in self._chat_keys():
                if seq >= len(entries):
                    self._store.delete(key)

    def reset(self) -> None:
        """Delete this session's history (other sessions, and other memories of the namespace, stay)."""
        with self._lock:
            keys = self._chat_keys()
            for _, key in keys:
                self._store.delete(key)
        logger.debug("reset session %r: %d messages deleted", self.session_id, len(keys))

    # -- lifecycle ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the manager if :meth:`from_defaults` built it (a manager you passed in stays open)."""
        if self._owns_manager:
            self._manager.close()
            self._owns_manager = False

    def __enter__(self) -> AgentMemChatMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _message(item: object) -> ChatMessage:
    """Return a message of a restored ``chat_history`` (a ChatMessage, or its JSON dump)."""
    return item if isinstance(item, ChatMessage) else message_from_json(item)
