"""A JSON-file tier: the in-memory buffer, saved to one JSON file with an atomic replace.

For small memories that a person wants to read or put under version control. Every save writes a temporary
file beside the target, fsyncs it, renames it over the target and fsyncs the directory, so a crash leaves
either the old file or the new one, never a torn one. A file that cannot be read (truncated, not JSON, an
unknown format) is refused at open and is never overwritten.

File format (version 1)::

    {"format": "agentmem-json", "version": 1, "entries": [<MemoryEntry.to_dict()>, ...]}

A plain JSON object ``{"key": value, ...}`` (what the spec's sample code wrote) is also read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from os import PathLike
from pathlib import Path

import orjson

from agentmem_plugin.codec import encode_json
from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import AgentMemError, StorageError, StoreCorruptError
from agentmem_plugin.tiers.base import EvictionCallback
from agentmem_plugin.tiers.buffer import BufferTier

__all__ = ["SNAPSHOT_FORMAT", "JsonFileTier", "read_snapshot", "write_snapshot"]

logger = logging.getLogger(__name__)

SNAPSHOT_FORMAT = "agentmem-json"
_VERSION = 1


def write_snapshot(path: str | PathLike[str], entries: Iterable[MemoryEntry]) -> int:
    """Atomically write *entries* to *path* as a versioned JSON snapshot; return how many were written.

    Raises:
        StorageError: the file could not be written (the previous file, if any, is intact).

    """
    target = Path(path)
    items = [e.to_dict() for e in entries]
    data = encode_json(
        {"format": SNAPSHOT_FORMAT, "version": _VERSION, "entries": items}, what="snapshot"
    )
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"could not write the snapshot {str(target)!r}: {exc}") from exc
    return len(items)


def read_snapshot(path: str | PathLike[str]) -> list[MemoryEntry]:
    """Read a snapshot written by :func:`write_snapshot` (or a plain ``{key: value}`` JSON object).

    Raises:
        StoreCorruptError: the file is truncated, not JSON, or not a snapshot (the message names the path).

    """
    source = Path(path)
    try:
        raw = source.read_bytes()
    except OSError as exc:
        raise StorageError(f"could not read {str(source)!r}: {exc}") from exc
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise StoreCorruptError(
            f"{str(source)!r} is not valid JSON (truncated or damaged?): {exc}; it was left untouched"
        ) from exc
    if not isinstance(data, dict):
        raise StoreCorruptError(
            f"{str(source)!r} does not hold a JSON object; it was left untouched"
        )
    try:
        if data.get("format") == SNAPSHOT_FORMAT:
            if data.get("version") != _VERSION:
                raise StoreCorruptError(
                    f"{str(source)!r} is snapshot version {data.get('version')!r}; this version reads {_VERSION}"
                )
            return [MemoryEntry.from_dict(item) for item in data["entries"]]
        return [MemoryEntry(key, value) for key, value in data.items()]
    except (AgentMemError, KeyError, TypeError) as exc:
        if isinstance(exc, StoreCorruptError):
            raise
        raise StoreCorruptError(
            f"{str(source)!r} holds an invalid entry: {exc}; it was left untouched"
        ) from exc


class JsonFileTier(BufferTier):
    """A :class:`BufferTier` loaded from and saved to one JSON file.

    Args:
        path: The JSON file (created on the first save; its directory is created too).
        auto_save: Save after every write (store, delete, clear, cleanup that removed something).
            Otherwise call :meth:`save` (also done by :meth:`close`).
        capacity: Maximum entries (None: unbounded).
        clock: Source of the current time.
        on_evict: See :class:`BufferTier`.

    Raises:
        StoreCorruptError: *path* exists but cannot be read as a snapshot (it is left untouched).

    """

    name = "jsonfile"
    persistent = True

    def __init__(
        self,
        path: str | PathLike[str],
        *,
        auto_save: bool = True,
        capacity: int | None = None,
        clock: Clock | None = None,
        on_evict: EvictionCallback | None = None,
    ) -> None:
        super().__init__(capacity, clock=clock, on_evict=on_evict)
        self.path = Path(path)
        self.auto_save = auto_save
        if self.path.exists():
            loaded = read_snapshot(self.path)
            now = self.clock()
            live = [e for e in loaded if not e.is_expired(now)]
            if live:
                BufferTier.put_many(self, live)
            logger.info("loaded %d entries from %s", len(live), self.path)

    def save(self) -> int:
        """Write every live entry to the file now; return how many were written."""
        with self._lock:
            return write_snapshot(self.path, self.scan())

    def _saved(self) -> None:
        if self.auto_save:
            self.save()

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        """Insert or replace *entries*, then save (with ``auto_save``)."""
        with self._lock:
            super().put_many(entries)
            self._saved()

    def put(self, entry: MemoryEntry) -> None:
        """Insert or replace one entry, then save (with ``auto_save``)."""
        self.put_many([entry])

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete *keys*, then save (with ``auto_save``)."""
        with self._lock:
            removed = super().delete_many(keys)
            if removed:
                self._saved()
            return removed

    def compute(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        """Atomic read-modify-write, then save (with ``auto_save``)."""
        with self._lock:
            result = super().compute(key, fn)
            self._saved()
            return result

    def cleanup(self) -> list[str]:
        """Remove expired entries, then save when any were removed (with ``auto_save``)."""
        with self._lock:
            removed = super().cleanup()
            if removed:
                self._saved()
            return removed

    def clear(self) -> None:
        """Remove every entry, then save (with ``auto_save``)."""
        with self._lock:
            super().clear()
            self._saved()

    def close(self) -> None:
        """Save (so access counts are kept) and release nothing else."""
        self.save()
