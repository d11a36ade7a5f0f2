"""`WorkingMemory`: the spec's short-term + long-term pair for active processing, as a policy over two memories.

Context is routed by importance: above ``importance_threshold`` it goes to long-term memory (tagged
``important`` and ``context``, kept until evicted for capacity), otherwise to short-term memory with a TTL.
:meth:`WorkingMemory.get_active_context` returns the recent short-term items first, then the long-term items most
relevant to a query, or, without one, to the text of the recent short-term context (never the spec's literal
string ``"recent context"``). A key lives in one of the two memories: storing it again moves it.

No storage code lives here: both halves are plain :class:`~agentmem_plugin.memory.Memory` objects.
"""

from __future__ import annotations

import logging
import math
import threading
from os import PathLike
from pathlib import Path
from typing import Any

from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.memory import Memory
from agentmem_plugin.twins import async_twin
from agentmem_plugin.validation import validate_text, validate_ttl

__all__ = ["WorkingMemory", "validate_importance"]

logger = logging.getLogger(__name__)

QUERY_TEXT_LIMIT = 2000
"""Longest query (in characters) built from the recent short-term context when no query is given."""


def validate_importance(importance: object, *, name: str = "importance") -> float:
    """Return *importance* as a float if it is a finite number in [0, 1]; raise otherwise.

    Raises:
        InvalidArgumentError: (a ``ValueError``) naming the bad value.

    Example:
        >>> validate_importance(0.9)
        0.9

    """
    if isinstance(importance, bool) or not isinstance(importance, (int, float)):
        raise InvalidArgumentError(f"{name} must be a number in [0, 1], got {importance!r}")
    value = float(importance)
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidArgumentError(f"{name} must be a number in [0, 1], got {importance!r}")
    return value


def _check_max_items(max_items: object) -> int:
    if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items <= 0:
        raise InvalidArgumentError(f"max_items must be a positive int, got {max_items!r}")
    return max_items


def _text_of(entry: MemoryEntry) -> str:
    """Searchable text for one context item: its key (underscores as spaces) and its value."""
    value = entry.value if isinstance(entry.value, str) else str(entry.value)
    return f"{entry.key.replace('_', ' ')} {value}"


def _item(entry: MemoryEntry, source: str) -> dict[str, Any]:
    importance = entry.metadata.get("importance")
    return {
        "key": entry.key,
        "value": entry.value,
        "source": source,
        "importance": importance if isinstance(importance, (int, float)) else None,
    }


class WorkingMemory:
    """Short-term and long-term memory combined for active processing, routed by importance.

    Args:
        short_term_capacity: Capacity of :attr:`short_term` (LRU eviction when full).
        long_term_capacity: Capacity of :attr:`long_term`.
        importance_threshold: Context with importance strictly above it goes to long-term memory.
        storage_path: A *directory* making long-term memory persistent (reopening it gives the items back);
            None keeps it in memory. Short-term memory is always in memory.
        embedder: Enables hybrid (keyword + meaning) search of long-term memory (``"default"`` = offline
            MiniLM); None searches by keyword only.
        clock: Source of the current time (tests pass a fake clock).
        short_term_ttl: Seconds a short-term item lives.

    Attributes:
        short_term: The short-term :class:`Memory`.
        long_term: The long-term :class:`Memory`.

    Raises:
        InvalidArgumentError: a bad capacity, threshold or TTL.

    Example:
        >>> wm = WorkingMemory()
        >>> wm.store_context("current_user", "Alice", importance=0.9)
        >>> wm.store_context("temporary_calculation", 42, importance=0.3)
        >>> [(c["key"], c["source"]) for c in wm.get_active_context()]
        [('temporary_calculation', 'short_term')]
        >>> [(c["key"], c["source"]) for c in wm.get_active_context(query="current user")]
        [('temporary_calculation', 'short_term'), ('current_user', 'long_term')]

    """

    def __init__(
        self,
        short_term_capacity: int = 100,
        long_term_capacity: int = 10000,
        *,
        importance_threshold: float = 0.8,
        storage_path: str | PathLike[str] | None = None,
        embedder: Any = None,
        clock: Clock | None = None,
        short_term_ttl: float = 3600,
    ) -> None:
        self.importance_threshold = validate_importance(
            importance_threshold, name="importance_threshold"
        )
        ttl = validate_ttl(short_term_ttl)
        if ttl is None:
            raise InvalidArgumentError(
                "short_term_ttl must be a positive number of seconds, got None"
            )
        self.short_term_ttl = ttl
        self.storage_path = None if storage_path is None else Path(storage_path)
        self._lock = threading.RLock()
        self.short_term = Memory(
            capacity=short_term_capacity, memory_type="short_term", clock=clock
        )
        try:
            self.long_term = Memory(
                capacity=long_term_capacity,
                memory_type="long_term",
                persistence=self.storage_path is not None,
                storage_path=self.storage_path,
                clock=clock,
                embedder=embedder,
            )
        except BaseException:
            self.short_term.close()
            raise

    def store_context(self, key: str, value: Any, importance: float = 0.5) -> None:
        """Store *value* under *key* in long-term memory if ``importance > importance_threshold``, else short-term.

        Long-term items are tagged ``["important", "context"]``; short-term items expire after
        ``short_term_ttl`` seconds. Both keep ``importance`` in their metadata. If *key* was in the other memory
        it is removed from there, so a key is never in both.

        Raises:
            InvalidArgumentError: *importance* is not a number in [0, 1] (nothing is stored).
            InvalidKeyError: a bad key. SerializationError: a value that cannot be stored as JSON.

        Example:
            >>> wm = WorkingMemory()
            >>> wm.store_context("learned_pattern", "user_prefers_detailed_explanations", importance=0.85)
            >>> wm.long_term.retrieve("learned_pattern")
            'user_prefers_detailed_explanations'

        """
        weight = validate_importance(importance)
        metadata = {"importance": weight}
        with self._lock:
            if weight > self.importance_threshold:
                self.long_term.store(key, value, metadata=metadata, tags=["important", "context"])
                self.short_term.delete(key)
                logger.debug("context %r (importance %.2f) stored long-term", key, weight)
            else:
                self.short_term.store(key, value, ttl=self.short_term_ttl, metadata=metadata)
                self.long_term.delete(key)
                logger.debug("context %r (importance %.2f) stored short-term", key, weight)

    def get_active_context(
        self, max_items: int = 20, query: str | None = None
    ) -> list[dict[str, Any]]:
        """Return the context most relevant to current processing, at most *max_items* items.

        Recent short-term items come first (most recently stored first), then long-term items ranked by a
        search for *query*; without a query the search text is the recent short-term context itself (keys and
        values). When the search finds fewer items than the free slots (or there is no text to search for),
        the rest are filled with long-term items by importance, most important first, then most recent: an
        important memory is never crowded out by a search that found nothing. No key appears twice.

        Args:
            max_items: Maximum number of items returned.
            query: What the current processing is about (optional).

        Returns:
            Dicts ``{"key", "value", "source", "importance"}``; ``source`` is ``"short_term"`` or
            ``"long_term"``; ``importance`` is the value given to :meth:`store_context` (None for items stored
            directly into a memory without one).

        Raises:
            InvalidArgumentError: *max_items* is not a positive int, or *query* is not a str.

        Example:
            >>> wm = WorkingMemory()
            >>> wm.store_context("step", "parse the input", importance=0.2)
            >>> wm.get_active_context(max_items=1)[0]["key"]
            'step'

        """
        max_items = _check_max_items(max_items)
        if query is not None:
            query = validate_text(query, what="query")
        with self._lock:
            recent = list(reversed(self.short_term.tier.scan()))[:max_items]
            items = [_item(entry, "short_term") for entry in recent]
            remaining = max_items - len(items)
            if remaining <= 0 or len(self.long_term) == 0:
                return items
            seen = {item["key"] for item in items}
            text = query if query is not None else " ".join(_text_of(e) for e in recent)
            text = text[:QUERY_TEXT_LIMIT]
            candidates = []
            if text.strip():
                hits = self.long_term.search(text, limit=remaining + len(seen))
                candidates = [
                    {
                        "key": h["key"],
                        "value": h["value"],
                        "source": "long_term",
                        "importance": h["metadata"].get("importance"),
                    }
                    for h in hits
                ]
            if len({c["key"] for c in candidates} - seen) < remaining:
                # The search found fewer than the free slots: fill them with the most important long-term
                # items, then the most recent, after what the search found.
                entries = self.long_term.tier.scan()
                entries.sort(
                    key=lambda e: (-float(e.metadata.get("importance") or 0.0), -e.created_at)
                )
                candidates += [_item(entry, "long_term") for entry in entries]
            for candidate in candidates:
                if len(items) >= max_items:
                    break
                if candidate["key"] not in seen:
                    seen.add(candidate["key"])
                    items.append(candidate)
            return items

    def close(self) -> None:
        """Close both memories (long-term files are released). The working memory is unusable afterwards."""
        try:
            self.short_term.close()
        finally:
            self.long_term.close()

    def __enter__(self) -> WorkingMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"WorkingMemory(short_term={len(self.short_term)}, long_term={len(self.long_term)}, "
            f"importance_threshold={self.importance_threshold!r})"
        )

    # -- async twins ---------------------------------------------------------------------------------------

    astore_context = async_twin(store_context)
    aget_active_context = async_twin(get_active_context)
