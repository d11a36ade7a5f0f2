"""A JSON-file tier: the in-memory buffer, saved to one JSON file with an atomic replace.

For small memories that a person wants to read or put under version control. Every save writes a temporary
file beside the target, fsyncs it, renames it over the target and fsyncs the directory, so a crash leaves
either the old file or the new one, never a torn one. A file that cannot be read (truncated, not JSON, an
unknown format) is refused at open and is never overwritten.

**Several processes (or several tiers) on one file lose nothing.** A save holds an exclusive lock
(``fcntl.flock``) on ``.<name>.lock`` beside the file while it reads what others saved since this tier last
read or wrote the file, merges it, and writes the result: a three-way merge against that last-seen state, key
by key. What only another process changed (stored, updated, deleted) is taken from the file; what this tier
changed is kept, and wins when both changed the same key (it saves last). Reads counted here (access counts)
are added to the file's version. With ``auto_save`` each write is one locked read-merge-write, so
:meth:`~JsonFileTier.compute` is atomic across processes too. Reads see another process's saves after this
tier's next write (or :meth:`~JsonFileTier.reload`).

File format (version 1)::

    {"format": "agentmem-json", "version": 1, "entries": [<MemoryEntry.to_dict()>, ...]}

A plain JSON object ``{"key": value, ...}`` (what the spec's sample code wrote) is also read.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

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


def _encode(entries: Iterable[MemoryEntry]) -> tuple[bytes, int]:
    items = [e.to_dict() for e in entries]
    data = encode_json(
        {"format": SNAPSHOT_FORMAT, "version": _VERSION, "entries": items}, what="snapshot"
    )
    return data, len(items)


def _replace_file(target: Path, data: bytes) -> None:
    """Write *data* to *target* atomically (temporary file, fsync, rename, fsync of the directory)."""
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


def write_snapshot(path: str | PathLike[str], entries: Iterable[MemoryEntry]) -> int:
    """Atomically write *entries* to *path* as a versioned JSON snapshot; return how many were written.

    Raises:
        StorageError: the file could not be written (the previous file, if any, is intact).

    """
    data, count = _encode(entries)
    _replace_file(Path(path), data)
    return count


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
    return _parse(raw, source)


def _parse(raw: bytes, source: Path) -> list[MemoryEntry]:
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


_READS = ("access_count", "last_accessed")
"""Fields a read changes: not a change of the entry for the merge (the counts are added instead)."""


def _same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Tell whether two ``to_dict`` forms (or None: absent) are the same entry, reads aside."""
    if a is None or b is None:
        return a is b
    return all(a.get(k) == b.get(k) for k in a.keys() | b.keys() if k not in _READS)


class JsonFileTier(BufferTier):
    """A :class:`BufferTier` loaded from and saved to one JSON file, safe for several processes.

    Args:
        path: The JSON file (created on the first save; its directory is created too).
        auto_save: Save after every write (store, delete, clear, cleanup that removed something).
            Otherwise call :meth:`save` (also done by :meth:`close`).
        capacity: Maximum entries (None: unbounded).
        clock: Source of the current time.
        on_evict: See :class:`BufferTier`.

    Each save locks ``.<name>.lock`` beside the file and merges what other processes saved since (see the
    module docstring), so concurrent writers lose nothing.

    Raises:
        StoreCorruptError: *path* exists but cannot be read as a snapshot (it is left untouched).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "m.json")
        >>> a, b = JsonFileTier(path), JsonFileTier(path)   # two processes, say
        >>> a.put(MemoryEntry("from_a", 1)); b.put(MemoryEntry("from_b", 2))
        >>> sorted(JsonFileTier(path).keys())
        ['from_a', 'from_b']

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
        self._lock_path = self.path.with_name(f".{self.path.name}.lock")
        self._lock_fd: int | None = None
        # The file's bytes as this tier last read or wrote them (None: there was no file): the merge's base.
        self._seen: bytes | None = None
        if self.path.exists():
            with self._file_locked():
                loaded = self._load()
            logger.info("loaded %d entries from %s", loaded, self.path)

    # -- the file, under its lock ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _file_locked(self) -> Iterator[None]:
        """Hold this tier's thread lock and the exclusive lock of the file (released even on error)."""
        with self._lock:
            if self._lock_fd is None:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._lock_fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
                except OSError as exc:
                    raise StorageError(
                        f"cannot open the lock file {str(self._lock_path)!r}: {exc}"
                    ) from exc
            try:
                import fcntl
            except ImportError:  # pragma: no cover - not POSIX: one process per file
                yield
                return
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _read_bytes(self) -> bytes | None:
        """Return the file's bytes, or None when it is missing."""
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"could not read {str(self.path)!r}: {exc}") from exc

    def _entries_of(self, raw: bytes | None) -> dict[str, dict[str, Any]]:
        """Return the entries of the file's bytes *raw* by key, in ``to_dict`` form."""
        return {} if raw is None else {e.key: e.to_dict() for e in _parse(raw, self.path)}

    def _load(self) -> int:
        """Replace what is in memory by the file's live entries (caller holds the file lock)."""
        raw = self._read_bytes()
        entries = self._entries_of(raw)
        BufferTier.clear(self)
        now = self.clock()
        live = [MemoryEntry.from_dict(d) for d in entries.values()]
        live = [e for e in live if not e.is_expired(now)]
        if live:
            BufferTier.put_many(self, live)
        self._seen = raw
        return len(live)

    def _merge(self) -> None:
        """Take in what others saved since this tier last read or wrote the file (caller holds the file lock).

        A three-way merge against that last-seen state: a key this tier did not change takes the file's
        version (or leaves, when another process deleted it), adding the reads counted here; a key it changed
        keeps its own.
        """
        raw = self._read_bytes()
        if raw == self._seen:
            return  # nobody saved since
        theirs, seen = self._entries_of(raw), self._entries_of(self._seen)
        now = self.clock()
        for key in theirs.keys() | seen.keys():
            base, file = seen.get(key), theirs.get(key)
            current = self._entries.get(key)
            mine = None if current is None else current.to_dict()
            if not _same(mine, base) or _same(mine, file):
                continue  # changed here (kept: it saves last), or the same in both
            incoming = None if file is None else MemoryEntry.from_dict(file)
            if incoming is None or incoming.is_expired(now):
                self._remove(key)
                continue
            if current is not None:  # reads counted here since: add them to the file's count
                incoming.access_count += max(
                    0, current.access_count - (0 if base is None else int(base["access_count"]))
                )
                if current.last_accessed is not None and (
                    incoming.last_accessed is None or current.last_accessed > incoming.last_accessed
                ):
                    incoming.last_accessed = current.last_accessed
            self._insert(incoming)
        self._seen = raw

    def _store(self) -> int:
        """Write every live entry to the file (caller holds the file lock, after :meth:`_merge`)."""
        entries = BufferTier.scan(self)
        data, count = _encode(entries)
        _replace_file(self.path, data)
        self._seen = data
        return count

    @contextlib.contextmanager
    def _saving(self) -> Iterator[list[bool]]:
        """Around a write: with ``auto_save``, lock the file, merge it in, and save after the write.

        Yields a one-item list the write sets to False when it changed nothing (then nothing is written).
        """
        changed = [True]
        if not self.auto_save:
            with self._lock:
                yield changed
            return
        with self._file_locked():
            self._merge()
            yield changed
            if changed[0]:
                self._store()

    # -- the tier ------------------------------------------------------------------------------------------------

    def save(self) -> int:
        """Merge what other processes saved, then write every live entry to the file; return how many."""
        with self._file_locked():
            self._merge()
            return self._store()

    def reload(self) -> int:
        """Re-read the file, dropping unsaved changes; return how many live entries were loaded."""
        with self._file_locked():
            return self._load()

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        """Insert or replace *entries*, then save (with ``auto_save``)."""
        with self._saving():
            super().put_many(entries)

    def put(self, entry: MemoryEntry) -> None:
        """Insert or replace one entry, then save (with ``auto_save``)."""
        self.put_many([entry])

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete *keys*, then save when any was removed (with ``auto_save``)."""
        with self._saving() as changed:
            removed = super().delete_many(keys)
            changed[0] = removed > 0
            return removed

    def compute(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        """Atomic read-modify-write (across processes with ``auto_save``), then save."""
        with self._saving():
            return super().compute(key, fn)

    def cleanup(self) -> list[str]:
        """Remove expired entries, then save when any were removed (with ``auto_save``)."""
        with self._saving() as changed:
            removed = super().cleanup()
            changed[0] = bool(removed)
            return removed

    def clear(self) -> None:
        """Remove every entry (those other processes saved too), then save (with ``auto_save``)."""
        with self._saving():
            super().clear()

    def close(self) -> None:
        """Save (so access counts are kept) and release the lock file."""
        try:
            self.save()
        finally:
            with self._lock:
                if self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None
