"""The read cache in front of a manager's tiers: it never serves a value that a writer has replaced.

Example:
    >>> from agentmem_plugin.entry import MemoryEntry
    >>> cache = ReadCache(2, token=lambda: None)
    >>> epoch = cache.begin()                    # a read starts
    >>> cache.forget(["k"])                      # ... a write of k lands meanwhile ...
    >>> cache.put(MemoryEntry("k", "old"), epoch)  # the slower read does not cache what it read
    >>> cache.get("k", now=0.0) is None
    True

"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable

from agentmem_plugin.entry import MemoryEntry

__all__ = ["ReadCache"]


class ReadCache:
    """An LRU cache of entries in front of tiers, coherent with every writer.

    Args:
        size: Entries kept (0: the cache holds nothing and costs nothing).
        token: Returns what changes when another process writes the tiers (``TierSet.change_token``).

    * This manager's writes forget their keys and advance an epoch; a read fills the cache only if no write
      happened since it began, so a slow reader never caches a value a faster writer replaced.
    * Other processes' writes change the tiers' ``change_token``; the cache is emptied when it moves.

    """

    def __init__(self, size: int, token: Callable[[], object]) -> None:
        self.size = size
        self._token_of = token
        self._entries: OrderedDict[str, MemoryEntry] = OrderedDict()
        self._lock = threading.Lock()
        self._epoch = 0
        self._token: object = None if size == 0 else token()

    def _check(self) -> None:  # caller holds the lock
        token = self._token_of()
        if token != self._token:
            self._entries.clear()
            self._token = token
            self._epoch += 1

    def get(self, key: str, now: float) -> MemoryEntry | None:
        """Return the cached live entry of *key*, or None."""
        if not self.size:
            return None
        with self._lock:
            self._check()
            entry = self._entries.get(key)
            if entry is None or entry.is_expired(now):
                return None
            self._entries.move_to_end(key)
            return entry.copy()

    def begin(self) -> int:
        """Return the epoch a read starts in (pass it to :meth:`put`)."""
        with self._lock:
            if self.size:
                self._check()
            return self._epoch

    def put(self, entry: MemoryEntry, epoch: int) -> None:
        """Cache *entry*, read in *epoch*, unless a write happened since."""
        if not self.size:
            return
        with self._lock:
            self._check()
            if epoch != self._epoch:
                return
            self._entries[entry.key] = entry.copy()
            self._entries.move_to_end(entry.key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def forget(self, keys: Iterable[str] = ()) -> None:
        """Drop *keys* (all when empty) and start a new epoch."""
        with self._lock:
            self._epoch += 1
            if not keys:
                self._entries.clear()
            for key in keys:
                self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)
