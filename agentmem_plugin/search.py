"""Keyword search: a tokenizer, an incremental BM25 inverted index, and the text an entry is indexed by.

The tokenizer lower-cases, splits on Unicode word characters, drops English stop words and stems with the
Porter algorithm, the same algorithm as SQLite FTS5's ``porter`` tokenizer, so the in-memory buffer and the
SQLite tier agree on what a query matches.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import snowballstemmer

__all__ = [
    "STOP_WORDS",
    "WORD",
    "SearchIndex",
    "document_text",
    "tokenize",
    "words",
]

STOP_WORDS: frozenset[str] = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)
"""English stop words dropped by :func:`tokenize` (question words included: they carry no topic)."""

WORD = re.compile(r"[^\W_]+")
"""What a word is: a run of Unicode letters and digits. Like FTS5's ``unicode61`` tokenizer, ``_`` and
punctuation separate words (``invoice_2024`` is ``invoice`` and ``2024``)."""

_stemmer = snowballstemmer.stemmer("porter")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    if not word.isascii():  # fold diacritics as unicode61 does: "café" matches "cafe"
        word = "".join(
            c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c)
        )
    return str(_stemmer.stemWord(word))


def words(text: str) -> list[str]:
    """Return the lower-cased words of *text* that are not stop words (unstemmed)."""
    return [w for w in WORD.findall(text.lower()) if w not in STOP_WORDS]


def tokenize(text: str) -> list[str]:
    """Split *text* into lower-cased, stemmed terms without stop words.

    Example:
        >>> tokenize("Optimizing the data-processing strategies")
        ['optim', 'data', 'process', 'strategi']

    """
    return [_stem(w) for w in words(text)]


def _flatten(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            out.append(str(k))
            _flatten(v, out)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _flatten(v, out)
    elif value is not None and not isinstance(value, bool):
        out.append(str(value))


def document_text(key: str, value: Any, tags: Iterable[str] = ()) -> str:
    """Return the searchable text of an entry.

    That is its key, every string and number in its value (dict keys included) and its tags, joined by spaces.

    Example:
        >>> document_text("prefs", {"language": "english"}, ["user"])
        'prefs language english user'

    """
    parts = [key]
    _flatten(value, parts)
    parts.extend(tags)
    return " ".join(parts)


class SearchIndex:
    """An incremental inverted index ranked with Okapi BM25.

    Adding a key that is already indexed replaces its document. Not thread-safe: the owning tier locks.

    Args:
        k1: BM25 term-frequency saturation.
        b: BM25 length normalization.

    Example:
        >>> idx = SearchIndex()
        >>> idx.add_entry("a", "parallel data processing")
        >>> idx.add_entry("b", "user prefers formal language")
        >>> [key for key, _ in idx.search("processing data")]
        ['a']

    """

    def __init__(self, *, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self._postings: dict[str, dict[str, int]] = {}
        self._doc_terms: dict[str, Counter[str]] = {}
        self._doc_len: dict[str, int] = {}
        self._total_len = 0

    def __len__(self) -> int:
        return len(self._doc_len)

    def __contains__(self, key: object) -> bool:
        return key in self._doc_len

    def add_entry(self, key: str, content: str) -> None:
        """Index *content* under *key*, replacing what *key* had."""
        self.remove_entry(key)
        terms = Counter(tokenize(content))
        self._doc_terms[key] = terms
        length = sum(terms.values())
        self._doc_len[key] = length
        self._total_len += length
        for term, tf in terms.items():
            self._postings.setdefault(term, {})[key] = tf

    def remove_entry(self, key: str) -> None:
        """Remove *key* from the index (no error when absent)."""
        terms = self._doc_terms.pop(key, None)
        if terms is None:
            return
        self._total_len -= self._doc_len.pop(key)
        for term in terms:
            posting = self._postings[term]
            del posting[key]
            if not posting:
                del self._postings[term]

    def search(self, query: str, top_k: int = 10) -> list[tuple[str, float]]:
        """Return up to *top_k* ``(key, score)`` pairs, best first; ``[]`` for a query with no terms.

        Ties are broken by key so results are deterministic.
        """
        n = len(self._doc_len)
        if n == 0 or top_k <= 0:
            return []
        avg_len = self._total_len / n or 1.0
        scores: dict[str, float] = {}
        k1, b = self.k1, self.b
        for term in set(tokenize(query)):
            posting = self._postings.get(term)
            if not posting:
                continue
            df = len(posting)
            idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            for key, tf in posting.items():
                norm = k1 * (1.0 - b + b * self._doc_len[key] / avg_len)
                scores[key] = scores.get(key, 0.0) + idf * tf * (k1 + 1.0) / (tf + norm)
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return ranked[:top_k]

    def rebuild(self, documents: Iterable[tuple[str, str]] | None = None) -> None:
        """Rebuild the index.

        From *documents* (``(key, content)`` pairs) when given, replacing everything; else by recomputing
        the statistics from the indexed terms (dropping any drift).
        """
        if documents is not None:
            self.clear()
            for key, content in documents:
                self.add_entry(key, content)
            return
        doc_terms = self._doc_terms
        self.clear()
        for key, terms in doc_terms.items():
            self._doc_terms[key] = terms
            length = sum(terms.values())
            self._doc_len[key] = length
            self._total_len += length
            for term, tf in terms.items():
                self._postings.setdefault(term, {})[key] = tf

    def clear(self) -> None:
        """Remove every document."""
        self._postings = {}
        self._doc_terms = {}
        self._doc_len = {}
        self._total_len = 0


def fuse(
    keyword: Sequence[tuple[str, float]],
    dense: Sequence[tuple[str, float]],
    *,
    keyword_weight: float = 0.5,
) -> list[tuple[str, float]]:
    """Fuse keyword (BM25) and dense (cosine) candidate lists into one ranking, best first.

    Scores are made comparable before they are mixed: BM25 scores are divided by the best one (so the top
    keyword hit scores 1), cosine similarities are min-max scaled over the dense candidates. A candidate missing
    from one list scores 0 there. ``score = keyword_weight * bm25_norm + (1 - keyword_weight) * cos_norm``.

    Example:
        >>> fuse([("a", 8.0), ("b", 4.0)], [("b", 0.9), ("c", 0.5)], keyword_weight=0.5)
        [('b', 0.75), ('a', 0.5), ('c', 0.0)]

    """
    if not 0.0 <= keyword_weight <= 1.0:
        raise ValueError(f"keyword_weight must be in [0, 1], got {keyword_weight!r}")
    scores: dict[str, float] = {}
    if keyword:
        top = max(s for _, s in keyword) or 1.0
        for key, s in keyword:
            scores[key] = keyword_weight * (s / top)
    if dense:
        hi = max(s for _, s in dense)
        lo = min(s for _, s in dense)
        span = hi - lo
        for key, s in dense:
            norm = (s - lo) / span if span > 0 else 1.0
            scores[key] = scores.get(key, 0.0) + (1.0 - keyword_weight) * norm
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def spread_to_neighbors(
    scores: Mapping[str, float], neighbors: Mapping[str, Sequence[str]], *, weight: float
) -> dict[str, float]:
    """Give each memory a share of its best-scoring neighbour's score (temporal contiguity).

    Memories stored next to each other (turns of one conversation, steps of one task) tend to be relevant
    together: the answer to a question often sits one or two turns from the turn that matches its words.
    ``new[k] = scores.get(k, 0) + weight * max(scores.get(n, 0) for n in neighbours of k)``, over the scored keys
    and their neighbours.

    Example:
        >>> spread_to_neighbors({"b": 1.0}, {"b": ["a", "c"]}, weight=0.5)
        {'b': 1.0, 'a': 0.5, 'c': 0.5}

    """
    if weight <= 0:
        return dict(scores)
    around: dict[str, list[str]] = {}
    for key, near in neighbors.items():
        for other in near:
            around.setdefault(other, []).append(key)
    out = dict(scores)
    for key in list(scores) + [k for k in around if k not in scores]:
        best = max((scores.get(n, 0.0) for n in around.get(key, ())), default=0.0)
        if best > 0:
            out[key] = scores.get(key, 0.0) + weight * best
    return out


def hybrid_ranking(
    keyword: Sequence[tuple[str, float]],
    dense: Sequence[tuple[str, float]],
    *,
    limit: int,
    keyword_weight: float,
    context_weight: float = 0.0,
    context_radius: int = 0,
    neighbors: Callable[[list[str], int], Mapping[str, Sequence[str]]] | None = None,
    context_candidates: int = 50,
) -> list[tuple[str, float]]:
    """Rank keys for a hybrid search: :func:`fuse`, then temporal contiguity (:func:`spread_to_neighbors`).

    Args:
        keyword: ``(key, BM25)`` candidates.
        dense: ``(key, cosine similarity)`` candidates.
        limit: Keys returned.
        keyword_weight: The keyword side's weight in the fusion.
        context_weight: Share of a neighbour's score a memory gets (0: no contiguity).
        context_radius: How many memories on each side count as neighbours.
        neighbors: ``fn(keys, radius) -> {key: [neighbour keys]}`` (memories stored next to each other).
        context_candidates: The best fused keys (at least ``5 * limit``) whose neighbours are looked up.

    Returns:
        Up to *limit* ``(key, score)`` pairs, best first (ties by key).

    Example:
        >>> hybrid_ranking([("a", 8.0)], [("a", 0.9), ("b", 0.5)], limit=2, keyword_weight=0.5)
        [('a', 1.0), ('b', 0.0)]

    """
    fused = fuse(keyword, dense, keyword_weight=keyword_weight)
    if context_weight > 0 and context_radius > 0 and neighbors is not None and fused:
        top = dict(fused[: max(limit * 5, context_candidates)])
        near = neighbors(list(top), context_radius)
        spread = spread_to_neighbors(top, near, weight=context_weight)
        fused = sorted(spread.items(), key=lambda kv: (-kv[1], kv[0]))
    return fused[:limit]
