"""`AgentMemStore`: a LangGraph ``BaseStore`` backed by one agentmem ``MemoryManager``.

Mapping:

* A LangGraph namespace tuple is an agentmem namespace (``manager.with_namespace(...)``: views over the same
  storage). Labels are escaped reversibly (``%`` -> ``%25``, ``/`` -> ``%2F``), so every label LangGraph accepts
  can be stored although agentmem reserves ``/`` as its separator.
* An item is a **long-term** entry: the value dict is the entry value; ``created_at``/``updated_at`` (POSIX
  seconds), the per-item ``index`` choice, the item's vectors and its TTL live in the entry metadata under
  ``_lg_created_at``, ``_lg_updated_at``, ``_lg_index``, ``_lg_vectors``, ``_lg_ttl`` and ``_lg_expires_at``. A
  put keeps ``created_at``.
* **Vectors**, as LangGraph's stores keep them: one per text each index path extracts (``"items[*].text"`` gives
  one per element), computed by the store with the ``IndexConfig.embed`` model and stored with the item (float32,
  base64). A query's score is the best of the item's vectors under ``distance_type``: cosine similarity (default),
  ``inner_product`` (the dot product) or ``l2`` (minus the Euclidean distance), as ``PostgresStore`` reports them:
  absolute, comparable across queries and namespaces.
* **TTL** (minutes) is kept by the store, not by agentmem's tiers, so ``TTLConfig.omit_expired`` means what it
  means in LangGraph: False (the default) returns expired items until a sweep deletes them; True hides them from
  gets, searches and namespace listings at once.
* ``batch(ops)`` validates every op first (a bad op raises and nothing is written), then runs the reads against the
  state before the batch, then the writes (the last put of a key wins), like LangGraph's own stores.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextvars
import inspect
import logging
import math
import struct
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from os import PathLike
from typing import Any, Literal

from agentmem_plugin.embeddings import CallableEmbedder, Embedder, LangChainEmbedder, as_embedder
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

__all__ = [
    "DISTANCE_TYPES",
    "AgentMemStore",
    "AsyncAgentMemStore",
    "DistanceType",
    "SearchMode",
    "item_embed_text",
]

logger = logging.getLogger(__name__)

SearchMode = Literal["hybrid", "keyword", "semantic"]
DistanceType = Literal["cosine", "l2", "inner_product"]
DISTANCE_TYPES: tuple[str, ...] = ("cosine", "l2", "inner_product")
"""The ``IndexConfig`` ``distance_type`` values (those of LangGraph's ``PostgresStore``); default cosine."""

CREATED_AT = "_lg_created_at"
UPDATED_AT = "_lg_updated_at"
INDEX = "_lg_index"
VECTORS = "_lg_vectors"
TTL_MINUTES = "_lg_ttl"
EXPIRES_AT = "_lg_expires_at"

_UNBOUNDED = (
    2**62
)  # long-term limit of a manager the store builds: items are never archived for capacity
_MODES: tuple[str, ...] = ("hybrid", "keyword", "semantic")
_INDEX_KEYS = frozenset({"dims", "embed", "fields", "distance_type"})
_TTL_KEYS = frozenset({"default_ttl", "refresh_on_read", "sweep_interval_minutes", "omit_expired"})
_DEFAULT_SWEEP_MINUTES = 5.0

Row = tuple[float | None, tuple[str, ...], MemoryEntry]
"""A search row: score (None: unranked), namespace, entry."""


# -- what gets embedded ---------------------------------------------------------------------------------------


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


def _texts(value: Mapping[str, Any], paths: Sequence[str]) -> list[str]:
    """Return the texts LangGraph embeds for *value*: one per path, or one per element of a ``[*]`` path."""
    out: list[str] = []
    for path in paths:
        tokens: str | list[str] = "$" if path == "$" else tokenize_path(path)
        out.extend(text for text in get_text_at_path(dict(value), tokens) if text)
    return out


def item_embed_text(fields: Sequence[str] | None = None) -> Callable[[MemoryEntry], str | None]:
    """Return an ``embed_text`` hook making a ``MemoryManager``'s own semantic index embed items by their fields.

    The store ranks queries with the vectors it keeps itself, so a manager you bring needs no embedder. Give it
    one (with this hook) only if other code searches the manager by meaning: an item is then embedded once by the
    texts of *fields* (or its put's ``index`` paths) joined by newlines; ``index=False`` keeps it out (None).
    Entries not written by an :class:`AgentMemStore` keep agentmem's default text.

    Example:
        >>> mm = MemoryManager(embedder="default", embed_text=item_embed_text(["text"]))  # doctest: +SKIP

    Raises:
        InvalidArgumentError: *fields* is not a list of non-empty str.

    """
    default = _check_fields(fields)

    def embed_text(entry: MemoryEntry) -> str | None:
        value, meta = entry.value, entry.metadata
        if CREATED_AT not in meta or not isinstance(value, dict):
            return embedding_text(entry.key, value, entry.tags)
        choice = meta.get(INDEX)
        if choice is False:
            return None
        return "\n".join(_texts(value, choice if isinstance(choice, list) else default)) or None

    return embed_text


# -- vectors ------------------------------------------------------------------------------------------------------


def _pack(vector: Sequence[float]) -> str:
    """Return a vector as base64 of little-endian float32 (JSON-safe, 4 bytes a dimension)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def _unpack(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def _score(distance: str, query: Sequence[float], vector: Sequence[float]) -> float:
    """Return the similarity LangGraph's stores report: cosine, the dot product, or minus the l2 distance."""
    if distance == "l2":
        return -math.sqrt(sum((a - b) ** 2 for a, b in zip(query, vector, strict=True)))
    dot = sum(a * b for a, b in zip(query, vector, strict=True))
    if distance == "inner_product":
        return dot
    norms = math.sqrt(sum(a * a for a in query)) * math.sqrt(sum(b * b for b in vector))
    return dot / norms if norms > 0 else 0.0


def _best_scores(
    distance: str, query: Sequence[float], items: Sequence[Sequence[str]]
) -> list[float | None]:
    """Return the best score of each item's packed vectors (None: an item without vectors)."""
    try:
        import numpy as np
    except (
        ImportError
    ):  # pragma: no cover - numpy comes with the semantic extra; pure Python otherwise
        return [
            max((_score(distance, query, _unpack(v)) for v in vectors), default=None)
            for vectors in items
        ]
    flat = [v for vectors in items for v in vectors]
    if not flat:
        return [None] * len(items)
    matrix = np.frombuffer(b"".join(base64.b64decode(v) for v in flat), dtype="<f4")
    matrix = matrix.reshape(len(flat), -1).astype(np.float64)
    q = np.asarray(query, dtype=np.float64)
    if distance == "l2":
        scores = -np.linalg.norm(matrix - q, axis=1)
    else:
        scores = matrix @ q
        if distance == "cosine":
            norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(q)
            scores = np.divide(scores, norms, out=np.zeros_like(scores), where=norms > 0)
    out: list[float | None] = []
    at = 0
    for vectors in items:
        n = len(vectors)
        out.append(float(scores[at : at + n].max()) if n else None)
        at += n
    return out


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
        embedder = LangChainEmbedder(
            embed, normalize=False
        )  # raw vectors: l2 and inner product need them
    elif callable(embed):
        name = str(getattr(embed, "__qualname__", type(embed).__name__))
        is_async = inspect.iscoroutinefunction(embed) or inspect.iscoroutinefunction(
            getattr(embed, "__call__", None)  # noqa: B004 - an object with an async __call__
        )
        embedder = CallableEmbedder(
            _sync_call(embed) if is_async else embed, name=name, normalize=False
        )
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


def _is_item(entry: MemoryEntry | None) -> bool:
    return entry is not None and isinstance(entry.value, dict)


class _AgentMemStoreBase(BaseStore):
    """Everything of :class:`AgentMemStore` but the TTL sweeper (sync there, async in AsyncAgentMemStore)."""

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
        self.ttl_config = _check_ttl_config(ttl)
        if mode is not None and mode not in _MODES:
            raise InvalidArgumentError(f"mode must be one of {', '.join(_MODES)}; got {mode!r}")
        self.index_config: IndexConfig | None = None
        self._embedder: Embedder | None = None
        self._fields: list[str] = ["$"]
        self.distance_type: DistanceType = "cosine"
        if index is not None:
            if not isinstance(index, Mapping):
                raise InvalidArgumentError(f"index must be an IndexConfig dict, got {index!r:.80}")
            unknown = sorted(set(index) - _INDEX_KEYS)
            if unknown:
                raise InvalidArgumentError(
                    f"unknown IndexConfig keys {unknown}; AgentMemStore supports "
                    f"{', '.join(sorted(_INDEX_KEYS))}"
                )
            distance: DistanceType = index.get("distance_type", "cosine")  # type: ignore[assignment]
            if distance not in DISTANCE_TYPES:
                raise InvalidArgumentError(
                    f"index distance_type must be one of {', '.join(DISTANCE_TYPES)}; got {distance!r}"
                )
            self._fields = _check_fields(index.get("fields"))
            self._embedder = _embedder(index)
            self.distance_type = distance
            self.index_config = IndexConfig(**index)
            self.index_config["fields"] = self._fields
        if manager is not None:
            if storage_path is not None or clock is not None:
                raise InvalidArgumentError(
                    "pass either manager= or storage_path/clock: a manager brings its own storage and clock"
                )
            self._manager, self._owns_manager = manager, False
            if manager.long_term_limit < _UNBOUNDED:
                logger.warning(
                    "the manager's long_term_limit is %d: items beyond it move to the archive, where searches "
                    "and listings of this store do not look (gets still find them); build the manager with a "
                    "larger long_term_limit",
                    manager.long_term_limit,
                )
            if self._embedder is None and manager.long_term.embedder is not None:
                self._embedder = (
                    manager.long_term.embedder
                )  # no index given: embed with the manager's model
        else:
            # the store keeps the vectors itself: the manager needs no semantic index of its own
            self._manager = MemoryManager(
                long_term_limit=_UNBOUNDED, storage_path=storage_path, clock=clock
            )
            self._owns_manager = True
        if mode in ("hybrid", "semantic") and self._embedder is None:
            raise InvalidArgumentError(
                f"mode={mode!r} needs an index, e.g. index={{'embed': 'default', 'dims': 384}}"
            )
        self.mode: SearchMode = mode or ("semantic" if self._embedder is not None else "keyword")

    # -- construction helpers ------------------------------------------------------------------------------------

    @classmethod
    def from_path(
        cls,
        path: str | PathLike[str],
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        mode: SearchMode | None = None,
    ) -> Any:
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

    @property
    def omit_expired(self) -> bool:
        """Whether expired items are hidden before a sweep deletes them (``TTLConfig.omit_expired``)."""
        return bool(self.ttl_config and self.ttl_config.get("omit_expired"))

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
            now = self._manager.clock()
            results: list[Result] = [None] * len(checked)
            puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
            refresh: dict[str, set[str]] = {}
            queries = self._embed_queries(checked)
            for i, op in enumerate(checked):
                if isinstance(op, GetOp):
                    results[i] = self._get(op, refresh, now)
                elif isinstance(op, SearchOp):
                    results[i] = self._search(op, refresh, now, queries)
                elif isinstance(op, ListNamespacesOp):
                    results[i] = self._list_namespaces(op, now)
                else:
                    puts.pop((op.namespace, op.key), None)
                    puts[(op.namespace, op.key)] = op
            if refresh:
                self._refresh(refresh, now)
            if puts:
                self._apply_puts(puts, now)
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

    def _view(self, name: str) -> MemoryManager:
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

    def _visible(self, entry: MemoryEntry | None, now: float) -> bool:
        if entry is None or not isinstance(entry.value, dict):
            return False
        expires = entry.metadata.get(EXPIRES_AT)
        return not (self.omit_expired and expires is not None and float(expires) <= now)

    def _item(self, namespace: tuple[str, ...], entry: MemoryEntry, score: Any = False) -> Any:
        created = _created(entry)
        updated = float(entry.metadata.get(UPDATED_AT, created))
        fields: dict[str, Any] = {
            "value": entry.value,
            "key": entry.key,
            "namespace": namespace,
            "created_at": _when(created),
            "updated_at": _when(updated),
        }
        return Item(**fields) if score is False else SearchItem(**fields, score=score)

    def _get(self, op: GetOp, refresh: dict[str, set[str]], now: float) -> Item | None:
        name = encode_namespace(op.namespace)
        # one namespace, every tier, moving nothing: found even when read or archived through the manager
        entry = self._view(name).get_many([op.key])[0]
        if entry is None or not self._visible(entry, now):
            return None
        if op.refresh_ttl and entry.metadata.get(TTL_MINUTES) is not None:
            refresh.setdefault(name, set()).add(entry.key)
        item: Item = self._item(op.namespace, entry)
        return item

    def _held(self, view: MemoryManager) -> list[MemoryEntry]:
        """Return the items of one namespace (long-term, and any a read through the manager promoted)."""
        held = {e.key: e for e in view.short_tier.scan()}
        held.update((e.key, e) for e in view.long_tier.scan())
        return list(held.values())

    def _embed_queries(self, ops: Sequence[Op]) -> dict[str, list[float]]:
        if self._embedder is None or self.mode == "keyword":
            return {}
        wanted = {
            op.query.strip()
            for op in ops
            if isinstance(op, SearchOp) and op.query and op.query.strip() and op.limit
        }
        return {query: list(self._embedder.embed_query(query)) for query in sorted(wanted)}

    def _keyword_scores(
        self, views: Sequence[tuple[tuple[str, ...], str, MemoryManager]], query: str
    ) -> dict[tuple[tuple[str, ...], str], float]:
        """BM25 scores of the items matching *query*'s words (FTS5, statistics over the whole store)."""
        scores: dict[tuple[tuple[str, ...], str], float] = {}
        for ns, _, view in views:
            size = view.long_tier.count()
            if size:
                for hit in view.long_term.search(query, size, mode="keyword"):
                    scores[(ns, hit["key"])] = float(hit["score"])
        return scores

    def _ranked(
        self,
        views: Sequence[tuple[tuple[str, ...], str, MemoryManager]],
        rows: list[tuple[tuple[str, ...], MemoryEntry]],
        query: str,
        vector: list[float] | None,
    ) -> list[Row]:
        """*rows* ordered by the query: scored items best first, then the unscored ones (``score=None``)."""
        semantic: dict[tuple[tuple[str, ...], str], float] = {}
        if vector is not None and self.mode in ("semantic", "hybrid"):
            best = _best_scores(
                self.distance_type, vector, [e.metadata.get(VECTORS) or [] for _, e in rows]
            )
            semantic = {
                (ns, e.key): s for (ns, e), s in zip(rows, best, strict=True) if s is not None
            }
        keyword: dict[tuple[tuple[str, ...], str], float] = {}
        if self.mode in ("keyword", "hybrid"):
            admitted = {  # hybrid: index=False keeps an item out of ranking on both sides
                (ns, e.key)
                for ns, e in rows
                if self.mode == "keyword" or e.metadata.get(INDEX) is not False
            }
            keyword = {
                uid: s for uid, s in self._keyword_scores(views, query).items() if uid in admitted
            }
        if self.mode == "semantic":
            scores = semantic
        elif self.mode == "keyword":
            scores = keyword
        else:
            uids = {uid: f"{i}" for i, uid in enumerate(sorted(set(semantic) | set(keyword)))}
            fused = fuse(
                [(uids[u], s) for u, s in keyword.items()],
                [(uids[u], s) for u, s in semantic.items()],
                keyword_weight=self._manager.long_term.keyword_weight,
            )
            back = {v: u for u, v in uids.items()}
            scores = {back[k]: s for k, s in fused}
        scored = [(scores[(ns, e.key)], ns, e) for ns, e in rows if (ns, e.key) in scores]
        scored.sort(key=lambda row: -row[0])  # stable: equal scores keep the oldest-first order
        rest: list[Row] = [(None, ns, e) for ns, e in rows if (ns, e.key) not in scores]
        return [*scored, *rest]

    def _search(
        self,
        op: SearchOp,
        refresh: dict[str, set[str]],
        now: float,
        queries: Mapping[str, list[float]],
    ) -> list[SearchItem]:
        if op.limit == 0:
            return []
        views = [(ns, name, self._view(name)) for ns, name in self._namespaces(op.namespace_prefix)]
        rows = [
            (ns, entry)
            for ns, _, view in views
            for entry in self._held(view)
            if self._visible(entry, now) and matches_filter(entry.value, op.filter)
        ]
        rows.sort(key=lambda row: (_created(row[1]), row[0], row[1].key))  # no query: oldest first
        query = op.query.strip() if op.query else ""
        ranked: list[Row] = (
            self._ranked(views, rows, query, queries.get(query))
            if query
            else [(None, ns, e) for ns, e in rows]
        )
        out = []
        for score, ns, entry in ranked[op.offset : op.offset + op.limit]:
            out.append(self._item(ns, entry, score))
            if op.refresh_ttl and entry.metadata.get(TTL_MINUTES) is not None:
                refresh.setdefault(encode_namespace(ns), set()).add(entry.key)
        return out

    def _list_namespaces(self, op: ListNamespacesOp, now: float) -> list[tuple[str, ...]]:
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
            if not all(matches_condition(c, ns) for c in conditions):
                continue
            if self.omit_expired and not any(
                self._visible(e, now) for e in self._held(self._view(name))
            ):
                continue  # only expired items there: hidden like the items
            found.append(ns)
        if op.max_depth is not None:
            found = sorted({ns[: op.max_depth] for ns in found})
        else:
            found.sort()
        return found[op.offset : op.offset + op.limit]

    # -- writes --------------------------------------------------------------------------------------------------

    def _refresh(self, refresh: Mapping[str, set[str]], now: float) -> None:
        """Restart the TTL of the items read (those stored with one): a new expiry, same value and vectors."""
        for name, keys in refresh.items():
            view = self._view(name)
            fresh = []
            for entry in view.long_tier.get_many(sorted(keys), touch=False):
                minutes = None if entry is None else entry.metadata.get(TTL_MINUTES)
                if entry is not None and minutes is not None:
                    entry.metadata[EXPIRES_AT] = now + float(minutes) * 60.0
                    fresh.append(entry)
            if fresh:
                view.store_many(fresh, "long_term")

    def _vectors(self, ops: Sequence[PutOp]) -> list[list[str]]:
        """Return the packed vectors of each put: one per text its index paths extract (none without an index)."""
        if self._embedder is None:
            return [[] for _ in ops]
        texts: list[list[str]] = []
        for op in ops:
            assert op.value is not None
            if op.index is False:
                texts.append([])
            else:
                texts.append(_texts(op.value, self._fields if op.index is None else op.index))
        flat = [t for group in texts for t in group]
        vectors = iter(self._embedder.embed_documents(flat) if flat else [])
        return [[_pack(next(vectors)) for _ in group] for group in texts]

    def _apply_puts(self, puts: Mapping[tuple[tuple[str, ...], str], PutOp], now: float) -> None:
        grouped: dict[tuple[str, ...], list[PutOp]] = {}
        for (ns, _), op in puts.items():
            grouped.setdefault(ns, []).append(op)
        for ns, ops in grouped.items():
            view = self._view(encode_namespace(ns))
            writes = [op for op in ops if op.value is not None]
            if writes:
                previous = view.long_tier.get_many([op.key for op in writes], touch=False)
                entries = []
                for op, prev, vectors in zip(writes, previous, self._vectors(writes), strict=True):
                    assert op.value is not None
                    created = _created(prev) if prev is not None and _is_item(prev) else now
                    meta: dict[str, Any] = {CREATED_AT: created, UPDATED_AT: now}
                    if op.index is not None:
                        meta[INDEX] = False if op.index is False else list(op.index)
                    if vectors:
                        meta[VECTORS] = vectors
                    if op.ttl is not None:
                        meta[TTL_MINUTES] = float(op.ttl)
                        meta[EXPIRES_AT] = now + float(op.ttl) * 60.0
                    entries.append(
                        MemoryEntry(
                            op.key, dict(op.value), metadata=meta, clock=self._manager.clock
                        )
                    )
                view.store_many(entries, "long_term")
            for op in ops:
                if op.value is None:
                    view.delete(op.key)

    # -- TTL -------------------------------------------------------------------------------------------------------

    def _sweep_now(self) -> int:
        """Delete the items whose TTL has passed; return how many."""
        with self._lock:
            self._check_open()
            now = self._manager.clock()
            removed = 0
            for _, name in self._namespaces(()):
                view = self._view(name)
                for entry in self._held(view):
                    expires = entry.metadata.get(EXPIRES_AT)
                    if expires is not None and float(expires) <= now and view.delete(entry.key):
                        removed += 1
            return removed

    def _sweep_interval(self, sweep_interval_minutes: float | None) -> float:
        config = self.ttl_config or {}
        minutes = (
            sweep_interval_minutes or config.get("sweep_interval_minutes") or _DEFAULT_SWEEP_MINUTES
        )
        interval = ttl_seconds(minutes, what="sweep_interval_minutes")
        assert interval is not None
        return interval

    def _stop_sweeping_soon(self) -> None:
        """Ask a running sweeper to stop (without waiting)."""

    # -- maintenance -------------------------------------------------------------------------------------------

    def reindex(self) -> int:
        """Re-embed every item (after changing ``index.fields`` or the embedder); return how many were indexed.

        Raises:
            InvalidArgumentError: the store has no index.

        """
        with self._lock:
            self._check_open()
            if self._embedder is None:
                raise InvalidArgumentError("this store has no index: nothing to reindex")
            done = 0
            for ns, name in self._namespaces(()):
                view = self._view(name)
                items = [e for e in self._held(view) if _is_item(e)]
                ops = [PutOp(ns, e.key, e.value, index=e.metadata.get(INDEX)) for e in items]
                for entry, vectors in zip(items, self._vectors(ops), strict=True):
                    entry.metadata.pop(VECTORS, None)
                    if vectors:
                        entry.metadata[VECTORS] = vectors
                if items:
                    view.store_many(items, "long_term")
                done += len(items)
            return done

    def close(self) -> None:
        """Stop the TTL sweeper and close the manager (unless it was passed in). Idempotent."""
        self._stop_sweeping_soon()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._owns_manager:
                self._manager.close()

    def __repr__(self) -> str:
        where = self._manager.storage_path
        return f"{type(self).__name__}(storage_path={str(where) if where else None!r}, mode={self.mode!r})"


class AgentMemStore(_AgentMemStoreBase):
    """A LangGraph store keeping items in agentmem long-term memory: durable, namespaced, TTL, search by meaning.

    Items live in one :class:`~agentmem_plugin.manager.MemoryManager`: a directory (``storage_path``: SQLite, shared
    safely by several processes), memory only (``storage_path=None``), or a manager you pass in (SQLite, Redis,
    PostgreSQL, ...). Semantics are LangGraph's (see the module docstring): a query's score is the similarity of
    the item's best vector under ``distance_type``, comparable across calls as in ``InMemoryStore`` and
    ``PostgresStore``; items the query does not score follow with ``score=None``.

    Args:
        storage_path: Directory of a persistent store (created when missing); None keeps everything in memory.
        manager: Use this manager instead of building one (its namespace, if any, becomes the root of every
            LangGraph namespace; it stays open when the store closes). Without ``index``, a manager with an
            embedder lends it to the store.
        index: LangGraph ``IndexConfig``: ``embed`` is ``"default"`` (offline all-MiniLM-L6-v2, 384 dims), a
            LangChain ``Embeddings`` or a function (sync or async) ``list[str] -> vectors``; ``dims`` is checked
            against it; ``fields`` (default ``["$"]``) choose the texts embedded, one vector each;
            ``distance_type`` is ``"cosine"`` (default), ``"inner_product"`` or ``"l2"``.
        ttl: LangGraph ``TTLConfig``: ``default_ttl`` (minutes, for puts that give none), ``refresh_on_read``
            (default True), ``sweep_interval_minutes`` (for :meth:`start_ttl_sweeper`), ``omit_expired``
            (default False: expired items are returned until a sweep deletes them).
        mode: How a query ranks: ``"semantic"`` (default with an index: LangGraph's scores), ``"keyword"``
            (default without one; BM25, where LangGraph's stores ignore the query) or ``"hybrid"`` (ours: BM25
            and the vectors fused; scores relative to each query, not comparable across calls).
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
        self._sweeper: threading.Thread | None = None
        self._stop_sweeping = threading.Event()
        super().__init__(
            storage_path, manager=manager, index=index, ttl=ttl, mode=mode, clock=clock
        )

    def sweep_ttl(self) -> int:
        """Delete the expired items now; return how many were deleted."""
        return self._sweep_now()

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
        interval = self._sweep_interval(sweep_interval_minutes)
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

    def _stop_sweeping_soon(self) -> None:
        self.stop_ttl_sweeper()

    def __enter__(self) -> AgentMemStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncAgentMemStore(_AgentMemStoreBase):
    """:class:`AgentMemStore` for asyncio code: the same store, with LangGraph's async TTL sweeper methods.

    ``sweep_ttl``, ``start_ttl_sweeper`` and ``stop_ttl_sweeper`` are coroutines, as on LangGraph's
    ``AsyncPostgresStore`` and ``AsyncSqliteStore``; the sweeper is an ``asyncio.Task`` on the running loop. Use
    ``async with``; the ``a*`` methods (``aget``, ``aput``, ``asearch``...) run in a worker thread, and the sync
    ones work too. Arguments are :class:`AgentMemStore`'s.

    Example:
        >>> async def main():
        ...     async with AsyncAgentMemStore() as store:
        ...         await store.aput(("users", "u1"), "prefs", {"theme": "dark"})
        ...         return (await store.aget(("users", "u1"), "prefs")).value
        >>> asyncio.run(main())
        {'theme': 'dark'}

    """

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
        self._sweeper_task: asyncio.Task[None] | None = None
        self._sweeper_stop: asyncio.Event | None = None
        super().__init__(
            storage_path, manager=manager, index=index, ttl=ttl, mode=mode, clock=clock
        )

    async def sweep_ttl(self) -> int:
        """Delete the expired items now (in a worker thread); return how many were deleted."""
        return await asyncio.to_thread(self._sweep_now)

    async def start_ttl_sweeper(
        self, sweep_interval_minutes: float | None = None
    ) -> asyncio.Task[None]:
        """Start a task calling :meth:`sweep_ttl` every *sweep_interval_minutes* on the running loop.

        The interval defaults to ``TTLConfig.sweep_interval_minutes``, else 5 minutes. While one runs, calling it
        again returns the running task.

        Returns:
            The sweeper task (cancel it, or call :meth:`stop_ttl_sweeper`, to stop it).

        Raises:
            InvalidArgumentError: a bad interval.

        """
        interval = self._sweep_interval(sweep_interval_minutes)
        if self._sweeper_task is not None and not self._sweeper_task.done():
            return self._sweeper_task
        stop = self._sweeper_stop = asyncio.Event()

        async def sweep_loop() -> None:
            while True:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=interval)
                    return
                except asyncio.TimeoutError:
                    pass
                try:
                    swept = await self.sweep_ttl()
                except Exception:
                    logger.exception("TTL sweep failed")
                    continue
                if swept:
                    logger.info("TTL sweep deleted %d expired items", swept)

        self._sweeper_task = asyncio.get_running_loop().create_task(
            sweep_loop(), name="agentmem-ttl-sweeper"
        )
        return self._sweeper_task

    async def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper task; return True when it stopped (or was not running) within *timeout* seconds."""
        task = self._sweeper_task
        if task is None or task.done():
            return True
        assert self._sweeper_stop is not None
        self._sweeper_stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=timeout)
        except asyncio.TimeoutError:
            logger.warning("the TTL sweeper did not stop within %s seconds", timeout)
            return False
        self._sweeper_task = None
        return True

    def _stop_sweeping_soon(self) -> None:
        if self._sweeper_stop is not None:
            self._sweeper_stop.set()

    async def __aenter__(self) -> AsyncAgentMemStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_ttl_sweeper()
        await asyncio.to_thread(self.close)

    def __enter__(self) -> AsyncAgentMemStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
