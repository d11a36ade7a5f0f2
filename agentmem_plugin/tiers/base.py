"""The small abstract surface every storage backend implements, and the conveniences built on it.

A tier stores :class:`~agentmem_plugin.entry.MemoryEntry` records under string keys. Backends implement a
handful of *batch* primitives (a single-item call is a batch of one); everything else is concrete here:

========================  ==============================================================================
primitive                  contract
========================  ==============================================================================
``put_many(entries)``      insert or replace, atomically as a batch; enforce capacity (evicting through
                           ``on_evict``) and never keep an expired entry visible
``get_many(keys)``         live entries in key order, None for missing or expired; ``touch=True`` counts a
                           read (access_count, last_accessed, recency order); every read returns entries the
                           caller may change without changing the store (copies, values included)
``delete_many(keys)``      remove; return how many live entries were removed
``scan()``                 a snapshot list of the live entries
``keyword_search(q, n)``   ``(entry, score)`` pairs, best first, score > 0
``compute(key, fn)``       atomic read-modify-write: ``fn(current or None) -> new entry or None (delete)``;
                           returning :data:`UNCHANGED` leaves the key untouched
``cleanup()``              remove expired entries; return their keys
``count()``                number of live entries
``clear()``                remove everything
========================  ==============================================================================

Eviction for capacity calls ``on_evict(entries)`` *before* the entries leave the tier; if the callback raises,
the write that caused the eviction is rolled back and the error propagates, so nothing is ever lost silently.

**Versioned writes.** Every entry carries a :attr:`~agentmem_plugin.entry.MemoryEntry.version`. Two concrete
methods, built on ``compute`` (backends override them with one batch statement), are what moves between tiers are
made of (see :mod:`agentmem_plugin.moves`):

* ``put_if_newer(entries)``: write a copy unless the tier holds that version or a newer one of the key;
* ``delete_if(versions)``: remove a key only if it still holds the version read (``older=True``: any older one).

**Capabilities** a backend may have are methods here with safe defaults, never probed with ``getattr``:
``transaction()`` (a shared atomic transaction; default: none), ``in_transaction()``, ``namespaces()`` (None when
the tier cannot list them), ``archived_keys()`` and ``change_token()`` (what changes when *another* process or
connection writes; None when nobody else can).
"""

from __future__ import annotations

import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, cast

import orjson

from agentmem_plugin.codec import (
    decode_json,
    decode_value,
    encode_json,
    encode_value,
    is_compressed,
)
from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import AgentMemError, StorageError
from agentmem_plugin.search import document_text
from agentmem_plugin.validation import (
    validate_capacity,
    validate_namespace,
    validate_non_negative_int,
)

if TYPE_CHECKING:
    from agentmem_plugin.tiers.chroma import SemanticIndex

__all__ = [
    "ENTRY_COLUMNS",
    "ROW_FIELDS",
    "UNCHANGED",
    "UPDATED_COLUMNS",
    "EvictionCallback",
    "Tier",
    "TierStats",
    "entry_to_row",
    "namespace_bounds",
    "row_to_entry",
    "storage_errors",
]


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


# Typed as an entry so a callback may return it wherever it returns one; compared by identity only.
UNCHANGED: MemoryEntry = cast(MemoryEntry, _Unchanged())
"""Returned by a ``compute`` callback to leave the key exactly as it is (no write, no change recorded)."""

ENTRY_COLUMNS: tuple[str, ...] = (
    "key",
    "value",
    "created_at",
    "expires_at",
    "ttl",
    "priority",
    "tags",
    "metadata",
    "access_count",
    "last_accessed",
    "version",
)
"""The columns the SQL tiers select for an entry, in the order :func:`row_to_entry` decodes them."""

ROW_FIELDS = len(ENTRY_COLUMNS)
"""How many leading fields of a SQL row :func:`row_to_entry` decodes."""

UPDATED_COLUMNS: tuple[str, ...] = ("value", "search_text", *ENTRY_COLUMNS[2:], "seq")
"""The columns an upsert of the SQL tiers replaces when the key exists (all but the key)."""

EvictionCallback = Callable[[list[MemoryEntry]], None]
"""Called with the entries a tier is about to evict for capacity (never with expired ones)."""


@contextlib.contextmanager
def storage_errors(service: str, what: str, modules: tuple[str, ...]) -> Iterator[None]:
    """Turn failures raised by a backend's client library (*modules*) into :class:`StorageError`.

    Our own errors, and everything else, pass through unchanged.
    """
    try:
        yield
    except AgentMemError:
        raise
    except Exception as exc:
        origin = type(exc).__module__ or ""
        if origin.startswith(modules) or isinstance(exc, ConnectionError):
            raise StorageError(f"{service} failed while {what}: {exc}") from exc
        raise


@dataclass
class TierStats:
    """Counters every tier keeps (reset only when the process ends)."""

    hits: int = 0
    misses: int = 0
    writes: int = 0
    deletes: int = 0
    evictions: int = 0
    expirations: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters as a dict."""
        return asdict(self)


class Tier(ABC):
    """Base class of every storage backend; see the module docstring for the contract.

    Subclasses set ``name`` and implement the abstract batch primitives. Implementations must be thread-safe.
    """

    name: str = "tier"
    capacity: int | None = None
    persistent: bool = False
    #: The namespace this tier's entries live in (backends that share storage between namespaces set it).
    namespace: str = ""
    #: The table (or key prefix) of the storage, naming derived stores such as the semantic collection.
    table: str = "memories"
    #: Called with the entries evicted for capacity, before they leave (see the module docstring).
    on_evict: EvictionCallback | None = None

    def __init__(self, *, clock: Clock | None = None) -> None:
        #: Source of the current time for TTL and access bookkeeping.
        self.clock: Clock = clock or time.time
        self.stats_counters = TierStats()
        #: Guards the tier's state and its counters; reentrant so ``compute`` callbacks may read the tier.
        self._lock = threading.RLock()

    def _configure(
        self,
        *,
        namespace: object = "",
        capacity: object = None,
        on_evict: EvictionCallback | None = None,
        compression_threshold: object = None,
    ) -> None:
        """Check and set the options backends share (one check for all of them, with one message each).

        Raises:
            InvalidArgumentError: a bad namespace, capacity or compression threshold.

        """
        self.namespace = validate_namespace(namespace)
        self.capacity = validate_capacity(capacity)
        self.on_evict = on_evict
        self.compression_threshold: int | None = (
            None
            if compression_threshold is None
            else validate_non_negative_int(compression_threshold, what="compression_threshold")
        )

    # -- primitives -------------------------------------------------------------------------------------------

    @abstractmethod
    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        """Insert or replace *entries* as one batch (later duplicates of a key win)."""

    @abstractmethod
    def get_many(self, keys: Sequence[str], *, touch: bool = True) -> list[MemoryEntry | None]:
        """Return the live entry for each key (None when missing or expired), in the order of *keys*."""

    @abstractmethod
    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete *keys*; return the number of live entries removed."""

    @abstractmethod
    def scan(self) -> list[MemoryEntry]:
        """Return a snapshot of every live entry."""

    @abstractmethod
    def keyword_search(self, query: str, limit: int = 10) -> list[tuple[MemoryEntry, float]]:
        """Return up to *limit* ``(entry, score)`` pairs matching *query*, best first."""

    @abstractmethod
    def compute(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        """Atomically replace *key*'s live entry by ``fn(entry or None)`` (None deletes); return the result."""

    @abstractmethod
    def cleanup(self) -> list[str]:
        """Remove every expired entry; return the removed keys."""

    @abstractmethod
    def count(self) -> int:
        """Return the number of live entries."""

    @abstractmethod
    def clear(self) -> None:
        """Remove every entry."""

    # -- concrete conveniences --------------------------------------------------------------------------------

    def put(self, entry: MemoryEntry) -> None:
        """Insert or replace one entry."""
        self.put_many([entry])

    def get(self, key: str, *, touch: bool = True) -> MemoryEntry | None:
        """Return the live entry for *key*, or None."""
        return self.get_many([key], touch=touch)[0]

    def delete(self, key: str) -> bool:
        """Delete *key*; return True when a live entry was removed."""
        return self.delete_many([key]) > 0

    def contains(self, key: str) -> bool:
        """Return True when *key* has a live entry (does not count as a read)."""
        return self.get_many([key], touch=False)[0] is not None

    def keys(self) -> list[str]:
        """Return the keys of the live entries."""
        return [e.key for e in self.scan()]

    def stats(self) -> dict[str, Any]:
        """Return counters and sizes; backends extend this with their own fields."""
        with self._lock:
            counters = self.stats_counters.as_dict()
            size = self.count()
        return {"tier": self.name, "size": size, "capacity": self.capacity, **counters}

    def neighbors(self, keys: Sequence[str], radius: int) -> dict[str, list[str]]:
        """Return, for each live key, the keys stored up to *radius* places before and after it.

        "Stored" order is the order in which keys were first written (a replaced key keeps its place). The
        default derives it from :meth:`scan`; backends with an insertion id override this.
        """
        return neighbors_in([e.key for e in self.scan()], keys, radius)

    def neighbor_entries(
        self, keys: Sequence[str], radius: int, *, known: Collection[str] = ()
    ) -> tuple[dict[str, list[str]], dict[str, MemoryEntry]]:
        """Return :meth:`neighbors` and the live entries of the neighbours it names, except those in *known*.

        What a hybrid search reads to rank the memories stored next to what it found. The default is
        :meth:`neighbors` then :meth:`get_many`; the SQLite tier reads both in the same statements.
        """
        near = self.neighbors(keys, radius)
        wanted = [k for k in dict.fromkeys(k for ks in near.values() for k in ks) if k not in known]
        found = self.get_many(wanted, touch=False) if wanted else []
        return near, {e.key: e for e in found if e is not None}

    # -- helpers for backends ------------------------------------------------------------------------------------

    @staticmethod
    def _normalized_batch(entries: Sequence[MemoryEntry]) -> dict[str, MemoryEntry]:
        """Normalize values and metadata through JSON (raising before any write) and de-duplicate keys.

        A later duplicate of a key wins and takes the later position.
        """
        from agentmem_plugin.codec import normalize

        batch: dict[str, MemoryEntry] = {}
        for entry in entries:
            entry.value = normalize(entry.value, what=f"value of key {entry.key!r}")
            if entry.metadata:
                entry.metadata = normalize(entry.metadata, what=f"metadata of key {entry.key!r}")
            batch.pop(entry.key, None)
            batch[entry.key] = entry
        return batch

    def _capacity_victims(
        self, live: Mapping[str, MemoryEntry], batch: Mapping[str, MemoryEntry]
    ) -> list[MemoryEntry]:
        """For tiers that scan their entries: what adding *batch* to *live* evicts, handed to ``on_evict`` first.

        Recency comes from ``last_accessed`` (or ``created_at``); the victims are chosen as the buffer would:
        the least recently used of the lowest priority, possibly an entry of *batch* itself.
        """
        if self.capacity is None:
            return []
        overflow = len(live) + sum(k not in live for k in batch) - self.capacity
        if overflow <= 0:
            return []
        from agentmem_plugin.policies import LRUEvictionPolicy

        policy = LRUEvictionPolicy(max(1, len(live)))
        for e in sorted(
            live.values(), key=lambda e: (e.last_accessed or e.created_at, e.created_at)
        ):
            policy.add(e.key, e.priority)
        keys = policy.preview_victims(overflow, [(e.key, e.priority) for e in batch.values()])
        victims = [batch[k] if k in batch else live[k] for k in keys]
        if self.on_evict is not None and victims:
            self.on_evict(victims)
        return victims

    def _keyword_search_by_scan(self, query: str, limit: int) -> list[tuple[MemoryEntry, float]]:
        """BM25 over a scan of every live entry (for tiers without their own keyword index)."""
        from agentmem_plugin.search import SearchIndex, document_text

        entries = {e.key: e for e in self.scan()}
        index = SearchIndex()
        for key, e in entries.items():
            index.add_entry(key, document_text(key, e.value, e.tags))
        return [(entries[k], score) for k, score in index.search(query, limit)]

    def _compute_by_parts(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        """Read-modify-write from get/put/delete under the tier's lock (atomic within one process)."""
        with self._lock:
            current = self.get_many([key], touch=False)[0]
            new = fn(None if current is None else current.copy())
            if new is UNCHANGED:
                return current
            if new is None:
                if current is not None:
                    self.delete_many([key])
                return None
            self.put_many([new])
            return new

    # -- versioned writes: what moves between tiers are made of -------------------------------------------------

    def put_if_newer(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        """Write each entry unless this tier holds a live entry of its key at the same or a newer version.

        A copy moving between tiers never replaces a write that landed after it was read. Capacity applies as
        for ``put_many`` (a written entry may be evicted at once). Atomic per key; the default runs ``compute``
        per entry.

        Returns:
            The entries written, in order.

        """
        written: list[MemoryEntry] = []
        for entry in self._normalized_batch(entries).values():

            def newer(current: MemoryEntry | None, e: MemoryEntry = entry) -> MemoryEntry | None:
                return e if current is None or current.version < e.version else UNCHANGED

            if self.compute(entry.key, newer) is entry:
                written.append(entry)
        return written

    def delete_if(self, versions: Mapping[str, int], *, older: bool = False) -> list[str]:
        """Remove each key only if it still holds the version given (``older=True``: a version below it).

        This is the compare-and-delete of a move: the source gives up a key only if nobody wrote it since it was
        read. Atomic per key; the default runs ``compute`` per key.

        Returns:
            The keys removed.

        """
        removed: list[str] = []
        for key, version in versions.items():

            def stale(current: MemoryEntry | None, v: int = version) -> MemoryEntry | None:
                if current is not None and (current.version < v if older else current.version == v):
                    removed.append(current.key)
                    return None
                return UNCHANGED

            self.compute(key, stale)
        return removed  # filled by stale()

    def versions(self, keys: Sequence[str]) -> dict[str, int]:
        """Return the version of each key that holds a live entry (not counted as a read)."""
        return {
            e.key: e.version
            for e in self.get_many(list(dict.fromkeys(keys)), touch=False)
            if e is not None
        }

    # -- capabilities (safe defaults; backends that have one override it) ---------------------------------------

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Group this tier's writes (and those of tiers sharing its connection) into one atomic transaction.

        The default has no transactions: each write is atomic on its own.
        """
        return contextlib.nullcontext()

    def in_transaction(self) -> bool:
        """Return True while a :meth:`transaction` of this tier is open (default: never)."""
        return False

    def namespaces(self, prefix: str | None = None) -> list[str] | None:
        """Return the namespaces this tier's storage holds entries in, sorted, or None when it cannot list them.

        *prefix*: only that namespace and those below it (``"user"``: ``"user"`` and ``"user/u1"``, not
        ``"users"``); a backend answers it from an index range, so the cost is what the prefix holds. None or
        ``""``: every namespace.
        """
        return None

    def archived_keys(self) -> list[str]:
        """Return every key held, expired ones included when that is cheaper (default: :meth:`keys`)."""
        return self.keys()

    def semantic_index(self) -> SemanticIndex | None:
        """Return the semantic index that follows this tier's writes, or None (see ``tiers.indexed``)."""
        return None

    def change_token(self) -> object:
        """Return a value that changes whenever another process or connection writes this tier's storage.

        Caches in front of the tier compare it to know when they must forget what they hold. The default, None,
        means nobody else can write it.
        """
        return None

    # -- change feed (for derived indexes: the semantic index) ---------------------------------------------------

    def index_meta(self) -> tuple[str, int] | None:
        """Return the (embedding model, dimension) this tier's semantic index was built with, or None."""
        raise NotImplementedError(f"the {self.name} tier cannot feed a semantic index")

    def set_index_meta(self, model: str, dim: int) -> None:
        """Record the semantic index's model and dimension and start recording changes for it."""
        raise NotImplementedError(f"the {self.name} tier cannot feed a semantic index")

    def changes(self, limit: int) -> list[tuple[int, str]]:
        """Return up to *limit* unacknowledged ``(change id, key)`` pairs, oldest first."""
        raise NotImplementedError(f"the {self.name} tier cannot feed a semantic index")

    def ack_changes(self, changes: Sequence[tuple[int, str]]) -> None:
        """Forget *changes* (returned by :meth:`changes`) once a consumer has applied them."""
        raise NotImplementedError(f"the {self.name} tier cannot feed a semantic index")

    def close(self) -> None:  # noqa: B027  (optional hook, not abstract)
        """Release resources (files, connections). The default does nothing."""

    def __len__(self) -> int:
        return self.count()

    def __enter__(self) -> Tier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def namespace_bounds(prefix: str | None) -> tuple[str, str, str] | None:
    """Return the bounds of the namespaces at or below *prefix* in code-point order: ``(prefix, low, high)``.

    A namespace is the prefix itself or lies in ``[low, high)``: ``low`` is the prefix plus ``/`` and ``high`` the
    prefix plus ``0``, the character after ``/``, so a backend answers with ``ns = prefix OR (ns >= low AND ns <
    high)`` on an ordered index (byte-wise: SQLite's BINARY, PostgreSQL's ``"C"`` collation, Redis's
    ZRANGEBYLEX). None (or ``""``): every namespace, no bounds.

    Raises:
        InvalidArgumentError: *prefix* is not a namespace (see :func:`~agentmem_plugin.validation.validate_namespace`).

    Example:
        >>> namespace_bounds("user")
        ('user', 'user/', 'user0')

    """
    if prefix is None:
        return None
    name = validate_namespace(prefix)
    return (name, name + "/", name + "0") if name else None


def locate_in(
    tiers: Iterable[tuple[str, Tier]], keys: Sequence[str], *, touch: bool = False
) -> dict[str, tuple[str, MemoryEntry]]:
    """Return ``{key: (tier name, live entry)}`` for the *keys* some tier holds, asking *tiers* in order.

    A key found in a tier is not asked of the later ones; *touch* counts the read where it is found.
    """
    found: dict[str, tuple[str, MemoryEntry]] = {}
    remaining = list(dict.fromkeys(keys))
    for name, tier in tiers:
        if not remaining:
            break
        for key, entry in zip(remaining, tier.get_many(remaining, touch=touch), strict=True):
            if entry is not None:
                found[key] = (name, entry)
        remaining = [k for k in remaining if k not in found]
    return found


def neighbors_in(order: Sequence[str], keys: Sequence[str], radius: int) -> dict[str, list[str]]:
    """Return, for each of *keys* found in *order*, the keys up to *radius* places before and after it."""
    position = {k: i for i, k in enumerate(order)}
    out: dict[str, list[str]] = {}
    for key in keys:
        i = position.get(key)
        if i is not None:
            out[key] = list(order[max(0, i - radius) : i]) + list(order[i + 1 : i + 1 + radius])
    return out


def row_to_entry(row: Sequence[Any]) -> MemoryEntry:
    """Decode a stored SQL row into an entry.

    The row's first eleven fields are ``key, value, created_at, expires_at, ttl, priority, tags, metadata,
    access_count, last_accessed, version`` (value, tags and metadata as stored by the codec). Shared by the SQL
    tiers (SQLite, PostgreSQL); trusted rows skip the constructor's validation.
    """
    (
        key,
        value,
        created_at,
        expires_at,
        ttl,
        priority,
        tags,
        metadata,
        access_count,
        last,
        version,
    ) = row[:ROW_FIELDS]
    entry = object.__new__(MemoryEntry)
    entry.key = key
    try:  # the usual row: plain JSON, decoded without naming what (a search decodes hundreds of rows)
        if is_compressed(value):
            raise ValueError("compressed")
        entry.value = orjson.loads(value)
        entry.tags = tuple(orjson.loads(tags))
        entry.metadata = orjson.loads(metadata) if metadata != "{}" else {}
    except ValueError:  # compressed, or damaged: the codec's path, whose errors name the key
        entry.value = decode_value(value, what=f"value of key {key!r}")
        entry.tags = tuple(decode_json(tags, what=f"tags of key {key!r}"))
        entry.metadata = (
            decode_json(metadata, what=f"metadata of key {key!r}") if metadata != "{}" else {}
        )
    entry.created_at = created_at
    entry.expires_at = expires_at
    entry.ttl = ttl
    entry.priority = priority
    entry.access_count = access_count
    entry.last_accessed = last
    entry.version = version
    return entry


def entry_to_row(entry: MemoryEntry, *, compression_threshold: int | None) -> list[Any]:
    """Encode an entry as the SQL tiers store it (the inverse of :func:`row_to_entry`).

    Returns ``[key, value, search_text, created_at, expires_at, ttl, priority, tags, metadata, access_count,
    last_accessed, version]``: value encoded by the codec (compressed above *compression_threshold* bytes), the keyword
    search text, tags and metadata as JSON text.
    """
    key = entry.key
    return [
        key,
        encode_value(
            entry.value, compression_threshold=compression_threshold, what=f"value of key {key!r}"
        ),
        document_text(key, entry.value, entry.tags),
        entry.created_at,
        entry.expires_at,
        entry.ttl,
        entry.priority,
        encode_json(list(entry.tags)).decode(),
        encode_json(entry.metadata, what=f"metadata of key {key!r}").decode()
        if entry.metadata
        else "{}",
        entry.access_count,
        entry.last_accessed,
        entry.version,
    ]
