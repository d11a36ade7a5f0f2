"""`Memory`: the spec's single-store facade over one tier.

Public methods validate their input, then call the tier; nothing reaches storage until every argument of the
call (every item of a batch) has passed its checks, so bad input raises a typed error and changes nothing.
Every method has an ``a``-prefixed async twin that runs it in a worker thread, so the event loop never blocks.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, ParamSpec, TypeVar

from agentmem_plugin.embeddings import embed_query_beside
from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import (
    AgentMemError,
    IndexInUseError,
    InvalidArgumentError,
    KeyNotFoundError,
    MissingDependencyError,
)
from agentmem_plugin.ranking import DEFAULT_CONFIG, RankedHit, RankingConfig, rank_entries
from agentmem_plugin.tiers.base import EvictionCallback, Tier
from agentmem_plugin.tiers.buffer import BufferTier
from agentmem_plugin.tiers.factory import (
    AUTO_EMBEDDER,
    DATABASE_FILENAME,
    resolve_embedder,
    semantic_available,
)
from agentmem_plugin.twins import async_twin
from agentmem_plugin.validation import (
    MAX_KEY_LENGTH,
    MAX_PRIORITY,
    validate_bool,
    validate_capacity,
    validate_fraction,
    validate_key,
    validate_keys,
    validate_limit,
    validate_memory_type,
    validate_mode,
    validate_non_negative_int,
    validate_tags,
    validate_text,
    validate_ttl,
)

if TYPE_CHECKING:
    from agentmem_plugin.embeddings import Embedder
    from agentmem_plugin.tiers.chroma import SemanticIndex

__all__ = ["DATABASE_FILENAME", "MEMORY_ARGUMENTS", "MEMORY_TYPES", "Memory", "MemoryType"]

logger = logging.getLogger(__name__)

MemoryType = Literal["short_term", "long_term"]
MEMORY_TYPES: tuple[str, ...] = ("short_term", "long_term")

DEFAULT_KEYWORD_WEIGHT = DEFAULT_CONFIG.keyword_weight
"""Weight of the keyword side in hybrid search (see :mod:`agentmem_plugin.ranking`); measured on LoCoMo and
LongMemEval."""

HYBRID_CANDIDATES = 100
"""Candidates taken from each side before ranking (at least; ``5 * limit`` when larger)."""

DEFAULT_CONTEXT_WEIGHT = DEFAULT_CONFIG.context_weight
"""Share of its best same-session neighbour's score a memory receives in hybrid search (temporal contiguity; 0
disables). See :mod:`agentmem_plugin.ranking`."""

DEFAULT_CONTEXT_RADIUS = 2
"""How many memories before and after (in storage order) count as neighbours."""

CONTEXT_CANDIDATES = 50
"""The best candidates of each side whose neighbours hybrid search looks up (at least; ``5 * limit`` when
larger)."""


_P = ParamSpec("_P")
_R = TypeVar("_R")

Items = Mapping[str, Any] | Iterable[tuple[str, Any] | MemoryEntry]


def entries_from_items(items: Items, make: Callable[[str, Any], MemoryEntry]) -> list[MemoryEntry]:
    """Turn ``store_many`` items into entries: ``make(key, value)`` for pairs, a copy for a ``MemoryEntry``.

    Raises:
        InvalidArgumentError: *items* is a str/bytes or an item is neither a pair nor an entry.

    """
    pairs: Iterable[Any] = items.items() if isinstance(items, Mapping) else items
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Iterable):
        raise InvalidArgumentError(
            f"items must be a mapping or an iterable of (key, value) pairs, got {items!r:.80}"
        )
    entries: list[MemoryEntry] = []
    for item in pairs:
        if isinstance(item, MemoryEntry):
            entries.append(item.copy())
        elif isinstance(item, tuple) and len(item) == 2:
            entries.append(make(item[0], item[1]))
        else:
            raise InvalidArgumentError(
                f"each item must be a (key, value) pair or a MemoryEntry, got {item!r:.80}"
            )
    return entries


def hit(entry: MemoryEntry, score: float, **extra: Any) -> dict[str, Any]:
    """Return a search hit: ``{key, value, score, tags, metadata}`` plus *extra* fields."""
    return {
        "key": entry.key,
        "value": entry.value,
        "score": score,
        "tags": list(entry.tags),
        "metadata": dict(entry.metadata),
        **extra,
    }


class Memory:
    """A bounded key-value memory with TTL, priorities, tags, keyword search and optional persistence.

    Args:
        capacity: Maximum number of entries (None: unbounded). When full, expired entries go first, then the
            least recently used entry of the lowest priority (handed to ``on_evict`` if given).
        memory_type: ``"short_term"`` or ``"long_term"``; a label for stats and for policies above.
        persistence: Keep entries in a durable SQLite store (:class:`~agentmem_plugin.tiers.sqlite.SqliteTier`).
        storage_path: The *directory* of a persistent memory (required with ``persistence=True``; created
            when missing). The database is the file ``memory.sqlite3`` inside it, in the format of a
            :class:`~agentmem_plugin.manager.MemoryManager`'s store: the memory is the table of its
            *memory_type* (``short_term`` or ``long_term``), so a manager, the ``agentmem`` CLI and this memory
            opened on one directory see the same entries. Reopening it gives back every entry with its tags,
            TTL and access count.
        default_ttl: TTL in seconds for entries stored without one (None: never expire).
        on_evict: Called with the entries evicted for capacity, before they leave.
        clock: Source of the current time (default :func:`time.time`); tests pass a fake clock.
        tier: Use this tier instead of building one (advanced; the other storage arguments are ignored).
        embedder: Enables semantic and hybrid search: ``"default"`` (the offline MiniLM), an Embedder, a
            LangChain ``Embeddings`` or a callable; None for keyword search alone. The default, ``"auto"``, is
            the MiniLM for a persistent memory when the ``semantic`` extra is installed (the model loads at the
            first operation that needs it), None otherwise.
        embed_text: ``fn(entry) -> str | None``: the text an entry is embedded by (default: its value's text and
            tags); None or ``""`` keeps the entry out of the semantic index (it stays keyword-searchable).
            Use the same function every time a store is opened, or reopen with ``reindex=True``.
        chroma: Where the semantic index lives instead of beside the store: a Chroma server URL
            (``"http://127.0.0.1:8000"``) or a chromadb client.
        keyword_weight: Share of the keyword side in hybrid search, in [0, 1] (default: the ranking's, 0.55).
        context_weight: Share of its best same-session neighbour's score a memory receives in hybrid search
            (temporal contiguity; 0 disables; default: the ranking's, 0.5).
        context_radius: How many memories stored before and after one count as its neighbours.
        ranking: The hybrid ranking's knobs (:class:`~agentmem_plugin.ranking.RankingConfig`; default
            :data:`~agentmem_plugin.ranking.DEFAULT_CONFIG`); *keyword_weight* and *context_weight*, when given,
            override its own.

    Raises:
        InvalidArgumentError: a bad capacity, memory_type, default_ttl, weight or ranking.

    Example:
        >>> m = Memory(capacity=100)
        >>> m.store("current_task", "data_processing", ttl=3600, tags=["task"])
        >>> m.retrieve("current_task")
        'data_processing'
        >>> [hit["key"] for hit in m.search("processing")]
        ['current_task']

    """

    auto_semantic: ClassVar[bool] = True
    """Whether ``embedder="auto"`` may mean semantic search for this class (the spec's variants say False)."""

    def __init__(
        self,
        capacity: int | None = 1000,
        memory_type: str = "short_term",
        persistence: bool = False,
        storage_path: str | PathLike[str] | None = None,
        *,
        default_ttl: float | None = None,
        on_evict: EvictionCallback | None = None,
        clock: Clock | None = None,
        tier: Tier | None = None,
        embedder: Any = AUTO_EMBEDDER,
        reindex: bool = False,
        keyword_weight: float | None = None,
        context_weight: float | None = None,
        context_radius: int = DEFAULT_CONTEXT_RADIUS,
        embed_text: Callable[[MemoryEntry], str | None] | None = None,
        chroma: Any = None,
        ranking: RankingConfig | None = None,
    ) -> None:
        self.capacity = validate_capacity(capacity)
        self.memory_type = validate_memory_type(memory_type, MEMORY_TYPES)
        self.default_ttl = validate_ttl(default_ttl)
        self.ranking = ranking_config(ranking, keyword_weight, context_weight)
        self.context_radius = validate_non_negative_int(context_radius, what="context_radius")
        self.persistence = validate_bool(persistence, what="persistence")
        self.storage_path = None if storage_path is None else Path(storage_path)
        # "auto" means semantic only for the SQLite store this memory opens itself
        own = tier is None and self.auto_semantic
        if tier is None:
            tier = self._open_tier(on_evict=on_evict, clock=clock)
        self._tier = tier
        self._clock: Clock = tier.clock
        self._auto = isinstance(embedder, str) and embedder == AUTO_EMBEDDER
        embedder = resolve_embedder(
            embedder, persistent=own and self.persistence and tier.persistent
        )
        if embedder is not None:
            from agentmem_plugin.tiers.indexed import IndexedTier, open_semantic

            try:
                index = open_semantic(
                    tier,
                    embedder,
                    where=self._semantic_dir(tier),
                    chroma=chroma,
                    reindex=reindex,
                    embed_text=embed_text,
                )
            except IndexInUseError as exc:
                if not self._auto:
                    tier.close()
                    raise
                logger.warning("%s; this memory searches by keyword", exc)
            except BaseException:
                tier.close()
                raise
            else:
                tier = self._tier = IndexedTier(tier, index)
        self._semantic: SemanticIndex | None = tier.semantic_index()

    def _semantic_dir(self, tier: Tier) -> Path | None:
        """Where the vector index and embedding cache live: beside the store, or None for in memory."""
        if not tier.persistent or self.storage_path is None:
            return None
        if self.storage_path.is_dir() or not self.storage_path.suffix:
            return self.storage_path
        return self.storage_path.with_name(self.storage_path.name + ".semantic")

    @property
    def embedder(self) -> Embedder | None:
        """The embedder behind semantic search (None when this memory has none)."""
        return None if self._semantic is None else self._semantic.embedder

    def reindex(self) -> int:
        """Rebuild the semantic index from every live entry; return how many were indexed.

        Raises:
            InvalidArgumentError: this memory has no embedder.

        """
        if self._semantic is None:
            raise no_embedder_error("reindex", auto=self._auto)
        return self._semantic.reindex()

    def _open_tier(self, *, on_evict: EvictionCallback | None, clock: Clock | None) -> Tier:
        if not self.persistence:
            return BufferTier(self.capacity, clock=clock, on_evict=on_evict)
        if self.storage_path is None:
            raise InvalidArgumentError("persistence=True needs a storage_path (a directory)")
        if self.storage_path.exists() and not self.storage_path.is_dir():
            raise InvalidArgumentError(
                f"storage_path must be a directory, got the file {str(self.storage_path)!r}; "
                "for a single database file use DatabaseMemory(db_path=...)"
            )
        from agentmem_plugin.tiers.sqlite import SqliteTier

        db = self.storage_path / DATABASE_FILENAME
        legacy = _has_legacy_table(db)
        tier = SqliteTier(
            db, table=self.memory_type, capacity=self.capacity, clock=clock, on_evict=on_evict
        )
        try:
            other = "long_term" if self.memory_type == "short_term" else "short_term"
            # The whole store format (both tables), so a manager or the CLI opening this file adds nothing.
            SqliteTier(db, table=other, share_connection_with=tier)
            if legacy:
                _adopt_legacy_table(db, tier)
        except BaseException:
            tier.close()
            raise
        return tier

    @property
    def keyword_weight(self) -> float:
        """Share of the keyword side in hybrid search (``self.ranking.keyword_weight``)."""
        return self.ranking.keyword_weight

    @property
    def context_weight(self) -> float:
        """Share of a same-session neighbour's score a memory receives (``self.ranking.context_weight``)."""
        return self.ranking.context_weight

    @property
    def tier(self) -> Tier:
        """The storage tier behind this memory."""
        return self._tier

    @property
    def size(self) -> int:
        """Number of live entries (same as ``len(memory)``)."""
        return self._tier.count()

    # -- building entries ----------------------------------------------------------------------------------------

    def _entry(
        self,
        key: str,
        value: Any,
        ttl: float | None,
        priority: int,
        metadata: Mapping[str, Any] | None,
        tags: Iterable[str] | None,
    ) -> MemoryEntry:
        return MemoryEntry(
            key,
            value,
            ttl=self.default_ttl if ttl is None else ttl,
            priority=priority,
            metadata=metadata,
            tags=tags,
            clock=self._clock,
        )

    @staticmethod
    def _key(key: object) -> str:
        # Fast path for plain ASCII keys; anything else (a lone surrogate, say) gets the full check.
        if (
            type(key) is str
            and key.isascii()
            and 0 < len(key) <= MAX_KEY_LENGTH
            and "\x00" not in key
        ):
            return key
        return validate_key(key)

    # -- core API -------------------------------------------------------------------------------------------------

    def store(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        priority: int = 0,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
    ) -> None:
        """Store *value* under *key*, replacing any previous entry.

        Args:
            key: Non-empty str of at most ``MAX_KEY_LENGTH`` characters.
            value: A JSON-serializable value.
            ttl: Seconds to live (default: the memory's ``default_ttl``; None never expires).
            priority: Higher priorities are evicted later.
            metadata: JSON-serializable extra fields.
            tags: Labels (searchable).

        Raises:
            InvalidKeyError: bad key. InvalidArgumentError: bad ttl, priority, metadata or tags.
            SerializationError: the value or metadata cannot be stored as JSON; the previous value stays.

        """
        if (
            ttl is None
            and metadata is None
            and tags is None
            and type(priority) is int
            and -MAX_PRIORITY - 1 <= priority <= MAX_PRIORITY
        ):
            # Hot path: only the key needs checking (default_ttl was validated at construction).
            now = self._clock()
            default_ttl = self.default_ttl
            entry = MemoryEntry._trusted(
                self._key(key),
                value,
                default_ttl,
                priority,
                now,
                None if default_ttl is None else now + default_ttl,
            )
        else:
            entry = self._entry(key, value, ttl, priority, metadata, tags)
        self._tier.put(entry)  # with an embedder, bad vectors fail before anything is stored

    def retrieve(self, key: str) -> Any:
        """Return the value stored under *key*, or None when it is missing or expired. Counts as an access."""
        entry = self._tier.get(self._key(key))
        return None if entry is None else entry.value

    def get_entry(self, key: str) -> MemoryEntry:
        """Return a copy of the live entry under *key* (counts as an access).

        Raises:
            KeyNotFoundError: *key* is missing or expired.

        """
        entry = self._tier.get(self._key(key))
        if entry is None:
            raise KeyNotFoundError(f"no live memory under key {key!r}")
        return entry.copy()

    def delete(self, key: str) -> bool:
        """Delete *key*; return True when a live entry was removed."""
        return self._tier.delete(self._key(key))

    def exists(self, key: str) -> bool:
        """Return True when *key* holds a live entry (not counted as an access)."""
        return self._tier.contains(self._key(key))

    def keys(self) -> list[str]:
        """Return the keys of every live entry."""
        return self._tier.keys()

    def cleanup(self) -> int:
        """Remove expired entries now; return how many were removed."""
        removed = self._tier.cleanup()
        if removed:
            logger.debug("cleanup removed %d expired entries", len(removed))
        return len(removed)

    def search(
        self,
        query: str,
        limit: int = 10,
        *,
        mode: str | None = None,
        explain: bool = False,
        recency_weight: float | None = None,
        importance_weight: float | None = None,
    ) -> list[dict[str, Any]]:
        """Search by keyword (BM25), by meaning (embeddings), or both fused.

        Hybrid search ranks with :func:`agentmem_plugin.ranking.rank` (see ``docs/concepts/ranking.md``): min-max
        scaled BM25 and cosine fused, a boost for the query's names and numbers found in a memory, and temporal
        contiguity between memories stored next to each other in the same session (metadata ``session``,
        ``session_id``, ``conversation_id`` or ``thread_id``). Its query is embedded on a helper thread while the
        keyword side runs when the embedder declares it safe, as the local models do
        (:func:`~agentmem_plugin.embeddings.embed_query_beside`).

        Args:
            query: Free text; an empty or whitespace query returns ``[]`` (as does an all-stop-word query in
                keyword mode).
            limit: Maximum number of hits.
            mode: ``"hybrid"`` (the default when the memory has an embedder), ``"keyword"`` (the default
                without one) or ``"semantic"``.
            explain: Add to each hit ``explain``: the terms of its score (``bm25``, ``cosine``, their scaled
                ``bm25_norm`` / ``cos_norm``, ``fused`` and each boost that is on).
            recency_weight: Add ``recency_weight * 0.5 ** (age / 30 days)`` to each score (default: the
                ranking's, off). In keyword and semantic mode a boost re-ranks that side's candidates.
            importance_weight: Add ``importance_weight * metadata["importance"]`` (a number in [0, 1]) to each
                score (default: the ranking's, off).

        Returns:
            Hits, best first: dicts with ``key``, ``value``, ``score``, ``tags`` and ``metadata``; semantic and
            hybrid hits also carry ``similarity`` (cosine, or None when only the keyword side found it) and
            hybrid hits ``keyword_score`` (BM25, or None).

        Raises:
            InvalidArgumentError: a bad limit, mode or weight, or a semantic mode on a memory without an
                embedder.

        """
        query = validate_text(query, what="query")
        limit = validate_limit(limit)
        mode = validate_mode(mode) or ("keyword" if self._semantic is None else "hybrid")
        explain = validate_bool(explain, what="explain")
        config = search_config(self.ranking, recency_weight, importance_weight)
        if mode != "keyword" and self._semantic is None:
            raise no_embedder_error(mode, auto=self._auto)
        if not query.strip():
            return []
        boosted = has_boosts(config)
        depth = max(limit * 5, HYBRID_CANDIDATES) if mode == "hybrid" or boosted else limit
        if mode == "hybrid":
            # the keyword side runs while the query is embedded (see embed_query_beside)
            assert self._semantic is not None
            self._semantic.sync()
            vector = embed_query_beside(self._semantic.embedder, query)
            keyword = self._tier.keyword_search(query, depth)
            dense = self._vector_hits(vector(), depth)
        else:
            keyword = self._tier.keyword_search(query, depth) if mode != "semantic" else []
            dense = self._dense(query, depth) if mode != "keyword" else []
        if mode != "hybrid" and not boosted:
            return [plain_hit(e, s, mode, explain) for e, s in (keyword or dense)]
        radius = self.context_radius
        read: dict[str, MemoryEntry] = {}  # the neighbours' entries, read with them

        def near(keys: list[str]) -> dict[str, list[str]]:
            if not radius:
                return {}
            known = {e.key for e, _ in (*keyword, *dense)}
            found, entries = self._tier.neighbor_entries(keys, radius, known=known)
            read.update(entries)
            return found

        def fetch(keys: list[str]) -> list[MemoryEntry | None]:
            rest = [k for k in keys if k not in read]
            fetched = dict(zip(rest, self._tier.get_many(rest, touch=False), strict=True))
            return [read.get(k) or fetched.get(k) for k in keys]

        ranked = rank_entries(
            query,
            keyword,
            dense,
            neighbors=near if mode == "hybrid" else None,
            fetch=fetch,
            config=config if mode == "hybrid" else single_side(config, mode),
            now=self._clock(),
            limit=limit,
            keyword_complete=len(keyword) < depth,
            context_candidates=max(CONTEXT_CANDIDATES, 5 * limit),
        )
        return [ranked_hit(e, h, mode, explain) for e, h in ranked]

    def _own_source(self) -> set[str] | None:
        """Return the name of this tier among its index's sources (None: the index covers this tier alone)."""
        assert self._semantic is not None
        if len(self._semantic.sources) == 1:
            return None
        inner = getattr(self._tier, "inner", self._tier)
        return {name for name, tier in self._semantic.sources if tier is inner}

    def _dense(self, query: str, limit: int) -> list[tuple[MemoryEntry, float]]:
        """Return this memory's entries nearest to *query* in meaning (its index may cover other tiers too)."""
        assert self._semantic is not None
        self._semantic.sync()
        vector = self._semantic.embedder.embed_query(query)
        return self._vector_hits(vector, limit)

    def _vector_hits(self, vector: Sequence[float], limit: int) -> list[tuple[MemoryEntry, float]]:
        assert self._semantic is not None
        return [
            (entry, sim)
            for _, entry, sim in self._semantic.search_located(
                vector, limit, only=self._own_source()
            )
        ]

    def search_by_vector(self, vector: Sequence[float], limit: int = 10) -> list[dict[str, Any]]:
        """Return the entries nearest to an embedding *vector* (of this memory's embedder), best first.

        Hits are dicts like :meth:`search`'s, with ``score`` = ``similarity`` = cosine similarity.

        Raises:
            InvalidArgumentError: a bad limit, or a memory without an embedder.
            EmbeddingError: a vector of the wrong dimension, or with NaN/inf.

        """
        limit = validate_limit(limit)
        if self._semantic is None:
            raise no_embedder_error("search_by_vector", auto=self._auto)
        return [hit(e, sim, similarity=sim) for e, sim in self._vector_hits(vector, limit)]

    def update(self, key: str, func: Callable[[Any], Any], default: Any = None) -> Any:
        """Atomically replace the value under *key* by ``func(current value, or default when absent)``.

        The entry keeps its TTL expiry, priority, tags and metadata; a new entry gets the memory's defaults.
        Safe against concurrent updates (the read-modify-write holds the tier's lock or transaction).

        Returns:
            The new value.

        Example:
            >>> m = Memory()
            >>> m.update("visits", lambda n: n + 1, default=0)
            1

        """
        key = self._key(key)

        def apply(current: MemoryEntry | None) -> MemoryEntry:
            if current is None:
                return self._entry(key, func(default), None, 0, None, None)
            current.value = func(current.value)
            return current.new_version()  # a new write of the key

        entry = self._tier.compute(key, apply)
        assert entry is not None
        return entry.value

    def store_many(
        self,
        items: Items,
        *,
        ttl: float | None = None,
        priority: int = 0,
        metadata: Mapping[str, Any] | None = None,
        tags: Iterable[str] | None = None,
    ) -> int:
        """Store many entries in one batch (one transaction on persistent tiers).

        Args:
            items: A mapping of key to value, or an iterable of ``(key, value)`` pairs or ``MemoryEntry``.
            ttl: TTL for the pairs (entries keep their own).
            priority: Priority for the pairs.
            metadata: Metadata for the pairs.
            tags: Tags for the pairs.

        Returns:
            The number of items stored.

        Raises:
            InvalidKeyError, InvalidArgumentError, SerializationError: an item is bad; nothing was stored.

        """
        tag_list = validate_tags(tags)
        entries = entries_from_items(
            items, lambda key, value: self._entry(key, value, ttl, priority, metadata, tag_list)
        )
        if entries:
            self._tier.put_many(entries)
        return len(entries)

    def retrieve_many(self, keys: Sequence[str]) -> list[Any]:
        """Return the value for each key (None where missing or expired), in the order given."""
        return [None if e is None else e.value for e in self._tier.get_many(validate_keys(keys))]

    def get_stats(self) -> dict[str, Any]:
        """Return sizes and counters: size, capacity, hits, misses, hit_rate, writes, evictions, ..."""
        stats = self._tier.stats()
        lookups = stats.get("hits", 0) + stats.get("misses", 0)
        stats["hit_rate"] = stats.get("hits", 0) / lookups if lookups else 0.0
        stats.update(
            memory_type=self.memory_type,
            persistence=self.persistence,
            storage_path=None if self.storage_path is None else str(self.storage_path),
            default_ttl=self.default_ttl,
        )
        return stats

    def clear(self) -> None:
        """Remove every entry."""
        self._tier.clear()

    def close(self) -> None:
        """Release the tier's resources (files, connections). The memory is unusable afterwards."""
        self._tier.close()

    # -- dunder helpers --------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return self._tier.count()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.exists(key)

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(capacity={self.capacity!r}, memory_type={self.memory_type!r}, "
            f"persistence={self.persistence!r}, tier={self._tier.name!r})"
        )

    # -- async twins ---------------------------------------------------------------------------------------

    astore = async_twin(store)
    aretrieve = async_twin(retrieve)
    aget_entry = async_twin(get_entry)
    adelete = async_twin(delete)
    aexists = async_twin(exists)
    akeys = async_twin(keys)
    acleanup = async_twin(cleanup)
    asearch = async_twin(search)
    areindex = async_twin(reindex)
    aupdate = async_twin(update)
    astore_many = async_twin(store_many)
    aretrieve_many = async_twin(retrieve_many)
    aget_stats = async_twin(get_stats)
    aclear = async_twin(clear)


def ranking_config(
    base: RankingConfig | None, keyword_weight: float | None, context_weight: float | None
) -> RankingConfig:
    """Return the ranking of a memory: *base* (default :data:`DEFAULT_CONFIG`) with the weights given.

    Raises:
        InvalidArgumentError: *base* is not a RankingConfig, or a weight is out of range (naming it).

    """
    if base is None:
        base = DEFAULT_CONFIG
    elif not isinstance(base, RankingConfig):
        raise InvalidArgumentError(f"ranking must be a RankingConfig, got {base!r:.80}")
    changes: dict[str, float] = {}
    if keyword_weight is not None:
        changes["keyword_weight"] = validate_fraction(keyword_weight, what="keyword_weight")
    if context_weight is not None:
        changes["context_weight"] = validate_fraction(
            context_weight, what="context_weight", high=math.inf
        )
    return base.with_(**changes) if changes else base


def search_config(
    base: RankingConfig, recency_weight: float | None, importance_weight: float | None
) -> RankingConfig:
    """Return *base* with one search's recency and importance weights (None: keep the base's).

    Raises:
        InvalidArgumentError: a negative or non-finite weight (naming it).

    """
    changes: dict[str, float] = {}
    if recency_weight is not None:
        changes["recency_weight"] = recency_weight
    if importance_weight is not None:
        changes["importance_weight"] = importance_weight
    return base.with_(**changes) if changes else base


def has_boosts(config: RankingConfig) -> bool:
    """Whether *config* adds a per-memory signal (recency, importance) that can re-rank one side's hits."""
    return config.recency_weight > 0 or config.importance_weight > 0


def single_side(config: RankingConfig, mode: str) -> RankingConfig:
    """*config* for re-ranking one side's hits by the boosts alone: that side's score, no fusion, no context."""
    return config.with_(
        keyword_weight=1.0 if mode == "keyword" else 0.0,
        entity_weight=0.0,
        context_mode="off",
        session_weight=0.0,
    )


def plain_hit(entry: MemoryEntry, score: float, mode: str, explain: bool) -> dict[str, Any]:
    """Return a keyword or semantic hit scored by its side alone (BM25, or cosine as ``similarity`` too)."""
    extra: dict[str, Any] = {} if mode == "keyword" else {"similarity": score}
    if explain:
        extra["explain"] = {"bm25" if mode == "keyword" else "cosine": score}
    return hit(entry, score, **extra)


def ranked_hit(entry: MemoryEntry, ranked: RankedHit, mode: str, explain: bool) -> dict[str, Any]:
    """Return a hit ranked by :mod:`agentmem_plugin.ranking`: its score, its raw sides, its terms if asked."""
    parts = ranked.components
    extra: dict[str, Any] = {}
    if mode != "keyword":
        extra["similarity"] = parts.get("cosine")
    if mode == "hybrid":
        extra["keyword_score"] = parts.get("bm25")
    if explain:
        extra["explain"] = dict(parts)
    return hit(entry, ranked.score, **extra)


def no_embedder_error(what: str, *, auto: bool) -> AgentMemError:
    """Return the error for a semantic operation (*what*: a mode, ``"reindex"``...) on a store without embedder.

    A store left on ``embedder="auto"`` whose ``semantic`` extra is missing gets a
    :class:`~agentmem_plugin.errors.MissingDependencyError` naming the extra; otherwise an
    :class:`~agentmem_plugin.errors.InvalidArgumentError` saying how to pass one.
    """
    if auto and not semantic_available():
        return MissingDependencyError(
            f"{what!r} needs the semantic extra: pip install 'agentmem-plugin[semantic]' "
            "(keyword search works without it)"
        )
    return InvalidArgumentError(
        f"{what!r} needs an embedder: create the store with embedder='default' (or your own)"
    )


def _has_legacy_table(db: Path) -> bool:
    """Return True when *db* holds the ``memories`` table of a memory written before the one store format."""
    if not db.is_file():
        return False
    import sqlite3

    try:
        with contextlib.closing(
            sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        ) as conn:
            row = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'memories'"
            ).fetchone()
    except sqlite3.Error:
        return False  # not a database: SqliteTier says so with its own error
    return row is not None


def _adopt_legacy_table(db: Path, tier: Tier) -> None:
    """Move the entries of an older memory's ``memories`` table into *tier* (its memory-type table)."""
    from agentmem_plugin.moves import move
    from agentmem_plugin.tiers.sqlite import SqliteTier

    legacy = SqliteTier(db, table="memories", share_connection_with=tier)  # type: ignore[arg-type]
    entries = legacy.scan()
    if entries:
        moved = move(entries, legacy, tier, transaction=tier.transaction).moved
        logger.warning(
            "moved %d entries of %s from the old table 'memories' into %r (the store format of MemoryManager)",
            len(moved),
            db,
            tier.table,
        )


MEMORY_ARGUMENTS: frozenset[str] = frozenset(inspect.signature(Memory.__init__).parameters) - {
    "self"
}
"""The keyword arguments of :class:`Memory` (what a config dict of a named or shared memory may hold)."""
