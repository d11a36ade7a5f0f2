"""`MemoryEntry`, the record every tier stores, and the checks that guard its fields.

Times are POSIX seconds (``float``) taken from a *clock*: any zero-argument callable returning the current time.
The default is :func:`time.time`; tests pass a fake clock so TTL behaviour can be checked without sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from agentmem_plugin.errors import InvalidArgumentError, InvalidKeyError

__all__ = [
    "MAX_KEY_LENGTH",
    "Clock",
    "MemoryEntry",
    "validate_capacity",
    "validate_key",
    "validate_metadata",
    "validate_priority",
    "validate_tags",
    "validate_ttl",
]

Clock = Callable[[], float]
"""A zero-argument callable returning the current time in POSIX seconds."""

MAX_KEY_LENGTH = 1024
"""Longest key accepted, in characters."""


def validate_key(key: object) -> str:
    """Return *key* if it is a valid memory key, else raise :class:`InvalidKeyError`.

    A valid key is a non-empty ``str`` of at most :data:`MAX_KEY_LENGTH` characters with no NUL character.

    Example:
        >>> validate_key("user:42")
        'user:42'

    """
    if type(key) is not str:
        if isinstance(key, str):  # a str subclass: accept its plain value
            key = str.__str__(key)
        else:
            raise InvalidKeyError(f"key must be a str, got {type(key).__name__}: {key!r:.80}")
    if not key:
        raise InvalidKeyError("key must be a non-empty str, got ''")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"key is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}: {key[:40]!r}..."
        )
    if "\x00" in key:
        raise InvalidKeyError(f"key must not contain NUL characters: {key!r:.80}")
    return key


def validate_capacity(capacity: object) -> int | None:
    """Return *capacity* if it is a positive int or None (unbounded); raise otherwise.

    Raises:
        InvalidArgumentError: *capacity* is zero, negative, or not an int.

    """
    if capacity is None:
        return None
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
        raise InvalidArgumentError(f"capacity must be a positive int or None, got {capacity!r}")
    return capacity


def validate_ttl(ttl: object) -> float | None:
    """Return *ttl* in seconds as a float (or None for "never expires"); raise for anything else.

    Raises:
        InvalidArgumentError: *ttl* is not a positive finite number.

    """
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise InvalidArgumentError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
    value = float(ttl)
    if not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
    return value


def validate_priority(priority: object) -> int:
    """Return *priority* if it is an ``int`` (higher means kept longer); raise otherwise."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidArgumentError(f"priority must be an int, got {priority!r}")
    return priority


def validate_tags(tags: object) -> tuple[str, ...]:
    """Return *tags* as a tuple of unique non-empty strings in first-seen order; raise otherwise."""
    if tags is None:
        return ()
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Iterable):
        raise InvalidArgumentError(f"tags must be a list of str, got {tags!r:.80}")
    seen: dict[str, None] = {}
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise InvalidArgumentError(f"each tag must be a non-empty str, got {tag!r:.80}")
        seen[tag] = None
    return tuple(seen)


def validate_metadata(metadata: object) -> dict[str, Any]:
    """Return a shallow copy of *metadata* if it is a mapping with ``str`` keys; raise otherwise.

    Whether the values can be encoded is checked by the codec when the entry is stored.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgumentError(f"metadata must be a dict with str keys, got {metadata!r:.80}")
    for k in metadata:
        if not isinstance(k, str):
            raise InvalidArgumentError(f"metadata keys must be str, got {k!r:.80}")
    return dict(metadata)


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
    ) -> None:
        self.key: str = validate_key(key)
        self.value: Any = value
        self.ttl: float | None = validate_ttl(ttl)
        self.priority: int = validate_priority(priority)
        self.metadata: dict[str, Any] = validate_metadata(metadata)
        self.tags: tuple[str, ...] = validate_tags(tags)
        self.created_at: float = (clock or time.time)() if created_at is None else float(created_at)
        if expires_at is None and self.ttl is not None:
            expires_at = self.created_at + self.ttl
        self.expires_at: float | None = None if expires_at is None else float(expires_at)
        if isinstance(access_count, bool) or not isinstance(access_count, int) or access_count < 0:
            raise InvalidArgumentError(f"access_count must be an int >= 0, got {access_count!r}")
        self.access_count: int = access_count
        self.last_accessed: float | None = last_accessed

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
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryEntry:
        """Build an entry from :meth:`to_dict` output; unknown fields are refused.

        Raises:
            InvalidArgumentError: *data* lacks ``key``/``value`` or has an unknown field.

        """
        known = {
            "key", "value", "ttl", "priority", "metadata", "tags",
            "created_at", "expires_at", "access_count", "last_accessed",
        }  # fmt: skip
        unknown = set(data) - known
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
        )

    def copy(self) -> MemoryEntry:
        """Return a copy whose metadata dict can be changed without touching this entry."""
        new = object.__new__(MemoryEntry)
        for name in MemoryEntry.__slots__:
            object.__setattr__(new, name, getattr(self, name))
        new.metadata = dict(self.metadata)
        return new

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemoryEntry):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in MemoryEntry.__slots__)

    __hash__ = None  # type: ignore[assignment]  # mutable record

    def __repr__(self) -> str:
        return (
            f"MemoryEntry(key={self.key!r}, value={self.value!r:.60}, ttl={self.ttl!r}, "
            f"priority={self.priority!r}, tags={list(self.tags)!r}, access_count={self.access_count})"
        )
