"""Helpers shared by the three bindings: namespace scoping, argument checks, values <-> text, messages <-> JSON.

Nothing here is public. Every check raises :class:`~agentmem_plugin.errors.InvalidArgumentError` naming the
bad value, before anything is stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.manager import MemoryManager
from agentmem_plugin.validation import validate_namespace
from llama_index.core.base.llms.types import ChatMessage

SEARCH_MODES: tuple[str, ...] = ("hybrid", "keyword", "semantic")
"""The ``mode`` values :meth:`MemoryManager.search` accepts (None: the manager's default)."""

TIERS: tuple[str, ...] = ("short_term", "long_term", "external")
"""The ``memory_type`` values :meth:`MemoryManager.store` accepts."""


def check_manager(manager: object) -> MemoryManager:
    """Return *manager* if it is a :class:`MemoryManager`, else raise naming what was given."""
    if not isinstance(manager, MemoryManager):
        raise InvalidArgumentError(
            f"manager must be an agentmem_plugin.MemoryManager, got {type(manager).__name__}: {manager!r:.80}"
        )
    return manager


def check_positive_int(name: str, value: object) -> int:
    """Return *value* if it is an int > 0 (not a bool), else raise naming *name* and the value."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidArgumentError(f"{name} must be a positive int, got {value!r}")
    return value


def check_mode(mode: object, manager: MemoryManager) -> str | None:
    """Return a valid search *mode* (or None); refuse a meaning-based mode on a manager without an embedder."""
    if mode is None:
        return None
    if mode not in SEARCH_MODES:
        raise InvalidArgumentError(
            f"mode must be one of {', '.join(SEARCH_MODES)} or None; got {mode!r}"
        )
    if mode != "keyword" and manager.long_term.embedder is None:
        raise InvalidArgumentError(
            f"mode={mode!r} needs a manager with an embedder: MemoryManager(embedder='default')"
        )
    return str(mode)


def check_memory_type(memory_type: object) -> str:
    """Return *memory_type* if it names a tier of :class:`MemoryManager`, else raise."""
    if memory_type not in TIERS:
        raise InvalidArgumentError(
            f"memory_type must be one of {', '.join(TIERS)}; got {memory_type!r}"
        )
    return str(memory_type)


def check_filter(filter: object) -> dict[str, Any] | None:
    """Return a copy of a search *filter* (``{"tags": [...], <metadata field>: value}``) or None."""
    if filter is None:
        return None
    if not isinstance(filter, Mapping) or not all(isinstance(k, str) for k in filter):
        raise InvalidArgumentError(
            f"filter must be a dict with str keys or None, got {filter!r:.80}"
        )
    tags = filter.get("tags")
    if tags is not None and (isinstance(tags, str) or not isinstance(tags, Sequence)):
        raise InvalidArgumentError(f"filter['tags'] must be a list of str, got {tags!r:.80}")
    return dict(filter)


def namespace_parts(namespace: object) -> tuple[str, ...]:
    """Split a namespace (``"a/b"`` or ``("a", "b")``) into its parts; raise on an empty or bad part."""
    text = validate_namespace(namespace)  # the core's one namespace check
    if not text:
        raise InvalidArgumentError(f"namespace must not be empty, got {namespace!r}")
    return tuple(text.split("/"))


def scoped(manager: MemoryManager, namespace: object | None) -> MemoryManager:
    """Return the view of *manager* for *namespace*, taken **below** the manager's own namespace.

    None gives *manager* itself. A manager with namespace ``"user/u1"`` and ``namespace="s1"`` gives the view
    ``"user/u1/s1"``; a manager without a namespace gives ``"s1"``.
    """
    if namespace is None:
        return manager
    return manager.with_namespace(
        namespace_parts(namespace)
    )  # views nest below the manager's namespace


def stable_key(prefix: str, *parts: Any) -> str:
    """Return ``prefix`` + the first 32 hex digits of the SHA-256 of *parts* as JSON (same parts, same key)."""
    payload = json.dumps(parts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return prefix + hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def message_text(message: ChatMessage) -> str:
    """Return the text of a chat message (its text blocks joined), ``""`` when it has none."""
    return message.content or ""


def role_of(message: ChatMessage) -> str:
    """Return the role of a chat message as a plain str (``"user"``, ``"assistant"``, ...)."""
    role = message.role
    return str(getattr(role, "value", role))


def value_text(value: Any) -> str:
    """Return the text a memory's value stands for.

    * a str: itself;
    * ``{"content": str, ...}`` (a message stored by :class:`AgentMemMemoryBlock`): the content;
    * a :class:`ChatMessage` dump (``{"blocks": [...]}``, as :class:`AgentMemChatMemory` stores): its text;
    * ``{"messages": [...]}`` (a batch): one ``role: text`` line per message;
    * anything else: compact JSON.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        if isinstance(value.get("content"), str):
            return str(value["content"])
        blocks = value.get("blocks")
        if isinstance(blocks, list):
            texts = [
                b["text"]
                for b in blocks
                if isinstance(b, Mapping) and isinstance(b.get("text"), str)
            ]
            return "\n".join(texts)
        messages = value.get("messages")
        if isinstance(messages, list):
            lines = []
            for item in messages:
                role = item.get("role") if isinstance(item, Mapping) else None
                text = value_text(item)
                lines.append(f"{role}: {text}" if role else text)
            return "\n".join(lines)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def message_to_json(message: object) -> dict[str, Any]:
    """Return a chat message as JSON (``model_dump(mode="json")``); raise naming anything else."""
    if not isinstance(message, ChatMessage):
        raise InvalidArgumentError(
            f"expected a llama_index ChatMessage, got {type(message).__name__}: {message!r:.80}"
        )
    return message.model_dump(mode="json")


def message_from_json(data: Any) -> ChatMessage:
    """Rebuild a chat message from :func:`message_to_json` output."""
    return ChatMessage.model_validate(data)


CHAT_HISTORY_SOURCES: frozenset[str] = frozenset(
    {"llamaindex.chat_memory", "langchain.chat_message_history"}
)
"""The ``source`` metadata of the records chat histories write (this package's chat memory, LangChain's)."""


def is_chat_record(hit: Mapping[str, Any]) -> bool:
    """Return True when a search hit is a record a chat history wrote, not a memory to recall.

    That is a record whose ``source`` metadata is in :data:`CHAT_HISTORY_SOURCES`, or one shaped like a LangChain
    chat history written before it was marked (``{"session_id": ..., "messages": [...]}``).
    """
    metadata = hit.get("metadata") or {}
    if metadata.get("source") in CHAT_HISTORY_SOURCES:
        return True
    value = hit.get("value")
    return (
        isinstance(value, Mapping)
        and set(value) == {"session_id", "messages"}
        and isinstance(value.get("messages"), list)
    )


def search_memories(
    manager: MemoryManager,
    query: str,
    limit: int,
    *,
    include_chat_history: bool,
    **options: Any,
) -> list[dict[str, Any]]:
    """``manager.search(query, limit, **options)`` leaving out chat-history records unless asked for them.

    The core search has no exclusion filter, so this searches deeper (4x each round) until *limit* hits that are
    not chat records are found or the search is exhausted.
    """
    if include_chat_history:
        return manager.search(query, limit, **options)
    depth = limit
    while True:
        hits = manager.search(query, depth, **options)
        kept = [h for h in hits if not is_chat_record(h)]
        if len(kept) >= limit or len(hits) < depth:
            return kept[:limit]
        depth *= 4
