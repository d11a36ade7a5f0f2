"""Helpers shared by the LangChain classes: argument checks, opening a manager, hit filtering, value text.

Nothing here is LangChain-specific except the names in the messages; every check raises
:class:`~agentmem_plugin.errors.InvalidArgumentError` (a ``ValueError``) naming the bad value, before anything
is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from typing import Any

from agentmem_plugin import MemoryManager
from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.validation import (
    SEARCH_MODES,
    validate_key,
    validate_limit,
    validate_memory_type,
    validate_mode,
    validate_namespace,
)

__all__ = [
    "CHAT_HISTORY_SOURCE",
    "CHAT_HISTORY_SOURCES",
    "SEARCH_MODES",
    "Namespace",
    "check_filter",
    "check_k",
    "check_keys",
    "check_memory_type",
    "check_memory_types",
    "check_mode",
    "check_namespace",
    "fetch_filtered",
    "is_chat_record",
    "matches",
    "open_manager",
    "value_text",
]

Namespace = str | tuple[str, ...]


def check_k(k: object, *, name: str = "k") -> int:
    """Return *k* if it is a positive int (not a bool); raise InvalidArgumentError otherwise."""
    return validate_limit(k, what=name)


def check_mode(mode: object) -> str | None:
    """Return *mode* if it is None or one of :data:`SEARCH_MODES`; raise InvalidArgumentError otherwise."""
    return validate_mode(mode)


def check_memory_type(memory_type: object) -> str:
    """Return *memory_type* if it names a MemoryManager tier; raise InvalidArgumentError otherwise."""
    return validate_memory_type(memory_type)


def check_namespace(namespace: object) -> Namespace | None:
    """Return *namespace* as a str or a tuple of str, or None; raise InvalidArgumentError for anything else.

    A str namespace is ``"a"`` or ``"a/b"`` (no empty part); a tuple or list namespace is ``("a", "b")``
    (each part a non-empty str without ``/``).
    """
    if namespace is None:
        return None
    text = validate_namespace(namespace)  # the core's one namespace check
    if not text:
        raise InvalidArgumentError(f"namespace must not be empty, got {namespace!r}")
    return text if isinstance(namespace, str) else tuple(text.split("/"))


def check_filter(filter: object) -> dict[str, Any] | None:
    """Return *filter* as a dict, or None.

    A filter is ``{"tags": [...]}`` (every tag required) and/or metadata fields that must be equal.

    Raises:
        InvalidArgumentError: not a mapping with str keys, or a ``tags`` entry that is not a list of str.

    """
    if filter is None:
        return None
    if not isinstance(filter, Mapping) or any(not isinstance(k, str) for k in filter):
        raise InvalidArgumentError(f"filter must be a dict with str keys, got {filter!r:.80}")
    tags = filter.get("tags")
    if "tags" in filter and (
        isinstance(tags, (str, bytes))
        or not isinstance(tags, Iterable)
        or any(not isinstance(t, str) for t in tags)
    ):
        raise InvalidArgumentError(f"filter['tags'] must be a list of str, got {tags!r:.80}")
    return dict(filter)


def matches(hit: Mapping[str, Any], filter: Mapping[str, Any], *, tags_field: bool = True) -> bool:
    """Return True when the search *hit* satisfies *filter*.

    Args:
        hit: A hit of ``Memory.search``/``MemoryManager.search`` (``metadata`` and ``tags`` are read).
        filter: Field -> required value; see :func:`check_filter`.
        tags_field: Treat ``"tags"`` as the entry's tags (all required); False compares it as a metadata field.

    """
    metadata = hit.get("metadata") or {}
    for field, wanted in filter.items():
        if field == "tags" and tags_field:
            if not set(wanted) <= set(hit.get("tags") or ()):
                return False
        elif field not in metadata or metadata[field] != wanted:
            return False
    return True


CHAT_HISTORY_SOURCE = "langchain.chat_message_history"
"""The ``source`` metadata of the records :class:`AgentMemChatMessageHistory` writes."""

CHAT_HISTORY_SOURCES: frozenset[str] = frozenset({CHAT_HISTORY_SOURCE, "llamaindex.chat_memory"})
"""The ``source`` metadata of the records chat histories write (this package's, agentmem-llamaindex's)."""


def is_chat_record(hit: Mapping[str, Any]) -> bool:
    """Return True when a search hit is a record a chat history wrote, not a memory to retrieve.

    That is a record whose ``source`` metadata is in :data:`CHAT_HISTORY_SOURCES`, or one shaped like a chat
    history written before histories were marked (``{"session_id": ..., "messages": [...]}``).
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


def check_memory_types(memory_types: object) -> list[str] | None:
    """Return *memory_types* as a list of tier names, or None (every tier); raise InvalidArgumentError otherwise."""
    if memory_types is None:
        return None
    if isinstance(memory_types, (str, bytes)) or not isinstance(memory_types, Iterable):
        raise InvalidArgumentError(
            f"memory_types must be a list of tier names (short_term, long_term, external), got {memory_types!r:.80}"
        )
    names = [validate_memory_type(t) for t in memory_types]
    if not names:
        raise InvalidArgumentError("memory_types must name at least one tier, got []")
    return names


def fetch_filtered(
    fetch: Callable[[int], list[dict[str, Any]]],
    k: int,
    keep: Callable[[dict[str, Any]], bool] | None,
) -> list[dict[str, Any]]:
    """Return up to *k* hits of ``fetch(n)`` that *keep* accepts, asking for more until enough or exhausted.

    ``fetch(n)`` must return at most *n* hits, best first, and fewer than *n* only when nothing is left.
    """
    if keep is None:
        return fetch(k)[:k]
    n = k * 4
    while True:
        hits = fetch(n)
        kept = [h for h in hits if keep(h)]
        if len(kept) >= k or len(hits) < n:
            return kept[:k]
        n *= 4


def value_text(value: Any) -> str:
    """Return the text of a stored value: a str as it is, anything else as JSON (non-ASCII kept)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def open_manager(
    *,
    manager: object,
    storage_path: str | PathLike[str] | None,
    namespace: object,
    owner: str,
    **options: Any,
) -> tuple[MemoryManager, bool]:
    """Return ``(manager to use, whether the caller owns it and must close it)``.

    With *manager*: that manager, or its :meth:`~MemoryManager.with_namespace` view when *namespace* is given.
    Without: a new ``MemoryManager(storage_path=..., namespace=..., **options)``.

    Raises:
        InvalidArgumentError: *manager* is not a MemoryManager, both *manager* and *storage_path* were given,
            or *namespace* is malformed.

    """
    ns = check_namespace(namespace)
    if manager is not None:
        if not isinstance(manager, MemoryManager):
            raise InvalidArgumentError(
                f"{owner} needs a MemoryManager as manager=, got {type(manager).__name__}"
            )
        if storage_path is not None:
            raise InvalidArgumentError(
                f"{owner}: pass either manager= or storage_path=, not both (storage_path={str(storage_path)!r})"
            )
        return (manager if ns is None else manager.with_namespace(ns)), False
    return MemoryManager(storage_path=storage_path, namespace=ns, **options), True


def check_keys(keys: Sequence[Any]) -> list[str]:
    """Return *keys* as a list after checking it is a sequence of valid keys (not a single str)."""
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise InvalidArgumentError(f"keys must be a sequence of str, got {keys!r:.80}")
    return [validate_key(k) for k in keys]
