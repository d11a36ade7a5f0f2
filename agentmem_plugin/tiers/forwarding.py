"""A tier that forwards every call to another one: the base of tiers that add something around a backend.

Subclass :class:`ForwardingTier` and override the calls you want to add to (the semantic index's
:class:`~agentmem_plugin.tiers.indexed.IndexedTier` follows writes this way); or override :meth:`_forward`, which
every primitive and capability goes through, to see them all (logging, metrics, fault injection in tests).

Example:
    >>> from agentmem_plugin.entry import MemoryEntry
    >>> from agentmem_plugin.tiers.buffer import BufferTier
    >>> class Counting(ForwardingTier):
    ...     calls = 0
    ...     def _forward(self, method, *args, **kwargs):
    ...         self.calls += 1
    ...         return super()._forward(method, *args, **kwargs)
    >>> tier = Counting(BufferTier(10))
    >>> tier.put(MemoryEntry("k", 1)); tier.get("k").value, tier.calls
    (1, 2)

"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.tiers.base import EvictionCallback, Tier

if TYPE_CHECKING:
    from agentmem_plugin.tiers.chroma import SemanticIndex

__all__ = ["ForwardingTier"]


class ForwardingTier(Tier):
    """*inner*'s primitives, capabilities and extras, each call going through :meth:`_forward`.

    Args:
        inner: The tier that does the work.

    Attributes the inner tier has beyond the ``Tier`` surface (``path``, ``flush``, ``analytics``...) are
    forwarded too.

    """

    def __init__(self, inner: Tier) -> None:
        super().__init__(clock=inner.clock)
        self.inner = inner
        self.name = inner.name
        self.capacity = inner.capacity
        self.persistent = inner.persistent
        self.namespace = inner.namespace
        self.table = inner.table
        self.stats_counters = inner.stats_counters

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes this class lacks: the inner backend's extras.
        if name.startswith("__") or name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _forward(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call *method* of the inner tier (every forwarded call comes through here)."""
        return getattr(self.inner, method)(*args, **kwargs)

    @property
    def on_evict(self) -> EvictionCallback | None:
        """Return the inner tier's eviction callback."""
        return self.inner.on_evict

    @on_evict.setter
    def on_evict(self, callback: EvictionCallback | None) -> None:
        self.inner.on_evict = callback

    # -- primitives ---------------------------------------------------------------------------------------------

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        """Forward to the inner tier."""
        self._forward("put_many", entries)

    def get_many(self, keys: Sequence[str], *, touch: bool = True) -> list[MemoryEntry | None]:
        """Forward to the inner tier."""
        return self._forward("get_many", keys, touch=touch)  # type: ignore[no-any-return]

    def get(self, key: str, *, touch: bool = True) -> MemoryEntry | None:
        """Forward to the inner tier (its own fast path for one key)."""
        return self._forward("get", key, touch=touch)  # type: ignore[no-any-return]

    def delete_many(self, keys: Sequence[str]) -> int:
        """Forward to the inner tier."""
        return self._forward("delete_many", keys)  # type: ignore[no-any-return]

    def scan(self) -> list[MemoryEntry]:
        """Forward to the inner tier."""
        return self._forward("scan")  # type: ignore[no-any-return]

    def keyword_search(self, query: str, limit: int = 10) -> list[tuple[MemoryEntry, float]]:
        """Forward to the inner tier."""
        return self._forward("keyword_search", query, limit)  # type: ignore[no-any-return]

    def compute(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        """Forward to the inner tier."""
        return self._forward("compute", key, fn)  # type: ignore[no-any-return]

    def cleanup(self) -> list[str]:
        """Forward to the inner tier."""
        return self._forward("cleanup")  # type: ignore[no-any-return]

    def count(self) -> int:
        """Forward to the inner tier."""
        return self._forward("count")  # type: ignore[no-any-return]

    def clear(self) -> None:
        """Forward to the inner tier."""
        self._forward("clear")

    def put_if_newer(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        """Forward to the inner tier."""
        return self._forward("put_if_newer", entries)  # type: ignore[no-any-return]

    def delete_if(self, versions: Mapping[str, int], *, older: bool = False) -> list[str]:
        """Forward to the inner tier."""
        return self._forward("delete_if", versions, older=older)  # type: ignore[no-any-return]

    def versions(self, keys: Sequence[str]) -> dict[str, int]:
        """Forward to the inner tier."""
        return self._forward("versions", keys)  # type: ignore[no-any-return]

    def neighbors(self, keys: Sequence[str], radius: int) -> dict[str, list[str]]:
        """Forward to the inner tier."""
        return self._forward("neighbors", keys, radius)  # type: ignore[no-any-return]

    def neighbor_entries(
        self, keys: Sequence[str], radius: int, *, known: Collection[str] = ()
    ) -> tuple[dict[str, list[str]], dict[str, MemoryEntry]]:
        """Forward to the inner tier."""
        return self._forward("neighbor_entries", keys, radius, known=known)  # type: ignore[no-any-return]

    # -- capabilities and the change feed ---------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Open the inner tier's transaction."""
        with self.inner.transaction():
            yield

    def in_transaction(self) -> bool:
        """Forward to the inner tier."""
        return self.inner.in_transaction()

    def namespaces(self, prefix: str | None = None) -> list[str] | None:
        """Forward to the inner tier."""
        return self.inner.namespaces(prefix)

    def archived_keys(self) -> list[str]:
        """Forward to the inner tier."""
        return self.inner.archived_keys()

    def change_token(self) -> object:
        """Forward to the inner tier."""
        return self.inner.change_token()

    def semantic_index(self) -> SemanticIndex | None:
        """Forward to the inner tier."""
        return self.inner.semantic_index()

    def index_meta(self) -> tuple[str, int] | None:
        """Forward to the inner tier."""
        return self.inner.index_meta()

    def set_index_meta(self, model: str, dim: int) -> None:
        """Forward to the inner tier."""
        self.inner.set_index_meta(model, dim)

    def changes(self, limit: int) -> list[tuple[int, str]]:
        """Forward to the inner tier."""
        return self.inner.changes(limit)

    def ack_changes(self, changes: Sequence[tuple[int, str]]) -> None:
        """Forward to the inner tier."""
        self.inner.ack_changes(changes)

    def stats(self) -> dict[str, Any]:
        """Forward to the inner tier."""
        return self.inner.stats()

    def close(self) -> None:
        """Close the inner tier."""
        self.inner.close()
