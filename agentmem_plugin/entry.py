"""`MemoryEntry`, the record every tier stores, and the checks that guard its fields.

Times are POSIX seconds (``float``) taken from a *clock*: any zero-argument callable returning the current time.
The default is :func:`time.time`; tests pass a fake clock so TTL behaviour can be checked without sleeping.
"""

from __future__ import annotations

import copy
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.validation import (
    MAX_KEY_LENGTH as MAX_KEY_LENGTH,  # checks live there; kept importable
)
from agentmem_plugin.validation import validate_capacity as validate_capacity
from agentmem_plugin.validation import (
    validate_key,
    validate_metadata,
    validate_non_negative_int,
    validate_priority,
    validate_tags,
    validate_ttl,
)

__all__ = ["Clock", "MemoryEntry", "next_version"]

Clock = Callable[[], float]
"""A zero-argument callable returning the current time in POSIX seconds."""


class _VersionClock:
    """Hands out entry versions: strictly increasing in a process, and distinct between processes.

    A version is a hybrid logical clock in 64 bits: the wall clock in units of 1024 ns (so versions of
    different processes are ordered roughly as their writes happened), advanced by one tick whenever the clock
    has not moved, with the low 10 bits naming the process (drawn at random, and again in a forked child).
    Two writes of one key by two processes therefore never get the same version unless they land in the same
    microsecond *and* the processes drew the same 10 bits.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0
        self._node = secrets.randbits(10)

    def reseed(self) -> None:
        """Draw a new process id (called in a forked child, which inherited its parent's)."""
        self._lock = threading.Lock()
        self._node = secrets.randbits(10)

    def __call__(self) -> int:
        with self._lock:
            tick = max(time.time_ns() >> 10, (self._last >> 10) + 1)
            self._last = (tick << 10) | self._node
            return self._last


next_version: Callable[[], int] = _VersionClock()
"""Return a new entry version (see :attr:`MemoryEntry.version`)."""

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=next_version.reseed)  # type: ignore[attr-defined]


class MemoryEntry:
    """One memory: a key, a JSON-serializable value, and what the tiers need to manage it.

    Args:
        key: Unique identifier (see :func:`validate_key`).
        value: Any JSON-serializable value.
        ttl: Time to live in seconds; None never expires.
        priority: Eviction priority; higher is kept longer.
        metadata: Extra JSON-serializable fields (``importance`` is read by consolidation policies).
        tags: Labels, searchable and filterable.
        created_at: Creation time; defaults to ``clock()``.
        expires_at: Expiry time; defaults to ``created_at + ttl``.
        access_count: Number of reads so far.
        last_accessed: Time of the last read, or None.
        clock: Source of "now" for the defaults above (default :func:`time.time`).
        version: Which write of the key this is (default: a new one, see :func:`next_version`). Every write
            gets a new, larger version; reads, moves between tiers, backups and restores keep it, so "does this
            tier still hold what I read?" is one integer comparison. Not part of ``==``.

    Attributes:
        version: See the argument. A tier removes an entry on a move only if it still holds this version, and
            never lets a copy replace a newer version.

    Example:
        >>> now = [1000.0]
        >>> e = MemoryEntry("task", "summarize", ttl=60, clock=lambda: now[0])
        >>> e.is_expired(now=1059.0), e.is_expired(now=1060.0)
        (False, True)

    """

    __slots__ = (
        "access_count",
        "created_at",
        "expires_at",
        "key",
        "last_accessed",
        "metadata",
        "priority",
        "tags",
        "ttl",
        "value",
        "version",
    )

    def __init__(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        priority: int = 0,
        metadata: Mapping[str, Any] | None = None,
        *,
        tags: Iterable[str] | None = None,
        created_at: float | None = None,
        expires_at: float | None = None,
        access_count: int = 0,
        last_accessed: float | None = None,
        clock: Clock | None = None,
        version: int | None = None,
    ) -> None:
        self.key: str = validate_key(key)
        self.value: Any = value
        self.ttl: float | None = validate_ttl(ttl)
        self.priority: int = validate_priority(priority, what=f"priority of key {self.key!r}")
        self.metadata: dict[str, Any] = validate_metadata(metadata)
        self.tags: tuple[str, ...] = validate_tags(tags)
        self.created_at: float = (
            (clock or time.time)() if created_at is None else _time(created_at, what="created_at")
        )
        if expires_at is None and self.ttl is not None:
            expires_at = self.created_at + self.ttl
        self.expires_at: float | None = _time_or_none(expires_at, what="expires_at")
        self.access_count: int = validate_non_negative_int(access_count, what="access_count")
        self.last_accessed: float | None = _time_or_none(last_accessed, what="last_accessed")
        self.version: int = (
            next_version()
            if version is None
            else validate_non_negative_int(version, what="version")
        )

    @classmethod
    def _trusted(
        cls,
        key: str,
        value: Any,
        ttl: float | None,
        priority: int,
        created_at: float,
        expires_at: float | None,
    ) -> MemoryEntry:
        """Build an entry from already-validated fields, skipping the checks (the hot path of ``store``)."""
        entry = object.__new__(cls)
        entry.key = key
        entry.value = value
        entry.ttl = ttl
        entry.priority = priority
        entry.metadata = {}
        entry.tags = ()
        entry.created_at = created_at
        entry.expires_at = expires_at
        entry.access_count = 0
        entry.last_accessed = None
        entry.version = next_version()
        return entry

    def is_expired(self, now: float | None = None) -> bool:
        """Return True when the entry has a TTL and *now* (default: ``time.time()``) is at or past expiry."""
        if self.expires_at is None:
            return False
        return (time.time() if now is None else now) >= self.expires_at

    def update_access(self, now: float | None = None) -> None:
        """Record one read: bump ``access_count`` and set ``last_accessed`` to *now*."""
        self.access_count += 1
        self.last_accessed = time.time() if now is None else now

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as a plain dict of JSON-friendly fields (the inverse of :meth:`from_dict`)."""
        return {
            "key": self.key,
            "value": self.value,
            "ttl": self.ttl,
            "priority": self.priority,
            "metadata": dict(self.metadata),
            "tags": list(self.tags),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "access_count": self.access_count,
            "last_accessed": self.last_accessed,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryEntry:
        """Build an entry from :meth:`to_dict` output; unknown fields are refused.

        A dict without ``version`` (written before versions existed) gets version 0: older than any write.

        Raises:
            InvalidArgumentError: *data* lacks ``key``/``value`` or has an unknown field.

        """
        unknown = set(data) - set(MemoryEntry.__slots__)
        if unknown:
            raise InvalidArgumentError(f"unknown MemoryEntry fields: {sorted(unknown)}")
        if "key" not in data or "value" not in data:
            raise InvalidArgumentError("a MemoryEntry dict needs at least 'key' and 'value'")
        return cls(
            data["key"],
            data["value"],
            ttl=data.get("ttl"),
            priority=data.get("priority", 0),
            metadata=data.get("metadata"),
            tags=data.get("tags"),
            created_at=data.get("created_at"),
            expires_at=data.get("expires_at"),
            access_count=data.get("access_count", 0),
            last_accessed=data.get("last_accessed"),
            version=data.get("version", 0),
        )

    def copy(self) -> MemoryEntry:
        """Return a copy that can be changed, value and metadata included, without touching this entry.

        Values are JSON, so a list or dict is copied through a JSON round trip (orjson); a str, number or None is
        immutable and shared.
        """
        new = object.__new__(MemoryEntry)
        for name in MemoryEntry.__slots__:
            object.__setattr__(new, name, getattr(self, name))
        new.value = _copied(self.value)
        new.metadata = _copied(self.metadata) if self.metadata else {}
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemoryEntry):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in _COMPARED)

    def new_version(self) -> MemoryEntry:
        """Give this entry a new version (it becomes a new write of its key) and return it."""
        self.version = next_version()
        return self

    __hash__ = None  # type: ignore[assignment]  # mutable record

    def __repr__(self) -> str:
        return (
            f"MemoryEntry(key={self.key!r}, value={self.value!r:.60}, ttl={self.ttl!r}, "
            f"priority={self.priority!r}, tags={list(self.tags)!r}, access_count={self.access_count})"
        )


_COMPARED = tuple(n for n in MemoryEntry.__slots__ if n != "version")


def _time(value: object, *, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise InvalidArgumentError(f"{what} must be a number of POSIX seconds, got {value!r:.80}")
    return float(value)


def _time_or_none(value: object, *, what: str) -> float | None:
    return None if value is None else _time(value, what=what)


def _copied(value: Any) -> Any:
    """Return a copy of a list or dict value (a JSON round trip, the fastest deep copy of JSON); others as is."""
    if not isinstance(value, (list, dict)):
        return value  # str, numbers, None: immutable
    try:
        return orjson.loads(orjson.dumps(value))
    except (TypeError, ValueError):  # not JSON (yet): the write's own check will name the problem
        return copy.deepcopy(value)
