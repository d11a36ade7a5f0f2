"""`HierarchicalMemory`: four levels (immediate → recent → important → learned) and rules that promote items up.

Each level is a plain :class:`~agentmem_plugin.memory.Memory`. An item's bookkeeping (``access_count``,
``importance_score``, ``validation_count``, ``timestamp``, ``last_accessed``) lives in its entry's metadata, so
:meth:`HierarchicalMemory.retrieve` returns exactly the value that was stored.

Promotion rules
---------------
One rule per step, named ``"<level>_to_<next level>"``: ``immediate_to_recent``, ``recent_to_important``,
``important_to_learned``. A rule is either

* a callable taking the *item dict* (``key``, ``value``, ``level``, the bookkeeping fields above and any
  metadata given to :meth:`~HierarchicalMemory.store`) and returning True to promote, or
* a declarative mapping of thresholds, e.g. ``{"access_count": 3}``, meaning **strictly greater than**
  (``access_count > 3``, as in the spec's lambdas); several fields must *all* hold; or
* None, which disables that step.

Rules given to the constructor replace the defaults step by step (the spec's: ``access_count > 3``,
``importance_score > 0.8``, ``validation_count > 5``). Rules are checked on every :meth:`retrieve` (for the item
read) and by :meth:`consolidate_memory` (for every item); an item moves at most one level per check. A promoted
item *leaves* its old level. A rule that raises is logged and the item stays where it was.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
from collections.abc import Callable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError, KeyNotFoundError
from agentmem_plugin.memory import Memory
from agentmem_plugin.moves import move
from agentmem_plugin.twins import async_twin
from agentmem_plugin.validation import validate_capacity, validate_key

__all__ = ["DEFAULT_LEVELS", "DEFAULT_PROMOTION_RULES", "LEVEL_ORDER", "HierarchicalMemory"]

logger = logging.getLogger(__name__)

LEVEL_ORDER: tuple[str, ...] = ("immediate", "recent", "important", "learned")
"""Levels from the lowest to the highest."""

DEFAULT_LEVELS: dict[str, int | None] = {
    "immediate": 50,
    "recent": 500,
    "important": 5000,
    "learned": 10000,
}
"""Capacity of each level (the spec's)."""

PERSISTENT_LEVELS: tuple[str, ...] = ("important", "learned")
"""Levels kept under ``storage_path`` when one is given."""

COUNTERS: tuple[str, ...] = ("access_count", "importance_score", "validation_count")
"""Bookkeeping fields a declarative rule may test."""

ItemRule = Callable[[dict[str, Any]], bool]
PromotionRule = ItemRule | Mapping[str, float] | None

DEFAULT_PROMOTION_RULES: dict[str, PromotionRule] = {
    "immediate_to_recent": {"access_count": 3},
    "recent_to_important": {"importance_score": 0.8},
    "important_to_learned": {"validation_count": 5},
}
"""The spec's rules, declaratively: each threshold means "strictly greater than"."""

STEPS: tuple[str, ...] = tuple(f"{a}_to_{b}" for a, b in itertools.pairwise(LEVEL_ORDER))


def _threshold_rule(name: str, thresholds: Mapping[str, float]) -> ItemRule:
    if not thresholds:
        raise InvalidArgumentError(f"promotion rule {name!r} has no thresholds")
    checked: dict[str, float] = {}
    for field, limit in thresholds.items():
        if field not in COUNTERS:
            raise InvalidArgumentError(
                f"promotion rule {name!r}: unknown field {field!r}; use one of {', '.join(COUNTERS)}"
            )
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or math.isnan(limit):
            raise InvalidArgumentError(
                f"promotion rule {name!r}: threshold of {field!r} must be a number, got {limit!r}"
            )
        checked[field] = float(limit)

    def rule(item: dict[str, Any]) -> bool:
        return all(float(item.get(field, 0)) > limit for field, limit in checked.items())

    rule.__name__ = f"{name}({', '.join(f'{f} > {v:g}' for f, v in checked.items())})"
    return rule


def _compile_rules(rules: Mapping[str, PromotionRule] | None) -> dict[str, ItemRule | None]:
    merged: dict[str, PromotionRule] = dict(DEFAULT_PROMOTION_RULES)
    if rules is not None:
        if not isinstance(rules, Mapping):
            raise InvalidArgumentError(f"promotion_rules must be a dict, got {rules!r:.80}")
        for name, rule in rules.items():
            if name not in STEPS:
                raise InvalidArgumentError(
                    f"unknown promotion rule {name!r}; use one of {', '.join(STEPS)}"
                )
            merged[name] = rule
    compiled: dict[str, ItemRule | None] = {}
    for name, rule in merged.items():
        if rule is None:
            compiled[name] = None
        elif isinstance(rule, Mapping):
            compiled[name] = _threshold_rule(name, rule)
        elif callable(rule):
            compiled[name] = rule
        else:
            raise InvalidArgumentError(
                f"promotion rule {name!r} must be a callable, a dict of thresholds or None, got {rule!r:.80}"
            )
    return compiled


def _check_level(level: object) -> str:
    if not isinstance(level, str) or level not in LEVEL_ORDER:
        raise InvalidArgumentError(f"unknown level {level!r}; use one of {', '.join(LEVEL_ORDER)}")
    return level


def _check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgumentError(f"metadata must be a dict, got {metadata!r:.80}")
    out = dict(metadata)
    for field in ("access_count", "validation_count"):
        if field in out:
            n = out[field]
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise InvalidArgumentError(f"{field} must be an int >= 0, got {n!r}")
    if "importance_score" in out:
        score = out["importance_score"]
        if (
            isinstance(score, bool)
            or not isinstance(score, (int, float))
            or not 0.0 <= float(score) <= 1.0
        ):
            raise InvalidArgumentError(
                f"importance_score must be a number in [0, 1], got {score!r}"
            )
    return out


class HierarchicalMemory:
    """Memory in four levels, with configurable rules promoting items from one level to the next.

    Args:
        levels: Capacity per level name, overriding :data:`DEFAULT_LEVELS` (50 / 500 / 5000 / 10000); None
            for a level means unbounded. Unknown level names are refused.
        promotion_rules: Rules per step overriding :data:`DEFAULT_PROMOTION_RULES` (see the module docstring:
            callables on the item dict, or ``{"field": threshold}`` meaning ``field > threshold``, or None to
            disable a step).
        storage_path: A directory making the ``important`` and ``learned`` levels persistent
            (``storage_path/important`` and ``storage_path/learned``); None keeps every level in memory.
        clock: Source of the current time (tests pass a fake clock).

    Attributes:
        levels: Each level's :class:`Memory`, by name, lowest first.

    Raises:
        InvalidArgumentError: an unknown level or rule name, a bad capacity or a malformed rule.

    Example:
        >>> hm = HierarchicalMemory(promotion_rules={"immediate_to_recent": {"access_count": 1}})
        >>> hm.store("temp_calculation", 42)
        >>> hm.retrieve("temp_calculation"), hm.level_of("temp_calculation")
        (42, 'immediate')
        >>> hm.retrieve("temp_calculation"), hm.level_of("temp_calculation")
        (42, 'recent')

    """

    def __init__(
        self,
        *,
        levels: Mapping[str, int | None] | None = None,
        promotion_rules: Mapping[str, PromotionRule] | None = None,
        storage_path: str | PathLike[str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        capacities = dict(DEFAULT_LEVELS)
        for name, capacity in (levels or {}).items():
            capacities[_check_level(name)] = validate_capacity(capacity)
        self.promotion_rules = _compile_rules(promotion_rules)
        self.storage_path = None if storage_path is None else Path(storage_path)
        self._lock = threading.RLock()
        self._evicted: list[MemoryEntry] | None = (
            None  # a promotion in progress collects evictions here
        )
        self.levels: dict[str, Memory] = {}
        try:
            for name in LEVEL_ORDER:
                persistent = self.storage_path is not None and name in PERSISTENT_LEVELS
                self.levels[name] = Memory(
                    capacity=capacities[name],
                    memory_type="long_term" if name in PERSISTENT_LEVELS else "short_term",
                    persistence=persistent,
                    storage_path=self.storage_path / name
                    if persistent and self.storage_path
                    else None,
                    clock=clock,
                    on_evict=self._on_evict,
                )
        except BaseException:
            self.close()
            raise
        self._clock: Clock = self.levels["immediate"].tier.clock

    # -- helpers --------------------------------------------------------------------------------------------

    def _find(self, key: str) -> tuple[str, MemoryEntry] | None:
        for name in LEVEL_ORDER:
            entry = self.levels[name].tier.get(key, touch=False)
            if entry is not None:
                return name, entry.copy()  # never mutate what the tier holds
        return None

    @staticmethod
    def _item(entry: MemoryEntry, level: str) -> dict[str, Any]:
        return {**entry.metadata, "key": entry.key, "value": entry.value, "level": level}

    def _should_promote(self, entry: MemoryEntry, level: str) -> str | None:
        """Return the next level when its rule says so; a raising rule is logged and means no."""
        index = LEVEL_ORDER.index(level)
        if index == len(LEVEL_ORDER) - 1:
            return None
        target = LEVEL_ORDER[index + 1]
        step = f"{level}_to_{target}"
        rule = self.promotion_rules.get(step)
        if rule is None:
            return None
        try:
            verdict = bool(rule(self._item(entry, level)))
        except Exception:
            logger.exception(
                "promotion rule %r raised for key %r; the item stays in %r", step, entry.key, level
            )
            return None
        return target if verdict else None

    def _promote(self, entry: MemoryEntry, level: str) -> str:
        """Move *entry* one level up if its rule says so; return the level it is in afterwards.

        The move is :func:`agentmem_plugin.moves.move` (the old level gives the item up only once the new one
        holds it). A full level makes room by letting its least valuable item go; that item steps *down* into
        the place the promoted one left, so a promotion never drops an item and changes no other level.
        """
        target = self._should_promote(entry, level)
        if target is None:
            return level
        source, dest = self.levels[level].tier, self.levels[target].tier
        self._evicted = []
        try:
            moved = move([entry], source, dest).moved
            stepped_down = [v for v in self._evicted if v.key != entry.key]
        finally:
            self._evicted = None
        if stepped_down:
            source.put_if_newer(stepped_down)
            logger.info(
                "%s was full: %s stepped down to %s", target, [v.key for v in stepped_down], level
            )
        if not moved:  # the full level let the promoted item itself go: it stays
            logger.info(
                "%r not promoted: %s is full of higher priorities; it stays in %s",
                entry.key,
                target,
                level,
            )
            return level
        logger.info("promoted %r from %s to %s", entry.key, level, target)
        return target

    def _on_evict(self, victims: list[MemoryEntry]) -> None:
        """Keep what a level evicts for capacity while a promotion runs (see :meth:`_promote`)."""
        if self._evicted is not None:
            self._evicted.extend(v.copy() for v in victims)

    # -- public API --------------------------------------------------------------------------------------

    def store(
        self,
        key: str,
        value: Any,
        level: str = "immediate",
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Store *value* under *key* at *level* as a new item (any previous item under *key* is replaced).

        Args:
            key: The key.
            value: A JSON-serializable value.
            level: ``"immediate"``, ``"recent"``, ``"important"`` or ``"learned"``.
            metadata: Extra fields kept with the item; may set ``importance_score`` (in [0, 1], default 0.5),
                ``access_count`` or ``validation_count`` (ints >= 0, default 0).

        Raises:
            InvalidArgumentError: an unknown level (named in the message) or bad metadata; nothing is stored.

        Example:
            >>> hm = HierarchicalMemory()
            >>> hm.store("user_preference", "detailed", level="recent", metadata={"importance_score": 0.9})
            >>> hm.level_of("user_preference")
            'recent'

        """
        level = _check_level(level)
        key = validate_key(key)
        fields: dict[str, Any] = {
            "timestamp": self._clock(),
            "access_count": 0,
            "importance_score": 0.5,
            "validation_count": 0,
            **_check_metadata(metadata),
        }
        with self._lock:
            self.levels[level].store(key, value, metadata=fields)
            for other in LEVEL_ORDER:
                if other != level:
                    self.levels[other].delete(key)

    def retrieve(self, key: str) -> Any:
        """Return the value under *key* from whichever level holds it (None when absent).

        Counts an access (``access_count``, ``last_accessed``), then checks the item's promotion rule.

        Example:
            >>> hm = HierarchicalMemory()
            >>> hm.store("k", "v")
            >>> hm.retrieve("k"), hm.get_item("k")["access_count"]
            ('v', 1)

        """
        key = validate_key(key)
        with self._lock:
            found = self._find(key)
            if found is None:
                return None
            level, entry = found
            entry.metadata["access_count"] = int(entry.metadata.get("access_count", 0)) + 1
            entry.metadata["last_accessed"] = self._clock()
            self.levels[level].tier.put(entry.new_version())  # the same item, its counters updated
            self._promote(entry, level)
            return entry.value

    def validate(self, key: str) -> int:
        """Record that the item under *key* proved right once more; return its new ``validation_count``.

        Raises:
            KeyNotFoundError: no item under *key*.

        Example:
            >>> hm = HierarchicalMemory()
            >>> hm.store("proven_strategy", "batch_processing_optimal", level="important")
            >>> hm.validate("proven_strategy")
            1

        """
        key = validate_key(key)
        with self._lock:
            found = self._find(key)
            if found is None:
                raise KeyNotFoundError(f"no item under key {key!r} at any level")
            level, entry = found
            count = int(entry.metadata.get("validation_count", 0)) + 1
            entry.metadata["validation_count"] = count
            self.levels[level].tier.put(entry.new_version())
            return count

    def level_of(self, key: str) -> str | None:
        """Return the name of the level holding *key*, or None (not counted as an access)."""
        key = validate_key(key)
        with self._lock:
            found = self._find(key)
            return None if found is None else found[0]

    def get_item(self, key: str) -> dict[str, Any] | None:
        """Return the item dict under *key* (value, level and bookkeeping), or None; not counted as an access."""
        key = validate_key(key)
        with self._lock:
            found = self._find(key)
            return None if found is None else self._item(found[1], found[0])

    def consolidate_memory(self) -> dict[str, int]:
        """Check every item's promotion rule, then remove expired items.

        Each item moves at most one level per call (items are listed before any moves).

        Returns:
            ``{"promoted": n, "expired": n, "<step>": n for each step}``.

        Example:
            >>> hm = HierarchicalMemory()
            >>> hm.store("pref", "short answers", level="recent", metadata={"importance_score": 0.9})
            >>> hm.consolidate_memory()["recent_to_important"], hm.level_of("pref")
            (1, 'important')

        """
        counts = dict.fromkeys(STEPS, 0)
        with self._lock:
            snapshot = [
                (name, [e.copy() for e in self.levels[name].tier.scan()]) for name in LEVEL_ORDER
            ]
            for level, entries in snapshot:
                for entry in entries:
                    moved_to = self._promote(entry, level)
                    if moved_to != level:
                        counts[f"{level}_to_{moved_to}"] += 1
            expired = sum(memory.cleanup() for memory in self.levels.values())
        return {"promoted": sum(counts.values()), "expired": expired, **counts}

    def close(self) -> None:
        """Close every level (persistent levels release their files)."""
        for memory in self.levels.values():
            memory.close()

    def __enter__(self) -> HierarchicalMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={len(memory)}" for name, memory in self.levels.items())
        return f"HierarchicalMemory({sizes})"

    # -- async twins ---------------------------------------------------------------------------------------

    astore = async_twin(store)
    aretrieve = async_twin(retrieve)
    aconsolidate_memory = async_twin(consolidate_memory)
