"""`MemoryFederation`: one key space over several `Memory` nodes, with replication and last-writer-wins repair.

Placement
    Each key has an ordered preference list of nodes: rendezvous (highest-random-weight) hashing of the key over
    the node names, or the ``primary_node`` given to :meth:`MemoryFederation.federated_store` followed by that
    list. The first node is the key's *primary*; the key is kept on the first ``replication_factor`` nodes of
    the list, where ``replication_factor`` is the primary's (capped at the number of nodes). Adding or removing
    a node moves only the keys whose lists it enters or leaves. Replicas hold the *same key* as the primary.

Versions
    Every write through the federation gets a version ``(timestamp, counter, node)`` from a hybrid logical
    clock (strictly increasing within a federation, and never behind a version it has seen), kept in the entry's
    metadata under :data:`FEDERATION_METADATA_KEY`. Writes to a node are conditional (an atomic read-modify-write
    on the node's tier): a value only replaces one with a lower version, so a stale copy never overwrites a newer
    one — whether it arrives by a store, a read-repair or a synchronization. Entries written to a node directly
    (not through the federation) have the lowest version.

Consistency
    Eventual, last-writer-wins per key. :meth:`~MemoryFederation.federated_retrieve` reads every node that should
    hold the key (plus any preferred nodes), returns the newest version found, and writes it back to those that
    lack it or hold an older one (read-repair); only when none of them has the key are the other nodes searched.
    :meth:`~MemoryFederation.synchronize_federation` does the same for every key on every node. A node that fails
    with :class:`~agentmem_plugin.errors.StorageError` is skipped with a warning. There are no federated deletes.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError, KeyNotFoundError, StorageError
from agentmem_plugin.memory import Memory
from agentmem_plugin.tiers.base import UNCHANGED
from agentmem_plugin.validation import validate_key, validate_name, validate_names

__all__ = ["FEDERATION_METADATA_KEY", "MemoryFederation", "Version", "version_of"]

logger = logging.getLogger(__name__)

FEDERATION_METADATA_KEY = "agentmem_federation"
"""Metadata field holding ``{"version": [timestamp, counter, node], "primary": node or None}``."""

Version = tuple[float, int, str]
"""``(timestamp, counter, node)``; compared lexicographically, higher is newer."""

_UNVERSIONED: Version = (-math.inf, -1, "")


def version_of(entry: MemoryEntry) -> Version:
    """Return the federation version stored in *entry*'s metadata (the lowest version when it has none).

    Example:
        >>> version_of(MemoryEntry("k", 1, metadata={"agentmem_federation": {"version": [5.0, 0, "a"]}}))
        (5.0, 0, 'a')

    """
    info = entry.metadata.get(FEDERATION_METADATA_KEY)
    raw = info.get("version") if isinstance(info, Mapping) else None
    if (
        isinstance(raw, (list, tuple))
        and len(raw) == 3
        and isinstance(raw[0], (int, float))
        and isinstance(raw[1], int)
        and isinstance(raw[2], str)
    ):
        return (float(raw[0]), int(raw[1]), raw[2])
    return _UNVERSIONED


def _recorded_primary(entry: MemoryEntry) -> str | None:
    info = entry.metadata.get(FEDERATION_METADATA_KEY)
    primary = info.get("primary") if isinstance(info, Mapping) else None
    return primary if isinstance(primary, str) else None


def _weight(node: str, key: str) -> bytes:
    return hashlib.blake2b(
        f"{node}\x00{key}".encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()


class _Node:
    __slots__ = ("memory", "replication_factor")

    def __init__(self, memory: Memory, replication_factor: int) -> None:
        self.memory = memory
        self.replication_factor = replication_factor


class MemoryFederation:
    """Several :class:`~agentmem_plugin.memory.Memory` nodes serving one key space, replicated and repaired.

    See the module docstring for placement, versions and the consistency model.

    Args:
        clock: Source of version timestamps (default :func:`time.time`).

    Example:
        >>> federation = MemoryFederation()
        >>> federation.add_node("primary", Memory(capacity=10000), replication_factor=3)
        >>> federation.add_node("backup1", Memory(capacity=5000))
        >>> federation.add_node("backup2", Memory(capacity=5000))
        >>> sorted(federation.federated_store("critical", {"important": "info"}, primary_node="primary"))
        ['backup1', 'backup2', 'primary']
        >>> federation.nodes["primary"].clear()  # the primary loses its data...
        >>> federation.federated_retrieve("critical")  # ...a replica serves it and the primary is repaired
        {'important': 'info'}
        >>> federation.nodes["primary"].retrieve("critical")
        {'important': 'info'}

    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or time.time
        self._lock = threading.RLock()
        self._nodes: dict[str, _Node] = {}
        self._last: tuple[float, int] = (-math.inf, 0)

    # -- membership -------------------------------------------------------------------------------------------

    def add_node(self, name: str, memory: Memory, replication_factor: int = 1) -> None:
        """Add *memory* as the node *name*; keys whose primary it becomes keep ``replication_factor`` copies.

        Existing entries of *memory* stay; :meth:`synchronize_federation` reconciles them with the others.

        Raises:
            InvalidArgumentError: a bad or already used name, *memory* not a ``Memory``, or
                ``replication_factor`` not an int >= 1.

        Example:
            >>> federation = MemoryFederation()
            >>> federation.add_node("n1", Memory(), replication_factor=2)
            >>> list(federation.nodes)
            ['n1']

        """
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(f"node name must be a non-empty str, got {name!r:.80}")
        if not isinstance(memory, Memory):
            raise InvalidArgumentError(
                f"node {name!r} must be a Memory, got {type(memory).__name__}"
            )
        if (
            isinstance(replication_factor, bool)
            or not isinstance(replication_factor, int)
            or replication_factor < 1
        ):
            raise InvalidArgumentError(
                f"replication_factor of node {name!r} must be an int >= 1, got {replication_factor!r}"
            )
        with self._lock:
            if name in self._nodes:
                raise InvalidArgumentError(f"the federation already has a node named {name!r}")
            self._nodes[name] = _Node(memory, replication_factor)
        logger.info(
            "node %r joined the federation (replication_factor=%d)", name, replication_factor
        )

    def remove_node(self, name: str) -> Memory:
        """Remove the node *name* and return its ``Memory`` (left open, with its data).

        Its keys are still served by their replicas; read-repair and :meth:`synchronize_federation` restore the
        replication factor on the remaining nodes.

        Raises:
            InvalidArgumentError: no node is named *name*.

        Example:
            >>> federation = MemoryFederation()
            >>> federation.add_node("n1", Memory())
            >>> federation.remove_node("n1").capacity
            1000

        """
        with self._lock:
            self._check_nodes([name])
            node = self._nodes.pop(name)
        logger.info("node %r left the federation", name)
        return node.memory

    @property
    def nodes(self) -> dict[str, Memory]:
        """A snapshot ``{name: Memory}`` of the nodes, in the order they were added."""
        with self._lock:
            return {name: node.memory for name, node in self._nodes.items()}

    def replication_factor(self, name: str) -> int:
        """Return the replication factor of the node *name* (InvalidArgumentError when unknown)."""
        with self._lock:
            self._check_nodes([name])
            return self._nodes[name].replication_factor

    # -- placement --------------------------------------------------------------------------------------------

    def node_of(self, key: str) -> str:
        """Return the primary node of *key* by rendezvous hashing (the default of :meth:`federated_store`).

        Raises:
            InvalidArgumentError: the federation has no nodes.

        Example:
            >>> federation = MemoryFederation()
            >>> federation.add_node("a", Memory())
            >>> federation.node_of("anything")
            'a'

        """
        return self.replicas_of(key)[0]

    def replicas_of(self, key: str, primary_node: str | None = None) -> list[str]:
        """Return the nodes that should hold *key*, primary first (``replication_factor`` of them, at most all).

        Args:
            key: The key.
            primary_node: The primary chosen at store time (None: by rendezvous hashing).

        Raises:
            InvalidArgumentError: the federation has no nodes, or *primary_node* is unknown.

        Example:
            >>> federation = MemoryFederation()
            >>> for name in ("a", "b", "c"):
            ...     federation.add_node(name, Memory(), replication_factor=2)
            >>> len(federation.replicas_of("k")), federation.replicas_of("k", primary_node="c")[0]
            (2, 'c')

        """
        key = validate_key(key)
        with self._lock:
            if primary_node is not None:
                self._check_nodes([primary_node])
            return self._owners(key, primary_node)

    def _preference(self, key: str, primary: str | None) -> list[str]:
        ranked = sorted(self._nodes, key=lambda n: _weight(n, key), reverse=True)
        if primary is not None and primary in self._nodes:
            ranked.remove(primary)
            ranked.insert(0, primary)
        return ranked

    def _owners(self, key: str, primary: str | None) -> list[str]:
        if not self._nodes:
            raise InvalidArgumentError("the federation has no nodes; add_node() first")
        ranked = self._preference(key, primary)
        return ranked[: self._nodes[ranked[0]].replication_factor]

    def _check_nodes(self, names: Iterable[str]) -> None:
        names = [validate_name(n, what="a federation node name") for n in names]
        unknown = [n for n in names if n not in self._nodes]
        if unknown:
            known = ", ".join(repr(n) for n in self._nodes) or "none"
            raise InvalidArgumentError(f"unknown federation node(s) {unknown!r} (known: {known})")

    # -- versions ---------------------------------------------------------------------------------------------

    def _next_version(self, node: str) -> Version:
        with self._lock:
            now = float(self._clock())
            if now > self._last[0]:
                self._last = (now, 0)
            else:
                self._last = (self._last[0], self._last[1] + 1)
            return (self._last[0], self._last[1], node)

    def _observe(self, version: Version) -> None:
        with self._lock:
            if (version[0], version[1]) > self._last:
                self._last = (version[0], version[1])

    def _write_if_newer(self, name: str, memory: Memory, entry: MemoryEntry) -> bool | None:
        """Write *entry* to *memory* unless it holds a version >= entry's; True written, False kept, None failed."""
        incoming = version_of(entry)

        def newer_wins(current: MemoryEntry | None) -> MemoryEntry:
            if current is not None and version_of(current) >= incoming:
                return UNCHANGED  # no write at all: the newer version stays as it is
            return entry.copy()

        try:
            result = memory.tier.compute(entry.key, newer_wins)
        except StorageError as exc:
            logger.warning(
                "federation node %r failed writing key %r, skipped: %s", name, entry.key, exc
            )
            return None
        return result is not None and version_of(result) == incoming

    def _read(self, name: str, memory: Memory, key: str) -> MemoryEntry | StorageError | None:
        try:
            return memory.get_entry(key)
        except KeyNotFoundError:
            return None
        except StorageError as exc:
            logger.warning("federation node %r failed reading key %r, skipped: %s", name, key, exc)
            return exc

    # -- data -------------------------------------------------------------------------------------------------

    def federated_store(
        self,
        key: str,
        value: Any,
        primary_node: str | None = None,
        *,
        ttl: float | None = None,
        priority: int = 0,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
    ) -> list[str]:
        """Store *value* under *key* on its primary and replicas (the same key on each), with a new version.

        A node failing with ``StorageError`` is skipped with a warning and the next node in the key's preference
        list takes the copy, so up to ``replication_factor`` copies are written while enough nodes work.

        Args:
            key: The key (stored unchanged on every node).
            value: A JSON-serializable value.
            primary_node: The node to hold the primary copy (None: rendezvous hashing of *key*).
            ttl: Seconds to live (None: each node's ``default_ttl``).
            priority: Eviction priority.
            metadata: Extra fields; the federation adds :data:`FEDERATION_METADATA_KEY`.
            tags: Labels.

        Returns:
            The names of the nodes that now hold this write; a node holding a newer version of the key keeps it
            and is not listed (so the list may be empty).

        Raises:
            InvalidArgumentError: unknown *primary_node*, no nodes, or a bad ttl/priority/metadata/tags.
            InvalidKeyError: a bad key.
            StorageError: every node failed.

        Example:
            >>> federation = MemoryFederation()
            >>> federation.add_node("a", Memory(), replication_factor=2)
            >>> federation.add_node("b", Memory())
            >>> federation.federated_store("k", "v", primary_node="a")
            ['a', 'b']
            >>> federation.nodes["b"].keys()
            ['k']

        """
        key = validate_key(key)
        with self._lock:
            if primary_node is not None:
                self._check_nodes([primary_node])
            owners = self._owners(key, primary_node)
            order = self._preference(key, primary_node)
            members = {name: self._nodes[name].memory for name in order}
        version = self._next_version(owners[0])
        meta = dict(metadata or {})
        meta[FEDERATION_METADATA_KEY] = {"version": list(version), "primary": primary_node}
        # Validate once before any node is touched (each node then stamps its own clock and default TTL).
        MemoryEntry(key, value, ttl=ttl, priority=priority, metadata=meta, tags=tags)
        stored: list[str] = []
        refused: list[str] = []
        for name in order:
            if len(stored) == len(owners):
                break
            memory = members[name]
            entry = MemoryEntry(
                key,
                value,
                ttl=memory.default_ttl if ttl is None else ttl,
                priority=priority,
                metadata=meta,
                tags=tags,
                clock=memory.tier.clock,
            )
            written = self._write_if_newer(name, memory, entry)
            if written:
                stored.append(name)
            elif (
                written is False
            ):  # the node holds a newer version: it keeps it, and not this write
                refused.append(name)
        if not stored and not refused:
            raise StorageError(f"no federation node could store key {key!r} (tried {order!r})")
        if refused:
            logger.info("key %r: %s hold a newer version and kept it", key, refused)
        if len(stored) < len(owners):
            logger.warning(
                "key %r stored on %d of %d nodes: %s", key, len(stored), len(owners), stored
            )
        return stored

    def federated_retrieve(self, key: str, preferred_nodes: Sequence[str] | None = None) -> Any:
        """Return the newest value of *key* in the federation (None when no node has it), repairing on the way.

        Reads *preferred_nodes* (first) and every node that should hold the key; when none of them has it, the
        remaining nodes are searched. Nodes that should hold the key but lack it, and nodes read that hold an
        older version, are then given the newest version (read-repair).

        Raises:
            InvalidArgumentError: an unknown name in *preferred_nodes*, or no nodes.
            InvalidKeyError: a bad key.

        Example:
            >>> federation = MemoryFederation()
            >>> federation.add_node("a", Memory(), replication_factor=2)
            >>> federation.add_node("b", Memory(), replication_factor=2)
            >>> _ = federation.federated_store("k", "v")
            >>> federation.federated_retrieve("k", preferred_nodes=["b"])
            'v'

        """
        key = validate_key(key)
        preferred = validate_names(preferred_nodes, what="preferred_nodes")
        with self._lock:
            self._check_nodes(preferred)
            owners = self._owners(key, None)
            order = self._preference(key, None)
            members = {name: self._nodes[name].memory for name in order}
        first = list(dict.fromkeys([*preferred, *owners]))
        held: dict[str, MemoryEntry] = {}
        read: set[str] = set()
        for name in first:
            got = self._read(name, members[name], key)
            if not isinstance(got, StorageError):
                read.add(name)
                if got is not None:
                    held[name] = got
        if not held:
            for name in order:
                if name in first:
                    continue
                got = self._read(name, members[name], key)
                if isinstance(got, MemoryEntry):
                    held[name] = got
                    read.add(name)
                    break  # a copy outside the owners: serve it and repair the owners
        if not held:
            return None
        newest = max(held.values(), key=version_of)
        self._observe(version_of(newest))
        with self._lock:
            recorded = _recorded_primary(newest)
            owners = self._owners(key, recorded if recorded in self._nodes else None)
            members.update({name: node.memory for name, node in self._nodes.items()})
        targets = [n for n in owners if n in members and n not in held] + [
            n for n, e in held.items() if version_of(e) < version_of(newest)
        ]
        for name in dict.fromkeys(targets):
            if self._write_if_newer(name, members[name], newest):
                logger.info("read-repair: node %r now holds the newest %r", name, key)
        return newest.value

    def synchronize_federation(self) -> dict[str, int]:
        """Bring every node up to date: each key's newest version goes to the nodes that should hold it.

        Nodes that hold an older version of a key get the newest one too; a newer version is never replaced
        by an older one. Failing nodes are skipped with a warning.

        Returns:
            Counts: ``keys`` (distinct keys seen), ``copied`` (copies added where missing), ``updated``
            (stale copies replaced), ``failed`` (node reads or writes that failed).

        Example:
            >>> federation = MemoryFederation()
            >>> federation.add_node("a", Memory(), replication_factor=2)
            >>> federation.add_node("b", Memory(), replication_factor=2)
            >>> federation.nodes["a"].store("k", "only on a")  # not through the federation
            >>> federation.synchronize_federation()
            {'keys': 1, 'copied': 1, 'updated': 0, 'failed': 0}

        """
        counts = {"keys": 0, "copied": 0, "updated": 0, "failed": 0}
        with self._lock:
            members = {name: node.memory for name, node in self._nodes.items()}
        all_keys: set[str] = set()
        reachable: dict[str, Memory] = {}
        for name, memory in members.items():
            try:
                all_keys.update(memory.keys())
            except StorageError as exc:
                logger.warning("federation node %r failed listing keys, skipped: %s", name, exc)
                counts["failed"] += 1
                continue
            reachable[name] = memory
        keys = sorted(all_keys)
        counts["keys"] = len(keys)
        holdings: dict[str, dict[str, MemoryEntry]] = {key: {} for key in keys}
        for name, memory in list(reachable.items()):
            try:
                entries = memory.tier.get_many(keys, touch=False)
            except StorageError as exc:
                logger.warning("federation node %r failed reading, skipped: %s", name, exc)
                counts["failed"] += 1
                del reachable[name]
                continue
            for entry in entries:
                if entry is not None:
                    holdings[entry.key][name] = entry
        for key in keys:
            held = holdings[key]
            if not held:
                continue  # expired everywhere since it was listed
            newest = max(held.values(), key=version_of)
            self._observe(version_of(newest))
            with self._lock:
                if not self._nodes:
                    break
                recorded = _recorded_primary(newest)
                owners = self._owners(key, recorded if recorded in self._nodes else None)
            targets = [n for n in owners if n in reachable and n not in held] + [
                n for n, e in held.items() if version_of(e) < version_of(newest)
            ]
            for name in dict.fromkeys(targets):
                outcome = self._write_if_newer(name, reachable[name], newest)
                if outcome is None:
                    counts["failed"] += 1
                elif outcome:
                    counts["copied" if name not in held else "updated"] += 1
        logger.info("federation synchronized: %s", counts)
        return counts
