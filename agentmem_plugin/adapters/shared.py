"""`SharedMemory`: named memories several agents share, with per-agent grants checked on every operation.

A :class:`SharedMemory` owns named :class:`~agentmem_plugin.memory.Memory` objects and a permission table
(``memory -> agent -> read-only?``). Agents never get the ``Memory`` itself: :meth:`SharedMemory.access_memory`
hands out a :class:`SharedMemoryHandle` bound to one agent, and *every* call on that handle asks the table
again, so revoking access (or downgrading it to read-only) takes effect on handles already handed out.

Every attempt, allowed or denied, and every administrative change (create, grant, revoke, synchronize) goes
to a bounded audit log, queried with :meth:`SharedMemory.audit_log`.

Concurrency: one lock guards the permission table and the audit log; the operations themselves run outside it,
on the (thread-safe) ``Memory``. An operation whose check passed before a concurrent ``revoke_access``
returned may still complete; every operation that *starts* after ``revoke_access`` returns is denied.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import AccessDeniedError, InvalidArgumentError, KeyNotFoundError
from agentmem_plugin.memory import MEMORY_ARGUMENTS, Items, Memory
from agentmem_plugin.twins import async_twin
from agentmem_plugin.validation import validate_name, validate_names, validate_options

__all__ = ["AuditRecord", "SharedMemory", "SharedMemoryHandle"]

logger = logging.getLogger(__name__)


DEFAULT_AUDIT_SIZE = 10_000
"""How many audit records a :class:`SharedMemory` keeps (the oldest are dropped first)."""


def _name(value: object, what: str) -> str:
    return validate_name(value, what=what)


@dataclass(frozen=True)
class AuditRecord:
    """One line of the audit log.

    Attributes:
        timestamp: When it happened (POSIX seconds from the SharedMemory's clock).
        memory: The shared memory's name.
        agent: The agent who acted (or whose access changed); None for ``create`` and ``synchronize``.
        action: ``store``, ``retrieve``, ``search``, ... for operations; ``create``, ``grant``, ``revoke``,
            ``synchronize`` for administration; ``access`` when a handle was asked for.
        key: The key involved, when the operation has exactly one.
        allowed: False when the attempt was refused.
        detail: Extra context (``read_only`` for grants, the target memory for ``synchronize``, ...).

    Example:
        >>> AuditRecord(0.0, "team", "agent_1", "store", "k", True).allowed
        True

    """

    timestamp: float
    memory: str
    agent: str | None
    action: str
    key: str | None
    allowed: bool
    detail: str | None = None


class SharedMemory:
    """Named memories shared between agents, with read-write or read-only grants and an audit log.

    Args:
        audit_size: Maximum number of audit records kept (oldest dropped first).
        clock: Source of audit timestamps (default :func:`time.time`).

    Example:
        >>> shared = SharedMemory()
        >>> _ = shared.create_shared_memory("team", {"capacity": 100}, allowed_agents=["a1"])
        >>> shared.grant_access("team", "a2", read_only=True)
        >>> h1, h2 = shared.access_memory("team", "a1"), shared.access_memory("team", "a2")
        >>> h1.store("insight", "batch the writes")
        >>> h2.retrieve("insight")
        'batch the writes'
        >>> h2.store("x", 1)
        Traceback (most recent call last):
        ...
        agentmem_plugin.errors.AccessDeniedError: agent 'a2' has read-only access to shared memory 'team'; store is a write
        >>> shared.revoke_access("team", "a1")
        >>> shared.access_memory("team", "a1") is None
        True

    """

    def __init__(self, *, audit_size: int = DEFAULT_AUDIT_SIZE, clock: Clock | None = None) -> None:
        if isinstance(audit_size, bool) or not isinstance(audit_size, int) or audit_size <= 0:
            raise InvalidArgumentError(f"audit_size must be a positive int, got {audit_size!r}")
        self._clock: Clock = clock or time.time
        self._lock = threading.RLock()
        self._memories: dict[str, Memory] = {}
        self._permissions: dict[str, dict[str, bool]] = {}  # memory -> agent -> read_only
        self._audit: deque[AuditRecord] = deque(maxlen=audit_size)

    # -- administration ---------------------------------------------------------------------------------------

    def create_shared_memory(
        self,
        name: str,
        config: Mapping[str, Any],
        allowed_agents: Iterable[str] | None = None,
        *,
        read_only_agents: Iterable[str] | None = None,
    ) -> Memory:
        """Create the shared memory *name* as ``Memory(**config)`` and grant the listed agents access.

        Args:
            name: Name of the new shared memory.
            config: Keyword arguments of :class:`~agentmem_plugin.memory.Memory`.
            allowed_agents: Agents granted read-write access.
            read_only_agents: Agents granted read-only access.

        Returns:
            The new ``Memory`` (for its owner; agents should go through :meth:`access_memory`).

        Raises:
            InvalidArgumentError: *name* already exists, a bad agent name, or a bad ``config`` (from ``Memory``).

        Example:
            >>> shared = SharedMemory()
            >>> shared.create_shared_memory("notes", {"capacity": 10}, ["a1"]).capacity
            10

        """
        name = _name(name, "memory name")
        if not isinstance(config, Mapping):
            raise InvalidArgumentError(
                f"config must be a dict of Memory arguments, got {config!r:.80}"
            )
        writers = validate_names(allowed_agents, what="agent name")
        readers = validate_names(read_only_agents, what="agent name")
        with self._lock:
            if name in self._memories:
                raise InvalidArgumentError(f"a shared memory named {name!r} already exists")
        options = validate_options(
            config, MEMORY_ARGUMENTS, what=f"config of shared memory {name!r}"
        )
        memory = Memory(**options)  # outside the lock: opening a persistent store does I/O
        with self._lock:
            if name in self._memories:
                memory.close()
                raise InvalidArgumentError(f"a shared memory named {name!r} already exists")
            self._memories[name] = memory
            grants = {agent: True for agent in readers}
            grants.update({agent: False for agent in writers})  # read-write wins when listed twice
            self._permissions[name] = grants
            self._record(name, None, "create", None, True, f"agents={sorted(grants)}")
        logger.info("created shared memory %r for agents %s", name, sorted(grants))
        return memory

    def grant_access(self, memory_name: str, agent_name: str, *, read_only: bool = False) -> None:
        """Give *agent_name* access to *memory_name* (replacing any earlier grant's mode).

        Raises:
            KeyNotFoundError: no shared memory is named *memory_name*.
            InvalidArgumentError: a bad agent name.

        Example:
            >>> shared = SharedMemory()
            >>> _ = shared.create_shared_memory("notes", {})
            >>> shared.grant_access("notes", "a1", read_only=True)
            >>> shared.permissions("notes")
            {'a1': 'read_only'}

        """
        agent_name = _name(agent_name, "agent name")
        with self._lock:
            grants = self._grants(memory_name)
            grants[agent_name] = bool(read_only)
            self._record(
                memory_name,
                agent_name,
                "grant",
                None,
                True,
                "read_only" if read_only else "read_write",
            )
        logger.info(
            "granted %s access to %r on %r",
            "read-only" if read_only else "read-write",
            agent_name,
            memory_name,
        )

    def revoke_access(self, memory_name: str, agent_name: str) -> None:
        """Take *agent_name*'s access to *memory_name* away; handles already handed out stop working.

        Raises:
            KeyNotFoundError: no shared memory is named *memory_name*, or *agent_name* has no access to it.

        Example:
            >>> shared = SharedMemory()
            >>> _ = shared.create_shared_memory("notes", {}, ["a1"])
            >>> handle = shared.access_memory("notes", "a1")
            >>> shared.revoke_access("notes", "a1")
            >>> handle.keys()
            Traceback (most recent call last):
            ...
            agentmem_plugin.errors.AccessDeniedError: agent 'a1' has no access to shared memory 'notes' (keys refused)

        """
        agent_name = _name(agent_name, "agent name")
        with self._lock:
            grants = self._grants(memory_name)
            if agent_name not in grants:
                raise KeyNotFoundError(
                    f"agent {agent_name!r} has no access to shared memory {memory_name!r}; nothing to revoke"
                )
            del grants[agent_name]
            self._record(memory_name, agent_name, "revoke", None, True)
        logger.info("revoked %r's access to %r", agent_name, memory_name)

    def access_memory(self, memory_name: str, agent_name: str) -> SharedMemoryHandle | None:
        """Return a handle on *memory_name* bound to *agent_name*, or None when the agent has no access.

        The handle checks the agent's access on every call, so a later :meth:`revoke_access` applies to it.
        The handle is always truthy (even over an empty memory), so ``if handle:`` tests for access.

        Raises:
            KeyNotFoundError: no shared memory is named *memory_name*.

        Example:
            >>> shared = SharedMemory()
            >>> _ = shared.create_shared_memory("notes", {}, ["a1"])
            >>> shared.access_memory("notes", "a1")
            SharedMemoryHandle(memory='notes', agent='a1')
            >>> shared.access_memory("notes", "stranger") is None
            True

        """
        agent_name = _name(agent_name, "agent name")
        with self._lock:
            grants = self._grants(memory_name)
            allowed = agent_name in grants
            self._record(memory_name, str(agent_name), "access", None, allowed)
        if not allowed:
            logger.info("agent %r was refused a handle on %r", agent_name, memory_name)
            return None
        return SharedMemoryHandle(self, memory_name, agent_name)

    def synchronize_memories(
        self, source_name: str, target_name: str, keys: Sequence[str] | None = None
    ) -> int:
        """Copy entries (value, TTL, tags, metadata) from one shared memory to another.

        Args:
            source_name: Memory read from.
            target_name: Memory written to; entries under the same keys are replaced.
            keys: Only these keys (missing ones are skipped); None copies every live entry.

        Returns:
            The number of entries copied.

        Raises:
            KeyNotFoundError: either name is unknown.
            InvalidArgumentError: source and target are the same memory, or *keys* is a single str.

        Example:
            >>> shared = SharedMemory()
            >>> a, b = shared.create_shared_memory("a", {}), shared.create_shared_memory("b", {})
            >>> a.store("k", "v")
            >>> shared.synchronize_memories("a", "b"), b.retrieve("k")
            (1, 'v')

        """
        if isinstance(keys, str):
            raise InvalidArgumentError("keys must be a list of str, not a single str")
        with self._lock:
            source = self._memory(source_name)
            target = self._memory(target_name)
        if source is target:
            raise InvalidArgumentError(
                f"cannot synchronize shared memory {source_name!r} with itself"
            )
        wanted = source.keys() if keys is None else list(keys)
        found = [e for e in source.tier.get_many(wanted, touch=False) if e is not None]
        copied = target.store_many(found) if found else 0
        with self._lock:
            self._record(
                source_name, None, "synchronize", None, True, f"to={target_name} entries={copied}"
            )
        logger.info("synchronized %d entries from %r to %r", copied, source_name, target_name)
        return copied

    # -- queries ----------------------------------------------------------------------------------------------

    @property
    def memory_names(self) -> list[str]:
        """The names of the shared memories, sorted."""
        with self._lock:
            return sorted(self._memories)

    def permissions(self, memory_name: str) -> dict[str, str]:
        """Return ``{agent: "read_write" | "read_only"}`` for *memory_name*.

        Raises:
            KeyNotFoundError: no shared memory is named *memory_name*.

        """
        with self._lock:
            grants = self._grants(memory_name)
            return {a: "read_only" if ro else "read_write" for a, ro in sorted(grants.items())}

    def audit_log(
        self, memory_name: str | None = None, agent: str | None = None
    ) -> list[AuditRecord]:
        """Return the audit records, oldest first, optionally only those of one memory and/or one agent.

        Example:
            >>> shared = SharedMemory()
            >>> _ = shared.create_shared_memory("notes", {}, ["a1"])
            >>> shared.access_memory("notes", "a1").store("k", 1)
            >>> [(r.action, r.key, r.allowed) for r in shared.audit_log("notes", agent="a1")]
            [('access', None, True), ('store', 'k', True)]

        """
        with self._lock:
            records = list(self._audit)
        return [
            r
            for r in records
            if (memory_name is None or r.memory == memory_name)
            and (agent is None or r.agent == agent)
        ]

    # -- internals (called with or without the lock; the lock is reentrant) -------------------------------------

    def _memory(self, memory_name: str) -> Memory:
        memory = self._memories.get(_name(memory_name, "memory name"))
        if memory is None:
            known = ", ".join(repr(n) for n in sorted(self._memories)) or "none"
            raise KeyNotFoundError(f"no shared memory named {memory_name!r} (known: {known})")
        return memory

    def _grants(self, memory_name: str) -> dict[str, bool]:
        self._memory(memory_name)
        return self._permissions[memory_name]

    def _record(
        self,
        memory: str,
        agent: str | None,
        action: str,
        key: str | None,
        allowed: bool,
        detail: str | None = None,
    ) -> None:
        self._audit.append(AuditRecord(self._clock(), memory, agent, action, key, allowed, detail))

    def _authorize(
        self, memory_name: str, agent_name: str, action: str, key: object, *, write: bool
    ) -> Memory:
        """Check *agent_name* may do *action* now; record the attempt; return the memory or raise."""
        key_text = key if isinstance(key, str) else None
        with self._lock:
            memory = self._memories.get(memory_name)
            grants = self._permissions.get(memory_name, {})
            if memory is None or agent_name not in grants:
                self._record(memory_name, agent_name, action, key_text, False, "no access")
                reason = f"agent {agent_name!r} has no access to shared memory {memory_name!r} ({action} refused)"
            elif write and grants[agent_name]:
                self._record(memory_name, agent_name, action, key_text, False, "read-only")
                reason = f"agent {agent_name!r} has read-only access to shared memory {memory_name!r}; {action} is a write"
            else:
                self._record(memory_name, agent_name, action, key_text, True)
                return memory
        logger.warning("access denied: %s", reason)
        raise AccessDeniedError(reason)


class SharedMemoryHandle:
    """One agent's view of one shared memory; every call re-checks the agent's access.

    Obtained from :meth:`SharedMemory.access_memory`. Methods mirror :class:`~agentmem_plugin.memory.Memory`;
    reads need any grant, writes (``store``, ``store_many``, ``update``, ``delete``, ``cleanup``, ``clear``) a
    read-write grant.

    Raises:
        AccessDeniedError: on any call once the agent's access is revoked, or on a write with a read-only grant.

    Example:
        >>> shared = SharedMemory()
        >>> _ = shared.create_shared_memory("notes", {}, ["a1"])
        >>> handle = shared.access_memory("notes", "a1")
        >>> handle.update("count", lambda n: n + 1, default=0)
        1

    """

    __slots__ = ("_agent", "_memory_name", "_owner")

    def __init__(self, owner: SharedMemory, memory_name: str, agent_name: str) -> None:
        self._owner = owner
        self._memory_name = memory_name
        self._agent = agent_name

    @property
    def memory_name(self) -> str:
        """The shared memory this handle reaches."""
        return self._memory_name

    @property
    def agent_name(self) -> str:
        """The agent this handle acts for."""
        return self._agent

    def _read(self, action: str, key: object = None) -> Memory:
        return self._owner._authorize(self._memory_name, self._agent, action, key, write=False)

    def _write(self, action: str, key: object = None) -> Memory:
        return self._owner._authorize(self._memory_name, self._agent, action, key, write=True)

    # -- writes -----------------------------------------------------------------------------------------------

    def store(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        priority: int = 0,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
    ) -> None:
        """Store *value* under *key* (see :meth:`Memory.store <agentmem_plugin.memory.Memory.store>`)."""
        self._write("store", key).store(key, value, ttl, priority, metadata, tags)

    def store_many(
        self,
        items: Items,
        *,
        ttl: float | None = None,
        priority: int = 0,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
    ) -> int:
        """Store many entries in one batch; return how many (see ``Memory.store_many``)."""
        return self._write("store_many").store_many(
            items, ttl=ttl, priority=priority, metadata=metadata, tags=tags
        )

    def update(self, key: str, func: Callable[[Any], Any], default: Any = None) -> Any:
        """Atomically replace *key*'s value by ``func(value or default)``; return it (see ``Memory.update``)."""
        return self._write("update", key).update(key, func, default)

    def delete(self, key: str) -> bool:
        """Delete *key*; return True when a live entry was removed."""
        return self._write("delete", key).delete(key)

    def cleanup(self) -> int:
        """Remove expired entries now; return how many."""
        return self._write("cleanup").cleanup()

    def clear(self) -> None:
        """Remove every entry of the shared memory."""
        self._write("clear").clear()

    # -- reads ------------------------------------------------------------------------------------------------

    def retrieve(self, key: str) -> Any:
        """Return the value under *key*, or None when missing or expired."""
        return self._read("retrieve", key).retrieve(key)

    def retrieve_many(self, keys: Sequence[str]) -> list[Any]:
        """Return the value for each key (None where missing), in order."""
        return self._read("retrieve_many").retrieve_many(keys)

    def get_entry(self, key: str) -> MemoryEntry:
        """Return a copy of the live entry under *key* (raises KeyNotFoundError when missing)."""
        return self._read("get_entry", key).get_entry(key)

    def exists(self, key: str) -> bool:
        """Return True when *key* holds a live entry."""
        return self._read("exists", key).exists(key)

    def keys(self) -> list[str]:
        """Return the keys of every live entry."""
        return self._read("keys").keys()

    def search(
        self, query: str, limit: int = 10, *, mode: str | None = None
    ) -> list[dict[str, Any]]:
        """Search the shared memory (see ``Memory.search``)."""
        return self._read("search").search(query, limit, mode=mode)

    def get_stats(self) -> dict[str, Any]:
        """Return the shared memory's statistics."""
        return self._read("get_stats").get_stats()

    def __len__(self) -> int:
        return len(self._read("len"))

    def __contains__(self, key: object) -> bool:
        return key in self._read("contains", key)

    def __bool__(self) -> bool:
        # A handle means "has access" (the spec's ``if agent_memory:``), even over an empty memory.
        return True

    def __repr__(self) -> str:
        return f"SharedMemoryHandle(memory={self._memory_name!r}, agent={self._agent!r})"

    # -- async twins ------------------------------------------------------------------------------------------

    astore = async_twin(store)
    aretrieve = async_twin(retrieve)
    adelete = async_twin(delete)
    akeys = async_twin(keys)
    asearch = async_twin(search)
