"""Per-namespace BM25 postings of the SQLite tier, packed in blocks (see docs/storage.md, "Keyword search").

Each namespace has its own document count, total length, document frequencies and postings, so a search costs
what its namespace holds and ranks with its own statistics. A term's postings are stored as **blocks**: rows of
``{table}_kw_blocks`` keyed by ``(namespace id, term, first)``, each holding up to :data:`BLOCK_SIZE` postings
sorted by document id, packed as little-endian ``(doc int64, tf int32, dl int32)`` records (16 bytes). A block
covers the document ids from its ``first`` to the next block's ``first``; ``first`` is a lower bound of the ids it
holds (a deletion leaves it where it was).

Why blocks: a posting per row costs about a microsecond to read into Python, and a query of a 100,000-memory
namespace reads 6-7 thousand of them (1M memories: 44 thousand), so the keyword side of a hybrid search was
reading rows for longer than the dense side took in all. A block of 200 postings is one row: a term of 20,000
postings is read as 100 blobs and scored by numpy in one pass. Writes stay small: a new memory appends to the
last block of each of its terms (one read and one write of at most 3.2 KB per term).

The scores are exact BM25 and the same floats as before: each posting's term is computed with the same IEEE
operations in the same order (``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avg))``), and a document's
terms are added rarest term first, as :mod:`agentmem_plugin.search` and the earlier row-by-row index did.
"""

from __future__ import annotations

import bisect
import math
import sqlite3
import struct
import sys
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentmem_plugin.search import tokenize

if TYPE_CHECKING:  # numpy is imported on first use: opening a store does not pay for it
    import numpy as np

__all__ = ["BLOCK_SIZE", "KeywordIndex"]

BLOCK_SIZE = 200
"""Postings per block at most: 3,200 bytes, so a block and its key fit one 4 KB page of SQLite."""

K1, B = 1.2, 0.75
"""BM25 parameters, as the buffer tier's :class:`~agentmem_plugin.search.SearchIndex`."""

_RECORD = struct.Struct(
    "<qii"
)  # one posting: doc, tf, dl (little-endian, as the numpy dtype below)
_DOC = struct.Struct("<q8x")
_CHUNK = 500  # ids per batched statement (SQLite allows 32766 variables)


def _np() -> Any:
    import numpy

    return numpy


_DTYPE: list[Any] = []


def _posting_dtype() -> Any:
    if not _DTYPE:
        _DTYPE.append(_np().dtype([("doc", "<i8"), ("tf", "<i4"), ("dl", "<i4")]))
    return _DTYPE[0]


def _docs_of(blob: bytes) -> list[int]:
    """Return the doc of each record of a block, in order."""
    if sys.byteorder == "little":
        return memoryview(blob).cast("q")[::2].tolist()  # each record's first 8 bytes
    return [r[0] for r in _DOC.iter_unpack(blob)]


def _terms(text: str) -> Counter[str]:
    return Counter(tokenize(text))


def _sum_by_doc(np: Any, docs: list[np.ndarray], scores: list[np.ndarray]) -> tuple[Any, Any]:
    """Return ``(doc ids, summed scores)``: each document's scores added term by term, in the order given.

    A term lists a document at most once, so adding a term's scores into a dense array over the ids' span adds
    each document's terms in order, from 0.0: the same floats as adding them one by one. Every BM25 term is
    above 0, so the documents found are the nonzero sums. When the span is far wider than the postings (a
    namespace whose ids are spread thin among other namespaces'), the ids are sorted and grouped instead.
    """
    lo = min(int(d[0]) for d in docs if len(d))
    hi = max(int(d[-1]) for d in docs if len(d))
    found = sum(len(d) for d in docs)
    if hi - lo < 8 * found + 4096:
        acc = np.zeros(hi - lo + 1)
        for d, s in zip(docs, scores, strict=True):
            acc[d - lo] += s
        at = np.flatnonzero(acc)
        return at + lo, acc[at]
    ids, where = np.unique(np.concatenate(docs), return_inverse=True)
    # bincount adds each document's scores in input order (its terms in order), from 0.0
    return ids, np.bincount(where.ravel(), weights=np.concatenate(scores))


class KeywordIndex:
    """Per-namespace BM25 postings in plain tables, kept in step with the entries table in its transactions.

    * ``{table}_kw_ns``: one row per namespace that was ever indexed (id, document count, total length);
    * ``{table}_kw_df``: ``(ns, term) -> df``, the namespace's own document frequencies;
    * ``{table}_kw_blocks``: ``(ns, term, first) -> n, postings``, a term's postings in blocks (module doc);
    * ``{table}_kw_queue``: filled by triggers on the entries table (insert, delete, change of the search
      text) and emptied by :meth:`sync` before the transaction that filled it commits, so every write path,
      present or future, keeps the index exact.

    Terms are :func:`agentmem_plugin.search.tokenize`'s (Porter stems, stop words dropped), the tokenizer of
    the buffer tier. Documents with no term are not counted. All identifiers come from the validated table
    name; terms and namespaces are bound parameters.
    """

    def __init__(self, table: str) -> None:
        self.table = table
        self.ns = f'"{table}_kw_ns"'
        self.df = f'"{table}_kw_df"'
        self.blocks = f'"{table}_kw_blocks"'
        self.queue = f'"{table}_kw_queue"'
        # postings the last search decoded (the per-namespace cost, for tests)
        self.rows_examined = 0
        self.blocks_read = 0  # blocks the last search read
        b = self.blocks
        self._sql = {
            "term": f"SELECT postings FROM {b} WHERE ns = ? AND term = ? ORDER BY first",
            "at": (
                f"SELECT id, first, postings FROM {b} WHERE ns = ? AND term = ? AND first <= ? "
                "ORDER BY first DESC LIMIT 1"
            ),
            "head": f"SELECT id, first, postings FROM {b} WHERE ns = ? AND term = ? ORDER BY first LIMIT 1",
            "next": f"SELECT first FROM {b} WHERE ns = ? AND term = ? AND first > ? ORDER BY first LIMIT 1",
            "update": f"UPDATE {b} SET first = ?, n = ?, postings = ? WHERE id = ?",
            # a block whose first is unchanged: its index entry is left alone
            "rewrite": f"UPDATE {b} SET n = ?, postings = ? WHERE id = ?",
            "insert": f"INSERT INTO {b} (ns, term, first, n, postings) VALUES (?, ?, ?, ?, ?)",
            "delete": f"DELETE FROM {b} WHERE id = ?",
        }

    # -- schema ---------------------------------------------------------------------------------------------------

    def create_blocks(self, conn: sqlite3.Connection, rows_from: str | None = None) -> None:
        """Create the blocks table.

        With *rows_from* (the quoted name of the row-per-posting table of migration 0005), its postings are
        packed into blocks and the table dropped.
        """
        conn.execute(
            f"""CREATE TABLE {self.blocks} (
                id INTEGER PRIMARY KEY, ns INTEGER NOT NULL, term TEXT NOT NULL, first INTEGER NOT NULL,
                n INTEGER NOT NULL, postings BLOB NOT NULL, UNIQUE (ns, term, first)
            )"""
        )
        if rows_from is None:
            return
        key: tuple[int, str] | None = None
        run: list[tuple[int, int, int]] = []

        def flush() -> None:
            if key is not None and run:
                self._write_new(conn, key[0], key[1], b"".join(_RECORD.pack(*r) for r in run))

        for ns, term, doc, tf, dl in conn.execute(
            f"SELECT ns, term, doc, tf, dl FROM {rows_from} ORDER BY ns, term, doc"
        ):
            if (ns, term) != key:
                flush()
                key, run = (ns, term), []
            run.append((doc, tf, dl))
        flush()
        conn.execute(f"DROP TABLE {rows_from}")

    # -- writes -----------------------------------------------------------------------------------------------

    def namespace_id(self, conn: sqlite3.Connection, namespace: str, *, create: bool) -> int | None:
        """Return the id of *namespace* in the index (None when it has none and *create* is false)."""
        row = conn.execute(f"SELECT id FROM {self.ns} WHERE namespace = ?", (namespace,)).fetchone()
        if row is not None:
            return int(row[0])
        if not create:
            return None
        cur = conn.execute(f"INSERT INTO {self.ns} (namespace) VALUES (?)", (namespace,))
        return int(cur.lastrowid or 0)

    def sync(self, conn: sqlite3.Connection) -> None:
        """Apply the queued changes to the postings (inside the caller's write transaction)."""
        events = conn.execute(
            f"SELECT doc, namespace, old FROM {self.queue} ORDER BY id"
        ).fetchall()
        if not events:
            return
        conn.execute(f"DELETE FROM {self.queue}")
        # What the index holds for a document is what its first queued event saw: an insert means nothing,
        # a delete or an update means the old text (in the old namespace).
        first: dict[int, tuple[str, str | None]] = {}
        for doc, namespace, old in events:
            if doc not in first:
                first[doc] = (namespace, old)
        docs = list(first)
        current: dict[int, tuple[str, str]] = {}
        t = f'"{self.table}"'
        for start in range(0, len(docs), _CHUNK):
            chunk = docs[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))  # placeholders only
            for doc, namespace, text in conn.execute(
                f"SELECT id, namespace, search_text FROM {t} WHERE id IN ({marks})", chunk
            ):
                current[doc] = (namespace, text)
        removed: dict[str, list[int]] = {}
        added: dict[str, list[tuple[int, str]]] = {}
        for doc, (namespace, old) in first.items():
            now = current.get(doc)
            if old is not None:
                if now == (namespace, old):
                    continue  # changed and changed back, or rewritten with the same text
                removed.setdefault(namespace, []).append(doc)
            if now is not None:
                added.setdefault(now[0], []).append((doc, now[1]))
        for namespace in dict.fromkeys([*removed, *added]):
            gone = removed.get(namespace, [])
            self._change(
                conn,
                namespace,
                gone,
                {d: first[d][1] or "" for d in gone},
                added.get(namespace, []),
            )

    def _change(
        self,
        conn: sqlite3.Connection,
        namespace: str,
        gone: list[int],
        old_texts: dict[int, str],
        new: list[tuple[int, str]],
    ) -> None:
        """Remove the postings of the documents *gone* (their indexed texts *old_texts*) and add those of *new*.

        Each term is rewritten once, block by block: a document whose text changed loses and gains its postings
        in one write of each block it is in. Blocks are edited as bytes (a record is 16 bytes): a write touches
        a few records, and numpy's per-call cost would be most of it.
        """
        ns = self.namespace_id(conn, namespace, create=bool(new))
        if ns is None:
            return
        drops: dict[str, set[int]] = {}
        for doc in gone:
            for term in _terms(old_texts[doc]):
                drops.setdefault(term, set()).add(doc)
        adds: dict[str, list[tuple[int, int, int]]] = {}
        added_docs = added_length = 0
        for doc, text in new:
            terms = _terms(text)
            if not terms:
                continue
            dl = sum(terms.values())
            added_docs += 1
            added_length += dl
            for term, tf in terms.items():
                adds.setdefault(term, []).append((doc, tf, dl))
        df_delta: Counter[str] = Counter()
        lengths: dict[int, int] = {}  # removed doc -> its length, from any posting that was indexed
        pack = _RECORD.pack
        for term in dict.fromkeys([*drops, *adds]):
            incoming = sorted(adds.get(term, ()))
            drop = drops.get(term, set())
            touched = sorted(drop.union(r[0] for r in incoming))
            placed = self._blocks_for(conn, ns, term, touched)
            if not placed:
                self._write_new(conn, ns, term, b"".join(pack(*r) for r in incoming))
                df_delta[term] += len(incoming)
                continue
            lost = 0
            j = 0  # next posting of *incoming*
            for block_id, first, blob, ids in placed:
                docs = _docs_of(blob)
                buf = bytes(blob)
                for doc in ids:  # the held postings of the touched documents go
                    i = bisect.bisect_left(docs, doc)
                    if i < len(docs) and docs[i] == doc:
                        if doc in drop:
                            lengths[doc] = _RECORD.unpack_from(buf, 16 * i)[2]
                        buf = buf[: 16 * i] + buf[16 * i + 16 :]
                        del docs[i]
                        lost += 1
                end = j
                while end < len(incoming) and incoming[end][0] <= ids[-1]:
                    end += 1
                for row in incoming[j:end]:  # and the new ones come in (usually last)
                    i = (
                        len(docs)
                        if not docs or row[0] > docs[-1]
                        else bisect.bisect_left(docs, row[0])
                    )
                    buf = buf[: 16 * i] + pack(*row) + buf[16 * i :]
                    docs.insert(i, row[0])
                j = end
                if not docs:
                    conn.execute(self._sql["delete"], (block_id,))
                    continue
                head = min(len(docs), BLOCK_SIZE)
                if first <= ids[0]:
                    conn.execute(self._sql["rewrite"], (head, buf[: 16 * head], block_id))
                else:  # documents before the first block: its range widens to them
                    conn.execute(self._sql["update"], (ids[0], head, buf[: 16 * head], block_id))
                if len(docs) > BLOCK_SIZE:
                    self._write_new(conn, ns, term, buf[16 * BLOCK_SIZE :])
            df_delta[term] += len(incoming) - lost
        # only what was indexed counts (robust to a changed tokenizer)
        self._apply(
            conn,
            ns,
            df_delta,
            added_docs - len(lengths),
            added_length - sum(lengths.values()),
        )

    def _blocks_for(
        self, conn: sqlite3.Connection, ns: int, term: str, docs: list[int]
    ) -> list[tuple[int, int, bytes, list[int]]]:
        """Return ``(block id, first, postings, docs of *docs* in its range)`` for each block *docs* fall in.

        *docs* are sorted ids; ids before the first block go to the first block (the caller widens its range).
        """
        out: list[tuple[int, int, bytes, list[int]]] = []
        i = 0
        while i < len(docs):
            lo = docs[i]
            row = conn.execute(self._sql["at"], (ns, term, lo)).fetchone()
            if row is None:
                row = conn.execute(self._sql["head"], (ns, term)).fetchone()
                if row is None:
                    break
            block_id, key, blob = int(row[0]), int(row[1]), row[2]
            end = len(docs)
            # more documents: those before the next block's first are this block's
            if i + 1 < len(docs):
                after = conn.execute(self._sql["next"], (ns, term, key)).fetchone()
                if after is not None:
                    end = max(bisect.bisect_left(docs, after[0]), i + 1)
            out.append((block_id, key, blob, docs[i:end]))
            i = end
        return out

    def _write_new(self, conn: sqlite3.Connection, ns: int, term: str, postings: bytes) -> None:
        """Store *postings* (packed records sorted by doc, in no block yet) as new blocks of at most BLOCK_SIZE."""
        size = 16 * BLOCK_SIZE
        parts = [postings[i : i + size] for i in range(0, len(postings), size)]
        conn.executemany(
            self._sql["insert"],
            [(ns, term, _RECORD.unpack_from(p)[0], len(p) // 16, p) for p in parts],
        )

    def _apply(
        self, conn: sqlite3.Connection, ns: int, df_delta: Counter[str], n_docs: int, length: int
    ) -> None:
        if df_delta:
            conn.executemany(
                f"INSERT INTO {self.df} (ns, term, df) VALUES (?, ?, ?) "
                "ON CONFLICT (ns, term) DO UPDATE SET df = df + excluded.df",
                [(ns, term, d) for term, d in df_delta.items() if d],
            )
            gone = [(ns, term) for term, d in df_delta.items() if d < 0]
            if gone:
                conn.executemany(
                    f"DELETE FROM {self.df} WHERE ns = ? AND term = ? AND df <= 0", gone
                )
        if n_docs or length:
            conn.execute(
                f"UPDATE {self.ns} SET docs = docs + ?, length = length + ? WHERE id = ?",
                (n_docs, length, ns),
            )

    def clear_namespace(self, conn: sqlite3.Connection, namespace: str) -> None:
        """Drop the whole index of *namespace* after every entry of it was deleted (in the same transaction)."""
        conn.execute(f"DELETE FROM {self.queue} WHERE namespace = ?", (namespace,))
        ns = self.namespace_id(conn, namespace, create=False)
        if ns is not None:
            conn.execute(f"DELETE FROM {self.blocks} WHERE ns = ?", (ns,))
            conn.execute(f"DELETE FROM {self.df} WHERE ns = ?", (ns,))
            conn.execute(f"UPDATE {self.ns} SET docs = 0, length = 0 WHERE id = ?", (ns,))

    # -- search -----------------------------------------------------------------------------------------------

    def postings(self, conn: sqlite3.Connection, ns: int, term: str) -> np.ndarray:
        """Return every posting of *term* in namespace id *ns*, sorted by doc (a structured numpy array)."""
        blobs = [r[0] for r in conn.execute(self._sql["term"], (ns, term))]
        self.blocks_read += len(blobs)
        held: np.ndarray = _np().frombuffer(b"".join(blobs), dtype=_posting_dtype())
        return held

    def search(
        self, conn: sqlite3.Connection, namespace: str, query_terms: Sequence[str], k: int
    ) -> list[tuple[int, float]]:
        """Return the top *k* ``(doc, BM25 score)`` of *namespace*, best first (ties: lower doc id first).

        Exact BM25 with the namespace's own N, average length and document frequencies: every posting of the
        query's terms is read (a block at a time) and scored in one numpy pass; a document's terms are summed
        rarest term first.
        """
        self.rows_examined = self.blocks_read = 0
        row = conn.execute(
            f"SELECT id, docs, length FROM {self.ns} WHERE namespace = ?", (namespace,)
        ).fetchone()
        if row is None or not row[1] or k <= 0:
            return []
        ns, n, total = int(row[0]), int(row[1]), int(row[2])
        avg = total / n or 1.0
        terms: list[tuple[str, float, int]] = []
        for term in dict.fromkeys(query_terms):
            found = conn.execute(
                f"SELECT df FROM {self.df} WHERE ns = ? AND term = ?", (ns, term)
            ).fetchone()
            if found is not None:
                df = int(found[0])
                terms.append((term, math.log(1.0 + (n - df + 0.5) / (df + 0.5)), df))
        if not terms:
            return []
        np = _np()
        terms.sort(
            key=lambda x: x[2]
        )  # rarest (highest idf) first: the order a document's terms are added
        k1p1, omb = K1 + 1.0, 1.0 - B
        docs: list[Any] = []
        scores: list[Any] = []
        for term, idf, _ in terms:
            held = self.postings(conn, ns, term)
            tf = held["tf"].astype(np.float64)
            dl = held["dl"].astype(np.float64)
            docs.append(held["doc"])
            scores.append(idf * tf * k1p1 / (tf + K1 * (omb + B * dl / avg)))
        self.rows_examined = sum(len(d) for d in docs)
        if not self.rows_examined:
            return []
        ids, total_scores = _sum_by_doc(np, docs, scores)
        if len(ids) > k:
            bar = np.partition(total_scores, len(ids) - k)[len(ids) - k]  # the k-th best score
            keep = np.flatnonzero(total_scores >= bar)
        else:
            keep = np.arange(len(ids))
        best = keep[np.lexsort((ids[keep], -total_scores[keep]))][:k]
        return list(zip(ids[best].tolist(), total_scores[best].tolist(), strict=True))
