"""Eviction and consolidation policies: pure logic, no I/O, no locking (the tier that owns a policy locks).

* :class:`LRUEvictionPolicy` evicts the least recently used key. Given priorities (the default for the buffer
  tier) it is priority-aware: the victim is the least recently used key *of the lowest priority present*, so a
  priority-5 entry outlives any number of newer priority-0 ones. Every operation is O(1) amortized (one
  ``OrderedDict`` per priority, plus a sorted list of the priorities in use).
* :class:`TTLEvictionPolicy` finds expired entries; a min-heap of expiry times makes "what expired by now?"
  cost O(expired * log n) instead of a scan.
* :class:`ConsolidationPolicy` is the protocol a manager uses to pick which short-term entries move to
  long-term; :class:`ImportanceConsolidationPolicy` is the default scorer.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError

__all__ = [
    "ConsolidationPolicy",
    "ImportanceConsolidationPolicy",
    "LRUEvictionPolicy",
    "TTLEvictionPolicy",
    "consolidation_score",
]


class LRUEvictionPolicy:
    """Least-recently-used order, split by priority: evict the LRU key of the lowest priority.

    Args:
        max_size: Capacity the owner enforces; :meth:`should_evict` compares the tracked count with it.
        priority_aware: When False every key is treated as priority 0 (plain LRU).

    Example:
        >>> p = LRUEvictionPolicy(max_size=2)
        >>> p.add("a", priority=1); p.add("b"); p.add("c")
        >>> p.update_access("b")
        >>> p.select_victim()  # lowest priority (0), least recently used among b and c
        'c'

    """

    __slots__ = ("_buckets", "_order", "_priority_of", "max_size", "priority_aware")

    def __init__(self, max_size: int, *, priority_aware: bool = True) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size <= 0:
            raise InvalidArgumentError(f"max_size must be a positive int, got {max_size!r}")
        self.max_size = max_size
        self.priority_aware = priority_aware
        self._buckets: dict[int, OrderedDict[str, None]] = {}
        self._order: list[int] = []  # sorted priorities that have a non-empty bucket
        self._priority_of: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._priority_of)

    def __contains__(self, key: object) -> bool:
        return key in self._priority_of

    def should_evict(self) -> bool:
        """Return True when more keys are tracked than ``max_size``."""
        return len(self._priority_of) > self.max_size

    def add(self, key: str, priority: int = 0) -> None:
        """Track *key* as most recently used (re-adding a key moves it and updates its priority)."""
        if not self.priority_aware:
            priority = 0
        old = self._priority_of.get(key)
        if old is not None:
            if old == priority:
                self._buckets[old].move_to_end(key)
                return
            self._discard_from_bucket(key, old)
        bucket = self._buckets.get(priority)
        if bucket is None:
            bucket = self._buckets[priority] = OrderedDict()
            bisect.insort(self._order, priority)
        bucket[key] = None
        self._priority_of[key] = priority

    def swap(self, victim: str, key: str, priority: int = 0) -> None:
        """Stop tracking *victim* and track *key*, not tracked yet, as the most recently used.

        What one store into a full memory does (one new key, one victim) in one call: ``remove(victim)`` then
        ``add(key, priority)``, with the bucket looked up once when both share a priority.

        Raises:
            KeyError: *victim* is not tracked.

        """
        if not self.priority_aware:
            priority = 0
        old = self._priority_of.pop(victim)
        if old == priority:
            bucket = self._buckets[old]
            del bucket[victim]
            bucket[key] = None
            self._priority_of[key] = priority
        else:
            self._discard_from_bucket(victim, old)
            self.add(key, priority)

    def update_access(self, key: str) -> None:
        """Mark *key* as most recently used; unknown keys are ignored."""
        priority = self._priority_of.get(key)
        if priority is not None:
            self._buckets[priority].move_to_end(key)

    def remove(self, key: str) -> None:
        """Stop tracking *key* (no error when it is not tracked)."""
        priority = self._priority_of.pop(key, None)
        if priority is not None:
            self._discard_from_bucket(key, priority)

    def preview_victims(self, n: int, incoming: Sequence[tuple[str, int]] = ()) -> list[str]:
        """Return the *n* keys that would be evicted after adding *incoming*, without changing anything.

        *incoming* are ``(key, priority)`` pairs about to be added (unique keys, in order); like :meth:`add`,
        each becomes the most recently used key of its priority. This lets an owner hand victims to a callback
        before it changes any state, so a failing callback leaves the order exactly as it was.
        """
        if n <= 0:
            return []
        if (
            n == 1
            and len(incoming) == 1
            and self._order
            and incoming[0][0] not in self._priority_of
        ):
            # The hot path of a single store into a full memory: one new key, one victim.
            key, priority = incoming[0]
            lowest = self._order[0]
            if (priority if self.priority_aware else 0) < lowest:
                return [key]
            return [next(iter(self._buckets[lowest]))]
        moved: dict[str, int] = {}
        for key, priority in incoming:
            moved.pop(key, None)
            moved[key] = priority if self.priority_aware else 0
        arriving: dict[int, list[str]] = {}
        for key, priority in moved.items():
            arriving.setdefault(priority, []).append(key)
        out: list[str] = []
        for priority in sorted(set(self._order).union(arriving)):
            for key in self._buckets.get(priority, ()):
                if key not in moved:
                    out.append(key)
                    if len(out) == n:
                        return out
            for key in arriving.get(priority, ()):
                out.append(key)
                if len(out) == n:
                    return out
        return out

    def select_victim(self) -> str | None:
        """Return the key to evict next (without removing it), or None when nothing is tracked."""
        if not self._order:
            return None
        return next(iter(self._buckets[self._order[0]]))

    def clear(self) -> None:
        """Forget every key."""
        self._buckets.clear()
        self._order.clear()
        self._priority_of.clear()

    def _discard_from_bucket(self, key: str, priority: int) -> None:
        bucket = self._buckets[priority]
        del bucket[key]
        if not bucket:
            del self._buckets[priority]
            del self._order[bisect.bisect_left(self._order, priority)]


class TTLEvictionPolicy:
    """Tracks expiry times and reports the keys that have expired.

    The heap is validated lazily: a key re-stored with another expiry (or deleted) leaves a stale heap item
    that is skipped when popped, so tracking costs O(log n) per write and nothing per read.

    Args:
        default_ttl: TTL in seconds applied by owners to entries stored without one (None: never expire).

    Example:
        >>> p = TTLEvictionPolicy()
        >>> p.track("a", 10.0); p.track("b", None); p.track("c", 20.0)
        >>> p.pop_expired(now=15.0)
        ['a']

    """

    __slots__ = ("_expiry", "_heap", "default_ttl")

    def __init__(self, default_ttl: float | None = None) -> None:
        if default_ttl is not None and (
            isinstance(default_ttl, bool)
            or not isinstance(default_ttl, (int, float))
            or not math.isfinite(default_ttl)
            or default_ttl <= 0
        ):
            raise InvalidArgumentError(
                f"default_ttl must be a positive number or None, got {default_ttl!r}"
            )
        self.default_ttl = default_ttl
        self._heap: list[tuple[float, str]] = []
        self._expiry: dict[str, float] = {}

    def track(self, key: str, expires_at: float | None) -> None:
        """Record *key*'s expiry time (None: it never expires)."""
        if expires_at is None:
            self._expiry.pop(key, None)
            return
        if self._expiry.get(key) == expires_at:
            return
        self._expiry[key] = expires_at
        heapq.heappush(self._heap, (expires_at, key))
        if len(self._heap) > 2 * len(self._expiry) + 64:
            self._compact()

    def forget(self, key: str) -> None:
        """Stop tracking *key*."""
        self._expiry.pop(key, None)

    def has_expiring(self) -> bool:
        """Return True when some tracked key has an expiry time (cheap; no heap work)."""
        return bool(self._expiry)

    def should_evict(self, now: float) -> bool:
        """Return True when at least one tracked key has expired at *now*."""
        while self._heap:
            expires_at, key = self._heap[0]
            if self._expiry.get(key) != expires_at:
                heapq.heappop(self._heap)
                continue
            return expires_at <= now
        return False

    def pop_expired(self, now: float) -> list[str]:
        """Return (and stop tracking) every key whose expiry is at or before *now*."""
        expired: list[str] = []
        while self.should_evict(now):
            _, key = heapq.heappop(self._heap)
            del self._expiry[key]
            expired.append(key)
        return expired

    def get_expired_keys(self, entries: Iterable[MemoryEntry], now: float) -> list[str]:
        """Return the keys of *entries* that have expired at *now* (a scan; no tracking needed)."""
        return [e.key for e in entries if e.expires_at is not None and e.expires_at <= now]

    def clear(self) -> None:
        """Forget every key."""
        self._heap.clear()
        self._expiry.clear()

    def _compact(self) -> None:
        self._heap = [(t, k) for k, t in self._expiry.items()]
        heapq.heapify(self._heap)


@runtime_checkable
class ConsolidationPolicy(Protocol):
    """Chooses which short-term entries move to long-term memory, and in what order."""

    def should_consolidate(self, entry: MemoryEntry, now: float) -> bool:
        """Return True when *entry* deserves to move to long-term memory at *now*."""
        ...

    def select_entries_to_consolidate(
        self, entries: Sequence[MemoryEntry], now: float
    ) -> list[MemoryEntry]:
        """Return the entries to move, most important first."""
        ...


class ImportanceConsolidationPolicy:
    """Scores entries by priority, reads, recency and ``metadata["importance"]``; keeps those above a bar.

    ``score = w_priority * priority + w_access * log1p(access_count) + w_importance * importance
    + w_recency * exp(-age_since_last_access / recency_half_life)``

    Args:
        min_score: Entries scoring at or above this are consolidated (0.0 with the default weights
            selects every entry, which is what "never lose anything" consolidation wants).
        w_priority: Weight of ``entry.priority``.
        w_access: Weight of ``log1p(access_count)``.
        w_importance: Weight of ``metadata["importance"]`` (a number in [0, 1]; missing counts as 0.5).
        w_recency: Weight of recency.
        recency_half_life: Seconds after which the recency term has decayed to ``1/e``.

    """

    def __init__(
        self,
        *,
        min_score: float = 0.0,
        w_priority: float = 1.0,
        w_access: float = 0.5,
        w_importance: float = 1.0,
        w_recency: float = 0.5,
        recency_half_life: float = 3600.0,
    ) -> None:
        if recency_half_life <= 0:
            raise InvalidArgumentError(f"recency_half_life must be > 0, got {recency_half_life!r}")
        self.min_score = min_score
        self.w_priority = w_priority
        self.w_access = w_access
        self.w_importance = w_importance
        self.w_recency = w_recency
        self.recency_half_life = recency_half_life

    def score(self, entry: MemoryEntry, now: float) -> float:
        """Return the importance score of *entry* at *now* (higher moves first)."""
        importance = entry.metadata.get("importance", 0.5)
        if isinstance(importance, bool) or not isinstance(importance, (int, float)):
            importance = 0.5
        last = entry.last_accessed if entry.last_accessed is not None else entry.created_at
        recency = math.exp(-max(0.0, now - last) / self.recency_half_life)
        return (
            self.w_priority * entry.priority
            + self.w_access * math.log1p(entry.access_count)
            + self.w_importance * float(importance)
            + self.w_recency * recency
        )

    def should_consolidate(self, entry: MemoryEntry, now: float) -> bool:
        """Return True when *entry* is live and scores at least ``min_score``."""
        return not entry.is_expired(now) and self.score(entry, now) >= self.min_score

    def select_entries_to_consolidate(
        self, entries: Sequence[MemoryEntry], now: float
    ) -> list[MemoryEntry]:
        """Return the live entries scoring at least ``min_score``, highest score first."""
        scored = [
            (self.score(e, now), i, e) for i, e in enumerate(entries) if not e.is_expired(now)
        ]
        return [e for s, _, e in sorted(scored, key=lambda t: (-t[0], t[1])) if s >= self.min_score]


def consolidation_score(policy: ConsolidationPolicy, entry: MemoryEntry, now: float) -> float:
    """Return how important *policy* finds *entry*: its ``score(entry, now)``, or the priority without one.

    The manager archives the lowest scores first when long-term outgrows its limit; a policy needs only the
    two protocol methods, ``score`` is optional.
    """
    score = getattr(policy, "score", None)
    return float(entry.priority if score is None else score(entry, now))
