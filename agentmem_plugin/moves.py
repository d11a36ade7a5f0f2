"""Moving entries between tiers without ever losing a write: the one primitive every move goes through.

Promotion on read, consolidation, short-term overflow, archiving, restoring from the archive and
``transfer_memory`` are all :func:`move`; storing a key into a tier is :func:`place`. Both are built from two
compare-and-set operations every tier has (:meth:`~agentmem_plugin.tiers.base.Tier.put_if_newer` and
:meth:`~agentmem_plugin.tiers.base.Tier.delete_if`) on the entry's
:attr:`~agentmem_plugin.entry.MemoryEntry.version`, so they are safe on every backend, with or without a
transaction spanning the tiers:

1. Check the source still holds the versions that were read (a key written since is left alone).
2. Write the copies to the target, unless it holds the same or a newer version already.
3. Remove from the source only the keys the target now holds at that version or newer, and only if the source
   still holds the version copied (compare-and-delete).
4. A key whose source changed between 1 and 3 (another writer): its copy is taken back from the target, so the
   stale copy never shadows the newer write.
5. A copy the target gave up at once (evicted for capacity) goes back to the source.
6. Where other tiers hold the key too (*others*, the tiers of the same memory beside the two), every copy this
   move wrote is settled against them once it landed: taken back if one of them holds a newer version (a write
   that went to a third tier and removed its older copies just before this copy landed), and their older copies
   removed. A write that lands in a third tier *after* that check removes this copy itself (:func:`place`
   removes older copies from every tier after its own write), so no order of the steps of several processes
   leaves an older copy shadowing a newer one.

Inside one transaction (a SQLite file holding both tiers) the steps cannot interleave with another writer at
all; elsewhere each step is atomic on its own and the checks make every interleaving end with the newest write
in exactly one tier. Counts reported are what the target holds afterwards.

Example:
    >>> from agentmem_plugin.entry import MemoryEntry
    >>> from agentmem_plugin.tiers.buffer import BufferTier
    >>> source, target = BufferTier(10), BufferTier(10)
    >>> source.put_many([MemoryEntry("a", 1), MemoryEntry("b", 2)])
    >>> [e.key for e in move(source.scan(), source, target).moved], sorted(target.keys()), source.keys()
    (['a', 'b'], ['a', 'b'], [])

"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.tiers.base import Tier

__all__ = ["MoveResult", "Transaction", "move", "place", "settle"]

logger = logging.getLogger(__name__)

Transaction = Callable[[], contextlib.AbstractContextManager[None]]
"""A factory of the transaction that spans both tiers of a move (or does nothing when there is none)."""


@dataclass
class MoveResult:
    """What a :func:`move` did.

    Attributes:
        moved: The entries now in the target and gone from the source, in the order given.
        stale: Keys left where they were because their source changed since they were read (a newer write, or
            a delete); the newer state stays.
        refused: Keys left in the source because the target would not keep them (evicted at once for
            capacity).

    """

    moved: list[MemoryEntry] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def move(
    entries: Sequence[MemoryEntry],
    source: Tier,
    target: Tier,
    *,
    transaction: Transaction = contextlib.nullcontext,
    replace: bool = False,
    read_inside: bool = False,
    others: Sequence[Tier] = (),
) -> MoveResult:
    """Move *entries*, as read from *source*, into *target*; see the module docstring for the guarantees.

    Args:
        entries: Entries read from *source* (their versions are what is compared; a later duplicate of a key
            wins).
        source: Where they are now.
        target: Where they go.
        transaction: One transaction around both tiers, when they share one.
        replace: The target's own entries under these keys are replaced whatever their version (two
            independent memories, as ``transfer_memory`` moves between, rather than two tiers of one key).
        read_inside: *entries* were read inside *transaction*, which excludes every other writer of both tiers
            (a SQLite transaction spanning them): the first check and the last (a copy evicted by a write landing
            mid-move) cannot find anything and are skipped. The compare-and-delete stays.
        others: The other tiers that may hold these keys (step 6), when no transaction excludes their writers.

    Returns:
        A :class:`MoveResult`: ``len(result.moved)`` entries are in *target* afterwards.

    """
    copies = {e.key: e.copy() for e in entries}
    result = MoveResult()
    if source is target:  # nothing to move: what is "in the target afterwards" is what it holds
        held = source.versions(list(copies))
        result.moved = [c for k, c in copies.items() if held.get(k) == c.version]
        result.stale = [k for k, c in copies.items() if held.get(k) != c.version]
        return result
    if not copies:
        return result
    with transaction():
        if read_inside:
            fresh = list(copies.values())
        else:
            held = source.versions(list(copies))
            fresh = [c for k, c in copies.items() if held.get(k) == c.version]
            result.stale = [k for k, c in copies.items() if held.get(k) != c.version]
        if replace:
            target.put_many([c.copy() for c in fresh])
            written = {c.key for c in fresh}
        else:
            written = {e.key for e in target.put_if_newer(fresh)}
        landed = target.versions([c.key for c in fresh])
        leaving = {  # the target holds the copy (with replace, exactly it; else it or something newer)
            c.key: c.version
            for c in fresh
            if (landed.get(c.key) == c.version if replace else landed.get(c.key, -1) >= c.version)
        }
        result.refused = [c.key for c in fresh if c.key not in leaving]
        gone = set(source.delete_if(leaving))
        changed = [k for k in leaving if k not in gone]
        take_back: dict[str, int] = {}
        if changed:  # written meanwhile: the stale copy must not shadow the newer write
            now = source.versions(changed)
            take_back = {
                k: leaving[k] for k in changed if k in written and now.get(k, -1) > leaving[k]
            }
            if take_back:
                target.delete_if(take_back)
            result.stale += changed
            logger.info("%d keys changed while they moved; the newer versions stay", len(changed))
        lost: set[str] = set()
        if (
            not read_inside
        ):  # a write landing mid-move may have evicted a copy right after it landed
            kept = target.versions(list(gone))
            lost = {k for k in gone if kept.get(k, -1) < copies[k].version}
            if lost:  # it returns to the source
                source.put_if_newer([copies[k] for k in lost])
                result.refused += sorted(lost)
        taken: set[str] = set()
        if others and not replace:
            ours = {
                k: leaving[k]
                for k in written
                if k in leaving and k not in lost and k not in take_back
            }
            taken = set(settle(ours, target, others))
            if lost:
                settle({k: copies[k].version for k in lost}, source, others)
            if taken:
                result.stale += sorted(taken - set(changed))
                logger.info(
                    "%d copies taken back: a newer write landed in another tier", len(taken)
                )
        result.moved = [
            c for k, c in copies.items() if k in gone and k not in lost and k not in taken
        ]
    return result


def settle(landed: Mapping[str, int], tier: Tier, elsewhere: Sequence[Tier]) -> list[str]:
    """Settle copies that just landed in *tier* (``{key: version}``) against the other tiers of their memory.

    A copy is taken back (compare-and-delete, so only that exact copy goes) when a tier in *elsewhere* holds a
    newer version of its key; an older version in *elsewhere* is removed instead. Called by a move after its copy
    landed: a newer write that landed elsewhere before this check is seen here; one that lands after it removes
    the copy itself (:func:`place`).

    Args:
        landed: The versions written into *tier*, by key.
        tier: Where they were written.
        elsewhere: The other tiers that may hold the same keys.

    Returns:
        The keys whose copy was taken back from *tier*.

    Example:
        >>> from agentmem_plugin.entry import MemoryEntry
        >>> from agentmem_plugin.tiers.buffer import BufferTier
        >>> old, new = MemoryEntry("k", "old"), MemoryEntry("k", "new").new_version()
        >>> here, there = BufferTier(10), BufferTier(10)
        >>> here.put(old); there.put(new)
        >>> settle({"k": old.version}, here, [there]), here.keys(), there.keys()
        (['k'], [], ['k'])

    """
    if not landed:
        return []
    newer: dict[str, int] = {}
    for other in elsewhere:
        if other is tier:
            continue
        held = other.versions(list(landed))
        older = {k: v for k, v in held.items() if v < landed[k]}
        if older:
            other.delete_if(older)
        newer.update({k: landed[k] for k, v in held.items() if v > landed[k]})
    if not newer:
        return []
    gone = tier.delete_if(newer)
    return sorted(gone)


def place(
    entries: Sequence[MemoryEntry],
    target: Tier,
    others: Sequence[Tier],
    *,
    transaction: Transaction = contextlib.nullcontext,
    after: Callable[[Callable[[], object]], None] | None = None,
    outside: Sequence[Tier] = (),
) -> None:
    """Store new writes *entries* in *target* and remove older versions of their keys from the other tiers.

    A key lives in one tier: writing it to one tier ends its older copies elsewhere, but never a newer one (a
    write that landed in another tier meanwhile stays, and this one is the older).

    Args:
        entries: New writes (fresh versions).
        target: Where they go.
        others: Tiers in *transaction* with *target*: their older copies go in the same transaction.
        transaction: The transaction spanning *target* and *others*.
        after: Schedules work for when the outermost transaction has committed (default: at once, after
            *transaction*). The older copies in *outside* are removed then, so a rolled-back write never
            removes them.
        outside: Tiers outside the transaction (the archive).

    Raises:
        SerializationError, StorageError: the write failed; nothing was removed anywhere.

    """
    versions = {e.key: e.version for e in entries}
    with transaction():
        target.put_many(entries)
        for tier in others:
            if tier is not target:
                tier.delete_if(versions, older=True)
    for tier in outside:
        if tier is not target:
            remove = functools.partial(tier.delete_if, versions, older=True)
            if after is None:
                remove()
            else:
                after(remove)
