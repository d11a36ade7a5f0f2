"""`MemoryManager`: short-term, long-term and external tiers behind one API.

=============  ===========================================  ==============================================
tier           in memory (``storage_path=None``)             persistent (``storage_path=DIR``)
=============  ===========================================  ==============================================
short-term     :class:`BufferTier` (LRU + TTL + priority)     table ``short_term`` of ``DIR/memory.sqlite3``
long-term      in-memory SQLite (FTS5) + semantic index       table ``long_term`` of the same file + Chroma
external       :class:`ArchiveTier` in a temporary dir        ``DIR/archive`` (zstd, checksummed, AES-GCM
                                                             when a key is given)
=============  ===========================================  ==============================================

The manager receives its tiers as a :class:`~agentmem_plugin.tiers.factory.TierSet` (built from its arguments by
:func:`~agentmem_plugin.tiers.factory.build_tiers`, or passed as ``tiers=``) and knows no backend. Behaviour (the
spec's three diagrams):

* **A key lives in exactly one tier.** Storing it into another tier moves it.
* **Reads go through**: LRU cache → short-term → long-term (promoted to short-term) → external (restored to
  long-term).
* **Nothing is lost to capacity.** Short-term overflow is consolidated into long-term (inside the write that
  caused it); only TTL expiry deletes. Long-term above ``long_term_limit`` moves its least important entries (by
  the consolidation policy's score) to the archive.
* **No move loses a write.** Every move (promotion, consolidation, overflow, archiving, restore, transfer) is
  :func:`agentmem_plugin.moves.move`: the source gives an entry up only if it still holds the version that was
  copied, so a write racing the move, from another thread or process, always wins. Where short- and long-term
  share one transaction (a SQLite file, or the in-process buffer over SQLite), a move is one transaction.
* **consolidate()** follows the spec's flow: triggers (manual, capacity threshold, time interval), the policy
  selects and scores entries, batches go to long-term (values compressed by the SQLite codec), are verified
  by their versions, and leave short-term; a batch that fails is retried, then moved entry by entry, so one
  entry that cannot move never holds back the rest.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from agentmem_plugin.backup import read_backup, write_backup
from agentmem_plugin.cache import ReadCache
from agentmem_plugin.codec import normalize
from agentmem_plugin.embeddings import Embedder, embed_query_beside
from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import (
    AgentMemError,
    IndexInUseError,
    InvalidArgumentError,
    KeyNotFoundError,
    StorageError,
)
from agentmem_plugin.memory import (
    CONTEXT_CANDIDATES,
    HYBRID_CANDIDATES,
    MEMORY_ARGUMENTS,
    Memory,
    entries_from_items,
    has_boosts,
    no_embedder_error,
    plain_hit,
    ranked_hit,
    ranking_config,
    search_config,
    single_side,
)
from agentmem_plugin.moves import move, place, settle
from agentmem_plugin.policies import (
    ConsolidationPolicy,
    ImportanceConsolidationPolicy,
    consolidation_score,
)
from agentmem_plugin.ranking import RankingConfig, rank_entries
from agentmem_plugin.tiers.base import Tier, locate_in
from agentmem_plugin.tiers.factory import AUTO_EMBEDDER, TierSet, build_tiers, resolve_embedder
from agentmem_plugin.tiers.urls import is_durable_url, is_server_url
from agentmem_plugin.twins import async_twin
from agentmem_plugin.validation import (
    MEMORY_TIERS,
    validate_bool,
    validate_filter,
    validate_fraction,
    validate_key,
    validate_keys,
    validate_limit,
    validate_memory_type,
    validate_memory_types,
    validate_mode,
    validate_namespace,
    validate_non_negative_int,
    validate_options,
    validate_seconds,
    validate_tags,
    validate_text,
)

__all__ = ["MEMORY_TIERS", "MemoryManager"]

logger = logging.getLogger(__name__)

_COUNTERS = (
    "cache_hits",
    "promotions",
    "restores",
    "consolidations",
    "consolidated",
    "overflowed",
    "archived",
    "retries",
    "stale_moves",
)


def _threshold(value: object) -> float | None:
    if value is None:
        return None
    fraction = validate_fraction(value, what="consolidation_threshold")
    if fraction == 0:
        raise InvalidArgumentError(f"consolidation_threshold must be in (0, 1], got {value!r}")
    return fraction


def _below(namespace: str, base: str) -> bool:
    """Return True when *namespace* is *base* or nested under it (``""`` contains every namespace)."""
    return not base or namespace == base or namespace.startswith(base + "/")


class MemoryManager:
    """Multi-tier memory with read-through promotion, consolidation and search across tiers.

    Args:
        short_term_limit: Capacity of short-term memory; overflow moves to long-term (never dropped).
        long_term_limit: Capacity of long-term memory; overflow moves the least important to the archive (which
            search still covers, by keyword and by meaning). None: unbounded.
        enable_logging: Log tier moves at INFO level (DEBUG otherwise).
        tiers: The tiers to use (a :class:`~agentmem_plugin.tiers.factory.TierSet`); by default they are built
            from the storage arguments below, which are then ignored. Short-term's capacity, when set, is the
            short-term limit.
        storage_path: Directory making every tier persistent and reopenable; None keeps everything in memory
            for the life of the process (the archive then lives in a temporary directory).
        embedder: Enables semantic and hybrid search over every tier: ``"default"`` (the offline MiniLM), an
            Embedder, a LangChain ``Embeddings`` or a callable; None: keyword search alone. The default,
            ``"auto"``, is the MiniLM for a persistent manager (*storage_path* or a durable *long_term*) when the
            ``semantic`` extra is installed (loaded at the first operation that needs it), None otherwise.
        archive: An archive tier, or its URL (``"s3://bucket/prefix"``, a directory), instead of the default one.
        archive_key: Encrypts the archive (AES-256-GCM); default ``$AGENTMEM_ARCHIVE_KEY``. Without a key the
            archive is compressed and checksummed, **not encrypted** (``get_stats()`` says so).
        encrypt: True requires a key; False refuses one.
        namespace: A str or a tuple such as ``("user", "u1")``; a manager sees only its namespace.
        cache_size: Entries kept in the LRU cache in front of the tiers (0 disables it; always off when the
            tiers are shared by processes through servers).
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
            the store. See :mod:`agentmem_plugin.tiers.factory` for every scheme; passwords are never logged.
        reindex: Rebuild the semantic index when the store was indexed with another embedding model (instead of
            refusing to open it with an EmbeddingError).
        ranking: The hybrid ranking's knobs (:class:`~agentmem_plugin.ranking.RankingConfig`; default
            :data:`~agentmem_plugin.ranking.DEFAULT_CONFIG`), shared by the namespace views.
        view_cache_size: Namespace views of :meth:`with_namespace` kept open for reuse, least recently used
            first out (0: a view lives only while the caller holds it). A view still held elsewhere is never
            opened twice; one whose short-term lives in this process (the buffer) consolidates its entries
            into long-term before it leaves the cache, so eviction never loses an entry.

    Raises:
        InvalidArgumentError: a bad argument (named in the message); nothing is opened.

    Example:
        >>> mm = MemoryManager(short_term_limit=2)
        >>> mm.store("a", 1); mm.store("b", 2); mm.store("c", 3)   # "a" overflows into long-term
        >>> mm.retrieve("a"), mm.tier_of("a")                       # found there, promoted back
        (1, 'short_term')

    """

    def __init__(
        self,
        short_term_limit: int = 100,
        long_term_limit: int | None = 1000,
        enable_logging: bool = True,
        *,
        tiers: TierSet | None = None,
        storage_path: str | PathLike[str] | None = None,
        embedder: Any = AUTO_EMBEDDER,
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
        embed_text: Any = None,
        short_term: str | None = None,
        long_term: str | None = None,
        semantic: str | None = None,
        reindex: bool = False,
        ranking: RankingConfig | None = None,
        view_cache_size: int = 1024,
        _root: MemoryManager | None = None,
    ) -> None:
        short_limit = validate_limit(short_term_limit, what="short_term_limit")
        self._options: dict[str, Any] = {
            "short_term_limit": short_limit,
            "long_term_limit": sys.maxsize
            if long_term_limit is None
            else validate_limit(long_term_limit, what="long_term_limit"),
            "enable_logging": validate_bool(enable_logging, what="enable_logging"),
            "cache_size": validate_non_negative_int(cache_size, what="cache_size"),
            "consolidation_policy": consolidation_policy,
            "consolidation_threshold": _threshold(consolidation_threshold),
            "consolidation_interval": None
            if consolidation_interval is None
            else validate_seconds(consolidation_interval, what="consolidation_interval"),
            "batch_size": validate_limit(batch_size, what="batch_size"),
            "clock": clock,
            "ranking": ranking_config(ranking, None, None),
            "view_cache_size": validate_non_negative_int(view_cache_size, what="view_cache_size"),
        }
        self.namespace = validate_namespace(namespace)
        self._auto = isinstance(embedder, str) and embedder == AUTO_EMBEDDER
        if tiers is None:
            # "auto" wants a persistent store; long-term on a server needs a Chroma server too (semantic=), or
            # each process's index would miss the others' writes.
            embedder = resolve_embedder(
                embedder,
                persistent=(storage_path is not None or is_durable_url(long_term))
                and (semantic is not None or not is_server_url(long_term)),
            )
            options = {
                "namespace": self.namespace,
                "short_term_limit": short_limit,
                "storage_path": storage_path,
                "archive": archive,
                "archive_key": archive_key,
                "encrypt": encrypt,
                "clock": clock,
                "embed_text": embed_text,
                "short_term": short_term,
                "long_term": long_term,
                "semantic": semantic,
                "reindex": reindex,
            }
            try:
                tiers = build_tiers(embedder=embedder, **options)
            except IndexInUseError as exc:
                if not self._auto:
                    raise
                logger.warning("%s; this manager searches by keyword", exc)
                tiers = build_tiers(embedder=None, **options)
        self._open(tiers, _root)

    def _open(self, tiers: TierSet, root: MemoryManager | None) -> None:
        """Take *tiers* (the constructor's second half, shared with namespace views)."""
        options = self._options
        self.tiers = tiers
        self.short_term_limit: int = tiers.short.capacity or options["short_term_limit"]
        self.long_term_limit: int = options["long_term_limit"]
        self.enable_logging: bool = options["enable_logging"]
        self.policy: ConsolidationPolicy = (
            options["consolidation_policy"] or ImportanceConsolidationPolicy()
        )
        self.consolidation_threshold: float | None = options["consolidation_threshold"]
        self.consolidation_interval: float | None = options["consolidation_interval"]
        self.batch_size: int = options["batch_size"]
        self.clock: Clock = options["clock"] or tiers.long.clock
        self.storage_path: Path | None = tiers.storage_path
        self.cache_size: int = 0 if tiers.shared else options["cache_size"]
        self._cache = ReadCache(self.cache_size, tiers.change_token)
        self._counters = dict.fromkeys(_COUNTERS, 0)
        self._last_consolidation = self.clock()
        self._memories: dict[str, Memory] = {}
        self._root = root
        self._finalizer: weakref.finalize[Any, Any] | None = None
        # the registry of namespace views (see _view), kept by the root; views register with it
        if root is None:
            self._views: OrderedDict[str, MemoryManager] = OrderedDict()
            self._live: weakref.WeakValueDictionary[str, MemoryManager] = (
                weakref.WeakValueDictionary()
            )
            self._view_tiers: dict[str, TierSet] = {}
            self._collected: deque[tuple[str, TierSet]] = deque()
            self._children_lock = threading.Lock()
        self._local = threading.local()
        self._archive_refused = tiers.long_durable and not tiers.archive_durable
        if self._archive_refused:
            # Long-term outlives this process but the archive would not: overflow is never moved there (it would
            # vanish at exit), so long_term_limit is not enforced.
            logger.warning(
                "long_term is a durable backend but no archive= or storage_path is given: long_term_limit "
                "(%d) is not enforced; pass archive='s3://bucket/prefix' or a shared directory to archive overflow",
                self.long_term_limit,
            )
            self.long_term_limit = sys.maxsize
        tiers.short.on_evict = self._overflow
        self.long_term = Memory(
            capacity=None,
            memory_type="long_term",
            tier=tiers.long,
            embedder=None,
            ranking=options["ranking"],
        )
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

    # -- the tiers ---------------------------------------------------------------------------------------------

    @property
    def short_tier(self) -> Tier:
        """Short-term memory's tier."""
        return self.tiers.short

    @property
    def long_tier(self) -> Tier:
        """Long-term memory's tier (with its semantic index, when there is an embedder)."""
        return self.tiers.long

    @property
    def external_tier(self) -> Tier:
        """The archive's tier."""
        return self.tiers.external

    def _tier(self, memory_type: str) -> Tier:
        return {
            "short_term": self.tiers.short,
            "long_term": self.tiers.long,
            "external": self.tiers.external,
        }[validate_memory_type(memory_type)]

    def _log(self, message: str, *args: Any) -> None:
        logger.log(logging.INFO if self.enable_logging else logging.DEBUG, message, *args)

    def _move(
        self,
        entries: Sequence[MemoryEntry],
        source: Tier,
        target: Tier,
        *,
        read_inside: bool = False,
    ) -> list[MemoryEntry]:
        """:func:`agentmem_plugin.moves.move` inside the tiers' shared transaction; return what moved.

        *read_inside*: the caller read *entries* inside that transaction (it counts only if it is atomic).
        """
        tiers = self.tiers
        result = move(
            entries,
            source,
            target,
            transaction=tiers.transaction,
            read_inside=read_inside and tiers.atomic,
            others=self._others(source, target),
        )
        self._counters["stale_moves"] += len(result.stale)
        return result.moved

    def _others(self, source: Tier, target: Tier) -> tuple[Tier, ...]:
        """Return the tier a move between *source* and *target* settles its copies against.

        None when one transaction spans every writer of short- and long-term: an archive write's clean-up of
        older copies waits for it.
        """
        if self.tiers.atomic:
            return ()
        every = (self.tiers.short, self.tiers.long, self.tiers.external)
        return tuple(t for t in every if t is not source and t is not target)

    def _overflow(self, victims: list[MemoryEntry]) -> None:
        """Short-term capacity eviction: consolidate the victims into long-term instead of dropping them.

        Called by short-term inside the write that evicts, before the victims leave it, so they are never in
        neither tier; a copy never replaces a newer version that long-term already holds.
        """
        landed = self.tiers.long.put_if_newer([v.copy() for v in victims])
        settle(
            {e.key: e.version for e in landed},
            self.tiers.long,
            self._others(self.tiers.short, self.tiers.long),
        )
        self._counters["overflowed"] += len(victims)
        self._log("short-term full: %d entries consolidated into long-term", len(victims))

    def _after_long_write(self) -> None:
        """Archive long-term's least important entries while it holds more than ``long_term_limit``."""
        limit = self.long_term_limit
        if (
            limit == sys.maxsize or self.tiers.long.count() <= limit
        ):  # not enforced: skip even the count
            return
        with self.tiers.transaction():  # the scan and the move see one state of long-term
            entries = self.tiers.long.scan()
            excess = len(entries) - limit
            if excess <= 0:
                return
            now = self.clock()
            ranked = sorted(
                entries, key=lambda e: (consolidation_score(self.policy, e, now), e.created_at)
            )
            moved = self._move(ranked[:excess], self.tiers.long, self.tiers.external)
        self._counters["archived"] += len(moved)
        self._log("long-term above %d: %d entries archived", limit, len(moved))

    def _reconcile(self) -> None:
        """After a crash between a move's write and its removal, keep only the newest copy of each key."""
        archived = (
            self.tiers.external.archived_keys()
        )  # the archive's index: no blob is opened at start-up
        if not archived:
            return
        short, long_ = self.tiers.short.versions(archived), self.tiers.long.versions(archived)
        twice = [k for k in archived if k in short or k in long_]
        if not twice:
            return
        ext = self.tiers.external.versions(twice)
        newer_outside = {
            k: v for k, v in ext.items() if v <= max(short.get(k, -1), long_.get(k, -1))
        }
        self.tiers.external.delete_if(newer_outside)
        newer_inside = {k: v for k, v in ext.items() if k not in newer_outside}
        with self.tiers.transaction():
            self.tiers.short.delete_if(newer_inside, older=True)
            self.tiers.long.delete_if(newer_inside, older=True)
        logger.warning(
            "kept the newest of %d keys found in two tiers after an interruption", len(twice)
        )

    def _maybe_consolidate(self) -> None:
        now = self.clock()
        due = (
            self.consolidation_interval is not None
            and now - self._last_consolidation >= self.consolidation_interval
        )
        if not due and self.consolidation_threshold is not None:
            due = self.tiers.short.count() >= self.consolidation_threshold * self.short_term_limit
        if due:
            self.consolidate()

    # -- namespaces ------------------------------------------------------------------------------------------------

    def with_namespace(self, namespace: str | Sequence[str]) -> MemoryManager:
        """Return a manager over the same storage and settings that sees only *namespace*, below this one's.

        Namespaces nest: on a manager whose namespace is ``"user/alice"``, ``with_namespace("notes")`` is
        ``"user/alice/notes"``, so a view handed to a user's code never reaches outside its own namespace.
        The view shares this manager's connections (SQLite connection, Redis client, PostgreSQL pool), embedder
        and settings. Asking again for a namespace returns the same view object as long as anyone holds it; the
        root keeps the ``view_cache_size`` most recently used views open for reuse (an LRU) and closes the rest
        once nobody holds them, so a store of many namespaces costs memory for the views in use, not for every
        namespace ever opened. A view leaving the cache whose short-term lives in this process (the buffer)
        first consolidates its entries into long-term, so no entry leaves with it. Every view closes with the
        root manager. A custom ``archive`` tier is not shared (it has no namespaces): each view archives under
        its own directory of ``storage_path`` (or a temporary one).

        Args:
            namespace: A str such as ``"user/u1"`` or a tuple such as ``("user", "u1")``; empty: this manager.

        Raises:
            InvalidArgumentError: a namespace part that is empty, not a str, or contains ``/``; or tiers passed
                in with ``tiers=`` that cannot open another namespace.

        Example:
            >>> mm = MemoryManager()
            >>> alice, bob = mm.with_namespace(("user", "alice")), mm.with_namespace(("user", "bob"))
            >>> alice.store("color", "blue")
            >>> alice.retrieve("color"), bob.retrieve("color")
            ('blue', None)
            >>> alice.with_namespace("notes").namespace
            'user/alice/notes'

        """
        ns = validate_namespace(namespace)
        return self._view("/".join(p for p in (self.namespace, ns) if p))

    def _view(self, full: str) -> MemoryManager:
        """Return the view of the absolute namespace *full*: one object while it lives, cached in the root's LRU.

        Under the root's lock a namespace has one :class:`TierSet` at a time (``_view_tiers``): the live view's,
        or that of a view collected since and not yet released, which a new view reopens. So no two views of a
        namespace ever hold two buffers or two tier-set locks, even between a view's collection and its release.
        """
        root = self._root or self
        if full == root.namespace:
            return root
        if root.tiers.view is None:
            raise InvalidArgumentError(
                "these tiers were passed in with tiers= and cannot open another namespace"
            )
        with root._children_lock:  # one view per namespace, even when threads ask at once
            released = root._reap()
            child = root._live.get(full)
            if child is None:
                child = root._open_view(full)
            root._views[full] = child
            root._views.move_to_end(full)
            victims = root._over_bound()
        root._release(released, victims)
        return child

    def _open_view(self, full: str) -> MemoryManager:
        """Open a view of *full* on the root (under its lock), reusing the tiers of a collected one if any."""
        tiers = self._view_tiers.get(full)
        built = tiers is None
        if tiers is None:
            assert self.tiers.view is not None  # checked by _view
            tiers = self._view_tiers[full] = self.tiers.view(full)
        child = object.__new__(MemoryManager)
        child._options = self._options
        child.namespace = full
        try:
            child._open(tiers, self)
        except BaseException:
            if built:
                del self._view_tiers[full]
                tiers.close()
            raise
        tiers.short.on_evict = _ViewOverflow(child)  # the tiers must not keep their view alive
        child._finalizer = weakref.finalize(child, self._collected.append, (full, tiers))
        child._finalizer.atexit = False
        self._live[full] = child
        return child

    def _over_bound(self) -> list[MemoryManager]:
        """Take the least recently used views beyond ``view_cache_size`` out of the cache (under the lock)."""
        bound = self._options["view_cache_size"]
        victims = []
        while len(self._views) > bound:
            victims.append(self._views.popitem(last=False)[1])
        return victims

    def _reap(self) -> list[TierSet]:
        """Deal with the views collected since the last call (under the lock); return the tiers to close.

        A collected view's tiers are closed unless a new view reopened them, or unless its short-term lives in
        this process and still holds entries (written after it left the cache): those go back into the cache,
        as its least recently used view, and are consolidated when they next leave it.
        """
        release = []
        while self._collected:
            full, tiers = self._collected.popleft()
            if self._view_tiers.get(full) is not tiers or full in self._live:
                continue  # closed meanwhile, or reopened by a new view
            if _holds_private(tiers):
                self._views[full] = self._open_view(full)
                self._views.move_to_end(full, last=False)
            else:
                del self._view_tiers[full]
                release.append(tiers)
        return release

    def _release(self, released: list[TierSet], victims: list[MemoryManager]) -> None:
        """Close *released* tiers and let *victims* (out of the cache) go, their buffers consolidated first.

        Outside the lock: consolidation writes long-term. A victim whose consolidation fails goes back into the
        cache (logged), so nothing is dropped with its entries.
        """
        for tiers in released:
            tiers.close()
        if not victims:
            return
        for victim in victims:
            try:
                victim._drain_short()
            except AgentMemError as exc:
                logger.warning(
                    "namespace view %r stays cached: its short-term could not move to long-term: %s",
                    victim.namespace,
                    exc,
                )
                with self._children_lock:
                    self._views.setdefault(victim.namespace, victim)
                continue
            if _holds_private(
                victim.tiers
            ):  # a temporary archive holding entries: pinned, never dropped
                with self._children_lock:
                    self._views.setdefault(victim.namespace, victim)
        del victim
        victims.clear()  # a victim nobody else holds is collected here; release its tiers at once
        with self._children_lock:
            released = self._reap()
        for tiers in released:
            tiers.close()

    def _drain_short(self) -> None:
        """Consolidate every entry of a short-term living in this process into long-term (a view leaving the cache).

        Through the move primitive, batch by batch: an entry rewritten meanwhile stays (and keeps the view alive
        while its writer holds it; see :meth:`_reap`).
        """
        short = self.tiers.short
        if short.persistent or not short.count():
            return
        entries = short.scan()
        for start in range(0, len(entries), self.batch_size):
            batch = entries[start : start + self.batch_size]
            self._cache.forget([e.key for e in batch])
            moved = self._move(batch, short, self.tiers.long)
            self._counters["consolidated"] += len(moved)
        self._after_long_write()
        self._log(
            "namespace view %r left the cache: %d entries consolidated",
            self.namespace,
            len(entries),
        )

    def namespaces(self, prefix: str | Sequence[str] | None = None) -> list[str]:
        """Return the namespaces below this manager's holding entries in any tier, relative to it, sorted.

        At a manager without a namespace these are the full names; on a view of ``"user/alice"``, its own
        entries are ``""`` and ``"user/alice/notes"`` is ``"notes"``: a view never lists other namespaces.
        The archive under *storage_path* counts too. Each backend answers for the subtree asked for alone (an
        index range), so the cost is what the subtree holds, not what the store holds.

        Args:
            prefix: Only namespaces equal to it or below it (``"user"`` matches ``"user/u1"``, not ``"users"``).

        """
        wanted = None if prefix is None else validate_namespace(prefix)
        root = self._root or self
        base = self.namespace
        # absolute: what the backends are asked for
        subtree = "/".join(p for p in (base, wanted or "") if p)
        with root._children_lock:
            released = root._reap()
            held = [(root.namespace, root.tiers)]
            held += [(ns, t) for ns, t in root._view_tiers.items() if _below(ns, subtree)]
        root._release(released, [])
        found: set[str] = set()
        for role in ("long_term", "short_term"):
            listed = root._tier(role).namespaces(subtree or None)
            if listed is not None:  # a shared backend lists the namespaces it holds
                found.update(listed)
            else:  # an in-process buffer per view
                found.update(
                    ns for ns, t in held if (t.long if role == "long_term" else t.short).count()
                )
        if root.tiers.archived_namespaces is not None:  # namespaces whose entries are all archived
            for ns in root.tiers.archived_namespaces(subtree or None):
                if (
                    ns not in found
                    and _below(ns, subtree)
                    and root._view(ns).tiers.external.archived_keys()
                ):
                    found.add(ns)
        relative = {
            ns[len(base) + 1 :] if base and ns != base else "" if ns == base else ns
            for ns in found
            if _below(ns, subtree)
        }
        return sorted(relative)

    # -- writing ---------------------------------------------------------------------------------------------------

    def store(
        self,
        key: str,
        value: Any,
        memory_type: str = "short_term",
        ttl: float | None = None,
        priority: int = 0,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
    ) -> None:
        """Store *value* under *key* in *memory_type*, moving the key there if another tier holds it.

        Raises:
            InvalidKeyError, InvalidArgumentError, SerializationError: bad input; nothing changed.

        """
        entry = MemoryEntry(
            key, value, ttl=ttl, priority=priority, metadata=metadata, tags=tags, clock=self.clock
        )
        self._place([entry], memory_type)

    def store_many(
        self,
        items: Mapping[str, Any] | Iterable[tuple[str, Any] | MemoryEntry],
        memory_type: str = "short_term",
        *,
        ttl: float | None = None,
        priority: int = 0,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
    ) -> int:
        """Store many entries in one batch (one transaction for short- and long-term); return how many.

        A :class:`MemoryEntry` item keeps its fields but becomes a new write of its key (a new version).
        """
        tag_list = validate_tags(tags)
        entries = entries_from_items(
            items,
            lambda key, value: MemoryEntry(
                key,
                value,
                ttl=ttl,
                priority=priority,
                metadata=metadata,
                tags=tag_list,
                clock=self.clock,
            ),
        )
        if entries:
            self._place([e.new_version() for e in entries], memory_type)
        return len(entries)

    def _place(self, entries: list[MemoryEntry], memory_type: str) -> None:
        target = self._tier(memory_type)
        for entry in entries:  # fail on an unstorable value before any tier changes
            entry.value = normalize(entry.value, what=f"value of key {entry.key!r}")
            if entry.metadata:
                entry.metadata = normalize(entry.metadata, what=f"metadata of key {entry.key!r}")
        if target is self.tiers.external and self._archive_refused:
            raise InvalidArgumentError(
                "memory_type='external' needs an archive that outlives this process: long-term is durable "
                "but the archive is temporary; pass archive='s3://bucket/prefix' or a directory"
            )
        tiers = self.tiers
        self._cache.forget([e.key for e in entries])
        if target is tiers.external:  # durable in the archive first, then the older copies leave
            place(entries, target, (tiers.short, tiers.long), transaction=tiers.transaction)
        else:  # the archive is outside the transaction: its older copies go once the write has committed
            other = tiers.long if target is tiers.short else tiers.short
            place(
                entries,
                target,
                (other,),
                transaction=tiers.transaction,
                after=self._after_commit,
                outside=(tiers.external,),
            )
        self._after_long_write()
        self._maybe_consolidate()

    def _after_commit(self, work: Callable[[], object]) -> None:
        """Run *work* once this thread's outermost :meth:`transaction` commits (at once outside one)."""
        pending = getattr((self._root or self)._local, "after_commit", None)
        if pending is None:
            work()
        else:
            pending.append(work)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Make the writes inside the block (of this manager and its namespace views) one atomic unit.

        Where short- and long-term live in one SQLite database (a ``storage_path`` directory), either every
        write inside the block lands or none does: an error inside rolls them back, and other threads and
        processes wait for the block. Removing the older copies of written keys from the archive, which has no
        transactions, waits until the block has committed, so a rolled-back block never removes one. Elsewhere
        (the in-memory buffer, separate servers) each write is atomic on its own and the block only holds back
        the archive's clean-up.

        Example:
            >>> mm = MemoryManager()
            >>> with mm.transaction():
            ...     mm.store("a", 1)
            ...     mm.store("b", 2, memory_type="long_term")
            >>> mm.tier_of("a"), mm.tier_of("b")
            ('short_term', 'long_term')

        """
        local = (self._root or self)._local
        outermost = getattr(local, "after_commit", None) is None
        if outermost:
            local.after_commit = []
        try:
            with self.tiers.transaction():
                yield
        except BaseException:
            if outermost:
                local.after_commit = None
            raise
        if outermost:
            pending, local.after_commit = local.after_commit, None
            for work in pending:
                work()

    def delete(self, key: str) -> bool:
        """Delete *key* from every tier; return True when a live entry was removed."""
        key = validate_key(key)
        self._cache.forget([key])
        with self.tiers.transaction():
            removed = [
                tier.delete(key)
                for tier in (self.tiers.short, self.tiers.long, self.tiers.external)
            ]
        return any(removed)

    # -- reading ---------------------------------------------------------------------------------------------------

    def get_entry(self, key: str) -> MemoryEntry:
        """Return a copy of *key*'s entry, reading through the tiers (with promotion and restore).

        Raises:
            KeyNotFoundError: no tier holds a live entry under *key*.

        """
        key = validate_key(key)
        cached = self._cache.get(key, self.clock())
        if cached is not None:
            self._counters["cache_hits"] += 1
            return cached
        epoch = self._cache.begin()
        tiers = self.tiers
        entry = tiers.short.get(key)
        if entry is None:
            # the read and the move see one state where the tiers share one transaction
            with tiers.transaction():
                entry = tiers.long.get(key)
                if entry is not None:
                    promoted = self._move([entry], tiers.long, tiers.short, read_inside=True)
                    self._counters["promotions"] += len(promoted)
                else:  # read without rewriting the blob: the read is counted on the restored copy
                    entry = tiers.external.get(key, touch=False)
                    if entry is None:
                        raise KeyNotFoundError(f"no live memory under key {key!r} in any tier")
                    entry.update_access(self.clock())
                    restored = self._move([entry], tiers.external, tiers.long, read_inside=True)
                    self._counters["restores"] += len(restored)
                    if not restored:  # left in the archive (rewritten meanwhile): never cache it
                        epoch = -1
                    self._after_long_write()  # long-term grew
        self._cache.put(entry, epoch)
        return entry.copy()

    def get_many(self, keys: Sequence[str], *, promote: bool = False) -> list[MemoryEntry | None]:
        """Return copies of the entries under *keys*, in order (None where no tier holds a live one).

        Args:
            keys: The keys to read.
            promote: False (default) reads each tier in one batch and moves nothing, for reading many entries
                (a chat history) without churning short-term; True reads like :meth:`get_entry`, key by key.

        Raises:
            InvalidKeyError: a malformed key. InvalidArgumentError: *keys* is a single str (nothing is read).

        """
        keys = validate_keys(keys)
        if promote:
            out: list[MemoryEntry | None] = []
            for key in keys:
                try:
                    out.append(self.get_entry(key))
                except KeyNotFoundError:
                    out.append(None)
            return out
        found = self._locate(keys, touch=True)
        return [found[k][1].copy() if k in found else None for k in keys]

    def retrieve(self, key: str) -> Any:
        """Return *key*'s value (cache → short → long → external, promoting as it goes), or None."""
        try:
            return self.get_entry(key).value
        except KeyNotFoundError:
            return None

    def tier_of(self, key: str) -> str | None:
        """Return the tier holding *key* (``"short_term"``, ``"long_term"``, ``"external"``), or None."""
        key = validate_key(key)
        for name in MEMORY_TIERS:
            if self._tier(name).contains(key):
                return name
        return None

    def exists(self, key: str) -> bool:
        """Return True when some tier holds a live entry under *key* (not counted as a read)."""
        return self.tier_of(key) is not None

    def keys(self, memory_type: str | None = None) -> list[str]:
        """Return the live keys of one tier, or of all."""
        names = MEMORY_TIERS if memory_type is None else (validate_memory_type(memory_type),)
        return [k for name in names for k in self._tier(name).keys()]

    def search(
        self,
        query: str,
        limit: int = 10,
        *,
        mode: str | None = None,
        memory_types: Sequence[str] | None = None,
        filter: Mapping[str, Any] | None = None,
        explain: bool = False,
        recency_weight: float | None = None,
        importance_weight: float | None = None,
    ) -> list[dict[str, Any]]:
        """Search every tier: one ranked, de-duplicated list of ``{key, value, score, tier, metadata, tags}``.

        What a search finds does not depend on where a memory sits: a read, a promotion, a consolidation or an
        archive move never changes it. Keyword search ranks each tier's BM25 hits (divided by the tier's best
        score, so tiers compete on rank); semantic search asks the namespace's one vector index, keyed by memory
        key, whatever tier holds each memory; hybrid (the default with an embedder) fuses the two, its query
        embedded on a helper thread while the keyword side runs when the embedder declares it safe, as the
        local models do (:func:`~agentmem_plugin.embeddings.embed_query_beside`).

        Args:
            query: Free text (empty: ``[]``).
            limit: Maximum hits.
            mode: ``"hybrid"``, ``"keyword"`` or ``"semantic"`` (default: hybrid with an embedder, else keyword).
            memory_types: Tiers to search (default: all three).
            filter: ``{"tags": [...]}`` (all required) and/or metadata fields that must be equal.
            explain: Add to each hit ``explain``: the terms of its score (see :meth:`Memory.search`).
            recency_weight: Boost recent memories (see :meth:`Memory.search`; default: the ranking's, off).
            importance_weight: Boost important memories (``metadata["importance"]`` in [0, 1]; default off).

        Returns:
            Hits, best first; semantic and hybrid hits also carry ``similarity`` (cosine, or None) and hybrid hits
            ``keyword_score`` (BM25, or None).

        Raises:
            InvalidArgumentError: a bad query type, limit, mode, tier name or filter; a semantic mode without an
                embedder.
            MissingDependencyError: a semantic mode on a manager left on ``embedder="auto"`` without the
                ``semantic`` extra.

        """
        query = validate_text(query, what="query")
        limit = validate_limit(limit)
        mode = validate_mode(mode) or ("hybrid" if self.tiers.semantic else "keyword")
        wanted = validate_filter(filter)
        names = validate_memory_types(memory_types)
        explain = validate_bool(explain, what="explain")
        config = search_config(self.long_term.ranking, recency_weight, importance_weight)
        if mode != "keyword" and not self.tiers.semantic:
            raise no_embedder_error(mode, auto=self._auto)
        if not query.strip():
            return []
        depth = limit * 3 if wanted else limit
        while (
            True
        ):  # with a filter, search deeper until *limit* hits pass it or the tiers are exhausted
            hits, exhausted = self._search(query, depth, mode, names, config, explain)
            if wanted:
                hits = [h for h in hits if _matches(h, wanted)]
            best: dict[str, dict[str, Any]] = {}
            for h in hits:
                best.setdefault(h["key"], h)
            if len(best) >= limit or exhausted or not wanted:
                return list(best.values())[:limit]
            depth *= 4

    def _search(
        self,
        query: str,
        depth: int,
        mode: str,
        names: Sequence[str],
        config: RankingConfig,
        explain: bool,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One pass of :meth:`search` for *depth* hits: the hits (best first) and whether the tiers ran out."""
        boosted = has_boosts(config)
        if mode == "keyword" and not boosted:
            hits: list[dict[str, Any]] = []
            exhausted = True
            for name, found in self._keyword(query, depth, names).items():
                exhausted &= len(found) < depth
                top = max((s for _, s in found), default=0.0) or 1.0
                for e, s in found:
                    h = {**plain_hit(e, s / top, mode, explain=False), "tier": name}
                    if explain:  # the tier's own BM25, and that score over the tier's best
                        h["explain"] = {"bm25": s, "bm25_norm": s / top}
                    hits.append(h)
            hits.sort(key=lambda h: -h["score"])
            return hits, exhausted
        if mode == "semantic" and not boosted:
            nearest = self._dense(query, depth, names)
            return [
                {**plain_hit(e, sim, mode, explain), "tier": name} for name, e, sim in nearest
            ], len(nearest) < depth
        wide = max(depth * 5, HYBRID_CANDIDATES)
        if mode == "hybrid":
            # the keyword side runs while the query is embedded (see embed_query_beside)
            vector = self._start_query_vector(query)
            keyword = self._keyword(query, wide, names)
            located = self._nearest(vector(), wide, names)
        else:
            keyword = self._keyword(query, wide, names) if mode != "semantic" else {}
            located = self._dense(query, wide, names) if mode != "keyword" else []
        where: dict[str, tuple[str, MemoryEntry]] = {}
        bm25: dict[str, tuple[MemoryEntry, float]] = {}
        for name, found in keyword.items():
            for e, s in found:
                if (
                    e.key not in bm25 or s > bm25[e.key][1]
                ):  # a key caught in two tiers by a move counts once
                    bm25[e.key] = (e, s)
                    where[e.key] = (name, e)
        dense: list[tuple[MemoryEntry, float]] = []
        for name, e, sim in located:
            dense.append((e, sim))
            where.setdefault(e.key, (name, e))
        keyword_complete = all(len(found) < wide for found in keyword.values())
        radius = self.long_term.context_radius

        read: dict[str, tuple[str, MemoryEntry]] = {}  # neighbours' entries, read with them

        def near(keys: list[str]) -> dict[str, list[str]]:
            return self._neighbors(where, names, keys, radius, read) if radius else {}

        def fetch(keys: list[str]) -> list[MemoryEntry]:
            # where a key is read from, as _locate: the first tier that holds it; a neighbour read with its
            # tier's rows stands unless a tier read before that one holds the key too
            found = self._locate([k for k in keys if k not in read])
            ahead: dict[str, list[str]] = {}
            for k in keys:
                if k in read:
                    ahead.setdefault(read[k][0], []).append(k)
            for name, held in ahead.items():
                before = MEMORY_TIERS[: MEMORY_TIERS.index(name)]
                first = locate_in(((n, self._tier(n)) for n in before), held)
                found.update((k, first.get(k) or read[k]) for k in held)
            found = {k: v for k, v in found.items() if v[0] in names}
            where.update(found)
            return [entry for _, entry in found.values()]

        ranked = rank_entries(
            query,
            sorted(bm25.values(), key=lambda es: -es[1]),
            dense,
            neighbors=near if mode == "hybrid" else None,
            fetch=fetch,
            config=config if mode == "hybrid" else single_side(config, mode),
            now=self.clock(),
            limit=depth,
            keyword_complete=keyword_complete,
            context_candidates=max(CONTEXT_CANDIDATES, 5 * depth),
        )
        hits = [
            {**ranked_hit(entry, h, mode, explain), "tier": where[entry.key][0]}
            for entry, h in ranked
            if entry.key in where and where[entry.key][0] in names
        ]
        exhausted = keyword_complete and len(located) < wide
        return hits, exhausted

    def _locate(
        self, keys: Sequence[str], *, touch: bool = False
    ) -> dict[str, tuple[str, MemoryEntry]]:
        """Return where each of *keys* lives, in read order: ``{key: (tier, entry)}``.

        *touch* counts the read in the tier that holds it (as :meth:`get_many` does); a search does not.
        """
        return locate_in(((name, self._tier(name)) for name in MEMORY_TIERS), keys, touch=touch)

    def _keyword(
        self, query: str, depth: int, names: Sequence[str]
    ) -> dict[str, list[tuple[MemoryEntry, float]]]:
        """Each tier's BM25 hits for *query*."""
        return {name: self._tier(name).keyword_search(query, depth) for name in names}

    def _dense(
        self, query: str, depth: int, names: Sequence[str]
    ) -> list[tuple[str, MemoryEntry, float]]:
        """Return the *depth* memories nearest to *query* in meaning, over every index: ``(tier, entry, cosine)``."""
        return self._nearest(self._synced_embedder().embed_query(query), depth, names)

    def _start_query_vector(self, query: str) -> Callable[[], Sequence[float]]:
        """Bring every index up to date, then start embedding *query* (see :func:`embed_query_beside`)."""
        return embed_query_beside(self._synced_embedder(), query)

    def _synced_embedder(self) -> Embedder:
        """Bring every semantic index up to date; return the embedder they share."""
        indexes = self.tiers.semantic
        for index in indexes:
            index.sync()
        return indexes[0].embedder

    def _nearest(
        self, vector: Sequence[float], depth: int, names: Sequence[str]
    ) -> list[tuple[str, MemoryEntry, float]]:
        """Return the *depth* memories nearest to *vector* over every index: ``(tier, entry, cosine)``."""
        indexes = self.tiers.semantic
        found = [
            hit for index in indexes for hit in index.search_located(vector, depth, only=names)
        ]
        found.sort(key=lambda t: -t[2])
        seen: set[str] = set()
        out = []
        for name, entry, sim in found:
            if entry.key not in seen:
                seen.add(entry.key)
                out.append((name, entry, sim))
        return out[:depth]

    def _neighbors(
        self,
        where: Mapping[str, tuple[str, MemoryEntry]],
        names: Sequence[str],
        keys: list[str],
        radius: int,
        read: dict[str, tuple[str, MemoryEntry]],
    ) -> dict[str, list[str]]:
        """Return the memories stored next to each of *keys*, each looked up in the tier that holds it.

        The entries of the neighbours not in *where* are read with them, into *read* (``key -> (tier, entry)``).
        """
        by_tier: dict[str, list[str]] = {}
        for key in keys:
            if key in where:
                by_tier.setdefault(where[key][0], []).append(key)
        near: dict[str, list[str]] = {}
        for name, held in by_tier.items():
            if name in names:
                found, entries = self._tier(name).neighbor_entries(held, radius, known=where)
                near.update(found)
                read.update((k, (name, e)) for k, e in entries.items())
        return near

    # -- consolidation ---------------------------------------------------------------------------------------------

    def consolidate(self, *, retries: int = 3) -> dict[str, int]:
        """Move what the policy selects from short-term to long-term, in verified batches.

        Each batch is written to long-term, verified by reading back the versions it holds, and leaves
        short-term only where short-term still holds the version that was copied (an entry rewritten meanwhile
        stays, counted in ``stale``). A batch that fails is retried (*retries* times), then moved entry by entry,
        so an entry that cannot move (logged, counted in ``failed``) never holds back the rest.

        Returns:
            ``{"selected", "moved", "batches", "failed"}``: ``moved`` entries are in long-term now; the selected
            entries neither moved nor failed were rewritten meanwhile (counted in ``get_stats()["stale_moves"]``).

        """
        retries = validate_non_negative_int(retries, what="retries")
        now = self.clock()
        selected = self.policy.select_entries_to_consolidate(self.tiers.short.scan(), now)
        report = {"selected": len(selected), "moved": 0, "batches": 0, "failed": 0}
        for start in range(0, len(selected), self.batch_size):
            batch = selected[start : start + self.batch_size]
            moved = self._consolidate_batch(batch, retries)
            if moved is None:  # the batch keeps failing: find the entries that cannot move
                moved = []
                for entry in batch:
                    one = self._consolidate_batch([entry], 0)
                    report["failed"] += one is None
                    moved += one or []
            else:
                report["batches"] += 1
            report["moved"] += len(moved)
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

    def _consolidate_batch(
        self, batch: list[MemoryEntry], retries: int
    ) -> list[MemoryEntry] | None:
        """Move *batch* to long-term, retrying storage failures; None when it failed every time."""
        for attempt in range(retries + 1):
            try:
                self._cache.forget([e.key for e in batch])
                return self._move(batch, self.tiers.short, self.tiers.long)
            except StorageError as exc:
                if attempt == retries:
                    logger.error(
                        "consolidation of %d entries failed after %d tries: %s",
                        len(batch),
                        attempt + 1,
                        exc,
                    )
                    return None
                self._counters["retries"] += 1
                time.sleep(0.05 * (attempt + 1))
            except AgentMemError as exc:  # bad data, not a passing failure: no retry
                logger.error("consolidation of %d entries failed: %s", len(batch), exc)
                return None
        return None  # pragma: no cover  (the loop always returns)

    # -- named memories, stats, clearing ---------------------------------------------------------------------------

    def create_memory(self, name: str, config: Mapping[str, Any]) -> Memory:
        """Create a named :class:`Memory` from *config* (its constructor arguments).

        Raises:
            InvalidArgumentError: the name is taken, or *config* has an unknown or bad argument.

        """
        name = validate_key(name)
        if name in self._memories:
            raise InvalidArgumentError(f"a memory named {name!r} already exists")
        options = validate_options(config, MEMORY_ARGUMENTS, what=f"config of memory {name!r}")
        memory = Memory(**options)
        self._memories[name] = memory
        return memory

    def get_memory(self, name: str) -> Memory | None:
        """Return the named memory, or None."""
        return self._memories.get(validate_key(name))

    def list_memories(self) -> list[str]:
        """Return the names of the named memories."""
        return sorted(self._memories)

    def transfer_memory(self, source: str, target: str, keys: Sequence[str]) -> int:
        """Move *keys* from named memory *source* to *target*; return how many are in *target* afterwards.

        A moved entry replaces *target*'s entry under its key. A key rewritten in *source* while it moves stays
        there, with its newer value; a key *target* cannot keep (its capacity evicts it at once) stays in
        *source*. Transferring a memory to itself moves nothing.
        """
        src, dst = self._named(source), self._named(target)
        entries = [e for e in src.tier.get_many(validate_keys(keys), touch=False) if e is not None]
        return len(
            move(entries, src.tier, dst.tier, transaction=src.tier.transaction, replace=True).moved
        )

    def backup_memory(
        self, name: str, backup_path: str | PathLike[str], *, key: str | bytes | None = None
    ) -> dict[str, Any]:
        """Write every live entry of named memory *name* to a backup directory; return its manifest.

        The format (manifest + checksummed, compressed JSON lines) is described in :mod:`agentmem_plugin.backup`;
        with *key* (a 256-bit key, as for the archive) the entries are encrypted with AES-256-GCM.
        """
        return write_backup(backup_path, self._named(name).tier.scan(), name=name, key=key)

    def restore_memory(
        self, name: str, backup_path: str | PathLike[str], *, key: str | bytes | None = None
    ) -> int:
        """Replace the contents of named memory *name* with a backup; return how many entries it holds after.

        The backup is verified completely first (a damaged one, or an encrypted one without its *key*, raises
        IntegrityError and changes nothing); the replacement is one transaction on a SQLite-backed memory.
        Entries keep their versions; a memory smaller than the backup keeps what its capacity allows.
        """
        memory = self._named(name)
        _, entries = read_backup(backup_path, key=key)
        now = self.clock()
        live = [e for e in entries if not e.is_expired(now)]
        tier = memory.tier
        with tier.transaction():
            tier.clear()
            if live:
                tier.put_many(live)
        held = tier.versions([e.key for e in live])
        return sum(1 for e in live if held.get(e.key) == e.version)

    def _named(self, name: str) -> Memory:
        memory = self._memories.get(name) if isinstance(name, str) else None
        if memory is None:
            raise KeyNotFoundError(f"no memory named {name!r}")
        return memory

    def reindex(self) -> int:
        """Rebuild the semantic index from every live entry of every tier; return how many were indexed.

        Raises:
            InvalidArgumentError: the manager has no embedder.

        """
        if not self.tiers.semantic:
            raise no_embedder_error("reindex", auto=self._auto)
        self._cache.forget()
        return sum(index.reindex() for index in self.tiers.semantic)

    def cleanup(self) -> dict[str, int]:
        """Delete expired entries from every tier now; return how many left each tier.

        Example:
            >>> MemoryManager().cleanup()
            {'short_term': 0, 'long_term': 0, 'external': 0}

        """
        removed = {name: len(self._tier(name).cleanup()) for name in MEMORY_TIERS}
        self._cache.forget()
        return removed

    def get_stats(self) -> dict[str, Any]:
        """Per-tier counts and capacity use, hits, promotions, consolidations, archive encryption, bytes on disk."""
        short, long_, ext = (
            self.tiers.short.stats(),
            self.tiers.long.stats(),
            self.tiers.external.stats(),
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
        self._cache.forget()
        self.tiers.short.clear()

    def clear_long_term(self) -> None:
        """Remove every long-term entry (and its vectors)."""
        self._cache.forget()
        self.tiers.long.clear()

    def clear_external(self) -> None:
        """Remove every archived entry."""
        self._cache.forget()
        self.tiers.external.clear()

    def clear_all(self) -> None:
        """Remove everything from every tier."""
        self.clear_short_term()
        self.clear_long_term()
        self.clear_external()

    def close(self) -> None:
        """Close every tier (flushes read statistics), and the namespace views of :meth:`with_namespace`.

        Closing a view closes only it: the next ``with_namespace`` call for its namespace opens a fresh one.
        """
        root = self._root
        if root is not None:
            with root._children_lock:
                if root._live.get(self.namespace) is self:
                    del root._live[self.namespace]
                    root._views.pop(self.namespace, None)
                if root._view_tiers.get(self.namespace) is self.tiers:
                    del root._view_tiers[self.namespace]
            if self._finalizer is not None:
                self._finalizer.detach()
        else:
            with self._children_lock:
                children, tiers = [*self._live.values()], [*self._view_tiers.values()]
                self._views.clear()
                self._view_tiers.clear()
                self._collected.clear()
            for child in children:
                if child._finalizer is not None:
                    child._finalizer.detach()
                for memory in child._memories.values():
                    memory.close()
            # the live views' tiers and those of collected views not yet released
            for view_tiers in tiers:
                view_tiers.close()
        self._close_own()

    def _close_own(self) -> None:
        """Close this manager's named memories and tiers."""
        for memory in self._memories.values():
            memory.close()
        self.tiers.close()

    # -- async twins (each runs the sync method in a worker thread) -----------------------------------------------

    astore = async_twin(store)
    astore_many = async_twin(store_many)
    aretrieve = async_twin(retrieve)
    aget_entry = async_twin(get_entry)
    aget_many = async_twin(get_many)
    adelete = async_twin(delete)
    asearch = async_twin(search)
    aconsolidate = async_twin(consolidate)
    aget_stats = async_twin(get_stats)

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


def _holds_private(tiers: TierSet) -> bool:
    """Return True when *tiers* hold entries that live only in them, which closing them would lose.

    An in-process buffer's entries, or those of a temporary archive (a manager without ``storage_path``).
    """
    if not tiers.short.persistent and tiers.short.count():
        return True
    return not tiers.archive_durable and bool(tiers.external.archived_keys())


class _ViewOverflow:
    """``short.on_evict`` of a namespace view: the view's overflow handler, without keeping the view alive.

    The view's tiers outlive the view while its root releases them (see ``MemoryManager._reap``); a reference
    from them back to the view would keep every view alive.
    """

    __slots__ = ("_view",)

    def __init__(self, view: MemoryManager) -> None:
        self._view = weakref.ref(view)

    def __call__(self, victims: list[MemoryEntry]) -> None:
        view = self._view()
        if (
            view is None
        ):  # nothing writes a collected view's tiers: refuse rather than drop the victims
            raise StorageError(
                "the namespace view of this short-term is closed: reopen it with with_namespace"
            )
        view._overflow(victims)
