"""A tier that keeps a semantic index in step: every write through it reaches the vectors.

:class:`IndexedTier` wraps a source-of-truth tier (SQLite, PostgreSQL, a buffer, the archive) and a
:class:`~agentmem_plugin.tiers.chroma.SemanticIndex` that follows the tier's change feed (one index may follow
several tiers: a manager's namespace has one index over short-term, long-term and the archive).

* **Eager** (long-term, a single :class:`~agentmem_plugin.memory.Memory`): a write embeds its entries first (a
  value that cannot be embedded fails before anything is stored), then stores them, then applies the change feed
  to the vector index.
* **Lazy** (short-term): a write only stores; the feed is applied in batches, at the next search or once a batch
  of writes is pending, so a store into short-term never waits for the model and short-term entries are embedded
  many at a time (each text once: the embedding cache is keyed by the text's hash).

Inside an open transaction the feed is applied when the outermost transaction commits, so a rolled-back write
never reaches the vectors. Searches apply whatever is still pending (another process's writes) before they query.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import EmbeddingError
from agentmem_plugin.tiers.base import Tier
from agentmem_plugin.tiers.forwarding import ForwardingTier

if TYPE_CHECKING:
    from agentmem_plugin.tiers.chroma import SemanticIndex

__all__ = ["IndexedTier", "open_semantic"]

logger = logging.getLogger(__name__)


def open_semantic(
    tier: Tier,
    embedder: Any,
    *,
    where: Path | None = None,
    chroma: Any = None,
    reindex: bool = False,
    embed_text: Callable[[MemoryEntry], str | None] | None = None,
    sources: Sequence[tuple[str, Tier]] | None = None,
) -> SemanticIndex:
    """Open the semantic index of *tier*: vectors in Chroma, embeddings cached beside the store.

    Args:
        tier: The home tier (its ``table`` and ``namespace`` name the collection; it records the model).
        embedder: ``"default"`` (offline MiniLM), an Embedder, a LangChain ``Embeddings`` or a callable.
        where: The directory holding ``chroma/`` and ``embeddings.sqlite3``; None keeps both in memory.
        chroma: A Chroma server URL (``"http://127.0.0.1:8000"``) or a chromadb client, instead of *where*.
        reindex: Rebuild when the store was indexed with another model (instead of refusing to open).
        embed_text: ``fn(entry) -> str | None``: the text an entry is embedded by (None keeps it out).
        sources: Every tier the index covers, as ``(name, tier)`` in read order (default: *tier* alone).

    Raises:
        EmbeddingError: the store was indexed with another model and *reindex* is False.
        IndexInUseError: the local index directory (``where/chroma``) is open in another process.
        MissingDependencyError: the ``semantic`` extra is not installed.
        BackendUnavailableError: the Chroma server cannot be reached.

    """
    from agentmem_plugin.embeddings import CachedEmbedder, as_embedder, open_shared_cache
    from agentmem_plugin.tiers.chroma import (
        SemanticIndex,
        claim_index_dir,
        collection_name,
        make_client,
        release_index_dir,
    )
    from agentmem_plugin.tiers.vectors import VectorTable, open_table, release_table

    inner = as_embedder(embedder)
    claimed: Path | None = None
    # None: a Chroma server keeps a collection per namespace (see tiers/vectors.py)
    table: VectorTable | None = None
    cache_file = None if where is None else where / "embeddings.sqlite3"
    if chroma is not None:  # a server (URL) or a client: a stable collection per table + namespace
        if isinstance(chroma, str):
            from agentmem_plugin.tiers.factory import open_chroma_client

            chroma = open_chroma_client(chroma)
        client, name = chroma, collection_name(f"agentmem-{tier.table}", tier.namespace)
    elif where is None:
        client = make_client()
        name = collection_name(f"agentmem-{uuid.uuid4().hex[:12]}", tier.namespace)
        table = VectorTable()
    else:
        claimed = where / "chroma"
        claim_index_dir(claimed)  # one process per local index directory
        try:
            client = make_client(path=claimed)
            table = open_table(claimed / _VECTOR_TABLE)
        except BaseException:
            release_index_dir(claimed)
            raise
        name = collection_name(f"agentmem-{tier.table}", tier.namespace)
    cached = (
        inner
        if isinstance(inner, CachedEmbedder)
        else CachedEmbedder(inner, open_shared_cache(cache_file))
    )
    try:
        index = SemanticIndex(
            tier,
            cached,
            client,
            name,
            reindex=reindex,
            text_fn=embed_text,
            sources=sources,
            table=table,
        )
    except BaseException:
        # the cache opened here (a caller's CachedEmbedder stays the caller's)
        if cached is not inner:
            cached.cache.close()
        if claimed is not None:
            release_table(claimed / _VECTOR_TABLE)
            release_index_dir(claimed)
        elif table is not None:
            table.close()
        raise
    if claimed is not None:
        index.on_close = functools.partial(_release, claimed)
    elif table is not None:
        index.on_close = table.close
    return index


_VECTOR_TABLE = "agentmem-vectors.sqlite3"
"""The shared table of the small namespaces' vectors, inside the local index directory."""


def _release(claimed: Path) -> None:
    """Give up one use of the local index directory *claimed* and of its vector table."""
    from agentmem_plugin.tiers.chroma import release_index_dir
    from agentmem_plugin.tiers.vectors import release_table

    release_table(claimed / _VECTOR_TABLE)
    release_index_dir(claimed)


class IndexedTier(ForwardingTier):
    """*inner* plus the semantic index that follows it; see the module docstring.

    Args:
        inner: The tier holding the entries.
        semantic: The semantic index following it (built by :func:`open_semantic` with *inner* as a source).
        eager: Embed before each write and index right after it (see the module docstring); False: lazy.
        owns_index: :meth:`close` closes the index too (one of the tiers sharing an index owns it).

    Every primitive, capability and extra of *inner* is available on this object (see
    :class:`~agentmem_plugin.tiers.forwarding.ForwardingTier`); writes are followed by the index.

    """

    def __init__(
        self, inner: Tier, semantic: SemanticIndex, *, eager: bool = True, owns_index: bool = True
    ) -> None:
        super().__init__(inner)
        self.semantic = semantic
        self.eager = eager
        self.owns_index = owns_index
        self._pending = 0  # lazy: writes since the index last caught up
        self._local = threading.local()  # depth of this thread's open transactions

    def semantic_index(self) -> SemanticIndex:
        """Return the semantic index kept in step with this tier."""
        return self.semantic

    # -- keeping the index in step ---------------------------------------------------------------------------

    def _after_write(self) -> None:
        if not self.eager:
            self._pending += 1
            if self._pending < self.semantic.batch_size:
                return
        if getattr(self._local, "depth", 0) == 0 and not self.inner.in_transaction():
            self._pending = 0
            self.semantic.sync(wait=False, only=(self.inner,))

    def _forward(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = super()._forward(method, *args, **kwargs)
        if method in _WRITES:
            self._after_write()
        return result

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Open the inner tier's transaction; the vector index catches up when the outermost one commits."""
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            with self.inner.transaction():
                yield
        finally:
            self._local.depth -= 1
        self._after_write()

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        """Embed *entries* (failing before anything is stored), store them, then index them (eager); lazy: store."""
        if self.eager:
            # Bad input (a value that is not JSON, a lone surrogate) fails as the tier would fail it, before
            # the embedder sees it.
            entries = list(self._normalized_batch(entries).values())
            self.semantic.prepare(entries)
        super().put_many(entries)

    def put_if_newer(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        """Write copies moving in (overflow, consolidation, restore), then index them.

        A move never fails for a reason the entry's own write did not: an entry the embedder cannot embed still
        moves, and stays out of the semantic index (logged and counted in ``stats()["unembeddable"]``), so one
        such entry never blocks the writes behind it.
        """
        try:
            if self.eager:
                self.semantic.prepare(entries)
        except (
            EmbeddingError
        ) as exc:  # the index's sync embeds the rest one by one and skips the bad ones
            logger.warning(
                "%d entries moving into %s include one that cannot be embedded: %s",
                len(entries),
                self.name,
                exc,
            )
        return super().put_if_newer(entries)

    def stats(self) -> dict[str, Any]:
        """Return the inner tier's stats plus the number of vectors and of entries the embedder refused."""
        return {
            **self.inner.stats(),
            "vectors": self.semantic.index.count(),
            "unembeddable": self.semantic.failed,
        }

    def close(self) -> None:
        """Close the inner tier, and the index's embedding cache when this tier owns the index."""
        if self.owns_index:
            self.semantic.close()
        self.inner.close()


_WRITES = frozenset(
    ("put_many", "put_if_newer", "delete_many", "delete_if", "compute", "cleanup", "clear")
)
"""The forwarded calls that change entries: the index follows each (outside a transaction)."""
