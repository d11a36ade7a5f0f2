"""A tier wrapper that runs a concurrent write at an exact point of a move (not a test module).

``HookedTier(inner)`` forwards every call to *inner*. ``tier.after("scan", action)`` runs ``action()`` once, right
after the next ``scan`` returns (``key=`` narrows it to a call involving that key; ``tier.before(...)`` runs it
right before the call instead), so a test can place "another writer" between any read of a move and its write
or delete, deterministically.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.tiers.base import Tier
from agentmem_plugin.tiers.factory import TierSet
from agentmem_plugin.tiers.forwarding import ForwardingTier


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


class HookedTier(ForwardingTier):
    """*inner*, plus one-shot hooks after its methods (see the module docstring)."""

    def __init__(self, inner: Tier) -> None:
        super().__init__(inner)
        self._hooks: list[tuple[str, str | None, Callable[[], object]]] = []
        self._early: list[tuple[str, str | None, Callable[[], object]]] = []
        self.fired: list[str] = []

    def after(self, method: str, action: Callable[[], object], *, key: str | None = None) -> None:
        """Run *action* once, right after the next call of *method* (involving *key*, when given)."""
        self._hooks.append((method, key, action))

    def before(self, method: str, action: Callable[[], object], *, key: str | None = None) -> None:
        """Run *action* once, right before the next call of *method* (involving *key*, when given)."""
        self._early.append((method, key, action))

    def _fire(
        self,
        hooks: list[tuple[str, str | None, Callable[[], object]]],
        method: str,
        args: tuple[Any, ...],
    ) -> None:
        for hook in list(hooks):
            name, key, action = hook
            if name == method and (key is None or key in _keys_of(args)):
                hooks.remove(hook)
                self.fired.append(method)
                action()

    def _forward(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._fire(self._early, method, args)
        result = super()._forward(method, *args, **kwargs)
        self._fire(self._hooks, method, args)
        return result


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
