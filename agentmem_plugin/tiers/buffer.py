"""The in-memory short-term tier: a dict of entries with priority-aware LRU, TTL and lazy keyword indexing.

* Capacity is enforced on every write: expired entries go first (silently: they are dead), then the least
  recently used entry of the lowest priority present, handed to ``on_evict`` before it leaves.
* Reads of an expired entry remove it and miss; ``count()``, ``scan()`` and searches never show one.
* Keyword search uses a :class:`~agentmem_plugin.search.SearchIndex` brought up to date lazily: writes only
  mark a key dirty (a set insertion), so storing stays O(1) and tokenizing is paid once per search burst.
* The tier shares nothing mutable with its callers. A write stores its own copy of each entry, with the value
  and metadata normalized through JSON (:func:`agentmem_plugin.codec.normalize`), so they read back exactly as
  they would from a persistent tier and later changes to the caller's objects do not leak in. Every read
  (``get``, ``get_many``, ``scan``, ``keyword_search``, ``compute``'s callback and result) hands out a copy whose
  value and metadata are copies too, so a caller that mutates what it read (a read-only agent of a
  :class:`~agentmem_plugin.adapters.shared.SharedMemory`, say) cannot change the store. Scalars (str, int,
  float, bool, None) are immutable and shared; lists and dicts are copied with an orjson round trip, about
  1.4 us for a small document (faster than a recursive copy; ``benchmarks/bench_tiers.py`` measures it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from agentmem_plugin.codec import normalize
from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import SerializationError
from agentmem_plugin.policies import LRUEvictionPolicy, TTLEvictionPolicy
from agentmem_plugin.search import SearchIndex, document_text
from agentmem_plugin.tiers.base import UNCHANGED, EvictionCallback, Tier
from agentmem_plugin.validation import validate_capacity

__all__ = ["BufferTier"]

logger = logging.getLogger(__name__)

_UNBOUNDED = 2**62

_IMMUTABLE = frozenset((str, int, float, bool, type(None)))


def _copy_json(value: Any) -> Any:
    """Return a copy of a stored (already normalized) JSON value that shares nothing mutable with it."""
    if type(value) in _IMMUTABLE:
        return value
    return orjson.loads(orjson.dumps(value))


def _detached(entry: MemoryEntry) -> MemoryEntry:
    """Return a copy of a stored entry whose value and metadata are copies too (what every read hands out)."""
    new = object.__new__(MemoryEntry)
    new.key = entry.key
    new.value = _copy_json(entry.value)
    new.ttl = entry.ttl
    new.priority = entry.priority
    new.metadata = orjson.loads(orjson.dumps(entry.metadata)) if entry.metadata else {}
    new.tags = entry.tags  # a tuple of str: immutable
    new.created_at = entry.created_at
    new.expires_at = entry.expires_at
    new.access_count = entry.access_count
    new.last_accessed = entry.last_accessed
    new.version = entry.version
    return new


def _owned(entry: MemoryEntry) -> MemoryEntry:
    """Return the tier's own copy of an incoming entry, value and metadata normalized (fresh objects).

    Raises:
        SerializationError: the value or metadata cannot be stored as JSON.

    """
    key = entry.key
    value = entry.value
    kind = type(value)
    if kind is str:
        if not value.isascii():  # what every other backend refuses: a lone surrogate
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise SerializationError(
                    f"cannot store value of key {key!r}: {value!r:.60} is not valid UTF-8 ({exc.reason})"
                ) from None
    elif not (kind is int and -(2**63) <= value < 2**64) and value is not None:
        value = normalize(
            value, what=f"value of key {key!r}"
        )  # the message is built only when needed
    new = object.__new__(MemoryEntry)
    new.key = key
    new.value = value
    new.ttl = entry.ttl
    new.priority = entry.priority
    new.metadata = (
        normalize(entry.metadata, what=f"metadata of key {key!r}") if entry.metadata else {}
    )
    new.tags = tuple(entry.tags)
    new.created_at = entry.created_at
    new.expires_at = entry.expires_at
    new.access_count = entry.access_count
    new.last_accessed = entry.last_accessed
    new.version = entry.version
    return new


def _owned_batch(entries: Sequence[MemoryEntry]) -> dict[str, MemoryEntry]:
    """Own copies of *entries* by key (a later duplicate wins and takes the later position); raises first."""
    batch: dict[str, MemoryEntry] = {}
    for entry in entries:
        batch.pop(entry.key, None)
        batch[entry.key] = _owned(entry)
    return batch


class BufferTier(Tier):
    """Thread-safe in-memory tier with capacity, priority-aware LRU eviction and TTL.

    Args:
        capacity: Maximum number of entries; None is unbounded.
        clock: Source of the current time (default :func:`time.time`).
        on_evict: Called with entries evicted for capacity, before they leave; if it raises, the write that
            caused the eviction is undone and the error propagates.
        priority_aware: When False, eviction is plain LRU.

    Example:
        >>> from agentmem_plugin.entry import MemoryEntry
        >>> t = BufferTier(capacity=2)
        >>> t.put_many([MemoryEntry("a", 1, priority=1), MemoryEntry("b", 2), MemoryEntry("c", 3)])
        >>> sorted(t.keys())  # "b" was the least recently used of the lowest priority
        ['a', 'c']

    """

    name = "buffer"

    def __init__(
        self,
        capacity: int | None = 1000,
        *,
        clock: Clock | None = None,
        on_evict: EvictionCallback | None = None,
        priority_aware: bool = True,
    ) -> None:
        super().__init__(clock=clock)
        self.capacity = validate_capacity(capacity)
        self.on_evict = on_evict
        self._entries: dict[str, MemoryEntry] = {}
        self._lru = LRUEvictionPolicy(self.capacity or _UNBOUNDED, priority_aware=priority_aware)
        self._ttl = TTLEvictionPolicy()
        self._index = SearchIndex()
        self._indexed = False  # no search yet: writes need not track the index at all
        self._dirty: set[str] = set()
        self._changes: dict[str, int] | None = (
            None  # key -> change id, once a semantic index asked for it
        )
        self._change_seq = 0
        self._index_meta: tuple[str, int] | None = None

    # -- internal state changes (caller holds the lock) --------------------------------------------------------

    def _insert(self, entry: MemoryEntry) -> None:
        key = entry.key
        old = self._entries.get(key)
        self._entries[key] = entry
        self._lru.add(key, entry.priority)
        if entry.expires_at is not None:
            self._ttl.track(key, entry.expires_at)
        elif old is not None and old.expires_at is not None:
            self._ttl.forget(key)
        if self._indexed or self._changes is not None:
            self._changed(key)

    def _changed(self, key: str) -> None:
        """Tell the lazy keyword index and the semantic change feed (when enabled) that *key* changed."""
        if self._indexed:
            self._dirty.add(key)
        if self._changes is not None:
            self._change_seq += 1
            self._changes[key] = self._change_seq

    def _remove(self, key: str) -> MemoryEntry | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._lru.remove(key)
            if entry.expires_at is not None:
                self._ttl.forget(key)
            if self._indexed or self._changes is not None:
                self._changed(key)
        return entry

    def _purge_expired(self, now: float) -> list[str]:
        expired = self._ttl.pop_expired(now)
        for key in expired:
            self._remove(key)
        if expired:
            self.stats_counters.expirations += len(expired)
            logger.debug("buffer: %d entries expired", len(expired))
        return expired

    def _write(self, batch: Sequence[MemoryEntry]) -> None:
        """Insert *batch* (unique keys) and evict for capacity.

        Victims are chosen *before* anything changes and handed to ``on_evict``; if it raises, the tier is
        exactly as it was (only entries that had already expired may be gone).
        """
        entries = self._entries
        capacity = self.capacity
        victim_keys: list[str] = []
        if capacity is not None:
            overflow = len(entries) - capacity + sum(e.key not in entries for e in batch)
            if overflow > 0 and self._ttl.has_expiring():
                self._purge_expired(self.clock())
                overflow = len(entries) + sum(1 for e in batch if e.key not in entries) - capacity
            if overflow > 0:
                victim_keys = self._lru.preview_victims(
                    overflow, [(e.key, e.priority) for e in batch]
                )
                if self.on_evict is not None:
                    incoming = {e.key: e for e in batch}
                    try:
                        self.on_evict(
                            [_detached(incoming.get(k) or entries[k]) for k in victim_keys]
                        )
                    except BaseException:
                        logger.warning(
                            "buffer: eviction callback failed; the write of %d entries was not made",
                            len(batch),
                        )
                        raise
        for entry in batch:
            self._insert(entry)
        for key in victim_keys:
            self._remove(key)
        counters = self.stats_counters
        counters.writes += len(batch)
        counters.evictions += len(victim_keys)

    def _live(self, key: str, now: float) -> MemoryEntry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at is not None and entry.expires_at <= now:
            self._remove(key)
            self.stats_counters.expirations += 1
            return None
        return entry

    # -- primitives ---------------------------------------------------------------------------------------------

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        """Insert or replace *entries* (the tier stores its own copies; the caller's entries are untouched).

        Raises:
            SerializationError: a value or metadata is not JSON-serializable; nothing was stored.

        """
        batch = _owned_batch(entries)
        with self._lock:
            self._write(list(batch.values()))

    def put(self, entry: MemoryEntry) -> None:
        """Insert or replace one entry (fast path of :meth:`put_many`; the tier stores its own copy)."""
        entry = _owned(entry)
        with self._lock:
            entries = self._entries
            key = entry.key
            capacity = self.capacity
            if (
                capacity is None
                or key in entries
                or len(entries) < capacity
                or self._ttl.has_expiring()
            ):
                self._write((entry,))
                return
            # The hot path of a store into a full memory: one new key, one victim, chosen before any change
            # (what preview_victims picks): the LRU key of the lowest priority, or the newcomer itself when
            # its priority is lower still.
            lru = self._lru
            victim = lru.select_victim()
            if victim is None:  # pragma: no cover - a full memory tracks keys
                self._write((entry,))
                return
            if lru.priority_aware and entry.priority < entries[victim].priority:
                victim = key
            if self.on_evict is not None:
                try:
                    self.on_evict([_detached(entry if victim == key else entries[victim])])
                except BaseException:
                    logger.warning(
                        "buffer: eviction callback failed; the write of 1 entries was not made"
                    )
                    raise
            # victim == key: the newcomer itself, stored and evicted at once (the feed sees both)
            if victim == key:
                self._insert(entry)
                self._remove(victim)
            else:  # _insert(entry) then _remove(victim), for a new key beside a victim, in one pass
                gone = entries.pop(victim)
                entries[key] = entry
                lru.swap(victim, key, entry.priority)
                if entry.expires_at is not None:
                    self._ttl.track(key, entry.expires_at)
                if gone.expires_at is not None:
                    self._ttl.forget(victim)
                if self._indexed or self._changes is not None:
                    self._changed(key)
                    self._changed(victim)
            counters = self.stats_counters
            counters.writes += 1
            counters.evictions += 1

    def get(self, key: str, *, touch: bool = True) -> MemoryEntry | None:
        """Return a copy of the live entry for *key*, or None (fast path of :meth:`get_many`)."""
        with self._lock:
            now = self.clock()
            entry = self._entries.get(key)
            if entry is None:
                if touch:
                    self.stats_counters.misses += 1
                return None
            if entry.expires_at is not None and entry.expires_at <= now:
                self._remove(key)
                self.stats_counters.expirations += 1
                if touch:
                    self.stats_counters.misses += 1
                return None
            if touch:
                entry.access_count += 1
                entry.last_accessed = now
                self._lru.update_access(key)
                self.stats_counters.hits += 1
            return _detached(entry)

    def get_many(self, keys: Sequence[str], *, touch: bool = True) -> list[MemoryEntry | None]:
        """Return a copy of the live entry for each key, or None; ``touch`` counts the reads."""
        return [self.get(key, touch=touch) for key in keys]

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete *keys*; return how many live entries were removed."""
        removed = 0
        with self._lock:
            now = self.clock()
            for key in keys:
                if self._live(key, now) is not None:
                    self._remove(key)
                    removed += 1
            self.stats_counters.deletes += removed
        return removed

    def scan(self) -> list[MemoryEntry]:
        """Return copies of the live entries, least recently written first."""
        with self._lock:
            self._purge_expired(self.clock())
            return [_detached(e) for e in self._entries.values()]

    def keyword_search(self, query: str, limit: int = 10) -> list[tuple[MemoryEntry, float]]:
        """BM25 over key, value text and tags (copies of the entries); reads are not counted as accesses."""
        with self._lock:
            self._purge_expired(self.clock())
            if not self._indexed:
                self._index.rebuild(
                    (k, document_text(k, e.value, e.tags)) for k, e in self._entries.items()
                )
                self._indexed = True
                self._dirty.clear()
            elif self._dirty:
                for key in self._dirty:
                    entry = self._entries.get(key)
                    if entry is None:
                        self._index.remove_entry(key)
                    else:
                        self._index.add_entry(key, document_text(key, entry.value, entry.tags))
                self._dirty.clear()
            return [
                (_detached(self._entries[k]), score)
                for k, score in self._index.search(query, limit)
            ]

    def compute(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        """Atomically replace *key*'s entry by ``fn(copy of current or None)``; None deletes.

        *fn* gets a copy it may change freely (value included); the result is a copy of what is stored.
        """
        with self._lock:
            current = self._live(key, self.clock())
            new = fn(None if current is None else _detached(current))
            if new is UNCHANGED:
                return None if current is None else _detached(current)
            if new is None:
                if current is not None:
                    self._remove(key)
                    self.stats_counters.deletes += 1
                return None
            stored = _owned(new)
            self._write((stored,))
            return _detached(stored)

    def put_if_newer(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        """Write each entry unless its key holds a live entry at that version or a newer one (one locked step)."""
        batch = {e.key: e for e in entries}  # the last of a key wins
        owned = _owned_batch(entries)
        with self._lock:
            now = self.clock()
            fresh = []
            for key, entry in owned.items():
                held = self._live(key, now)
                if held is None or held.version < entry.version:
                    fresh.append(entry)
            if fresh:
                self._write(fresh)
            return [batch[e.key] for e in fresh]

    def delete_if(self, versions: Mapping[str, int], *, older: bool = False) -> list[str]:
        """Remove each key only if it holds the version given (``older``: a lower one), in one locked step."""
        removed: list[str] = []
        with self._lock:
            now = self.clock()
            for key, version in versions.items():
                held = self._live(key, now)
                if held is not None and (
                    held.version < version if older else held.version == version
                ):
                    self._remove(key)
                    removed.append(key)
            self.stats_counters.deletes += len(removed)
        return removed

    def versions(self, keys: Sequence[str]) -> dict[str, int]:
        """Return the version of each key holding a live entry (no read counted)."""
        with self._lock:
            now = self.clock()
            return {
                k: e.version for k in dict.fromkeys(keys) if (e := self._live(k, now)) is not None
            }

    def cleanup(self) -> list[str]:
        """Remove every expired entry; return their keys."""
        with self._lock:
            return self._purge_expired(self.clock())

    def count(self) -> int:
        """Return the number of live entries."""
        with self._lock:
            self._purge_expired(self.clock())
            return len(self._entries)

    def clear(self) -> None:
        """Remove every entry."""
        with self._lock:
            self._lru.clear()
            self._ttl.clear()
            if self._changes is not None:
                for key in self._entries:
                    self._change_seq += 1
                    self._changes[key] = self._change_seq
            self._entries.clear()
            self._index.clear()
            self._indexed = False
            self._dirty.clear()

    def index_meta(self) -> tuple[str, int] | None:
        """Return the (model, dimension) recorded by :meth:`set_index_meta`, or None."""
        return self._index_meta

    def set_index_meta(self, model: str, dim: int) -> None:
        """Record the semantic index's model and start recording changed keys."""
        with self._lock:
            self._index_meta = (model, dim)
            if self._changes is None:
                self._changes = {}

    def changes(self, limit: int) -> list[tuple[int, str]]:
        """Return up to *limit* changed keys not yet acknowledged, oldest first."""
        with self._lock:
            if not self._changes:
                return []
            out = []
            for key, seq in self._changes.items():
                out.append((seq, key))
                if len(out) >= limit:
                    break
            return out

    def ack_changes(self, changes: Sequence[tuple[int, str]]) -> None:
        """Forget acknowledged changes (a key changed again since keeps its newer change)."""
        with self._lock:
            if self._changes is None:
                return
            for seq, key in changes:
                if self._changes.get(key) == seq:
                    del self._changes[key]

    def stats(self) -> dict[str, Any]:
        """Counters plus the eviction policy in use."""
        return {**super().stats(), "policy": "priority-lru" if self._lru.priority_aware else "lru"}
