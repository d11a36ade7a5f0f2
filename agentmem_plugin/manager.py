"""`MemoryManager`: short-term, long-term and external tiers behind one API.

=============  ===========================================  ==============================================
tier           in memory (``storage_path=None``)             persistent (``storage_path=DIR``)
=============  ===========================================  ==============================================
short-term     :class:`BufferTier` (LRU + TTL + priority)     table ``short_term`` of ``DIR/memory.sqlite3``
long-term      in-memory SQLite (FTS5) + semantic index       table ``long_term`` of the same file + Chroma
external       :class:`ArchiveTier` in a temporary dir        ``DIR/archive`` (zstd, checksummed, AES-GCM
                                                             when a key is given)
=============  ===========================================  ==============================================

Behaviour (the spec's three diagrams):

* **A key lives in exactly one tier.** Storing it into another tier moves it.
* **Reads go through**: LRU cache → short-term → long-term (promoted to short-term) → external (restored to
  long-term). Persistent short- and long-term share one SQLite connection, so a move is one transaction.
* **Nothing is lost to capacity.** Short-term overflow is consolidated into long-term (inside the same
  transaction as the write that caused it); only TTL expiry deletes. Long-term above ``long_term_limit`` moves
  its least important entries (by the consolidation policy's score) to the archive.
* **consolidate()** follows the spec's flow: triggers (manual, capacity threshold, time interval), the policy
  selects and scores entries, batches go to long-term (values compressed by the SQLite codec) with verify and
  retry, and leave short-term in the same transaction as their long-term write commits.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from agentmem_plugin.backup import read_backup, write_backup
from agentmem_plugin.codec import normalize
from agentmem_plugin.entry import Clock, MemoryEntry, validate_capacity, validate_key, validate_tags
from agentmem_plugin.errors import InvalidArgumentError, KeyNotFoundError, StorageError
from agentmem_plugin.memory import Memory, _in_thread, entries_from_items, hit
from agentmem_plugin.policies import ConsolidationPolicy, ImportanceConsolidationPolicy
from agentmem_plugin.tiers.archive import ArchiveTier
from agentmem_plugin.tiers.base import Tier
from agentmem_plugin.tiers.buffer import BufferTier
from agentmem_plugin.tiers.sqlite import SqliteTier
from agentmem_plugin.tiers.urls import (
    archive_leaf,
    is_durable_url,
    is_server_url,
    namespace_of_leaf,
    open_archive,
    open_tier,
)

__all__ = ["MEMORY_TIERS", "MemoryManager"]

logger = logging.getLogger(__name__)

MEMORY_TIERS: tuple[str, ...] = ("short_term", "long_term", "external")


def _namespace(namespace: str | Sequence[str] | None) -> str:
    if namespace is None:
        return ""
    if isinstance(namespace, str):
        return namespace
    parts = list(namespace)
    for part in parts:
        if not isinstance(part, str) or not part or "/" in part:
            raise InvalidArgumentError(
                f"namespace parts must be non-empty str without '/', got {part!r}"
            )
    return "/".join(parts)


def _same_version(a: MemoryEntry, b: MemoryEntry) -> bool:
    """Return True when *a* and *b* are the same write of a key (copies of one entry), not two writes."""
    return a.created_at == b.created_at and a.value == b.value


def _below(namespace: str, base: str) -> bool:
    """Return True when *namespace* is *base* or nested under it (``""`` contains every namespace)."""
    return not base or namespace == base or namespace.startswith(base + "/")


class MemoryManager:
    """Multi-tier memory with read-through promotion, consolidation and search across tiers.

    Args:
        short_term_limit: Capacity of short-term memory; overflow moves to long-term (never dropped).
        long_term_limit: Capacity of long-term memory; overflow moves the least important to the archive.
        enable_logging: Log tier moves at INFO level (DEBUG otherwise).
        storage_path: Directory making every tier persistent and reopenable; None keeps everything in memory
            for the life of the process (the archive then lives in a temporary directory).
        embedder: Enables semantic and hybrid search of long-term memory (``"default"`` = offline MiniLM).
        archive: An archive tier, or its URL (``"s3://bucket/prefix"``, a directory), instead of the default one.
        archive_key: Encrypts the archive (AES-256-GCM); default ``$AGENTMEM_ARCHIVE_KEY``. Without a key the
            archive is compressed and checksummed, **not encrypted** (``get_stats()`` says so).
        encrypt: True requires a key; False refuses one.
        namespace: A str or a tuple such as ``("user", "u1")``; a manager sees only its namespace.
        cache_size: Entries kept in the LRU cache in front of the tiers (0 disables it).
        consolidation_policy: Selects and orders entries to consolidate (default: by importance).
        consolidation_threshold: Consolidate automatically when short-term is this full (0-1; None: never).
        consolidation_interval: Consolidate automatically when this many seconds passed since the last time.
        batch_size: Entries per consolidation batch.
        clock: Source of the current time.
        embed_text: ``fn(entry) -> str | None``: the text a long-term entry is embedded by (see
            :class:`~agentmem_plugin.memory.Memory`); None keeps an entry out of the semantic index.
        short_term: A backend URL for short-term memory, e.g. ``"redis://127.0.0.1:6379/0"`` (shared by
            processes); default: the in-process buffer, or SQLite under *storage_path*.
        long_term: A backend URL for long-term memory, e.g. ``"postgresql://127.0.0.1:5432/test"``; default:
            SQLite under *storage_path* (in memory without one).
        semantic: A Chroma server URL (``"http://127.0.0.1:8000"``) for the semantic index; default: beside
            the store. See :mod:`agentmem_plugin.tiers.urls` for every scheme; passwords are never logged.
        reindex: Rebuild the semantic index when the store was indexed with another embedding model (instead of
            refusing to open it with an EmbeddingError).

    Example:
        >>> mm = MemoryManager(short_term_limit=2)
        >>> mm.store("a", 1); mm.store("b", 2); mm.store("c", 3)   # "a" overflows into long-term
        >>> mm.retrieve("a"), mm.tier_of("a")                       # found there, promoted back
        (1, 'short_term')

    """

    def __init__(
        self,
        short_term_limit: int = 100,
        long_term_limit: int = 1000,
        enable_logging: bool = True,
        *,
        storage_path: str | PathLike[str] | None = None,
        embedder: Any = None,
        archive: Tier | str | None = None,
        archive_key: str | bytes | None = None,
        encrypt: bool | None = None,
        namespace: str | Sequence[str] | None = None,
        cache_size: int = 256,
        consolidation_policy: ConsolidationPolicy | None = None,
        consolidation_threshold: float | None = None,
        consolidation_interval: float | None = None,
        batch_size: int = 500,
        clock: Clock | None = None,
        embed_text: Callable[[MemoryEntry], str | None] | None = None,
        short_term: str | None = None,
        long_term: str | None = None,
        semantic: str | None = None,
        reindex: bool = False,
        _parent: MemoryManager | None = None,
    ) -> None:
        self._settings: dict[str, Any] = {
            "short_term_limit": short_term_limit, "long_term_limit": long_term_limit,
            "enable_logging": enable_logging, "storage_path": storage_path, "embedder": embedder,
            "archive_key": archive_key, "encrypt": encrypt, "cache_size": cache_size,
            "consolidation_policy": consolidation_policy, "consolidation_threshold": consolidation_threshold,
            "consolidation_interval": consolidation_interval, "batch_size": batch_size, "clock": clock,
            "embed_text": embed_text, "short_term": short_term, "long_term": long_term, "semantic": semantic, "reindex": reindex,
            "archive": archive if isinstance(archive, str) else None,
        }  # fmt: skip
        self._children: dict[str, MemoryManager] = {}
        self._children_lock = threading.Lock()
        self._parent = _parent
        short_limit, long_limit = (
            validate_capacity(short_term_limit),
            validate_capacity(long_term_limit),
        )
        if short_limit is None or long_limit is None:
            raise InvalidArgumentError("short_term_limit and long_term_limit must be positive ints")
        self.short_term_limit: int = short_limit
        self.long_term_limit: int = long_limit
        if consolidation_threshold is not None and not 0 < consolidation_threshold <= 1:
            raise InvalidArgumentError(
                f"consolidation_threshold must be in (0, 1], got {consolidation_threshold!r}"
            )
        if cache_size < 0 or batch_size <= 0:
            raise InvalidArgumentError(
                f"cache_size must be >= 0 and batch_size > 0, got {cache_size}, {batch_size}"
            )
        self.enable_logging = enable_logging
        self.namespace = _namespace(namespace)
        self.storage_path = None if storage_path is None else Path(storage_path)
        self.policy: ConsolidationPolicy = consolidation_policy or ImportanceConsolidationPolicy()
        self.consolidation_threshold = consolidation_threshold
        self.consolidation_interval = consolidation_interval
        self.batch_size = batch_size
        self.cache_size = cache_size
        self.clock: Clock = clock or time.time
        self._cache: OrderedDict[str, MemoryEntry] = OrderedDict()
        self._counters = dict.fromkeys(
            ("cache_hits", "promotions", "restores", "consolidations", "consolidated", "overflowed",
             "archived", "retries"), 0)  # fmt: skip
        self._last_consolidation = self.clock()
        self._memories: dict[str, Memory] = {}

        ns = self.namespace
        shared_short, shared_long = is_server_url(short_term), is_server_url(long_term)
        if shared_short and not (
            shared_long or is_durable_url(long_term) or self.storage_path is not None
        ):
            raise InvalidArgumentError(
                "short_term on a server is shared by processes, so its overflow needs a long-term memory they "
                "all see: pass long_term='postgresql://...' (or a storage_path)"
            )
        if shared_long and embedder is not None and semantic is None:
            raise InvalidArgumentError(
                "long_term on a server with an embedder needs a semantic index every process shares: pass "
                "semantic='http://host:8000' (a Chroma server); a per-process index would miss others' writes"
            )
        if shared_short or shared_long:
            cache_size = 0  # another process's write would not invalidate this process's cache
            self.cache_size = 0
        self._archive_private = False
        if (
            self.storage_path is not None
            and self.storage_path.exists()
            and not self.storage_path.is_dir()
        ):
            raise InvalidArgumentError(
                f"storage_path must be a directory, got {str(self.storage_path)!r}"
            )
        db = None if self.storage_path is None else self.storage_path / "memory.sqlite3"
        share = (
            None
            if _parent is None or not isinstance(_parent.long_tier, SqliteTier)
            else _parent.long_tier
        )
        long_tier = None if long_term is None else open_tier(
            long_term, role="long_term", namespace=ns, clock=self.clock,
            share=None if _parent is None else _parent.long_tier,  # a view borrows the root's pool/client
        )  # fmt: skip
        if long_tier is None:
            long_tier = SqliteTier(db, table="long_term", namespace=ns, clock=self.clock,
                                   share_connection_with=share if share is not None and share.path == db else None)  # fmt: skip
        self.long_tier: Tier = long_tier
        short_tier = None if short_term is None else open_tier(
            short_term, role="short_term", namespace=ns, capacity=self.short_term_limit, clock=self.clock,
            on_evict=self._overflow, share=None if _parent is None else _parent.short_tier,
        )  # fmt: skip
        if (
            short_tier is None and db is not None
        ):  # shares the long-term connection: moves are one transaction
            short_tier = SqliteTier(
                db, table="short_term", namespace=ns, capacity=self.short_term_limit, clock=self.clock,
                on_evict=self._overflow,
                share_connection_with=long_tier if isinstance(long_tier, SqliteTier) and long_tier.path == db else None,
            )  # fmt: skip
        if short_tier is None:
            short_tier = BufferTier(
                self.short_term_limit, clock=self.clock, on_evict=self._overflow
            )
        self.short_tier: Tier = short_tier
        if isinstance(archive, str):
            archive = open_archive(
                archive, namespace=ns, key=archive_key, encrypt=encrypt, clock=self.clock
            )
        elif archive is None and is_durable_url(long_term) and self.storage_path is None:
            # Long-term lives on a server or in a file that outlives this process; a temporary archive would
            # not, so overflow is never moved there (it would vanish at exit): long_term_limit is not enforced.
            logger.warning(
                "long_term is a durable backend but no archive= or storage_path is given: long_term_limit "
                "(%d) is not enforced; pass archive='s3://bucket/prefix' or a shared directory to archive overflow",
                self.long_term_limit,
            )
            self.long_term_limit = sys.maxsize
            self._archive_private = True  # store(memory_type="external") is refused there
            archive = ArchiveTier(None, key=archive_key, encrypt=encrypt, clock=self.clock)
        if archive is None:
            where = None
            if self.storage_path is not None:
                where = self.storage_path / "archive" / archive_leaf(ns)
            archive = ArchiveTier(where, key=archive_key, encrypt=encrypt, clock=self.clock)
        self.external_tier: Tier = archive
        self.long_term = Memory(
            capacity=None, memory_type="long_term", persistence=self.storage_path is not None,
            storage_path=self.storage_path, tier=self.long_tier, embedder=embedder, embed_text=embed_text,
            chroma=semantic, reindex=reindex,
        )  # fmt: skip
        self._reconcile()

    @classmethod
    def from_config(
        cls, source: Mapping[str, Any] | str | PathLike[str] | None = None, **overrides: Any
    ) -> MemoryManager:
        """Build a manager from a dict, a YAML/TOML file or ``AGENTMEM_*`` environment variables.

        Validated by pydantic-settings (see :mod:`agentmem_plugin.config`); errors name the bad field.

        Example:
            >>> MemoryManager.from_config({"short_term_limit": 50}).short_term_limit  # doctest: +SKIP
            50

        """
        from agentmem_plugin.config import load_manager_config

        kwargs = load_manager_config(source, **overrides).manager_kwargs()
        namespace = kwargs.pop("namespace")
        if namespace:
            kwargs["namespace"] = tuple(namespace.split("/"))
        return cls(**kwargs)

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _log(self, message: str, *args: Any) -> None:
        logger.log(logging.INFO if self.enable_logging else logging.DEBUG, message, *args)

    def _tier(self, memory_type: str) -> Tier:
        if memory_type == "short_term":
            return self.short_tier
        if memory_type == "long_term":
            return self.long_tier
        if memory_type == "external":
            return self.external_tier
        raise InvalidArgumentError(
            f"memory_type must be one of {', '.join(MEMORY_TIERS)}; got {memory_type!r}"
        )

    def _move(
        self, entries: list[MemoryEntry], target: Tier, other: Tier, *, copied: bool = False
    ) -> None:
        """Write *entries* to *target* and remove their keys from *other*, losing nothing if either step fails.

        Writing to short-term can evict, and the victim may be an entry just written (when everything else
        outranks it): it then overflows into long-term, which must keep it. *copied*: the entries were read
        from *other* (a promotion), so on separate servers they leave it only as the versions that were read.
        """
        keys = [e.key for e in entries]
        if self._grouped():  # one transaction: leave the other tier first, overflow may land in it
            with self._txn():
                other.delete_many(keys)
                target.put_many(entries)
            return
        # Separate servers: write first, so a failed write leaves the old value where it was and no reader
        # ever finds the key in neither tier; then leave the other tier, except for keys the write overflowed.
        target.put_many(entries)
        held = target.get_many(keys, touch=False)
        moved = [e for e, h in zip(entries, held, strict=True) if h is not None]
        if copied:
            self._settle(moved, target, other)
        else:  # a store: the newest write wins
            other.delete_many([e.key for e in moved])

    def _settle(self, moved: Sequence[MemoryEntry], target: Tier, source: Tier) -> None:
        """Finish copying *moved* from *source* to *target* on separate servers, where no transaction spans both.

        Each entry leaves *source* only if *source* still holds that very version (same creation time and
        value). Where another process wrote a newer version meanwhile, that one stays, and the copy just written
        to *target* is taken back, so the stale copy never shadows it.
        """
        for entry in moved:

            def leave(cur: MemoryEntry | None, e: MemoryEntry = entry) -> MemoryEntry | None:
                return None if cur is None or _same_version(cur, e) else cur

            def take_back(cur: MemoryEntry | None, e: MemoryEntry = entry) -> MemoryEntry | None:
                return None if cur is not None and _same_version(cur, e) else cur

            if source.compute(entry.key, leave) is not None:
                logger.info("key %r changed while it moved; the newer version stays", entry.key)
                target.compute(entry.key, take_back)

    def _grouped(self) -> bool:
        """Return True when short- and long-term writes share one transaction that readers see at once."""
        # In process (a buffer over SQLite), or both tables on one connection: uncommitted rows are visible to
        # every reader of this manager, so grouping the writes hides nothing.
        long_tier, short = self.long_tier, self.short_tier
        return isinstance(long_tier, SqliteTier) and (
            isinstance(short, BufferTier)
            or (isinstance(short, SqliteTier) and short._conn is long_tier._conn)
        )

    @contextlib.contextmanager
    def _txn(self) -> Iterator[None]:
        """One transaction around short- and long-term writes when they share a SQLite connection.

        Otherwise (Redis, PostgreSQL) each long-term write commits at once: entries evicted from a shared
        short-term tier are durable in long-term before they leave it, so no process ever misses them, and
        moves write before they delete (:meth:`_move`), so a failure leaves a duplicate, never a loss.
        """
        with self.long_tier.transaction() if self._grouped() else contextlib.nullcontext():  # type: ignore[attr-defined]
            yield

    def _overflow(self, victims: list[MemoryEntry]) -> None:
        """Short-term capacity eviction: consolidate the victims into long-term instead of dropping them."""
        self.long_tier.put_many([v.copy() for v in victims])
        self._counters["overflowed"] += len(victims)
        self._log("short-term full: %d entries consolidated into long-term", len(victims))

    def _after_long_write(self) -> None:
        self.long_term._sync()
        if self.long_term_limit == sys.maxsize:  # not enforced (no durable archive): skip the count
            return
        excess = self.long_tier.count() - self.long_term_limit
        if excess > 0:
            self._archive_least_important(excess)

    def _archive_least_important(self, n: int) -> None:
        now = self.clock()
        entries = self.long_tier.scan()
        score = getattr(self.policy, "score", None)
        ranked = sorted(
            entries, key=lambda e: (score(e, now) if score else e.priority, e.created_at)
        )
        victims = ranked[:n]
        self.external_tier.put_many(
            [v.copy() for v in victims]
        )  # durable first, then leave long-term
        self.long_tier.delete_many([v.key for v in victims])
        self.long_term._sync()
        self._counters["archived"] += len(victims)
        self._log("long-term above %d: %d entries archived", self.long_term_limit, len(victims))

    def _reconcile(self) -> None:
        """After a crash between an archive write and the long-term delete, drop the archive's duplicates."""
        listing = getattr(self.external_tier, "archived_keys", self.external_tier.keys)
        archived = set(listing())  # the archive's index: no blob is opened at start-up
        if not archived:
            return
        present = [k for k in archived if self.long_tier.contains(k) or self.short_tier.contains(k)]
        if present:
            self.external_tier.delete_many(present)
            logger.warning(
                "removed %d archive copies of entries still in short/long-term", len(present)
            )

    def _cache_put(self, entry: MemoryEntry) -> None:
        if self.cache_size:
            self._cache[entry.key] = entry
            self._cache.move_to_end(entry.key)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)

    def _forget(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._cache.pop(key, None)

    def _maybe_consolidate(self) -> None:
        now = self.clock()
        due = (
            self.consolidation_interval is not None
            and now - self._last_consolidation >= self.consolidation_interval
        )
        if not due and self.consolidation_threshold is not None:
            due = self.short_tier.count() >= self.consolidation_threshold * self.short_term_limit
        if due:
            self.consolidate()

    # -- namespaces ------------------------------------------------------------------------------------------------

    def with_namespace(self, namespace: str | Sequence[str]) -> MemoryManager:
        """Return a manager over the same storage and settings that sees only *namespace*, below this one's.

        Namespaces nest: on a manager whose namespace is ``"user/alice"``, ``with_namespace("notes")`` is
        ``"user/alice/notes"``, so a view handed to a user's code never reaches outside its own namespace.
        The view shares this manager's connections (SQLite connection, Redis client, PostgreSQL pool), embedder
        and settings; it is created once per namespace, cached, and closed with the root manager. A custom
        ``archive`` tier is not shared (it has no namespaces): each view archives under its own directory of
        ``storage_path`` (or a temporary one).

        Args:
            namespace: A str such as ``"user/u1"`` or a tuple such as ``("user", "u1")``; empty: this manager.

        Raises:
            InvalidArgumentError: a namespace part that is empty, not a str, or contains ``/``.

        Example:
            >>> mm = MemoryManager()
            >>> alice, bob = mm.with_namespace(("user", "alice")), mm.with_namespace(("user", "bob"))
            >>> alice.store("color", "blue")
            >>> alice.retrieve("color"), bob.retrieve("color")
            ('blue', None)
            >>> alice.with_namespace("notes").namespace
            'user/alice/notes'

        """
        ns = _namespace(namespace)
        return self._view("/".join(p for p in (self.namespace, ns) if p))

    def _view(self, full: str) -> MemoryManager:
        """Return the view of the absolute namespace *full* (created once, under the root's lock)."""
        root = self._parent or self
        if full == root.namespace:
            return root
        with root._children_lock:  # one view per namespace, even when threads ask at once
            child = root._children.get(full)
            if child is None:
                child = MemoryManager(**root._settings, namespace=full, _parent=root)
                root._children[full] = child
        return child

    def namespaces(self, prefix: str | Sequence[str] | None = None) -> list[str]:
        """Return the namespaces below this manager's holding entries in any tier, relative to it, sorted.

        At a manager without a namespace these are the full names; on a view of ``"user/alice"``, its own
        entries are ``""`` and ``"user/alice/notes"`` is ``"notes"``: a view never lists other namespaces.
        The archive under *storage_path* counts too.

        Args:
            prefix: Only namespaces equal to it or below it (``"user"`` matches ``"user/u1"``, not ``"users"``).

        """
        root = self._parent or self
        with root._children_lock:
            managers = [root, *root._children.values()]
        found: set[str] = set()
        for attr in ("long_tier", "short_tier"):
            listing = getattr(getattr(root, attr), "namespaces", None)
            if listing is not None:  # a shared backend lists every namespace it holds
                found.update(listing())
            else:  # an in-process buffer per view
                found.update(m.namespace for m in managers if getattr(m, attr).count())
        archive = None if root.storage_path is None else root.storage_path / "archive"
        if archive is not None and archive.is_dir():  # namespaces whose entries are all archived
            for folder in archive.iterdir():
                ns = namespace_of_leaf(folder.name)
                if (
                    ns is not None
                    and ns not in found
                    and folder.is_dir()
                    and _below(ns, self.namespace)
                ):
                    view = root._view(ns)
                    if getattr(view.external_tier, "archived_keys", view.external_tier.keys)():
                        found.add(ns)
        base = self.namespace
        relative = {"" if ns == base else ns[len(base) + 1 :] if base else ns
                    for ns in found if _below(ns, base)}  # fmt: skip
        if prefix is not None:
            p = _namespace(prefix)
            relative = {ns for ns in relative if _below(ns, p)}
        return sorted(relative)

    # -- writing ---------------------------------------------------------------------------------------------------

    def store(self, key: str, value: Any, memory_type: str = "short_term", ttl: float | None = None,
              priority: int = 0, metadata: Mapping[str, Any] | None = None,
              tags: Iterable[str] | None = None) -> None:  # fmt: skip
        """Store *value* under *key* in *memory_type*, moving the key there if another tier holds it.

        Raises:
            InvalidKeyError, InvalidArgumentError, SerializationError: bad input; nothing changed.

        """
        entry = MemoryEntry(
            key, value, ttl=ttl, priority=priority, metadata=metadata, tags=tags, clock=self.clock
        )
        self._place([entry], memory_type)

    def store_many(self, items: Mapping[str, Any] | Iterable[tuple[str, Any] | MemoryEntry],
                   memory_type: str = "short_term", *, ttl: float | None = None, priority: int = 0,
                   metadata: Mapping[str, Any] | None = None, tags: Iterable[str] | None = None) -> int:  # fmt: skip
        """Store many entries in one batch (one transaction for short- and long-term); return how many."""
        tag_list = validate_tags(tags)
        entries = entries_from_items(
            items,
            lambda key, value: MemoryEntry(key, value, ttl=ttl, priority=priority, metadata=metadata,
                                           tags=tag_list, clock=self.clock),
        )  # fmt: skip
        if entries:
            self._place(entries, memory_type)
        return len(entries)

    def _place(self, entries: list[MemoryEntry], memory_type: str) -> None:
        target = self._tier(memory_type)
        for entry in entries:  # fail on an unstorable value before any tier changes
            entry.value = normalize(entry.value, what=f"value of key {entry.key!r}")
            if entry.metadata:
                entry.metadata = normalize(entry.metadata, what=f"metadata of key {entry.key!r}")
        keys = [e.key for e in entries]
        self._forget(keys)
        if target is self.external_tier:
            if self._archive_private:
                raise InvalidArgumentError(
                    "memory_type='external' needs an archive that outlives this process: long-term is durable "
                    "but the archive is temporary; pass archive='s3://bucket/prefix' or a directory"
                )
            target.put_many(entries)  # durable in the archive first, then leave the other tiers
            with self._txn():
                self.short_tier.delete_many(keys)
                self.long_tier.delete_many(keys)
        else:
            other = self.long_tier if target is self.short_tier else self.short_tier
            self._move(entries, target, other)
            self.external_tier.delete_many(keys)
        self._after_long_write()
        self._maybe_consolidate()

    def delete(self, key: str) -> bool:
        """Delete *key* from every tier; return True when a live entry was removed."""
        key = validate_key(key)
        self._forget([key])
        with self._txn():
            removed = self.short_tier.delete(key) | self.long_tier.delete(key)
        removed |= self.external_tier.delete(key)
        self.long_term._sync()
        return removed

    # -- reading ---------------------------------------------------------------------------------------------------

    def get_entry(self, key: str) -> MemoryEntry:
        """Return a copy of *key*'s entry, reading through the tiers (with promotion and restore).

        Raises:
            KeyNotFoundError: no tier holds a live entry under *key*.

        """
        key = validate_key(key)
        cached = self._cache.get(key)
        if cached is not None and not cached.is_expired(self.clock()):
            self._cache.move_to_end(key)
            self._counters["cache_hits"] += 1
            return cached.copy()
        entry = self.short_tier.get(key)
        if entry is None:
            entry = self.long_tier.get(key)
            if entry is not None:
                self._move([entry.copy()], self.short_tier, self.long_tier, copied=True)  # promote
                self.long_term._sync()
                self._counters["promotions"] += 1
            else:
                entry = self.external_tier.get(key)
                if entry is None:
                    raise KeyNotFoundError(f"no live memory under key {key!r} in any tier")
                self.long_tier.put(
                    entry.copy()
                )  # restore: durable in long-term first, then leave the archive
                self.external_tier.delete(key)
                self._counters["restores"] += 1
                self._after_long_write()
        self._cache_put(entry.copy())
        return entry.copy()

    def get_many(self, keys: Sequence[str], *, promote: bool = False) -> list[MemoryEntry | None]:
        """Return copies of the entries under *keys*, in order (None where no tier holds a live one).

        Args:
            keys: The keys to read.
            promote: False (default) reads each tier in one batch and moves nothing, for reading many entries
                (a chat history) without churning short-term; True reads like :meth:`get_entry`, key by key.

        Raises:
            InvalidKeyError: a malformed key (nothing is read).

        """
        keys = [validate_key(k) for k in keys]
        if promote:
            out: list[MemoryEntry | None] = []
            for key in keys:
                try:
                    out.append(self.get_entry(key))
                except KeyNotFoundError:
                    out.append(None)
            return out
        found: dict[str, MemoryEntry] = {}
        for name in MEMORY_TIERS:
            missing = [k for k in dict.fromkeys(keys) if k not in found]
            if not missing:
                break
            for key, entry in zip(missing, self._tier(name).get_many(missing), strict=True):
                if entry is not None:
                    found[key] = entry
        return [found[k].copy() if k in found else None for k in keys]

    def retrieve(self, key: str) -> Any:
        """Return *key*'s value (cache → short → long → external, promoting as it goes), or None."""
        try:
            return self.get_entry(key).value
        except KeyNotFoundError:
            return None

    def tier_of(self, key: str) -> str | None:
        """Return the tier holding *key* (``"short_term"``, ``"long_term"``, ``"external"``), or None."""
        for name in MEMORY_TIERS:
            if self._tier(name).contains(key):
                return name
        return None

    def exists(self, key: str) -> bool:
        """Return True when some tier holds a live entry under *key* (not counted as a read)."""
        return self.tier_of(validate_key(key)) is not None

    def keys(self, memory_type: str | None = None) -> list[str]:
        """Return the live keys of one tier, or of all."""
        names = MEMORY_TIERS if memory_type is None else (memory_type,)
        return [k for name in names for k in self._tier(name).keys()]

    def search(self, query: str, limit: int = 10, *, mode: str | None = None,
               memory_types: Sequence[str] | None = None,
               filter: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:  # fmt: skip
        """Search across tiers: one ranked, de-duplicated list of ``{key, value, score, tier, metadata, tags}``.

        Short-term and the archive are searched by keyword; long-term by *mode* (hybrid by default when there
        is an embedder). Scores are divided by each tier's best score before merging, so tiers compete on rank.

        Args:
            query: Free text (empty: ``[]``).
            limit: Maximum hits.
            mode: For long-term: ``"hybrid"``, ``"keyword"`` or ``"semantic"``.
            memory_types: Tiers to search (default: all three).
            filter: ``{"tags": [...]}`` (all required) and/or metadata fields that must be equal.

        """
        if not isinstance(query, str) or not query.strip():
            return []
        names = list(memory_types) if memory_types is not None else list(MEMORY_TIERS)
        for name in names:
            self._tier(name)
        depth = limit * 3 if filter else limit
        while (
            True
        ):  # with a filter, search deeper until *limit* hits pass it or the tiers are exhausted
            hits: list[dict[str, Any]] = []
            exhausted = True
            for name in names:
                if name == "long_term":
                    found = self.long_term.search(query, depth, mode=mode)
                else:
                    found = [hit(e, s) for e, s in self._tier(name).keyword_search(query, depth)]
                exhausted &= len(found) < depth
                top = max((h["score"] for h in found), default=0.0) or 1.0
                for h in found:
                    h["tier"] = name
                    h["score"] = h["score"] / top
                hits.extend(found)
            if filter:
                hits = [h for h in hits if _matches(h, filter)]
            best: dict[str, dict[str, Any]] = {}
            for h in sorted(hits, key=lambda h: -h["score"]):
                best.setdefault(h["key"], h)
            if len(best) >= limit or exhausted or not filter:
                return list(best.values())[:limit]
            depth *= 4

    # -- consolidation ---------------------------------------------------------------------------------------------

    def consolidate(self, *, retries: int = 3) -> dict[str, int]:
        """Move what the policy selects from short-term to long-term, in verified batches.

        Each batch is written to long-term, read back and compared, and removed from short-term in the same
        transaction; a failing batch is retried (*retries* times), then left in short-term and logged.

        Returns:
            ``{"selected", "moved", "batches", "failed"}``.

        """
        now = self.clock()
        selected = self.policy.select_entries_to_consolidate(self.short_tier.scan(), now)
        report = {"selected": len(selected), "moved": 0, "batches": 0, "failed": 0}
        for start in range(0, len(selected), self.batch_size):
            batch = selected[start : start + self.batch_size]
            for attempt in range(retries + 1):
                try:
                    self._transfer(batch)
                except StorageError as exc:
                    if attempt == retries:
                        report["failed"] += len(batch)
                        logger.error("consolidation of %d entries failed after %d tries: %s", len(batch),
                                     retries + 1, exc)  # fmt: skip
                    else:
                        self._counters["retries"] += 1
                        time.sleep(0.05 * (attempt + 1))
                    continue
                report["moved"] += len(batch)
                report["batches"] += 1
                break
        self.long_term._sync()
        self._after_long_write()
        self._last_consolidation = now
        self._counters["consolidations"] += 1
        self._counters["consolidated"] += report["moved"]
        self._log(
            "consolidated %d of %d selected entries into long-term",
            report["moved"],
            report["selected"],
        )
        return report

    def _transfer(self, batch: list[MemoryEntry]) -> None:
        keys = [e.key for e in batch]
        with self._txn():
            self.long_tier.put_many([e.copy() for e in batch])
            written = self.long_tier.get_many(keys, touch=False)
            for entry, copy in zip(batch, written, strict=True):
                if copy is None or copy.value != entry.value:
                    raise StorageError(f"verification of consolidated key {entry.key!r} failed")
            if self._grouped():
                self.short_tier.delete_many(keys)
            else:  # another process may have rewritten a key since the snapshot: keep its version
                self._settle(batch, self.long_tier, self.short_tier)

    # -- named memories, stats, clearing ---------------------------------------------------------------------------

    def create_memory(self, name: str, config: Mapping[str, Any]) -> Memory:
        """Create a named :class:`Memory` from *config* (its constructor arguments)."""
        if name in self._memories:
            raise InvalidArgumentError(f"a memory named {name!r} already exists")
        memory = Memory(**dict(config))
        self._memories[name] = memory
        return memory

    def get_memory(self, name: str) -> Memory | None:
        """Return the named memory, or None."""
        return self._memories.get(name)

    def list_memories(self) -> list[str]:
        """Return the names of the named memories."""
        return sorted(self._memories)

    def transfer_memory(self, source: str, target: str, keys: Sequence[str]) -> int:
        """Move *keys* from named memory *source* to *target*; return how many moved."""
        src, dst = self._named(source), self._named(target)
        entries = [e for e in (src.tier.get_many(list(keys), touch=False)) if e is not None]
        dst.tier.put_many([e.copy() for e in entries])
        src.tier.delete_many([e.key for e in entries])
        return len(entries)

    def backup_memory(self, name: str, backup_path: str | PathLike[str], *,
                      key: str | bytes | None = None) -> dict[str, Any]:  # fmt: skip
        """Write every live entry of named memory *name* to a backup directory; return its manifest.

        The format (manifest + checksummed, compressed JSON lines) is described in :mod:`agentmem_plugin.backup`;
        with *key* (a 256-bit key, as for the archive) the entries are encrypted with AES-256-GCM.
        """
        return write_backup(backup_path, self._named(name).tier.scan(), name=name, key=key)

    def restore_memory(self, name: str, backup_path: str | PathLike[str], *,
                       key: str | bytes | None = None) -> int:  # fmt: skip
        """Replace the contents of named memory *name* with a backup; return how many entries it restored.

        The backup is verified completely first (a damaged one, or an encrypted one without its *key*, raises
        IntegrityError and changes nothing); the replacement is one transaction on a SQLite-backed memory.
        """
        memory = self._named(name)
        _, entries = read_backup(backup_path, key=key)
        now = self.clock()
        live = [e for e in entries if not e.is_expired(now)]
        tier = memory.tier
        grouped = tier.transaction() if isinstance(tier, SqliteTier) else contextlib.nullcontext()
        with grouped:
            tier.clear()
            if live:
                tier.put_many(live)
        memory._sync()
        return len(live)

    def _named(self, name: str) -> Memory:
        memory = self._memories.get(name)
        if memory is None:
            raise KeyNotFoundError(f"no memory named {name!r}")
        return memory

    def reindex(self) -> int:
        """Rebuild long-term memory's semantic index from every live entry; return how many were indexed.

        Raises:
            InvalidArgumentError: the manager has no embedder.

        """
        return self.long_term.reindex()

    def cleanup(self) -> dict[str, int]:
        """Delete expired entries from every tier now; return how many left each tier.

        Example:
            >>> MemoryManager().cleanup()
            {'short_term': 0, 'long_term': 0, 'external': 0}

        """
        removed = {
            "short_term": len(self.short_tier.cleanup()),
            "long_term": self.long_term.cleanup(),
            "external": len(self.external_tier.cleanup()),
        }
        self._cache.clear()
        return removed

    def get_stats(self) -> dict[str, Any]:
        """Per-tier counts and capacity use, hits, promotions, consolidations, archive encryption, bytes on disk."""
        short, long_, ext = (
            self.short_tier.stats(),
            self.long_tier.stats(),
            self.external_tier.stats(),
        )
        size = 0
        if self.storage_path is not None:
            size = sum(p.stat().st_size for p in self.storage_path.rglob("*") if p.is_file())
        return {
            "namespace": self.namespace,
            "short_term": {
                **short,
                "limit": self.short_term_limit,
                "use": short["size"] / self.short_term_limit,
            },
            "long_term": {
                **long_,
                "limit": self.long_term_limit,
                "use": long_["size"] / self.long_term_limit,
            },
            "external": ext,
            "archive_encrypted": bool(ext.get("encrypted", False)),
            "cache": {
                "size": len(self._cache),
                "capacity": self.cache_size,
                "hits": self._counters["cache_hits"],
            },
            **{k: v for k, v in self._counters.items() if k != "cache_hits"},
            "bytes_on_disk": size,
            "persistent": self.storage_path is not None,
        }

    def clear_short_term(self) -> None:
        """Remove every short-term entry."""
        self._cache.clear()
        self.short_tier.clear()

    def clear_long_term(self) -> None:
        """Remove every long-term entry (and its vectors)."""
        self._cache.clear()
        self.long_term.clear()

    def clear_external(self) -> None:
        """Remove every archived entry."""
        self._cache.clear()
        self.external_tier.clear()

    def clear_all(self) -> None:
        """Remove everything from every tier."""
        self.clear_short_term()
        self.clear_long_term()
        self.clear_external()

    def close(self) -> None:
        """Close every tier (flushes read statistics), and the namespace views of :meth:`with_namespace`.

        Closing a view closes only it: the next ``with_namespace`` call for its namespace opens a fresh one.
        """
        if self._parent is not None:
            with self._parent._children_lock:
                if self._parent._children.get(self.namespace) is self:
                    del self._parent._children[self.namespace]
        with self._children_lock:
            children, self._children = list(self._children.values()), {}
        for child in children:
            child.close()
        for memory in self._memories.values():
            memory.close()
        self.short_tier.close()
        self.long_term.close()
        self.external_tier.close()

    # -- async twins (each runs the sync method in a worker thread) -----------------------------------------------

    async def astore(
        self, key: str, value: Any, memory_type: str = "short_term", **kwargs: Any
    ) -> None:
        """Async :meth:`store`."""
        await _in_thread(self.store, key, value, memory_type, **kwargs)

    async def astore_many(self, items: Any, memory_type: str = "short_term", **kwargs: Any) -> int:
        """Async :meth:`store_many`."""
        return await _in_thread(self.store_many, items, memory_type, **kwargs)

    async def aretrieve(self, key: str) -> Any:
        """Async :meth:`retrieve`."""
        return await _in_thread(self.retrieve, key)

    async def aget_entry(self, key: str) -> MemoryEntry:
        """Async :meth:`get_entry`."""
        return await _in_thread(self.get_entry, key)

    async def aget_many(
        self, keys: Sequence[str], *, promote: bool = False
    ) -> list[MemoryEntry | None]:
        """Async :meth:`get_many`."""
        return await _in_thread(self.get_many, keys, promote=promote)

    async def adelete(self, key: str) -> bool:
        """Async :meth:`delete`."""
        return await _in_thread(self.delete, key)

    async def asearch(self, query: str, limit: int = 10, **kwargs: Any) -> list[dict[str, Any]]:
        """Async :meth:`search`."""
        return await _in_thread(self.search, query, limit, **kwargs)

    async def aconsolidate(self) -> dict[str, int]:
        """Async :meth:`consolidate`."""
        return await _in_thread(self.consolidate)

    async def aget_stats(self) -> dict[str, Any]:
        """Async :meth:`get_stats`."""
        return await _in_thread(self.get_stats)

    def __enter__(self) -> MemoryManager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _matches(hit: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    for field, wanted in filter.items():
        if field == "tags":
            if not set(wanted) <= set(hit["tags"]):
                return False
        elif hit["metadata"].get(field) != wanted:
            return False
    return True
