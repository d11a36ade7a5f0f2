"""Chroma: the vector index behind semantic search, and a full tier for a Chroma server.

* :class:`ChromaIndex` is one Chroma collection used as an index: ids are entry keys, vectors come from *our*
  embedder (Chroma's default embedding function downloads a model at first use and fails offline, so it is never
  used). Writes are split into batches of ``client.get_max_batch_size()``. Cosine space.
* A namespace's vectors are rows of a shared table while they are few and **a collection of its own** past
  1,000 (see :mod:`agentmem_plugin.tiers.vectors`): a collection costs ~2.8 MB of memory whatever it holds, and a
  ``where`` filter on a shared collection costs what the collection holds, so no query is ever filtered. A
  Chroma server keeps a collection per namespace.
* :class:`SemanticIndex` keeps a :class:`ChromaIndex` in step with a tier that is the source of truth: it drains
  the tier's change feed (for SQLite an outbox written in the same transaction as the entry), embeds what
  changed, writes it to Chroma, and only then acknowledges the changes. A crash in between leaves the changes
  in the outbox; they are finished on the next open. A rebuild (:meth:`SemanticIndex.reindex`) records itself
  as in progress with the tier before it starts (the model is recorded as ``"rebuilding:<model>"``) and as
  complete only at its end, so one killed half-way is detected and finished on the next open; a collection
  that Chroma cannot read any more is dropped and rebuilt from the tier the same way.
* :class:`ChromaTier` stores whole entries in Chroma (for a shared Chroma server reached with ``HttpClient``);
  it implements the full tier contract.

Clients: ``PersistentClient`` under a path, ``EphemeralClient`` in memory (ephemeral clients share one
in-process store, so every in-memory index gets a unique collection name), ``HttpClient(host, port)``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextvars import ContextVar
from os import PathLike
from pathlib import Path
from typing import Any

from agentmem_plugin.codec import decode_json, encode_json
from agentmem_plugin.embeddings import Embedder, check_vectors
from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import (
    AgentMemError,
    EmbeddingError,
    IndexInUseError,
    InvalidArgumentError,
    MissingDependencyError,
    StorageError,
)
from agentmem_plugin.search import document_text
from agentmem_plugin.tiers.base import EvictionCallback, Tier, locate_in, storage_errors
from agentmem_plugin.tiers.vectors import (
    DEFAULT_LIMIT,
    GrowingIndex,
    VectorIndex,
    VectorTable,
    move_aside,
)
from agentmem_plugin.validation import validate_capacity

__all__ = [
    "REBUILDING",
    "ChromaIndex",
    "ChromaTier",
    "Progress",
    "SemanticIndex",
    "claim_index_dir",
    "collection_name",
    "embedding_text",
    "forget_client",
    "make_client",
    "release_index_dir",
    "report_progress",
]

logger = logging.getLogger(__name__)

_SAFE = re.compile(r"[^a-zA-Z0-9._-]+")

REBUILDING = "rebuilding:"
"""Prefix of the model a tier records while a rebuild of its semantic index is in progress (see
:meth:`SemanticIndex.reindex`): ``("rebuilding:all-MiniLM-L6-v2", 384)`` means "a rebuild with this model started
and has not finished"."""


def make_client(
    *,
    path: str | PathLike[str] | None = None,
    host: str | None = None,
    port: int = 8000,
    ssl: bool = False,
) -> Any:
    """Return a chromadb client with telemetry off.

    ``HttpClient`` when *host* is given, ``PersistentClient`` for *path*, else ``EphemeralClient``.

    The vectors under *path* are derived data (rebuilt from the store): when Chroma cannot open that directory
    (a damaged ``chroma.sqlite3``), it is moved aside to ``<path>.damaged-<n>`` (logged, never deleted) and a
    fresh one is created, which the semantic index then refills from the store.

    Raises:
        MissingDependencyError: chromadb is not installed.
        StorageError: the directory cannot be opened even after moving the damaged one aside.

    """
    try:
        import chromadb
        from chromadb.config import Settings
    except ImportError as exc:
        raise MissingDependencyError(
            'chromadb is needed for semantic memory; install it with: pip install "agentmem-plugin[semantic]"'
        ) from exc
    settings = Settings(anonymized_telemetry=False)
    if host is not None:
        return chromadb.HttpClient(host=host, port=port, ssl=ssl, settings=settings)
    if path is not None:
        try:
            return chromadb.PersistentClient(path=str(path), settings=settings)
        except Exception as exc:
            aside = move_aside(Path(path))
            logger.warning(
                "the semantic index at %s cannot be opened (%s: %s); moved it to %s and starting a new one "
                "(it is rebuilt from the store)",
                path,
                type(exc).__name__,
                exc,
                aside,
            )
            forget_client(path)
            try:
                return chromadb.PersistentClient(path=str(path), settings=settings)
            except Exception as again:
                raise StorageError(
                    f"the semantic index directory {str(path)!r} cannot be opened "
                    f"({type(again).__name__}: {again})"
                ) from again
    return chromadb.EphemeralClient(settings=settings)


_CLAIMS: dict[
    str, tuple[int, int]
] = {}  # resolved index directory -> (lock file descriptor, users here)
_CLAIMS_LOCK = threading.Lock()


def claim_index_dir(path: str | PathLike[str]) -> None:
    """Claim the local index directory *path* for this process (an exclusive ``flock`` on a file inside it).

    A persistent Chroma directory has one process as its user: Chroma keeps the index in the process's memory,
    so a second process would write over it unseen. Claims by one process nest (each :func:`release_index_dir`
    undoes one); the operating system drops the claim of a process that dies.

    Raises:
        IndexInUseError: another process holds *path*.

    """
    import fcntl

    where = Path(path)
    where.mkdir(parents=True, exist_ok=True)
    name = str(where.resolve())
    with _CLAIMS_LOCK:
        held = _CLAIMS.get(name)
        if held is not None:
            _CLAIMS[name] = (held[0], held[1] + 1)
            return
        fd = os.open(where / "agentmem.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise IndexInUseError(
                f"the semantic index at {name!r} is open in another process; to search by meaning from "
                "several processes, share a Chroma server (semantic='http://host:8000')"
            ) from None
        _CLAIMS[name] = (fd, 1)
        forget_client(where)  # a client cached before another process used the directory is stale


def release_index_dir(path: str | PathLike[str]) -> None:
    """Undo one :func:`claim_index_dir` of *path*; the last one lets another process claim it."""
    name = str(Path(path).resolve())
    with _CLAIMS_LOCK:
        held = _CLAIMS.get(name)
        if held is None:
            return
        if held[1] > 1:
            _CLAIMS[name] = (held[0], held[1] - 1)
            return
        del _CLAIMS[name]
        os.close(held[0])
        forget_client(
            path
        )  # the next claim may follow another process's writes: read the directory afresh


def forget_client(path: str | PathLike[str]) -> None:
    """Drop chromadb's in-process cache of the client for *path* only (it would hand back a stale one).

    Needed when the directory under a client was replaced (a restore) or damaged.
    """
    with contextlib.suppress(Exception):
        from chromadb.api.shared_system_client import SharedSystemClient

        SharedSystemClient._identifier_to_system.pop(str(path), None)
        SharedSystemClient._identifier_to_refcount.pop(str(path), None)


def collection_name(prefix: str, namespace: str) -> str:
    """Return a valid Chroma collection name for *namespace* (readable part plus a hash: never collides)."""
    readable = _SAFE.sub("-", namespace).strip("-._")[:40]
    digest = hashlib.sha256(namespace.encode()).hexdigest()[:10]
    return f"{prefix}-{readable}-{digest}" if readable else f"{prefix}-{digest}"


def embedding_text(key: str, value: Any, tags: Iterable[str] = ()) -> str:
    """Return the text an entry is embedded by: its value's text and tags (the key only when that is empty).

    Keys are identifiers (``D1:3``, ``user:42``) that add noise to a sentence embedding; values carry meaning.
    """
    text = document_text("", value, tags).strip()
    return text or key


class ChromaIndex:
    """One Chroma collection used as a vector index keyed by entry key.

    Args:
        client: A chromadb client (see :func:`make_client`).
        name: The collection name.
        dim: Expected vector dimension (checked on every write and query).

    """

    def __init__(self, client: Any, name: str, *, dim: int | None = None) -> None:
        self.client = client
        self.name = name
        self.dim = dim
        self.collection = client.get_or_create_collection(
            name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        self._batch = max(1, int(client.get_max_batch_size()))

    def _on_collection(self, op: Callable[[Any], Any]) -> Any:
        """Run ``op(collection)``, opening the collection by name again once when Chroma no longer knows it.

        That happens when another index object on the store dropped and recreated the collection (a rebuild).
        """
        try:
            return op(self.collection)
        except Exception as exc:
            if type(exc).__name__ != "NotFoundError":
                raise
        self.collection = self.client.get_or_create_collection(
            self.name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )
        return op(self.collection)

    def upsert(
        self,
        keys: Sequence[str],
        vectors: Sequence[Sequence[float]],
        metadatas: Sequence[dict[str, Any]] | None = None,
        documents: Sequence[str] | None = None,
    ) -> None:
        """Insert or replace vectors (and optional metadata/documents), in batches of the client's maximum."""
        if not keys:
            return
        rows = check_vectors(vectors, len(keys), self.dim, source=self.name)
        for start in range(0, len(keys), self._batch):
            end = start + self._batch
            kwargs: dict[str, Any] = {"ids": list(keys[start:end]), "embeddings": rows[start:end]}
            if metadatas is not None:
                kwargs["metadatas"] = [m or None for m in metadatas[start:end]]
            if documents is not None:
                kwargs["documents"] = list(documents[start:end])
            self._on_collection(functools.partial(_upsert, **kwargs))

    def delete(self, keys: Sequence[str]) -> None:
        """Remove *keys* (missing ones are ignored)."""
        for start in range(0, len(keys), self._batch):
            chunk = list(keys[start : start + self._batch])
            self._on_collection(functools.partial(_delete, ids=chunk))

    def query(
        self, vector: Sequence[float], k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        """Return up to *k* ``(key, cosine similarity)`` pairs, most similar first.

        No ``count()`` first: it costs milliseconds at 100k vectors, and Chroma returns fewer hits when it has
        fewer than *k*.
        """
        if k <= 0:
            return []
        row = check_vectors([vector], 1, self.dim, source=self.name)
        result = self._on_collection(
            lambda c: c.query(query_embeddings=row, n_results=k, where=where, include=["distances"])
        )
        return [
            (key, 1.0 - float(d))
            for key, d in zip(result["ids"][0], result["distances"][0], strict=True)
        ]

    def get(
        self,
        keys: Sequence[str] | None = None,
        *,
        include: Sequence[str] = ("metadatas",),
        where: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Return Chroma's ``get`` result for *keys* (all when None)."""
        ids = None if keys is None else list(keys)
        return dict(
            self._on_collection(lambda c: c.get(ids=ids, where=where, include=list(include)))
        )

    def present(self, keys: Sequence[str]) -> set[str]:
        """Return the keys among *keys* that have a vector."""
        found: set[str] = set()
        for start in range(0, len(keys), 10_000):
            found.update(self.get(keys[start : start + 10_000], include=[])["ids"])
        return found

    def count(self) -> int:
        """Return the number of vectors."""
        return int(self._on_collection(lambda c: c.count()))

    def check(self) -> None:
        """Read one vector: a damaged segment shows on the first read, not when the collection is opened."""
        if self.count() > 0:
            self.collection.get(limit=1, include=[])

    def clear(self) -> None:
        """Drop every vector (the collection is recreated)."""
        self.client.delete_collection(self.name)
        self.collection = self.client.get_or_create_collection(
            self.name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )


def _upsert(collection: Any, **kwargs: Any) -> None:
    collection.upsert(**kwargs)


def _delete(collection: Any, ids: list[str]) -> None:
    collection.delete(ids=ids)


def _keys_of(tier: Tier) -> list[str]:
    """Return the keys *tier* may hold: the archive's key index (no blob opened), or its live keys."""
    return tier.archived_keys() or tier.keys()


def _may_hold_entries(tier: Tier) -> bool:
    """Return True when *tier* may hold entries (the archive answers from its key index, without a scan)."""
    return bool(tier.archived_keys()) or tier.count() > 0


ProgressHook = Callable[[str, "int | None"], Callable[[int], None]]
"""``hook(description, total or None) -> advance(count)``: where a long embedding job reports (see
:func:`report_progress`)."""

_PROGRESS_HOOK: ContextVar[ProgressHook | None] = ContextVar("agentmem_progress_hook", default=None)


@contextlib.contextmanager
def report_progress(hook: ProgressHook) -> Iterator[None]:
    """Send the progress of every long embedding job started in this context to *hook* (instead of tqdm/logs).

    The CLI uses it to show embedding inside its own progress display.

    Example:
        >>> done = []
        >>> with report_progress(lambda desc, total: done.append):
        ...     Progress("embedding", "index", total=2).update(2)
        >>> done
        [2]

    """
    token = _PROGRESS_HOOK.set(hook)
    try:
        yield
    finally:
        _PROGRESS_HOOK.reset(token)


class Progress:
    """Reports a long embedding job: a tqdm bar when stderr is a terminal, an INFO log line per batch otherwise.

    Inside :func:`report_progress`, the hook given there receives the progress instead.

    Args:
        desc: What is being done (``"embedding"``, ``"reindexing"``).
        where: The index's name, for the log lines.
        total: Entries to process, when known.

    Example:
        >>> p = Progress("embedding", "agentmem-long_term", total=3)
        >>> p.update(3); p.close()
        >>> p.done
        3

    """

    def __init__(self, desc: str, where: str, *, total: int | None = None) -> None:
        self.desc, self.where, self.total = desc, where, total
        self.done = 0
        self._started = time.monotonic()
        self._bar: Any = None
        hook = _PROGRESS_HOOK.get()
        self._advance = None if hook is None else hook(desc, total)
        if self._advance is None and sys.stderr.isatty():
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm comes with the semantic extra
                pass
            else:
                self._bar = tqdm(total=total, desc=desc, unit="entry")

    def update(self, count: int) -> None:
        """Count *count* more entries done (one batch)."""
        self.done += count
        if self._advance is not None:
            self._advance(count)
            return
        if self._bar is not None:
            self._bar.update(count)
            return
        rate = self.done / max(time.monotonic() - self._started, 1e-9)
        of = "" if self.total is None else f" of {self.total}"
        logger.info("%s %s: %d%s entries (%.0f/s)", self.where, self.desc, self.done, of, rate)

    def close(self) -> None:
        """Close the bar (if any)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class SemanticIndex:
    """Keeps a :class:`ChromaIndex` in step with the tiers it covers, through their change feeds.

    One index covers every tier of a namespace (short-term, long-term, the archive): its ids are memory keys, not
    tier positions, so a memory that moves between tiers keeps its vector (the move changes both tiers' feeds; the
    key is then found in its new tier and its text, unchanged, is a hit of the embedding cache, not a model call).
    A key is resolved in the order of *sources* (the manager's read order); a vector whose key no tier holds any
    more is dropped.

    Args:
        tier: The home tier: it records the index's model (``index_meta``) and its feed is applied first.
        embedder: The embedder (wrap it in a ``CachedEmbedder`` to embed each text once).
        client: A chromadb client.
        collection: The collection name.
        batch_size: Changes applied per embedding call.
        reindex: Rebuild when the store was indexed with another model (instead of refusing).
        text_fn: ``fn(entry) -> str | None``: the text an entry is embedded by (None keeps it out).
        sources: ``(name, tier)`` pairs in read order, *tier* among them (default: *tier* alone). The name is
            reported with each hit by :meth:`search_located`.
        table: A shared :class:`~agentmem_plugin.tiers.vectors.VectorTable`: the vectors are its rows while
            they are few, and move to a Chroma collection past *table_limit* (see
            :mod:`agentmem_plugin.tiers.vectors`). None: a Chroma collection from the start (a Chroma server).
        table_limit: Vectors kept in *table* before the index moves to Chroma.

    Raises:
        EmbeddingError: the store was indexed with another model or dimension and *reindex* is False.

    """

    def __init__(
        self,
        tier: Tier,
        embedder: Embedder,
        client: Any,
        collection: str,
        *,
        batch_size: int = 256,
        reindex: bool = False,
        text_fn: Callable[[MemoryEntry], str | None] | None = None,
        sources: Sequence[tuple[str, Tier]] | None = None,
        table: VectorTable | None = None,
        table_limit: int = DEFAULT_LIMIT,
    ) -> None:
        self.tier = tier
        self.table = table
        self.table_limit = table_limit
        self.sources: list[tuple[str, Tier]] = list(sources or [(tier.name, tier)])
        if not any(t is tier for _, t in self.sources):
            raise InvalidArgumentError(
                "the home tier of a semantic index must be one of its sources"
            )
        self.embedder = embedder
        self.text_fn = text_fn
        self.client = client
        self.batch_size = batch_size
        self.failed = 0  # entries that could not be embedded during sync (logged, left unindexed)
        self.on_close: Callable[[], None] | None = None  # called once by close()
        # close() closes the embedder's cache; False for an index sharing another index's embedder.
        self.owns_cache = True
        self._lock = threading.RLock()
        self._base = collection
        model, dim = embedder.name, embedder.dim
        recorded = tier.index_meta()
        interrupted = recorded is not None and recorded[0].startswith(REBUILDING)
        if interrupted:
            assert recorded is not None
            recorded = (recorded[0][len(REBUILDING) :], recorded[1])
        if recorded is not None and recorded != (model, dim) and not reindex:
            state = "was being reindexed (interrupted)" if interrupted else "was indexed"
            raise EmbeddingError(
                f"this store {state} with {recorded[0]!r} (dimension {recorded[1]}), not {model!r} "
                f"(dimension {dim}); open it with reindex=True to rebuild the semantic index with the new model"
            )
        # Each (model, dimension) gets its own collection: a rebuild for a new model fills a fresh collection and
        # switches to it only when complete, so a failed rebuild leaves the old index (and its model) in place.
        self.index, usable = self._open_collection(self._collection_for(model, dim), dim)
        if interrupted:
            logger.warning(
                "semantic index %s: a rebuild was interrupted (the process died); finishing it now",
                self.index.name,
            )
        stray = isinstance(self.index, GrowingIndex) and self.index.stray_collection()
        if stray:
            logger.warning(
                "semantic index %s: a Chroma collection beside the vector table (an interrupted move, or a "
                "store last opened by an older version); rebuilding it from the store",
                self.index.name,
            )
        if (
            interrupted
            or not usable
            or stray
            or recorded != (model, dim)
            or (self.index.count() == 0 and any(_may_hold_entries(t) for _, t in self.sources))
        ):
            self.reindex()
            if recorded is not None and recorded != (model, dim):
                # the old model's vectors are no longer needed
                self._drop(self._collection_for(*recorded))
        else:
            self._adopt_sources()
            self.sync()  # finish what a crash left in the outbox

    def _open_collection(self, name: str, dim: int) -> tuple[VectorIndex, bool]:
        """Open the collection *name*; when Chroma cannot read it, drop it and open it empty.

        Returns:
            The index, and False when it was unusable (it is empty now and must be rebuilt).

        Raises:
            StorageError: the collection cannot be opened even after dropping it.

        """
        try:
            index = self._index_named(name, dim)
            index.check()
            return index, True
        except AgentMemError:
            raise
        except Exception as exc:
            logger.warning(
                "semantic index %s cannot be read (%s: %s); rebuilding it from the store",
                name,
                type(exc).__name__,
                exc,
            )
        try:
            self._drop(name)
            return self._index_named(name, dim), False
        except Exception as exc:
            raise StorageError(
                f"the semantic index {name!r} cannot be opened or rebuilt ({type(exc).__name__}: {exc}); "
                "delete its chroma/ directory beside the store and open it again to rebuild it"
            ) from exc

    def _index_named(self, name: str, dim: int) -> VectorIndex:
        """Open the vector index *name*: in the shared table while small when there is one, else in Chroma."""
        if self.table is None:
            return ChromaIndex(self.client, name, dim=dim)
        return GrowingIndex(
            self.table,
            name,
            dim=dim,
            open_collection=lambda: ChromaIndex(self.client, name, dim=dim),
            drop_collection=lambda: self._drop_collection(name),
            limit=self.table_limit,
            existing_count=lambda: self._existing_count(name),
        )

    def _existing_count(self, name: str) -> int:
        """Return how many vectors the Chroma collection *name* holds, 0 when there is none (not created)."""
        try:
            return int(self.client.get_collection(name, embedding_function=None).count())
        except Exception:  # NotFoundError (or ValueError in older chromadb): no such collection
            return 0

    def _drop_collection(self, name: str) -> None:
        # a missing collection (or one Chroma cannot read) is gone already
        with contextlib.suppress(Exception):
            self.client.delete_collection(name)

    def _drop(self, name: str) -> None:
        """Drop the vectors of the index *name* wherever they are (Chroma and the shared table)."""
        self._drop_collection(name)
        if self.table is not None:
            self.table.clear(name)

    def _collection_for(self, model: str, dim: int) -> str:
        digest = hashlib.sha256(f"{model}|{dim}".encode()).hexdigest()[:8]
        return f"{self._base}-{digest}"[:500]

    def _adopt_sources(self) -> None:
        """Start the feed of every source that does not record this model yet, and index what it holds.

        A source's feed records changes only once ``set_index_meta`` was called on it: a tier added to an existing
        index (a store written by an older version, whose short-term and archive were not indexed) or one whose
        feed lives in memory (the buffer, the archive) starts its feed now, and its keys without a vector are
        embedded.
        """
        target = (self.embedder.name, self.embedder.dim)
        for _, source in self.sources:
            if source is self.tier or source.index_meta() == target:
                continue
            source.set_index_meta(*target)
            keys = _keys_of(source)
            if not keys:
                continue
            have = self.index.present(keys)
            missing = [k for k in keys if k not in have]
            if missing:
                logger.info(
                    "semantic index %s: indexing %d entries of %s",
                    self.index.name,
                    len(missing),
                    source.name,
                )
                self._apply(missing)

    def text_of(self, entry: MemoryEntry) -> str | None:
        """Return the text *entry* is embedded by, or None when it stays out of the index (see ``text_fn``)."""
        text = (
            embedding_text(entry.key, entry.value, entry.tags)
            if self.text_fn is None
            else self.text_fn(entry)
        )
        if not text:
            return None
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EmbeddingError(
                f"the text of entry {entry.key!r} is not valid UTF-8 ({exc.reason}): it cannot be embedded"
            ) from None
        return text

    def prepare(self, entries: Sequence[MemoryEntry]) -> None:
        """Embed *entries* now (filling the embedding cache), so bad vectors fail before anything is stored.

        More than one batch shows progress (see :class:`Progress`).
        """
        texts = [t for t in map(self.text_of, entries) if t is not None]
        if len(texts) <= self.batch_size:
            if texts:
                self.embedder.embed_documents(texts)
            return
        progress = Progress("embedding", self.index.name, total=len(texts))
        try:
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                self.embedder.embed_documents(chunk)
                progress.update(len(chunk))
        finally:
            progress.close()

    def _embed_live(
        self, live: list[tuple[str, MemoryEntry]]
    ) -> tuple[list[str], list[list[float]]]:
        pairs = [(k, self.text_of(e)) for k, e in live]
        live = [item for item, (_, text) in zip(live, pairs, strict=True) if text is not None]
        texts = [text for _, text in pairs if text is not None]
        if not texts:
            return [], []
        try:
            return [k for k, _ in live], self.embedder.embed_documents(texts)
        except EmbeddingError:
            if len(live) == 1:
                raise
        keys, vectors = [], []
        for (key, _), text in zip(
            live, texts, strict=True
        ):  # find the entries that cannot be embedded
            try:
                vectors.append(self.embedder.embed_documents([text])[0])
                keys.append(key)
            except EmbeddingError as exc:
                self.failed += 1
                logger.error(
                    "entry %r cannot be embedded and stays out of the semantic index: %s", key, exc
                )
        return keys, vectors

    def locate(self, keys: Sequence[str]) -> dict[str, tuple[str, MemoryEntry]]:
        """Return ``{key: (source name, live entry)}`` for the keys some source holds, in read order."""
        return locate_in(self.sources, keys)

    def _apply(self, keys: list[str]) -> None:
        """Bring the vectors of *keys* in step with the tiers (the caller holds the lock)."""
        located = self.locate(keys)
        live = [(k, located[k][1]) for k in keys if k in located]
        gone = [k for k in keys if k not in located]
        if live:
            try:
                ok, vectors = self._embed_live(live)
            except EmbeddingError as exc:
                self.failed += 1
                logger.error(
                    "entry %r cannot be embedded and stays out of the semantic index: %s",
                    live[0][0],
                    exc,
                )
                ok, vectors = [], []
            done = set(ok)
            gone += [k for k, _ in live if k not in done]
            if ok:
                self.index.upsert(ok, vectors)
        if gone:
            self.index.delete(gone)

    def sync(self, *, wait: bool = True, only: Collection[Tier] | None = None) -> int:
        """Apply every source's pending changes to the vector index; return how many keys were processed.

        An entry whose text the embedder cannot embed (for example one written by ``update()``) is logged,
        counted in ``failed`` and left out of the index, so it never blocks the changes behind it. A backlog of
        more than one batch (the first search after an import) shows progress (see :class:`Progress`).

        Args:
            wait: False returns at once (0) when another thread is syncing. Writers pass False: a write may run
                inside a tier's lock (short-term's overflow writes long-term inside the evicting write), while
                a sync holds the index's lock and reads every tier, so a writer waiting here could deadlock.
                What it leaves pending is applied by the running sync or, at the latest, by the next search.
            only: Apply the feeds of these sources alone (a write through one tier catches up that tier, so a
                long-term write does not embed what short-term left for later).

        """
        done = 0
        progress: Progress | None = None
        if not self._lock.acquire(blocking=wait):
            return 0
        with self._lock:
            self._lock.release()  # held once, by the with statement, from here
            try:
                for _, source in self.sources:
                    if only is not None and not any(source is t for t in only):
                        continue
                    while True:
                        changes = source.changes(self.batch_size)
                        if not changes:
                            break
                        keys = list(dict.fromkeys(key for _, key in changes))
                        self._apply(keys)
                        source.ack_changes(changes)
                        done += len(keys)
                        if progress is None and len(changes) >= self.batch_size:
                            progress = Progress("indexing", self.index.name)
                        if progress is not None:
                            progress.update(len(keys))
            finally:
                if progress is not None:
                    progress.close()
        return done

    def reindex(self) -> int:
        """Rebuild the vector index from every live entry of the sources; return how many were indexed.

        The vectors go into this model's collection. Before anything changes, the home tier records the rebuild
        as in progress (model ``REBUILDING + model``); only once every entry has been embedded does it record the
        model itself. A rebuild for a new model that raises puts the previous record back (the previous model's
        collection is untouched); otherwise the record stays "in progress", and a rebuild that raised or whose
        process died is detected by it on the next open and finished there.
        """
        with self._lock:
            target = (self.embedder.name, self.embedder.dim)
            previous = self.tier.index_meta()
            self.tier.set_index_meta(REBUILDING + target[0], target[1])
            try:
                return self._rebuild()
            except BaseException:
                if (
                    previous is not None
                    and previous != target
                    and not previous[0].startswith(REBUILDING)
                ):
                    with contextlib.suppress(Exception):
                        self.tier.set_index_meta(*previous)
                raise

    def _rebuild(self) -> int:
        """Do the work of :meth:`reindex` (the caller holds the lock and recorded the rebuild as in progress)."""
        with self._lock:
            target = (self.embedder.name, self.embedder.dim)
            backlogs = []
            for _, source in self.sources:
                if source is not self.tier:
                    source.set_index_meta(
                        *target
                    )  # start its feed: nothing written from now is missed
                backlogs.append((source, source.changes(sys.maxsize)))
            self.index.clear()
            seen: dict[str, MemoryEntry] = {}
            for (
                _,
                source,
            ) in self.sources:  # read order: a key held twice (a move cut short) counts once
                for entry in source.scan():
                    seen.setdefault(entry.key, entry)
            entries = list(seen.values())
            progress = (
                Progress("reindexing", self.index.name, total=len(entries))
                if len(entries) > self.batch_size
                else None
            )
            try:
                for start in range(0, len(entries), self.batch_size):
                    batch = entries[start : start + self.batch_size]
                    chunk = [(e.key, t) for e in batch if (t := self.text_of(e)) is not None]
                    if chunk:
                        vectors = self.embedder.embed_documents([t for _, t in chunk])
                        self.index.upsert([k for k, _ in chunk], vectors)
                    if progress is not None:
                        progress.update(len(batch))
            finally:
                if progress is not None:
                    progress.close()
            self.tier.set_index_meta(*target)
            for source, backlog in backlogs:
                source.ack_changes(backlog)
            logger.info("semantic index %s rebuilt: %d entries", self.index.name, len(entries))
            return len(entries)

    def search(self, query: str, k: int) -> list[tuple[MemoryEntry, float]]:
        """Return up to *k* live ``(entry, cosine similarity)`` pairs for *query*, most similar first.

        Expired entries keep their vectors until a cleanup deletes them, so the index is asked for more
        candidates until *k* live ones are found or the index is exhausted.
        """
        self.sync()
        return self.search_by_vector(self.embedder.embed_query(query), k)

    def search_by_vector(self, vector: Sequence[float], k: int) -> list[tuple[MemoryEntry, float]]:
        """Return up to *k* live ``(entry, cosine similarity)`` pairs nearest to *vector* (checked: length, NaN)."""
        return [(entry, sim) for _, entry, sim in self.search_located(vector, k)]

    def search_located(
        self, vector: Sequence[float], k: int, *, only: Collection[str] | None = None
    ) -> list[tuple[str, MemoryEntry, float]]:
        """Return up to *k* live ``(source name, entry, cosine similarity)`` triples nearest to *vector*.

        *only*: keep the entries of these sources (by name) alone.
        """
        self.sync()
        fetch = k
        while True:
            with self._lock:
                hits = self.index.query(vector, fetch)
            located = self.locate([key for key, _ in hits])
            live = [
                (*located[key], sim)
                for key, sim in hits
                if key in located and (only is None or located[key][0] in only)
            ]
            if len(live) >= k or len(hits) < fetch:
                return live[:k]
            fetch *= 4

    def close(self) -> None:
        """Close the embedding cache and give up the claim on a local index directory (see ``on_close``)."""
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()
        cache = getattr(self.embedder, "cache", None)
        owns, self.owns_cache = self.owns_cache, False  # once: a shared cache counts its users
        if cache is not None and owns:
            cache.close()

    def remember(self, entry: MemoryEntry, vector: Sequence[float]) -> None:
        """Use *vector* as the embedding of *entry*'s text (a caller-supplied embedding)."""
        row = check_vectors([vector], 1, self.embedder.dim, source="supplied embedding")[0]
        remember = getattr(self.embedder, "remember", None)
        if remember is None:
            raise InvalidArgumentError("supplied embeddings need a CachedEmbedder")
        remember(embedding_text(entry.key, entry.value, entry.tags), row)


class ChromaTier(Tier):
    """A tier that keeps whole entries in a Chroma collection (for a Chroma server shared by processes).

    Each entry is one record: id = key, the vector of its text (from our embedder), the entry as JSON in the
    metadata, plus ``priority`` and ``expires_at`` as filterable fields. Keyword search ranks the collection's
    texts with BM25 in this process (rebuilt when another writer changed the collection: fine for the sizes a
    shared server tier holds; the SQLite tier is the one built for keyword search at scale).
    Single-key operations are atomic within a process; across processes the last writer wins.

    Args:
        embedder: Embeds entry texts (required: Chroma's own default is never used).
        client: A chromadb client; default: ``make_client(path=path, host=host, port=port)``.
        namespace: One collection per namespace.
        capacity: Maximum live entries (None: unbounded).
        clock: Source of the current time.
        on_evict: Called with entries evicted for capacity before they are deleted.

    """

    name = "chroma"

    def __init__(
        self,
        embedder: Embedder,
        *,
        client: Any = None,
        path: str | PathLike[str] | None = None,
        host: str | None = None,
        port: int = 8000,
        namespace: str = "",
        capacity: int | None = None,
        clock: Clock | None = None,
        on_evict: EvictionCallback | None = None,
        collection_prefix: str = "agentmem",
    ) -> None:
        super().__init__(clock=clock)
        self.embedder = embedder
        self.capacity = validate_capacity(capacity)
        self.on_evict = on_evict
        self.persistent = path is not None or host is not None
        self.client = client if client is not None else make_client(path=path, host=host, port=port)
        prefix = (
            collection_prefix if self.persistent else f"{collection_prefix}-{uuid.uuid4().hex[:12]}"
        )
        self.index = ChromaIndex(self.client, collection_name(prefix, namespace), dim=embedder.dim)
        self.namespace = namespace

    # -- helpers ---------------------------------------------------------------------------------------------

    @staticmethod
    def _meta(entry: MemoryEntry) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "entry": encode_json(entry.to_dict(), what=f"entry {entry.key!r}").decode(),
            "priority": entry.priority,
        }
        if entry.expires_at is not None:
            meta["expires_at"] = entry.expires_at
        return meta

    @staticmethod
    def _entry(meta: dict[str, Any]) -> MemoryEntry:
        return MemoryEntry.from_dict(decode_json(meta["entry"], what="chroma entry"))

    def _load(self, keys: Sequence[str] | None = None) -> dict[str, MemoryEntry]:
        result = self.index.get(keys)
        return {k: self._entry(m) for k, m in zip(result["ids"], result["metadatas"], strict=True)}

    def _write_entries(self, entries: Sequence[MemoryEntry]) -> None:
        vectors = self.embedder.embed_documents(
            [embedding_text(e.key, e.value, e.tags) for e in entries]
        )
        self.index.upsert(
            [e.key for e in entries],
            vectors,
            [self._meta(e) for e in entries],
            documents=[document_text(e.key, e.value, e.tags) for e in entries],
        )

    def _guard(self, what: str) -> Any:
        """Chromadb and HTTP failures (connection refused, server errors) become StorageError."""
        return storage_errors("chroma", what, ("chromadb", "httpx", "httpcore"))

    # -- primitives --------------------------------------------------------------------------------------------

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        """Insert or replace *entries*; evict for capacity first (through ``on_evict``)."""
        batch = self._normalized_batch(
            entries
        )  # values and metadata are JSON now: _meta() cannot fail
        with self._lock, self._guard(f"storing {len(batch)} entries"):
            victims: list[MemoryEntry] = []
            if self.capacity is not None:
                current = self._load()
                now = self.clock()
                expired = [k for k, e in current.items() if e.is_expired(now)]
                live = {k: e for k, e in current.items() if not e.is_expired(now)}
                victims = self._capacity_victims(live, batch)
                if expired:
                    self.index.delete(expired)
                    self.stats_counters.expirations += len(expired)
            victim_keys = {v.key for v in victims}
            kept = [e for k, e in batch.items() if k not in victim_keys]
            if kept:
                self._write_entries(kept)
            stale = [k for k in victim_keys if k not in batch]
            if stale:
                self.index.delete(stale)
            self.stats_counters.writes += len(batch)
            self.stats_counters.evictions += len(victims)

    def get_many(self, keys: Sequence[str], *, touch: bool = True) -> list[MemoryEntry | None]:
        """Return the live entry for each key; a touch rewrites the entry's access fields."""
        with self._lock, self._guard("reading"):
            found = self._load(keys) if keys else {}
            now = self.clock()
            out: list[MemoryEntry | None] = []
            touched: list[MemoryEntry] = []
            for key in keys:
                e = found.get(key)
                if e is None or e.is_expired(now):
                    out.append(None)
                    if touch:
                        self.stats_counters.misses += 1
                    continue
                if touch:
                    e.update_access(now)
                    touched.append(e)
                    self.stats_counters.hits += 1
                out.append(e)
            if touched:
                metas = [self._meta(e) for e in touched]
                self.index.collection.update(ids=[e.key for e in touched], metadatas=metas)
            return out

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete *keys*; return how many live entries were removed."""
        with self._lock, self._guard("deleting"):
            found = self._load(keys) if keys else {}
            now = self.clock()
            live = [k for k, e in found.items() if not e.is_expired(now)]
            if found:
                self.index.delete(list(found))
            self.stats_counters.deletes += len(live)
            return len(live)

    def scan(self) -> list[MemoryEntry]:
        """Return every live entry."""
        with self._lock, self._guard("scanning"):
            now = self.clock()
            return [e for e in self._load().values() if not e.is_expired(now)]

    def keyword_search(self, query: str, limit: int = 10) -> list[tuple[MemoryEntry, float]]:
        """BM25 over the collection's texts (ranked in this process)."""
        return self._keyword_search_by_scan(query, limit)

    def semantic_search(
        self, query: str, k: int = 10, *, where: dict[str, Any] | None = None
    ) -> list[tuple[MemoryEntry, float]]:
        """Return up to *k* live ``(entry, cosine similarity)`` pairs, most similar first.

        *where* is a Chroma metadata filter over ``priority`` and ``expires_at`` (e.g. ``{"priority": {"$gte": 5}}``).
        """
        vector = self.embedder.embed_query(query)
        with self._lock, self._guard("querying"):
            hits = self.index.query(vector, k, where=where)
        entries = self.get_many([key for key, _ in hits], touch=False)
        return [(e, sim) for (_, sim), e in zip(hits, entries, strict=True) if e is not None]

    def compute(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        """Read-modify-write of *key* (atomic within this process)."""
        return self._compute_by_parts(key, fn)

    def cleanup(self) -> list[str]:
        """Delete expired entries; return their keys."""
        with self._lock, self._guard("cleaning up"):
            now = self.clock()
            expired = [k for k, e in self._load().items() if e.is_expired(now)]
            if expired:
                self.index.delete(expired)
            self.stats_counters.expirations += len(expired)
            return expired

    def count(self) -> int:
        """Return the number of live entries."""
        return len(self.scan())

    def clear(self) -> None:
        """Delete every entry of this namespace."""
        with self._lock, self._guard("clearing"):
            self.index.clear()
