"""The spec's storage variants of :class:`~agentmem_plugin.memory.Memory`, as thin classes over the tiers.

=====================  ==========================================================================================
class                  what it adds
=====================  ==========================================================================================
``CompressedMemory``   SQLite tier (in memory, or a file with ``persistence=True``) compressing values above
                       ``compression_threshold`` bytes; ``get_compression_stats()``
``PersistentMemory``   one human-readable JSON file, saved atomically after each write (``auto_save``)
``DatabaseMemory``     a SQLite file and table of your choosing; ``get_memory_analytics()``
``OptimizedMemory``    ``get_access_statistics()`` from the access counts the tiers keep anyway
``DebuggableMemory``   a bounded log of operations; ``get_debug_info()``
``ResilientMemory``    periodic and emergency JSON backups into a directory; error counting
=====================  ==========================================================================================
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from agentmem_plugin.codec import DEFAULT_COMPRESSION_THRESHOLD
from agentmem_plugin.errors import InvalidArgumentError, StorageError
from agentmem_plugin.memory import DATABASE_FILENAME, Memory
from agentmem_plugin.tiers.jsonfile import JsonFileTier, read_snapshot, write_snapshot
from agentmem_plugin.tiers.sqlite import SqliteTier

__all__ = [
    "CompressedMemory",
    "DatabaseMemory",
    "DebuggableMemory",
    "OptimizedMemory",
    "PersistentMemory",
    "ResilientMemory",
    "SemanticMemory",
]

DEFAULT_SIMILARITY_THRESHOLD = 0.2
"""Cosine floor of :meth:`SemanticMemory.semantic_search`, measured with all-MiniLM-L6-v2.

On LoCoMo (dev half, categories 1-4) a floor of 0.2 keeps 97.8% of (question, evidence turn) pairs (0.3 keeps
89.5%, 0.5 keeps 39.7%); the spec's 0.7 keeps 1.9%: it returns almost nothing with real sentence embeddings.
Short queries score lower than questions against dialogue turns ("coding guidelines" vs a PEP 8 tip: 0.21,
vs a cooking tip: 0.06), so the floor only drops what is clearly unrelated; ranking does the rest."""

logger = logging.getLogger(__name__)


def _memory_kwargs(kwargs: dict[str, Any], *, forbidden: Iterable[str]) -> dict[str, Any]:
    for name in forbidden:
        if name in kwargs:
            raise InvalidArgumentError(f"{name!r} cannot be set on this memory class")
    return kwargs


class CompressedMemory(Memory):
    """A memory that zstd-compresses values whose JSON is longer than ``compression_threshold`` bytes.

    Values are kept in a SQLite tier: in memory by default, or in ``storage_path`` with ``persistence=True``.

    Example:
        >>> m = CompressedMemory(compression_threshold=500)
        >>> m.store("large_dataset", {"data": list(range(1000))})
        >>> m.store("small", {"status": "active"})
        >>> m.get_compression_stats()["compressed_items"]
        1

    """

    auto_semantic = False  # the spec's variant: keyword search unless given an embedder

    def __init__(
        self, compression_threshold: int = DEFAULT_COMPRESSION_THRESHOLD, **kwargs: Any
    ) -> None:
        self.compression_threshold = compression_threshold
        super().__init__(**_memory_kwargs(kwargs, forbidden=["tier"]))

    def _open_tier(self, *, on_evict: Any, clock: Any) -> SqliteTier:
        path = None
        if self.persistence:
            if self.storage_path is None:
                raise InvalidArgumentError("persistence=True needs a storage_path (a directory)")
            path = self.storage_path / DATABASE_FILENAME
        return SqliteTier(
            path,
            capacity=self.capacity,
            clock=clock,
            on_evict=on_evict,
            compression_threshold=self.compression_threshold,
        )

    def get_compression_stats(self) -> dict[str, Any]:
        """Return total and compressed item counts, their ratio, stored bytes and the threshold."""
        tier = self.tier
        assert isinstance(tier, SqliteTier)
        stats = tier.compression_stats()
        stats["compression_ratio"] = stats["compressed_items"] / max(1, stats["total_items"])
        stats["compression_threshold"] = self.compression_threshold
        return stats


class PersistentMemory(Memory):
    """A memory kept in one JSON file, saved atomically after every write; several processes may share it.

    Each save locks the file (``.<name>.lock`` beside it) and merges what other processes saved meanwhile, so
    concurrent writers lose nothing (see :class:`~agentmem_plugin.tiers.jsonfile.JsonFileTier`).

    Args:
        storage_path: The JSON *file* (its directory is created when missing).
        auto_save: Save after each write; otherwise call :meth:`save_to_disk` (also done by ``close()``).
        **kwargs: ``capacity``, ``memory_type``, ``default_ttl``, ``clock``, ``on_evict``.

    Raises:
        StoreCorruptError: the file exists but is truncated or not a snapshot; it is never overwritten.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "agent_memory.json")
        >>> PersistentMemory(path).store("configuration", {"version": "1.0"})
        >>> PersistentMemory(path).retrieve("configuration")
        {'version': '1.0'}

    """

    auto_semantic = False  # the spec's variant: keyword search unless given an embedder

    def __init__(
        self, storage_path: str | PathLike[str], auto_save: bool = True, **kwargs: Any
    ) -> None:
        self.auto_save = auto_save
        self._json_path = Path(storage_path)
        kwargs = _memory_kwargs(kwargs, forbidden=["tier", "persistence"])
        super().__init__(persistence=True, storage_path=storage_path, **kwargs)

    def _open_tier(self, *, on_evict: Any, clock: Any) -> JsonFileTier:
        return JsonFileTier(
            self._json_path,
            auto_save=self.auto_save,
            capacity=self.capacity,
            clock=clock,
            on_evict=on_evict,
        )

    def save_to_disk(self) -> int:
        """Write every live entry to the file now; return how many were written."""
        tier = self.tier
        assert isinstance(tier, JsonFileTier)
        return tier.save()

    def load_from_disk(self) -> int:
        """Re-read the file, replacing what is in memory; return how many live entries were loaded."""
        tier = self.tier
        assert isinstance(tier, JsonFileTier)
        return tier.reload()


class DatabaseMemory(Memory):
    """A memory in a SQLite file and table of your choosing.

    Args:
        db_path: The database file (created with its directory when missing).
        table_name: Table to use; must be an identifier (``[A-Za-z_][A-Za-z0-9_]*``). Refused otherwise:
            nothing in this package builds SQL from user text.
        **kwargs: ``capacity`` (default None: unbounded), ``memory_type``, ``default_ttl``, ``clock``,
            ``on_evict``.

    Example:
        >>> import tempfile, os
        >>> db = DatabaseMemory(db_path=os.path.join(tempfile.mkdtemp(), "agent_memory.db"))
        >>> db.store("user_session", {"user_id": "12345"}, ttl=3600, tags=["session"])
        >>> db.get_memory_analytics()["total_items"]
        1

    """

    auto_semantic = False  # the spec's variant: keyword search unless given an embedder

    def __init__(
        self, db_path: str | PathLike[str], table_name: str = "memory", **kwargs: Any
    ) -> None:
        self.db_path = Path(db_path)
        self.table_name = table_name
        kwargs = _memory_kwargs(kwargs, forbidden=["tier", "persistence", "storage_path"])
        kwargs.setdefault("capacity", None)
        super().__init__(persistence=True, storage_path=self.db_path, **kwargs)

    def _open_tier(self, *, on_evict: Any, clock: Any) -> SqliteTier:
        return SqliteTier(
            self.db_path,
            table=self.table_name,
            capacity=self.capacity,
            clock=clock,
            on_evict=on_evict,
        )

    def get_memory_analytics(self) -> dict[str, Any]:
        """Return total items, average and maximum access count, tagged items and the database path."""
        tier = self.tier
        assert isinstance(tier, SqliteTier)
        return {
            **tier.analytics(),
            "database_path": str(self.db_path),
            "table_name": self.table_name,
        }


class OptimizedMemory(Memory):
    """A memory that reports its access patterns (from the access counts every tier keeps).

    Example:
        >>> m = OptimizedMemory()
        >>> m.store("a", 1); _ = m.retrieve("a"); _ = m.retrieve("a")
        >>> m.get_access_statistics()["most_accessed_key"]
        'a'

    """

    auto_semantic = False  # the spec's variant: keyword search unless given an embedder

    def get_access_statistics(self, top: int = 10) -> dict[str, Any]:
        """Return total accesses, keys accessed, the most accessed key and the *top* access counts."""
        counts = {e.key: e.access_count for e in self.tier.scan() if e.access_count > 0}
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        most = ranked[0] if ranked else (None, 0)
        return {
            "total_accesses": sum(counts.values()),
            "unique_keys_accessed": len(counts),
            "most_accessed_key": most[0],
            "most_accessed_count": most[1],
            "access_patterns": dict(ranked[:top]),
        }


class DebuggableMemory(Memory):
    """A memory that keeps a bounded log of its operations (when ``debug_mode`` is on).

    Args:
        debug_mode: Record operations.
        max_log_entries: Log size; older operations are dropped.
        **kwargs: Passed to :class:`Memory`.

    """

    auto_semantic = False  # the spec's variant: keyword search unless given an embedder

    def __init__(
        self, debug_mode: bool = False, max_log_entries: int = 1000, **kwargs: Any
    ) -> None:
        if (
            isinstance(max_log_entries, bool)
            or not isinstance(max_log_entries, int)
            or max_log_entries <= 0
        ):
            raise InvalidArgumentError(
                f"max_log_entries must be a positive int, got {max_log_entries!r}"
            )
        self.debug_mode = debug_mode
        self.operation_log: deque[dict[str, Any]] = deque(maxlen=max_log_entries)
        super().__init__(**kwargs)

    def log_operation(self, operation: str, **details: Any) -> None:
        """Append one operation record (when ``debug_mode`` is on) and log it at DEBUG level."""
        if self.debug_mode:
            record = {"operation": operation, "timestamp": time.time(), **details}
            self.operation_log.append(record)
            logger.debug("memory op: %s", record)

    def store(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        priority: int = 0,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
    ) -> None:
        """Store, and log the operation (with the outcome when it fails)."""
        try:
            super().store(key, value, ttl, priority, metadata, tags)
        except Exception as exc:
            self.log_operation("store", key=key, value_type=type(value).__name__, error=repr(exc))
            raise
        self.log_operation("store", key=key, value_type=type(value).__name__)

    def retrieve(self, key: str) -> Any:
        """Retrieve, and log whether the key was found."""
        result = super().retrieve(key)
        self.log_operation("retrieve", key=key, found=result is not None)
        return result

    def delete(self, key: str) -> bool:
        """Delete, and log whether a live entry was removed."""
        removed = super().delete(key)
        self.log_operation("delete", key=key, removed=removed)
        return removed

    def search(
        self,
        query: str,
        limit: int = 10,
        *,
        mode: str | None = None,
        explain: bool = False,
        recency_weight: float | None = None,
        importance_weight: float | None = None,
    ) -> list[dict[str, Any]]:
        """Search, and log the number of hits."""
        hits = super().search(
            query,
            limit,
            mode=mode,
            explain=explain,
            recency_weight=recency_weight,
            importance_weight=importance_weight,
        )
        self.log_operation("search", query=query, mode=mode, hits=len(hits))
        return hits

    def get_debug_info(self) -> dict[str, Any]:
        """Return the number of logged operations, the last ten, and the memory's stats."""
        log = list(self.operation_log)
        return {
            "total_operations": len(log),
            "recent_operations": log[-10:],
            "memory_stats": self.get_stats(),
        }


class ResilientMemory(Memory):
    """A memory that backs itself up to JSON snapshots and counts storage errors.

    A backup is written after a store once ``backup_interval`` seconds have passed since the last one, and at
    once (an *emergency* backup) when ``max_errors`` storage errors have been counted. Bad input still raises
    (a typed error, as everywhere). A failed store raises too, after being counted: losing a write silently
    is worse than an exception. A failed retrieve is counted, logged and returns None.

    Args:
        backup_dir: Directory for ``memory_backup_<time>.json`` files (created when missing).
        backup_interval: Seconds between periodic backups.
        max_errors: Storage errors that trigger an emergency backup (the count then resets).
        max_backups: Backups kept in the directory (oldest removed first).
        **kwargs: Passed to :class:`Memory`.

    """

    auto_semantic = False  # the spec's variant: keyword search unless given an embedder

    def __init__(
        self,
        backup_dir: str | PathLike[str],
        backup_interval: float = 3600,
        max_errors: int = 10,
        max_backups: int = 10,
        **kwargs: Any,
    ) -> None:
        if backup_interval <= 0 or max_errors <= 0 or max_backups <= 0:
            raise InvalidArgumentError(
                "backup_interval, max_errors and max_backups must be positive, got "
                f"{backup_interval!r}, {max_errors!r}, {max_backups!r}"
            )
        self.backup_dir = Path(backup_dir)
        self.backup_interval = backup_interval
        self.max_errors = max_errors
        self.max_backups = max_backups
        self.error_count = 0
        self.total_errors = 0
        super().__init__(**kwargs)
        self.last_backup = self._clock()
        self._backups = 0

    def store(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        priority: int = 0,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
    ) -> None:
        """Store; count storage failures (then re-raise) and back up when the interval has passed."""
        try:
            super().store(key, value, ttl, priority, metadata, tags)
        except StorageError as exc:
            self.handle_error(exc, "store", key=key)
            raise
        self.check_backup_needed()

    def retrieve(self, key: str) -> Any:
        """Retrieve; a storage failure is counted and logged, and None is returned."""
        try:
            return super().retrieve(key)
        except StorageError as exc:
            self.handle_error(exc, "retrieve", key=key)
            return None

    def handle_error(self, error: Exception, operation: str, **context: Any) -> None:
        """Count *error*, log it, and make an emergency backup after ``max_errors`` of them."""
        self.error_count += 1
        self.total_errors += 1
        logger.error("memory error in %s (%s): %s", operation, context, error)
        if self.error_count >= self.max_errors:
            logger.error("%d memory errors: making an emergency backup", self.error_count)
            self.emergency_backup()

    def check_backup_needed(self) -> Path | None:
        """Back up when ``backup_interval`` has passed since the last backup; return the new file or None."""
        if self._clock() - self.last_backup >= self.backup_interval:
            return self.create_backup()
        return None

    def create_backup(self) -> Path | None:
        """Write a snapshot of every live entry into ``backup_dir``; return its path (None if it failed)."""
        self._backups += 1
        path = self.backup_dir / f"memory_backup_{int(self._clock())}_{self._backups:04d}.json"
        try:
            count = write_snapshot(path, self.tier.scan())
        except StorageError as exc:
            logger.error("backup failed: %s", exc)
            return None
        self.last_backup = self._clock()
        logger.info("memory backup of %d entries written to %s", count, path)
        for old in self.list_backups()[: -self.max_backups]:
            old.unlink(missing_ok=True)
        return path

    def emergency_backup(self) -> Path | None:
        """Back up now and reset the error count."""
        path = self.create_backup()
        self.error_count = 0
        return path

    def list_backups(self) -> list[Path]:
        """Return the backup files, oldest first."""
        if not self.backup_dir.exists():
            return []
        return sorted(self.backup_dir.glob("memory_backup_*.json"))

    def restore_backup(self, path: str | PathLike[str] | None = None) -> int:
        """Load a backup (default: the newest) into this memory; return how many live entries it restored.

        Raises:
            StoreCorruptError: the backup is damaged (nothing was changed).
            InvalidArgumentError: there is no backup.

        """
        if path is None:
            backups = self.list_backups()
            if not backups:
                raise InvalidArgumentError(f"no backup in {str(self.backup_dir)!r}")
            path = backups[-1]
        entries = read_snapshot(path)
        now = self._clock()
        live = [e for e in entries if not e.is_expired(now)]
        self.tier.put_many(live)
        return len(live)

    def get_stats(self) -> dict[str, Any]:
        """Memory stats plus error counts and the last backup time."""
        return {
            **super().get_stats(),
            "error_count": self.error_count,
            "total_errors": self.total_errors,
            "last_backup": self.last_backup,
            "backup_dir": str(self.backup_dir),
        }


class SemanticMemory(Memory):
    """A memory searched by meaning: every entry is embedded (offline MiniLM by default) and indexed in Chroma.

    ``search()`` is hybrid (keyword + meaning) by default; :meth:`semantic_search` is the spec's pure-meaning
    search with a similarity floor. Persistent with ``persistence=True, storage_path=DIR`` (the vectors live in
    ``DIR/chroma`` and an embedding cache in ``DIR/embeddings.sqlite3``, both derived from ``memory.sqlite3``).

    Args:
        embedder: ``"default"`` (all-MiniLM-L6-v2, offline), an ``Embedder``, a LangChain ``Embeddings`` object
            or a callable ``fn(list[str]) -> vectors``.
        similarity_threshold: Default floor of :meth:`semantic_search` (see ``DEFAULT_SIMILARITY_THRESHOLD``).
        **kwargs: Passed to :class:`Memory` (``capacity``, ``persistence``, ``storage_path``, ``reindex``, ...).

    Example:
        >>> memory = SemanticMemory(capacity=5000)  # doctest: +SKIP
        >>> memory.store_with_embedding("python_best_practices", "Use descriptive names, follow PEP 8")  # doctest: +SKIP
        >>> memory.semantic_search("coding guidelines", limit=5)[0]["key"]  # doctest: +SKIP
        'python_best_practices'

    """

    def __init__(
        self,
        embedder: Any = "default",
        similarity_threshold: float = DEFAULT_SIMILARITY_THRESHOLD,
        **kwargs: Any,
    ) -> None:
        if not -1.0 <= similarity_threshold <= 1.0:
            raise InvalidArgumentError(
                f"similarity_threshold must be in [-1, 1], got {similarity_threshold!r}"
            )
        self.similarity_threshold = similarity_threshold
        super().__init__(embedder=embedder, **kwargs)

    def store_with_embedding(
        self, key: str, value: Any, embedding: Sequence[float] | None = None, **kwargs: Any
    ) -> None:
        """Store *value* under *key* and index it by meaning.

        Args:
            key: The key.
            value: A JSON-serializable value.
            embedding: A vector to use instead of embedding the value's text (must have the embedder's
                dimension; it is recorded as the embedding of that text).
            **kwargs: ``ttl``, ``priority``, ``metadata``, ``tags``.

        Raises:
            EmbeddingError: *embedding* has the wrong dimension or NaN; nothing was stored.

        """
        if embedding is not None:
            semantic = self._semantic
            assert semantic is not None
            probe = self._entry(
                key,
                value,
                kwargs.get("ttl"),
                kwargs.get("priority", 0),
                kwargs.get("metadata"),
                kwargs.get("tags"),
            )
            semantic.remember(probe, embedding)
        self.store(key, value, **kwargs)

    def semantic_search(
        self, query: str, limit: int = 10, similarity_threshold: float | None = None
    ) -> list[dict[str, Any]]:
        """Return up to *limit* ``{key, value, similarity}`` dicts with cosine similarity >= the threshold.

        An empty or whitespace query returns ``[]``.
        """
        floor = self.similarity_threshold if similarity_threshold is None else similarity_threshold
        hits = self.search(query, limit, mode="semantic")
        return [
            {"key": h["key"], "value": h["value"], "similarity": h["similarity"]}
            for h in hits
            if h["similarity"] >= floor
        ]
