"""The memory operations behind the MCP tools and resources, over a manager opened on first use.

:class:`MemoryService` knows nothing about MCP: each method validates its arguments, runs one operation on an
agentmem :class:`~agentmem_plugin.manager.MemoryManager` and returns plain JSON-ready data (the server turns it
into compact JSON text). Errors are agentmem's typed errors (:mod:`agentmem_plugin.errors`), raised before
anything is stored.

The manager is opened lazily, so a server starts (and answers ``list_tools``) without loading the embedding model:

* the first call that only needs the store (remember, recall, forget, recent, stats) opens it **without** an
  embedder: keyword search only, no torch, no Chroma;
* the first search that needs meaning (mode ``hybrid``, the default, or ``semantic``) reopens it **with** the
  embedder. The semantic index catches up by itself with what was written meanwhile (entries stored without an
  index are embedded when one is opened; later writes enter the store's outbox), so nothing is missed.

Every call holds one lock: the manager sees one operation at a time, whichever thread or session calls.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import heapq
import math
import sys
import threading
from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from agentmem_plugin import MemoryManager
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError, KeyNotFoundError
from agentmem_plugin.validation import validate_key, validate_tags, validate_ttl

__all__ = ["HEAVY_MODULES", "SEARCH_MODES", "MemoryService", "derived_key", "entry_data"]

SEARCH_MODES: tuple[str, ...] = ("hybrid", "keyword", "semantic")
"""The search modes a tool accepts (None: the manager's default, hybrid when it has an embedder)."""

HEAVY_MODULES: tuple[str, ...] = ("torch", "sentence_transformers", "chromadb")
"""Modules that only semantic search needs; ``stats()`` reports which of them this process has imported."""

MAX_K = 50
"""Most hits one search returns."""

_SCAN_BATCH = 500


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).isoformat(timespec="seconds")


def entry_data(entry: MemoryEntry) -> dict[str, Any]:
    """Return the compact view of *entry* a model sees: key, content, and tags/importance/times when set."""
    data: dict[str, Any] = {"key": entry.key, "content": entry.value}
    if entry.tags:
        data["tags"] = list(entry.tags)
    if "importance" in entry.metadata:
        data["importance"] = entry.metadata["importance"]
    data["created"] = _iso(entry.created_at)
    if entry.expires_at is not None:
        data["expires"] = _iso(entry.expires_at)
    return data


def _check_content(content: object) -> str:
    if not isinstance(content, str) or not content.strip():
        raise InvalidArgumentError(f"content must be a non-empty str, got {content!r:.80}")
    return content


def _check_importance(importance: object) -> float | None:
    if importance is None:
        return None
    if (
        isinstance(importance, bool)
        or not isinstance(importance, (int, float))
        or not math.isfinite(importance)
        or not 0 <= importance <= 1
    ):
        raise InvalidArgumentError(f"importance must be a number in [0, 1], got {importance!r}")
    return float(importance)


def _check_count(value: object, name: str, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise InvalidArgumentError(f"{name} must be an int in [1, {most}], got {value!r}")
    return value


def _check_mode(mode: object) -> str | None:
    if mode is not None and mode not in SEARCH_MODES:
        raise InvalidArgumentError(
            f"mode must be one of {', '.join(SEARCH_MODES)} (or omitted), got {mode!r}"
        )
    return mode


def derived_key(content: str) -> str:
    """Return the key a memory gets when none is given: ``mem-`` and 12 hex digits of its content's SHA-256.

    The same content always gets the same key, so remembering a fact twice stores it once.
    """
    return "mem-" + hashlib.sha256(content.encode("utf-8")).hexdigest()[:12]


class MemoryService:
    """Remember, search, recall, forget and list memories in one store (and namespace), opened on first use.

    Args:
        storage_path: The store's directory (created when missing); None keeps memories in this process only
            (then the manager is opened with the embedder at the first call).
        namespace: Only this namespace of the store, e.g. ``"user/alice"``.
        embedder: The embedder of semantic search (``"default"``: agentmem's offline MiniLM); None: keyword
            search only.
        long_term_limit: Memories kept in long-term memory before the least important move to the archive
            (where search is by keyword only).

    Example:
        >>> service = MemoryService(None, embedder=None)
        >>> service.remember("The user is vegetarian", key="diet")
        {'key': 'diet', 'status': 'created'}
        >>> service.recall("diet")["content"]
        'The user is vegetarian'
        >>> [hit["key"] for hit in service.search("vegetarian", mode="keyword")]
        ['diet']
        >>> service.forget("diet")
        {'key': 'diet', 'status': 'forgotten'}
        >>> service.close()

    """

    def __init__(
        self,
        storage_path: str | PathLike[str] | None,
        *,
        namespace: str | Sequence[str] | None = None,
        embedder: Any = "default",
        long_term_limit: int = 100_000,
    ) -> None:
        self.storage_path = None if storage_path is None else Path(storage_path)
        if (
            self.storage_path is not None
            and self.storage_path.exists()
            and not self.storage_path.is_dir()
        ):
            raise InvalidArgumentError(
                f"storage must be a directory, got {str(self.storage_path)!r}"
            )
        self.namespace = namespace
        self.embedder = embedder
        self.long_term_limit = long_term_limit
        self._lock = threading.Lock()
        self._manager: MemoryManager | None = None
        self._semantic = False

    # -- the manager -----------------------------------------------------------------------------------------

    def _open(self, *, semantic: bool) -> MemoryManager:
        """Return the manager, opening it (with the embedder when *semantic*) if needed; call under the lock."""
        semantic = semantic and self.embedder is not None
        if self.storage_path is None:  # nothing to reopen from: open it once, with the embedder
            semantic = self.embedder is not None
        manager = self._manager
        if manager is not None and (self._semantic or not semantic):
            return manager
        if manager is not None:  # keyword-only until now: reopen with the embedder
            self._manager = None
            manager.close()
        self._manager = MemoryManager(
            storage_path=self.storage_path,
            namespace=self.namespace,
            embedder=self.embedder if semantic else None,
            long_term_limit=self.long_term_limit,
        )
        self._semantic = semantic
        return self._manager

    @property
    def semantic_ready(self) -> bool:
        """True once the manager is open with its embedder (the model is loaded)."""
        return self._manager is not None and self._semantic

    def close(self) -> None:
        """Close the manager (if it was opened); the next call opens it again."""
        with self._lock:
            manager, self._manager = self._manager, None
            if manager is not None:
                manager.close()

    # -- operations ------------------------------------------------------------------------------------------

    def remember(
        self,
        content: str,
        *,
        key: str | None = None,
        tags: Sequence[str] | None = None,
        ttl: float | None = None,
        importance: float | None = None,
    ) -> dict[str, Any]:
        """Store *content* in long-term memory; return ``{"key", "status": "created" | "updated"}``.

        Args:
            content: The fact, as text.
            key: Its key; default :func:`derived_key` (the same content, the same key). An existing key is
                replaced.
            tags: Labels to filter searches by.
            ttl: Seconds until it is forgotten; None: kept.
            importance: 0-1, read by consolidation (what stays in long-term memory first).

        Raises:
            InvalidArgumentError, InvalidKeyError: a bad argument; nothing was stored.

        """
        text = _check_content(content)
        the_key = derived_key(text) if key is None else validate_key(key)
        tag_list = list(validate_tags(tags))
        seconds = validate_ttl(ttl)
        weight = _check_importance(importance)
        with self._lock:
            manager = self._open(semantic=False)
            existed = manager.exists(the_key)
            manager.store(
                the_key,
                text,
                memory_type="long_term",
                ttl=seconds,
                tags=tag_list,
                metadata=None if weight is None else {"importance": weight},
            )
        return {"key": the_key, "status": "updated" if existed else "created"}

    def search(
        self,
        query: str,
        *,
        k: int = 5,
        mode: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Return up to *k* memories relevant to *query*, best first: ``[{"key", "content", "score", "tags"?}]``.

        Args:
            query: What to look for, in any words (semantic and hybrid search match meaning).
            k: Most hits (1-50).
            mode: ``"hybrid"`` (default), ``"keyword"`` or ``"semantic"``.
            tags: Only memories carrying every one of these tags.

        Raises:
            InvalidArgumentError: a bad argument (or a semantic mode without an embedder).

        """
        if not isinstance(query, str) or not query.strip():
            raise InvalidArgumentError(f"query must be a non-empty str, got {query!r:.80}")
        limit = _check_count(k, "k", MAX_K)
        how = _check_mode(mode)
        tag_list = list(validate_tags(tags))
        with self._lock:
            manager = self._open(semantic=how != "keyword")
            hits = manager.search(
                query, limit, mode=how, filter={"tags": tag_list} if tag_list else None
            )
        out = []
        for hit in hits:
            item: dict[str, Any] = {
                "key": hit["key"],
                "content": hit["value"],
                "score": round(float(hit["score"]), 3),
            }
            if hit.get("tags"):
                item["tags"] = list(hit["tags"])
            out.append(item)
        return out

    def recall(self, key: str) -> dict[str, Any]:
        """Return the memory under *key* (see :func:`entry_data`); it is read where it is, not moved.

        Raises:
            InvalidKeyError: a malformed key.
            KeyNotFoundError: no live memory under *key*.

        """
        the_key = validate_key(key)
        with self._lock:
            entry = self._open(semantic=False).get_many([the_key])[0]
        if entry is None:
            raise KeyNotFoundError(f"no memory under key {the_key!r}")
        return entry_data(entry)

    def forget(self, key: str) -> dict[str, Any]:
        """Delete the memory under *key*; return ``{"key", "status": "forgotten" | "not_found"}``."""
        the_key = validate_key(key)
        with self._lock:
            removed = self._open(semantic=False).delete(the_key)
        return {"key": the_key, "status": "forgotten" if removed else "not_found"}

    def recent(self, *, limit: int = 10) -> list[dict[str, Any]]:
        """Return the *limit* (1-50) most recently stored memories, newest first."""
        count = _check_count(limit, "limit", MAX_K)
        with self._lock:
            manager = self._open(semantic=False)
            keys = list(dict.fromkeys(manager.keys()))
            newest: list[MemoryEntry] = []
            for start in range(0, len(keys), _SCAN_BATCH):
                batch = [e for e in manager.get_many(keys[start : start + _SCAN_BATCH]) if e]
                newest = heapq.nlargest(count, [*newest, *batch], key=lambda e: e.created_at)
        return [entry_data(e) for e in newest]

    def stats(self) -> dict[str, Any]:
        """Return the store's statistics (``MemoryManager.get_stats``) and the server's: semantic index open, heavy modules imported."""
        with self._lock:
            stats = self._open(semantic=False).get_stats()
            stats["server"] = {
                "storage": None if self.storage_path is None else str(self.storage_path),
                "semantic_index_open": self._semantic,
                "heavy_modules_loaded": [m for m in HEAVY_MODULES if m in sys.modules],
            }
        return stats
