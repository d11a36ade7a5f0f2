"""`AgentMemStore`: a LangGraph ``BaseStore`` backed by one agentmem ``MemoryManager``.

Mapping:

* A LangGraph namespace tuple is an agentmem namespace (``manager.with_namespace(...)``: views over the same SQLite
  connection). Labels are escaped reversibly (``%`` -> ``%25``, ``/`` -> ``%2F``), so every label LangGraph accepts
  can be stored although agentmem reserves ``/`` as its separator.
* An item is a **long-term** entry: the value dict is the entry value (durable, keyword- and, with an index,
  semantically searchable); ``created_at``/``updated_at`` (POSIX seconds) and the per-item ``index`` choice live in
  the entry metadata under ``_lg_created_at``, ``_lg_updated_at`` and ``_lg_index``. A put keeps ``created_at``.
* An item TTL (minutes) is the entry TTL (seconds). Refreshing it re-stores the entry with a new expiry.
* ``batch(ops)`` validates every op first (a bad op raises and nothing is written), then runs the reads (gets,
  searches, namespace listings) against the state before the batch, then the writes (the last put of a key wins),
  like LangGraph's own stores. Results come back in op order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from os import PathLike
from typing import Any, Literal

from agentmem_plugin.embeddings import CallableEmbedder, Embedder, as_embedder
from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError, StorageError
from agentmem_plugin.manager import MemoryManager
from agentmem_plugin.search import fuse
from agentmem_plugin.tiers.chroma import embedding_text
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    get_text_at_path,
    tokenize_path,
)

from agentmem_langgraph._ops import (
    check_ops,
    decode_namespace,
    encode_namespace,
    matches_condition,
    matches_filter,
    ttl_seconds,
)

__all__ = ["AgentMemStore", "SearchMode", "item_embed_text"]

logger = logging.getLogger(__name__)

SearchMode = Literal["hybrid", "keyword", "semantic"]

CREATED_AT = "_lg_created_at"
UPDATED_AT = "_lg_updated_at"
INDEX = "_lg_index"

_UNBOUNDED = (
    2**62
)  # long-term limit of a manager the store builds: items are never archived for capacity
_MODES: tuple[str, ...] = ("hybrid", "keyword", "semantic")
_INDEX_KEYS = frozenset({"dims", "embed", "fields"})
_TTL_KEYS = frozenset({"default_ttl", "refresh_on_read", "sweep_interval_minutes", "omit_expired"})
_DEFAULT_SWEEP_MINUTES = 5.0

Row = tuple[float | None, tuple[str, ...], str, dict[str, Any], dict[str, Any], float]
"""A search row: score (None: unranked), namespace, key, value, metadata, entry created_at."""


# -- what gets embedded ---------------------------------------------------------------------------------------


def _tokenized(paths: Sequence[str]) -> list[str | list[str]]:
    return ["$" if p == "$" else tokenize_path(p) for p in paths]


def _check_fields(fields: object) -> list[str]:
    if fields is None:
        return ["$"]
    if isinstance(fields, (str, bytes)) or not isinstance(fields, Sequence):
        raise InvalidArgumentError(f"index fields must be a list of field paths, got {fields!r}")
    for path in fields:
        if not isinstance(path, str) or not path:
            raise InvalidArgumentError(
                f"index fields must be non-empty field paths (str), got {path!r}"
            )
    return list(fields) or ["$"]


def item_embed_text(fields: Sequence[str] | None = None) -> Callable[[MemoryEntry], str | None]:
    """Return the ``embed_text`` hook that makes a ``MemoryManager`` embed LangGraph items like LangGraph does.

    The text of an item is what :func:`langgraph.store.base.get_text_at_path` extracts for each path, joined by
    newlines: the put's ``index`` paths when it gave some, else *fields* (default ``["$"]``: the whole value as
    JSON). An item put with ``index=False`` is kept out of the semantic index (None). Entries not written by an
    :class:`AgentMemStore` keep agentmem's default text. Pass it when you build the manager yourself:

    Example:
        >>> mm = MemoryManager(embedder="default", embed_text=item_embed_text(["text"]))  # doctest: +SKIP
        >>> store = AgentMemStore(manager=mm)  # doctest: +SKIP

    Args:
        fields: The store-wide default paths (LangGraph path syntax: ``"a.b"``, ``"items[*].text"``, ``"$"``).

    Raises:
        InvalidArgumentError: *fields* is not a list of non-empty str.

    """
    default = _tokenized(_check_fields(fields))

    def embed_text(entry: MemoryEntry) -> str | None:
        value, meta = entry.value, entry.metadata
        if CREATED_AT not in meta or not isinstance(value, dict):
            return embedding_text(entry.key, value, entry.tags)
        choice = meta.get(INDEX)
        if choice is False:
            return None
        paths = default if not isinstance(choice, list) else _tokenized(choice)
        texts = [text for path in paths for text in get_text_at_path(value, path)]
        return "\n".join(t for t in texts if t) or None

    return embed_text


_HOME_LOOP: contextvars.ContextVar[asyncio.AbstractEventLoop | None] = contextvars.ContextVar(
    "agentmem_langgraph_home_loop", default=None
)
"""The event loop that called ``abatch`` (copied into its worker thread by ``asyncio.to_thread``)."""


def _sync_call(fn: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """Make an async embedding function callable from the worker thread a batch runs in.

    Under ``abatch`` the coroutine runs on the caller's own event loop (which is free: it awaits the worker), so
    clients the application bound to that loop keep working; otherwise on a private loop.
    """

    def call(texts: list[str]) -> Any:
        coroutine = fn(list(texts))
        home = _HOME_LOOP.get()
        if home is not None and home.is_running():
            return asyncio.run_coroutine_threadsafe(coroutine, home).result()
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coroutine)
        with concurrent.futures.ThreadPoolExecutor(
            1
        ) as pool:  # a loop runs here: use a thread of our own
            return pool.submit(asyncio.run, coroutine).result()

    return call


def _embedder(index: Mapping[str, Any]) -> Embedder:
    """Build the embedder an IndexConfig asks for and check its dimension against ``dims``."""
    embed = index.get("embed")
    if embed is None:
        raise InvalidArgumentError(
            "index needs 'embed': 'default' (the offline all-MiniLM-L6-v2), a LangChain Embeddings object "
            "or a function(list[str]) -> vectors"
        )
    if isinstance(embed, str):
        if embed != "default":
            raise InvalidArgumentError(
                f"index embed={embed!r}: AgentMemStore runs offline and does not load embeddings by provider "
                "string; pass 'default' (the offline all-MiniLM-L6-v2, 384 dims), a LangChain Embeddings "
                "object or a function(list[str]) -> vectors"
            )
        embedder = as_embedder("default")
    elif hasattr(embed, "embed_documents") and hasattr(embed, "embed_query"):
        embedder = as_embedder(embed)
    elif callable(embed):
        name = str(getattr(embed, "__qualname__", type(embed).__name__))
        is_async = inspect.iscoroutinefunction(embed) or inspect.iscoroutinefunction(
            getattr(embed, "__call__", None)  # noqa: B004 - an object with an async __call__
        )
        embedder = CallableEmbedder(_sync_call(embed) if is_async else embed, name=name)
    else:
        raise InvalidArgumentError(
            f"index embed must be 'default', a LangChain Embeddings object or a function, got {type(embed).__name__}"
        )
    actual = embedder.dim
    dims = index.get("dims")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims != actual):
        raise InvalidArgumentError(
            f"index dims={dims!r} but the embedder {embedder.name!r} returns vectors of dimension {actual}; "
            f"set dims to {actual}"
        )
    return embedder


def _check_ttl_config(ttl: object) -> TTLConfig | None:
    if ttl is None:
        return None
    if not isinstance(ttl, Mapping):
        raise InvalidArgumentError(f"ttl must be a TTLConfig dict, got {ttl!r:.80}")
    unknown = sorted(set(ttl) - _TTL_KEYS)
    if unknown:
        raise InvalidArgumentError(
            f"unknown TTLConfig keys {unknown}; use {', '.join(sorted(_TTL_KEYS))}"
        )
    ttl_seconds(ttl.get("default_ttl"), what="TTLConfig default_ttl")
    for flag in ("refresh_on_read", "omit_expired"):
        if flag in ttl and not isinstance(ttl[flag], bool):
            raise InvalidArgumentError(f"TTLConfig {flag} must be a bool, got {ttl[flag]!r}")
    ttl_seconds(ttl.get("sweep_interval_minutes"), what="TTLConfig sweep_interval_minutes")
    return TTLConfig(**ttl)  # type: ignore[typeddict-item]


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _created(entry: MemoryEntry) -> float:
    return float(entry.metadata.get(CREATED_AT, entry.created_at))


class AgentMemStore(BaseStore):
    """A LangGraph store keeping items in agentmem long-term memory: durable, namespaced, TTL, hybrid search.

    Items live in one :class:`~agentmem_plugin.manager.MemoryManager`: a directory (``storage_path``: SQLite with
    FTS5 plus a Chroma index, shared safely by several processes), memory only (``storage_path=None``), or a
    manager you pass in. A search with a query runs agentmem's search in every namespace under the prefix and
    merges the hits by score; the query orders the items, it never hides one the filter admits (items it does
    not rank follow with ``score=None``, as in LangGraph's ``InMemoryStore``).

    Args:
        storage_path: Directory of a persistent store (created when missing); None keeps everything in memory.
        manager: Use this manager instead of building one (its namespace, if any, becomes the root of every
            LangGraph namespace). Build it with ``embed_text=item_embed_text(fields)`` to honour ``index``
            choices and a large ``long_term_limit``; it stays open when the store closes.
        index: LangGraph ``IndexConfig``: ``embed`` is ``"default"`` (offline all-MiniLM-L6-v2, 384 dims), a
            LangChain ``Embeddings`` or a function (sync or async) ``list[str] -> vectors``; ``dims`` is checked
            against it; ``fields`` (default ``["$"]``) choose the text embedded.
        ttl: LangGraph ``TTLConfig``: ``default_ttl`` (minutes, for puts that give none), ``refresh_on_read``
            (default True), ``sweep_interval_minutes`` (for :meth:`start_ttl_sweeper`). Expired items are never
            returned (``omit_expired`` is always on).
        mode: How a query ranks: ``"hybrid"`` (default with an index), ``"keyword"`` (default without one;
            BM25) or ``"semantic"`` (cosine similarity).
        clock: Source of the current time in POSIX seconds (tests pass a fake clock).

    Raises:
        InvalidArgumentError: a bad index, ttl or mode, an offline-impossible embedder, a ``dims`` mismatch.

    Example:
        >>> store = AgentMemStore()
        >>> store.put(("users", "u1"), "prefs", {"food": "loves spicy ramen"})
        >>> store.get(("users", "u1"), "prefs").value
        {'food': 'loves spicy ramen'}
        >>> [item.key for item in store.search(("users",), query="ramen")]
        ['prefs']
        >>> store.close()

    """

    supports_ttl: bool = True

    def __init__(
        self,
        storage_path: str | PathLike[str] | None = None,
        *,
        manager: MemoryManager | None = None,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        mode: SearchMode | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._closed = False
        self._opened: set[str] = (
            set()
        )  # namespaces this store has a view of: a get there needs no listing
        self._sweeper: threading.Thread | None = None
        self._stop_sweeping = threading.Event()
        self.ttl_config = _check_ttl_config(ttl)
        if mode is not None and mode not in _MODES:
            raise InvalidArgumentError(f"mode must be one of {', '.join(_MODES)}; got {mode!r}")
        self.index_config: IndexConfig | None = None
        if manager is not None:
            if storage_path is not None or index is not None or clock is not None:
                raise InvalidArgumentError(
                    "pass either manager= or storage_path/index/clock: a manager brings its own storage, "
                    "embedder (build it with embed_text=item_embed_text(fields)) and clock"
                )
            self._manager, self._owns_manager = manager, False
            if manager.long_term_limit < _UNBOUNDED:
                logger.warning(
                    "the manager's long_term_limit is %d: items beyond it move to the archive, where searches "
                    "and listings of this store do not look (gets still find them); build the manager with a "
                    "larger long_term_limit",
                    manager.long_term_limit,
                )
        else:
            embedder: Embedder | None = None
            embed_text = None
            if index is not None:
                if not isinstance(index, Mapping):
                    raise InvalidArgumentError(
                        f"index must be an IndexConfig dict, got {index!r:.80}"
                    )
                unknown = sorted(set(index) - _INDEX_KEYS)
                if unknown:
                    raise InvalidArgumentError(
                        f"unknown IndexConfig keys {unknown}; AgentMemStore supports dims, embed and fields"
                    )
                fields = _check_fields(index.get("fields"))
                embedder = _embedder(index)
                embed_text = item_embed_text(fields)
                self.index_config = IndexConfig(**index)
                self.index_config["fields"] = fields
            if mode in ("hybrid", "semantic") and embedder is None:
                raise InvalidArgumentError(
                    f"mode={mode!r} needs an index, e.g. index={{'embed': 'default', 'dims': 384}}"
                )
            self._manager = MemoryManager(
                long_term_limit=_UNBOUNDED,
                storage_path=storage_path,
                embedder=embedder,
                embed_text=embed_text,
                clock=clock,
            )
            self._owns_manager = True
        has_embedder = self._manager.long_term.embedder is not None
        if mode in ("hybrid", "semantic") and not has_embedder:
            raise InvalidArgumentError(f"mode={mode!r} needs a manager with an embedder")
        self.mode: SearchMode = mode or ("hybrid" if has_embedder else "keyword")
        # The manager's views and namespace listings are relative to its own namespace (they never reach
        # outside it), so LangGraph namespaces map to names below it with no base to add or strip.

    # -- construction helpers ------------------------------------------------------------------------------------

    @classmethod
    def from_path(
        cls,
        path: str | PathLike[str],
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        mode: SearchMode | None = None,
    ) -> AgentMemStore:
        """Open (or create) a persistent store in directory *path*.

        Example:
            >>> with AgentMemStore.from_path("memories", index={"embed": "default"}) as store:  # doctest: +SKIP
            ...     store.put(("users", "u1"), "fact", {"text": "likes jazz"})

        """
        return cls(path, index=index, ttl=ttl, mode=mode)

    @property
    def manager(self) -> MemoryManager:
        """The memory manager holding the items."""
        return self._manager

    # -- the BaseStore contract ------------------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run *ops* (validated first: a bad op raises and nothing changes); return the results in op order.

        Reads see the store as it was before the batch; puts are applied after them (the last put of a key wins).

        Raises:
            InvalidNamespaceError: a bad namespace label. InvalidArgumentError: a bad op, key, ttl, index, filter,
                limit or offset. SerializationError: a value that is not JSON. StorageError: the store is closed.

        """
        checked = check_ops(ops)
        with self._lock:
            self._check_open()
            results: list[Result] = [None] * len(checked)
            puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
            refresh: dict[str, set[str]] = {}
            known: set[str] | None = None
            for i, op in enumerate(checked):
                if isinstance(op, GetOp):
                    if known is None and encode_namespace(op.namespace) not in self._opened:
                        known = (
                            self._known()
                        )  # listed once per batch, and only for a namespace not seen yet
                    results[i] = self._get(
                        op, self._opened if known is None else known | self._opened, refresh
                    )
                elif isinstance(op, SearchOp):
                    results[i] = self._search(op, refresh)
                elif isinstance(op, ListNamespacesOp):
                    results[i] = self._list_namespaces(op)
                else:
                    puts.pop((op.namespace, op.key), None)
                    puts[(op.namespace, op.key)] = op
            if refresh:
                self._refresh(refresh)
            if puts:
                self._apply_puts(puts)
            return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async :meth:`batch`: runs it in a worker thread, so the event loop never blocks.

        An async ``embed`` function of the IndexConfig is awaited on this event loop, not on another one.
        """
        token = _HOME_LOOP.set(asyncio.get_running_loop())
        try:
            return await asyncio.to_thread(self.batch, list(ops))
        finally:
            _HOME_LOOP.reset(token)

    # -- reads ---------------------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("this AgentMemStore is closed")

    def _known(self) -> set[str]:
        return set(self._manager.namespaces())

    def _view(self, name: str) -> MemoryManager:
        self._opened.add(name)
        return self._manager.with_namespace(name)

    def _namespaces(self, prefix: tuple[str, ...]) -> list[tuple[tuple[str, ...], str]]:
        """Every (LangGraph namespace, agentmem namespace) at or below *prefix* that holds entries."""
        where = encode_namespace(prefix) if prefix else None
        out = []
        for name in self._manager.namespaces(where):
            ns = decode_namespace(name)
            if ns is not None:
                out.append((ns, name))
        return out

    def _item(self, namespace: tuple[str, ...], entry: MemoryEntry) -> Item:
        created = _created(entry)
        updated = float(entry.metadata.get(UPDATED_AT, created))
        return Item(
            value=entry.value,
            key=entry.key,
            namespace=namespace,
            created_at=_when(created),
            updated_at=_when(updated),
        )

    def _get(self, op: GetOp, known: set[str], refresh: dict[str, set[str]]) -> Item | None:
        name = encode_namespace(op.namespace)
        if name not in known:
            return None  # no view is opened for a namespace that holds nothing
        # every tier, moving nothing: an item read or archived through the manager by other code is still found
        entry = self._view(name).get_many([op.key])[0]
        if entry is None or not isinstance(entry.value, dict):
            return None
        if op.refresh_ttl and entry.ttl is not None:
            refresh.setdefault(name, set()).add(entry.key)
        return self._item(op.namespace, entry)

    def _listing(
        self,
        views: Sequence[tuple[tuple[str, ...], str, MemoryManager]],
        flt: Mapping[str, Any] | None,
        exclude: set[tuple[tuple[str, ...], str]],
    ) -> list[Row]:
        """Items under the views that pass *flt*, oldest first (updates keep an item's place)."""
        rows: list[Row] = []
        for ns, _, view in views:
            held = {
                e.key: e for e in view.short_tier.scan()
            }  # promoted there by a read through the manager
            held.update((e.key, e) for e in view.long_tier.scan())
            for entry in held.values():
                value = entry.value
                if not isinstance(value, dict) or (ns, entry.key) in exclude:
                    continue
                if matches_filter(value, flt):
                    rows.append((None, ns, entry.key, value, entry.metadata, _created(entry)))
        rows.sort(key=lambda row: row[5])
        return rows

    def _ranked(
        self,
        views: Sequence[tuple[tuple[str, ...], str, MemoryManager]],
        op: SearchOp,
        query: str,
    ) -> list[Row]:
        """Hits of *query* under every view that pass the filter, best first.

        Each namespace is searched by keyword (FTS5 BM25, whose statistics span every namespace) and/or by meaning
        (cosine similarity); the candidates of all namespaces are then ranked together, a hybrid score fusing both
        sides with agentmem's :func:`~agentmem_plugin.search.fuse`. So an item scores the same whichever prefix
        finds it.
        """
        want = op.offset + op.limit
        sides = [side for side in ("keyword", "semantic") if self.mode in (side, "hybrid")]
        lists: dict[str, list[tuple[str, float]]] = {side: [] for side in sides}
        found: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {}
        for ns, name, view in views:
            size = view.long_tier.count()
            if size == 0:
                continue
            depth = min(size, max(want * (10 if op.filter else 2), 20))
            for side in sides:
                for hit in view.long_term.search(query, depth, mode=side):
                    value, meta = hit["value"], hit["metadata"]
                    if not isinstance(value, dict) or not matches_filter(value, op.filter):
                        continue
                    if self.mode != "keyword" and meta.get(INDEX) is False:
                        continue  # index=False: never ranked by a query (it still follows, unranked)
                    uid = f"{name}\x00{hit['key']}"
                    found[uid] = (ns, hit)
                    lists[side].append((uid, float(hit["score"])))
        if self.mode == "hybrid":
            weight = self._manager.long_term.keyword_weight
            scored = fuse(lists["keyword"], lists["semantic"], keyword_weight=weight)
        else:
            scored = sorted(lists[self.mode], key=lambda pair: (-pair[1], pair[0]))
        rows: list[Row] = []
        for uid, score in scored:
            ns, hit = found[uid]
            meta = hit["metadata"]
            created = float(meta.get(CREATED_AT, 0.0))
            rows.append((score, ns, hit["key"], hit["value"], meta, created))
        return rows

    def _search(self, op: SearchOp, refresh: dict[str, set[str]]) -> list[SearchItem]:
        if op.limit == 0:
            return []
        views = [(ns, name, self._view(name)) for ns, name in self._namespaces(op.namespace_prefix)]
        want = op.offset + op.limit
        query = op.query.strip() if op.query else ""
        rows = self._ranked(views, op, query) if query else []
        if len(rows) < want:
            seen = {(row[1], row[2]) for row in rows}
            rows += self._listing(views, op.filter, seen)
        page = rows[op.offset : want]
        out = []
        for score, ns, key, value, meta, created in page:
            updated = float(meta.get(UPDATED_AT, created))
            out.append(
                SearchItem(
                    namespace=ns,
                    key=key,
                    value=value,
                    created_at=_when(created),
                    updated_at=_when(updated),
                    score=score,
                )
            )
            if op.refresh_ttl:
                refresh.setdefault(encode_namespace(ns), set()).add(key)
        return out

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = list(op.match_conditions or ())
        prefix: list[str] = []
        for match_type, path in conditions:
            if match_type == "prefix":
                for label in path:
                    if label == "*":
                        break
                    prefix.append(label)
                break
        found = []
        for ns, name in self._namespaces(tuple(prefix)):
            if (
                all(matches_condition(c, ns) for c in conditions)
                and self._view(name).long_tier.count()
            ):
                found.append(ns)
        if op.max_depth is not None:
            found = sorted({ns[: op.max_depth] for ns in found})
        else:
            found.sort()
        return found[op.offset : op.offset + op.limit]

    # -- writes --------------------------------------------------------------------------------------------------

    def _refresh(self, refresh: Mapping[str, set[str]]) -> None:
        """Restart the TTL of the items read (those stored with one): re-store them with a new expiry."""
        now = self._manager.clock()
        for name, keys in refresh.items():
            view = self._view(name)
            fresh = []
            for entry in view.long_tier.get_many(sorted(keys), touch=False):
                if entry is not None and entry.ttl is not None:
                    entry.created_at, entry.expires_at = now, now + entry.ttl
                    fresh.append(entry)
            if fresh:
                view.store_many(fresh, "long_term")

    def _apply_puts(self, puts: Mapping[tuple[tuple[str, ...], str], PutOp]) -> None:
        now = self._manager.clock()
        grouped: dict[tuple[str, ...], list[PutOp]] = {}
        for (ns, _), op in puts.items():
            grouped.setdefault(ns, []).append(op)
        known: set[str] | None = None
        for ns, ops in grouped.items():
            name = encode_namespace(ns)
            writes = [op for op in ops if op.value is not None]
            deletes = [op.key for op in ops if op.value is None]
            if not writes:
                if known is None:
                    known = self._known()
                if name not in known:
                    continue  # nothing to delete there: open no view
            view = self._view(name)
            if writes:
                previous = view.long_tier.get_many([op.key for op in writes], touch=False)
                entries = []
                for op, prev in zip(writes, previous, strict=True):
                    assert op.value is not None
                    created = (
                        _created(prev) if prev is not None and isinstance(prev.value, dict) else now
                    )
                    meta: dict[str, Any] = {CREATED_AT: created, UPDATED_AT: now}
                    if op.index is not None:
                        meta[INDEX] = False if op.index is False else list(op.index)
                    entries.append(
                        MemoryEntry(
                            op.key,
                            dict(op.value),
                            ttl=ttl_seconds(op.ttl),
                            metadata=meta,
                            clock=self._manager.clock,
                        )
                    )
                view.store_many(entries, "long_term")
            for key in deletes:
                view.delete(key)

    # -- TTL -------------------------------------------------------------------------------------------------------

    def sweep_ttl(self) -> int:
        """Delete expired items now (they are already invisible); return how many were deleted."""
        with self._lock:
            self._check_open()
            removed = 0
            for _, name in self._namespaces(()):
                removed += self._view(name).long_term.cleanup()
            return removed

    def start_ttl_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> concurrent.futures.Future[None]:
        """Start a daemon thread calling :meth:`sweep_ttl` every *sweep_interval_minutes*.

        The interval defaults to ``TTLConfig.sweep_interval_minutes``, else 5 minutes. Calling it again while a
        sweeper runs returns a new future and starts nothing.

        Returns:
            A future that completes when the sweeper stops (cancelling it stops the sweeper).

        Raises:
            InvalidArgumentError: a bad interval.

        """
        config = self.ttl_config or {}
        minutes = (
            sweep_interval_minutes or config.get("sweep_interval_minutes") or _DEFAULT_SWEEP_MINUTES
        )
        interval = ttl_seconds(minutes, what="sweep_interval_minutes")
        assert interval is not None
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        future.add_done_callback(lambda f: self._stop_sweeping.set() if f.cancelled() else None)
        if self._sweeper is not None and self._sweeper.is_alive():
            logger.info("the TTL sweeper already runs")
            return future
        self._stop_sweeping.clear()
        stop = self._stop_sweeping

        def sweep_loop() -> None:
            while not stop.wait(interval):
                try:
                    swept = self.sweep_ttl()
                except Exception:
                    logger.exception("TTL sweep failed")
                    continue
                if swept:
                    logger.info("TTL sweep deleted %d expired items", swept)
            if not future.done():
                future.set_result(None)

        self._sweeper = threading.Thread(
            target=sweep_loop, name="agentmem-ttl-sweeper", daemon=True
        )
        self._sweeper.start()
        return future

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the TTL sweeper; return True when it stopped (or was not running) within *timeout* seconds."""
        thread = self._sweeper
        if thread is None or not thread.is_alive():
            return True
        self._stop_sweeping.set()
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("the TTL sweeper did not stop within %s seconds", timeout)
            return False
        self._sweeper = None
        return True

    # -- maintenance -------------------------------------------------------------------------------------------

    def reindex(self) -> int:
        """Re-embed every item (after changing ``index.fields`` or the embedder); return how many were indexed.

        Raises:
            InvalidArgumentError: the store has no index.

        """
        with self._lock:
            self._check_open()
            if self._manager.long_term.embedder is None:
                raise InvalidArgumentError("this store has no index: nothing to reindex")
            return sum(self._view(name).long_term.reindex() for _, name in self._namespaces(()))

    def close(self) -> None:
        """Stop the TTL sweeper and close the manager (unless it was passed in). Idempotent."""
        self.stop_ttl_sweeper()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._owns_manager:
                self._manager.close()

    def __enter__(self) -> AgentMemStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self._manager.storage_path
        return f"{type(self).__name__}(storage_path={str(where) if where else None!r}, mode={self.mode!r})"
