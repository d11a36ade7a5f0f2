"""`AgentMemVectorStore`: a LangChain vector store kept in a MemoryManager's long-term (semantic) memory."""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from os import PathLike
from typing import Any

from agentmem_plugin import MemoryEntry, MemoryManager
from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.tiers.chroma import embedding_text
from agentmem_plugin.validation import validate_fraction
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.runnables.config import run_in_executor
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from langchain_agentmem._common import (
    Namespace,
    check_k,
    check_keys,
    fetch_filtered,
    is_chat_record,
    matches,
    open_manager,
    value_text,
)

__all__ = ["AgentMemVectorStore"]

logger = logging.getLogger(__name__)

_UNBOUNDED = sys.maxsize
"""long_term_limit of a manager this store creates: documents never overflow into the (unindexed) archive."""

DocumentFilter = Mapping[str, Any] | Callable[[Document], bool]
"""A metadata filter: ``{field: required value, ...}`` or a predicate on the ``Document``."""


def _relevance(similarity: float) -> float:
    """Cosine similarity (-1..1) as a relevance score in [0, 1]: negative similarities count as 0."""
    return max(0.0, min(1.0, similarity))


def _langchain_embeddings(manager: MemoryManager) -> Embeddings | None:
    """Return the LangChain ``Embeddings`` behind *manager*'s embedder, if that is what it wraps."""
    inner = getattr(manager.long_term.embedder, "inner", None)
    found = getattr(inner, "embeddings", None)
    return found if isinstance(found, Embeddings) else None


class AgentMemVectorStore(VectorStore):
    """A LangChain ``VectorStore`` whose documents are long-term memories of a MemoryManager.

    Each document is stored with ``memory_type="long_term"`` under its id: ``page_content`` is the value,
    ``metadata`` the entry's metadata. Long-term memory keeps the semantic index (Chroma, vectors from
    *embedding*) in step with SQLite, so documents are durable and searchable by meaning; with ``storage_path``
    they survive a restart, and with ``namespace`` every store sees only its own documents.

    Searches (``similarity_search*``) are semantic, over long-term memory; scores are cosine similarities
    (1 = same direction), relevance scores the same clamped to [0, 1]. ``filter=`` takes metadata equality
    (``{"source": "faq"}``) or a predicate on the ``Document``; more candidates are fetched until *k* pass.
    Max-marginal-relevance search is not supported (``NotImplementedError`` from LangChain's base class).

    Reading a document through the manager (``manager.retrieve(id)``) promotes it to short-term memory,
    which is not semantically indexed, until consolidation moves it back; this store's own reads
    (``get_by_ids``, searches) never move anything.

    Args:
        embedding: The LangChain embeddings model (the manager's embedder). Required unless *manager* is given.
        manager: Use this MemoryManager (it must have an embedder) instead of creating one; it is not closed by
            :meth:`close`. When *embedding* is given too, it must be the one the manager was built with.
        storage_path: Directory for a persistent store (a new manager); None keeps everything in memory.
        namespace: Keep documents in this namespace (``"kb/faq"`` or ``("kb", "faq")``).
        long_term_limit: Long-term capacity of a manager this store creates (default: unbounded; above a
            limit the least important documents move to the archive and out of search).
        include_chat_history: Also return the records chat histories write in the same memory (default False).

    Raises:
        InvalidArgumentError: no embedding and no manager, a manager without an embedder, both a manager and a
            storage_path (or long_term_limit), a bad namespace or limit.

    Example:
        >>> from langchain_core.embeddings import DeterministicFakeEmbedding
        >>> store = AgentMemVectorStore(DeterministicFakeEmbedding(size=8))  # a FAKE embedding model
        >>> ids = store.add_texts(["apples are red", "the sky is blue"], ids=["a", "b"])
        >>> [doc.id for doc in store.similarity_search("the sky is blue", k=1)]
        ['b']
        >>> store.close()

    """

    def __init__(
        self,
        embedding: Embeddings | None = None,
        *,
        manager: MemoryManager | None = None,
        storage_path: str | PathLike[str] | None = None,
        namespace: Namespace | None = None,
        long_term_limit: int | None = None,
        include_chat_history: bool = False,
    ) -> None:
        if not isinstance(include_chat_history, bool):
            raise InvalidArgumentError(
                f"include_chat_history must be a bool, got {include_chat_history!r}"
            )
        self._include_chat_history = include_chat_history
        if manager is None and embedding is None:
            raise InvalidArgumentError(
                "AgentMemVectorStore needs embedding= (a LangChain Embeddings) or a manager= built with an embedder"
            )
        if manager is not None and long_term_limit is not None:
            raise InvalidArgumentError(
                "long_term_limit applies to a manager this store creates; set it on your manager instead"
            )
        limit = (
            _UNBOUNDED
            if long_term_limit is None
            else check_k(long_term_limit, name="long_term_limit")
        )
        self._manager, self._owns_manager = open_manager(
            manager=manager,
            storage_path=storage_path,
            namespace=namespace,
            owner="AgentMemVectorStore",
            embedder=embedding,
            long_term_limit=limit,
        )
        if not self._owns_manager:
            if self._manager.long_term_limit < _UNBOUNDED:
                logger.warning(
                    "the manager's long_term_limit is %d: documents beyond it move to the archive, which "
                    "similarity search does not reach (get_by_ids still finds them); build the manager with "
                    "long_term_limit=sys.maxsize for a vector store",
                    self._manager.long_term_limit,
                )
            if self._manager.long_term.embedder is None:
                raise InvalidArgumentError(
                    "the manager has no embedder: create it with MemoryManager(embedder=<your Embeddings>)"
                )
            found = _langchain_embeddings(self._manager)
            if embedding is not None and found is not embedding:
                raise InvalidArgumentError(
                    f"embedding {type(embedding).__name__} is not the embedder the manager was built with "
                    f"({self._manager.long_term.embedder.name!r}); pass the same object or leave embedding out"
                )
            embedding = found
        self._embedding = embedding

    # -- properties and lifecycle ------------------------------------------------------------------------------

    @property
    def manager(self) -> MemoryManager:
        """The MemoryManager (namespace view) holding the documents."""
        return self._manager

    @property
    def embeddings(self) -> Embeddings | None:
        """The LangChain embeddings model (None when the manager embeds with a non-LangChain embedder)."""
        return self._embedding

    def close(self) -> None:
        """Close the manager if this store created it (a manager passed in is left open)."""
        if self._owns_manager:
            self._manager.close()

    def __enter__(self) -> AgentMemVectorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Store *texts* as long-term memories (embedded and indexed); return their ids.

        Args:
            texts: The documents' text (stored as the value).
            metadatas: One metadata dict per text (stored as the entry's metadata; JSON values).
            ids: One id per text; None (or a None entry) generates a uuid4. An existing id is replaced.
            batch_size: Texts written (and embedded) per transaction; default all at once.
            **kwargs: Not accepted (named in the error).

        Raises:
            InvalidArgumentError: lengths that differ, a text that is not a str, bad metadata or batch_size,
                an unknown option. InvalidKeyError: a bad id. SerializationError: metadata that is not JSON.
                Nothing is stored when any item is bad (with batch_size: nothing of that batch or later).

        """
        if kwargs:
            raise InvalidArgumentError(f"unknown add_texts options {sorted(kwargs)}")
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str):
                raise InvalidArgumentError(
                    f"each text must be a str, got {type(text).__name__}: {text!r:.80}"
                )
        if metadatas is not None and len(metadatas) != len(texts):
            raise InvalidArgumentError(
                f"got {len(metadatas)} metadatas for {len(texts)} texts; pass one per text"
            )
        if ids is not None and len(ids) != len(texts):
            raise InvalidArgumentError(
                f"got {len(ids)} ids for {len(texts)} texts; pass one per text"
            )
        size = len(texts) if batch_size is None else check_k(batch_size, name="batch_size")
        given: Sequence[str | None] = ids or [None] * len(
            texts
        )  # LangChain passes None for missing ids
        keys = [str(uuid.uuid4()) if i is None else i for i in given]
        clock = self._manager.clock
        entries = [
            MemoryEntry(
                key, text, metadata=None if metadatas is None else metadatas[n], clock=clock
            )
            for n, (key, text) in enumerate(zip(keys, texts, strict=True))
        ]
        for start in range(0, len(entries), size or 1):
            self._manager.store_many(entries[start : start + size], "long_term")
        return keys

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete the documents under *ids* (missing ids are ignored); return True.

        Raises:
            InvalidArgumentError: *ids* is None (this store never deletes everything: use
                ``manager.clear_long_term()``) or an unknown option. InvalidKeyError: a malformed id.

        """
        if kwargs:
            raise InvalidArgumentError(f"unknown delete options {sorted(kwargs)}")
        if ids is None:
            raise InvalidArgumentError(
                "delete() needs the ids to delete; to empty long-term memory call manager.clear_long_term()"
            )
        for key in check_keys(ids):
            self._manager.delete(key)
        return True

    # -- reading -------------------------------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Return the documents under *ids* (missing ones are skipped, duplicates returned once).

        Reads long-term first, then short-term and the archive, without promoting anything.
        """
        wanted = list(dict.fromkeys(check_keys(ids)))
        found: dict[str, MemoryEntry] = {}
        manager = self._manager
        for tier in (manager.long_tier, manager.short_tier, manager.external_tier):
            missing = [key for key in wanted if key not in found]
            if not missing:
                break
            for entry in tier.get_many(missing, touch=False):
                if entry is not None:
                    found[entry.key] = entry
        return [
            Document(page_content=value_text(e.value), metadata=dict(e.metadata), id=e.key)
            for e in (found[key] for key in wanted if key in found)
        ]

    @staticmethod
    def _document(hit: Mapping[str, Any]) -> Document:
        return Document(
            page_content=value_text(hit["value"]), metadata=dict(hit["metadata"]), id=hit["key"]
        )

    def _keep(self, filter: DocumentFilter | None) -> Callable[[dict[str, Any]], bool] | None:
        user = self._user_filter(filter)
        if self._include_chat_history:
            return user
        if user is None:
            return lambda hit: not is_chat_record(hit)
        return lambda hit: not is_chat_record(hit) and user(hit)

    def _user_filter(
        self, filter: DocumentFilter | None
    ) -> Callable[[dict[str, Any]], bool] | None:
        if filter is None:
            return None
        if isinstance(filter, Mapping):
            if any(not isinstance(field, str) for field in filter):
                raise InvalidArgumentError(f"filter keys must be str, got {filter!r:.80}")
            wanted = dict(filter)
            return lambda hit: matches(hit, wanted, tags_field=False)
        if callable(filter):
            return lambda hit: bool(filter(self._document(hit)))
        raise InvalidArgumentError(
            f"filter must be a dict of metadata values or a callable(Document) -> bool, got {filter!r:.80}"
        )

    def _scored(
        self,
        fetch: Callable[[int], list[dict[str, Any]]],
        k: int,
        filter: DocumentFilter | None,
        kwargs: Mapping[str, Any],
    ) -> list[tuple[Document, float]]:
        if kwargs:
            raise InvalidArgumentError(
                f"unknown search options {sorted(kwargs)}; AgentMemVectorStore accepts k and filter"
            )
        hits = fetch_filtered(fetch, check_k(k), self._keep(filter))
        return [(self._document(hit), float(hit["similarity"])) for hit in hits]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: DocumentFilter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Return the *k* documents most similar to *query*, with their cosine similarity (higher is closer).

        Args:
            query: The text to search for (an empty query returns ``[]``).
            k: How many documents.
            filter: Metadata equality (``{"source": "faq"}``) or a predicate on the ``Document``.
            **kwargs: Not accepted (named in the error).

        Raises:
            InvalidArgumentError: a bad query, k, filter or option.

        """
        if not isinstance(query, str):
            raise InvalidArgumentError(f"query must be a str, got {type(query).__name__}")
        long_term = self._manager.long_term
        return self._scored(
            lambda n: long_term.search(query, n, mode="semantic"), k, filter, kwargs
        )

    def similarity_search(
        self, query: str, k: int = 4, filter: DocumentFilter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Return the *k* documents most similar to *query* (see :meth:`similarity_search_with_score`)."""
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: DocumentFilter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Return the *k* documents nearest to the vector *embedding* (cosine), optionally filtered.

        Raises:
            EmbeddingError: a vector of the wrong dimension or with NaN/inf.

        """
        return [doc for doc, _ in self._scored(self._vector_fetch(embedding), k, filter, kwargs)]

    def _vector_fetch(self, vector: Sequence[float]) -> Callable[[int], list[dict[str, Any]]]:
        long_term = self._manager.long_term

        def fetch(n: int) -> list[dict[str, Any]]:
            return long_term.search_by_vector(vector, n)

        return fetch

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Relevance = cosine similarity clamped to [0, 1]."""
        return _relevance

    # -- max marginal relevance --------------------------------------------------------------------------------

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: DocumentFilter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Return *k* documents relevant to *query* and diverse among themselves (maximal marginal relevance).

        Args:
            query: The text to search for.
            k: How many documents.
            fetch_k: How many nearest documents (passing *filter*) to choose from.
            lambda_mult: 0 = most diverse ... 1 = most relevant.
            filter: Metadata equality or a predicate on the ``Document``.
            **kwargs: Not accepted (named in the error).

        Raises:
            InvalidArgumentError: a bad query, k, fetch_k, lambda_mult, filter or option.

        """
        if not isinstance(query, str):
            raise InvalidArgumentError(f"query must be a str, got {type(query).__name__}")
        embedder = self._manager.long_term.embedder
        assert embedder is not None  # checked at construction
        vector = embedder.embed_query(query)
        return self.max_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, filter, **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: DocumentFilter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Like :meth:`max_marginal_relevance_search`, from a query vector *embedding*.

        Raises:
            InvalidArgumentError: a bad k, fetch_k, lambda_mult, filter or option. EmbeddingError: a vector of the
                wrong dimension or with NaN/inf.

        """
        if kwargs:
            raise InvalidArgumentError(
                f"unknown search options {sorted(kwargs)}; AgentMemVectorStore's MMR accepts k, fetch_k, "
                "lambda_mult and filter"
            )
        k = check_k(k)
        fetch_k = check_k(fetch_k, name="fetch_k")
        lambda_mult = validate_fraction(lambda_mult, what="lambda_mult")
        hits = fetch_filtered(self._vector_fetch(embedding), max(k, fetch_k), self._keep(filter))
        if not hits:
            return []
        embedder = self._manager.long_term.embedder
        assert embedder is not None
        # the index keeps no vectors we can read back: embed the candidates again, by the text they were indexed by
        vectors = embedder.embed_documents(
            [embedding_text(h["key"], h["value"], h["tags"]) for h in hits]
        )
        import numpy as np  # langchain-core's MMR helper needs it; the semantic index (Chroma) brings it

        chosen = maximal_marginal_relevance(
            np.asarray(embedding, dtype=float), vectors, lambda_mult=lambda_mult, k=k
        )
        return [self._document(hits[i]) for i in chosen]

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: DocumentFilter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`max_marginal_relevance_search` (runs in a worker thread)."""
        return await run_in_executor(
            None,
            self.max_marginal_relevance_search,
            query,
            k,
            fetch_k,
            lambda_mult,
            filter,
            **kwargs,
        )

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        filter: DocumentFilter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`max_marginal_relevance_search_by_vector` (runs in a worker thread)."""
        return await run_in_executor(
            None,
            self.max_marginal_relevance_search_by_vector,
            embedding,
            k,
            fetch_k,
            lambda_mult,
            filter,
            **kwargs,
        )

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> AgentMemVectorStore:
        """Create a store (``kwargs``: ``storage_path``, ``namespace``, ``manager``, ``long_term_limit``) and add *texts*."""
        store = cls(embedding, **kwargs)
        try:
            store.add_texts(texts, metadatas, ids=ids)
        except BaseException:
            store.close()
            raise
        return store

    # -- async twins: each runs its sync method in a worker thread ----------------------------------------------

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async :meth:`add_texts`."""
        return await run_in_executor(None, self.add_texts, texts, metadatas, ids=ids, **kwargs)

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Async :meth:`delete`."""
        return await run_in_executor(None, self.delete, ids, **kwargs)

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async :meth:`get_by_ids`."""
        return await run_in_executor(None, self.get_by_ids, ids)

    async def asimilarity_search_with_score(
        self, query: str, k: int = 4, filter: DocumentFilter | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async :meth:`similarity_search_with_score`."""
        return await run_in_executor(
            None, self.similarity_search_with_score, query, k, filter, **kwargs
        )

    async def asimilarity_search(
        self, query: str, k: int = 4, filter: DocumentFilter | None = None, **kwargs: Any
    ) -> list[Document]:
        """Async :meth:`similarity_search`."""
        return await run_in_executor(None, self.similarity_search, query, k, filter, **kwargs)

    async def asimilarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: DocumentFilter | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        """Async :meth:`similarity_search_by_vector`."""
        return await run_in_executor(
            None, self.similarity_search_by_vector, embedding, k, filter, **kwargs
        )
