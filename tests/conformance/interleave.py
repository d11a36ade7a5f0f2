"""A tier wrapper that runs a concurrent write at an exact point of a move (not a test module).

``HookedTier(inner)`` forwards every call to *inner*. ``tier.after("scan", action)`` runs ``action()`` once, right
after the next ``scan`` returns (``key=`` narrows it to a call involving that key), so a test can place
"another writer" between any read of a move and its write or delete, deterministically.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.tiers.base import Tier
from agentmem_plugin.tiers.factory import TierSet


def _keys_of(args: tuple[Any, ...]) -> set[str]:
    """The keys a tier call is about (entries, keys, a mapping of versions, or one key)."""
    if not args:
        return set()
    first = args[0]
    if isinstance(first, str):
        return {first}
    if isinstance(first, Mapping):
        return set(first)
    if isinstance(first, Sequence):
        return {e.key if isinstance(e, MemoryEntry) else str(e) for e in first}
    return set()


class HookedTier(Tier):
    """*inner*, plus one-shot hooks after its methods (see the module docstring)."""

    def __init__(self, inner: Tier) -> None:
        super().__init__(clock=inner.clock)
        self.inner = inner
        self.name = inner.name
        self.capacity = inner.capacity
        self.persistent = inner.persistent
        self.namespace = inner.namespace
        self.table = inner.table
        self.stats_counters = inner.stats_counters
        self._hooks: list[tuple[str, str | None, Callable[[], object]]] = []
        self.fired: list[str] = []

    def after(self, method: str, action: Callable[[], object], *, key: str | None = None) -> None:
        """Run *action* once, right after the next call of *method* (involving *key*, when given)."""
        self._hooks.append((method, key, action))

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.inner, method)(*args, **kwargs)
        for hook in list(self._hooks):
            name, key, action = hook
            if name == method and (key is None or key in _keys_of(args)):
                self._hooks.remove(hook)
                self.fired.append(method)
                action()
        return result

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("inner", "_hooks", "fired"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def on_evict(self) -> Any:  # type: ignore[override]
        return self.inner.on_evict

    @on_evict.setter
    def on_evict(self, callback: Any) -> None:
        self.inner.on_evict = callback

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        self._call("put_many", entries)

    def get_many(self, keys: Sequence[str], *, touch: bool = True) -> list[MemoryEntry | None]:
        return self._call("get_many", keys, touch=touch)  # type: ignore[no-any-return]

    def get(self, key: str, *, touch: bool = True) -> MemoryEntry | None:
        return self._call("get", key, touch=touch)  # type: ignore[no-any-return]

    def delete_many(self, keys: Sequence[str]) -> int:
        return self._call("delete_many", keys)  # type: ignore[no-any-return]

    def scan(self) -> list[MemoryEntry]:
        return self._call("scan")  # type: ignore[no-any-return]

    def keyword_search(self, query: str, limit: int = 10) -> list[tuple[MemoryEntry, float]]:
        return self.inner.keyword_search(query, limit)

    def compute(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        return self._call("compute", key, fn)  # type: ignore[no-any-return]

    def cleanup(self) -> list[str]:
        return self.inner.cleanup()

    def count(self) -> int:
        return self.inner.count()

    def clear(self) -> None:
        self.inner.clear()

    def put_if_newer(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        return self._call("put_if_newer", entries)  # type: ignore[no-any-return]

    def delete_if(self, versions: Mapping[str, int], *, older: bool = False) -> list[str]:
        return self._call("delete_if", versions, older=older)  # type: ignore[no-any-return]

    def versions(self, keys: Sequence[str]) -> dict[str, int]:
        return self._call("versions", keys)  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:  # type: ignore[override]
        with self.inner.transaction():
            yield

    def in_transaction(self) -> bool:
        return self.inner.in_transaction()

    def namespaces(self) -> list[str] | None:
        return self.inner.namespaces()

    def archived_keys(self) -> list[str]:
        return self.inner.archived_keys()

    def change_token(self) -> object:
        return self.inner.change_token()

    def semantic_index(self) -> Any:
        return self.inner.semantic_index()

    def neighbors(self, keys: Sequence[str], radius: int) -> dict[str, list[str]]:
        return self.inner.neighbors(keys, radius)

    def stats(self) -> dict[str, Any]:
        return self.inner.stats()

    def close(self) -> None:
        self.inner.close()


def hooked(tiers: TierSet) -> TierSet:
    """Return *tiers* with each tier wrapped in a :class:`HookedTier` (the facts stay the same)."""
    import dataclasses

    return dataclasses.replace(
        tiers,
        short=HookedTier(tiers.short),
        long=HookedTier(tiers.long),
        external=HookedTier(tiers.external),
        view=None,
    )
