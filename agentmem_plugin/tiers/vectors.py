"""Small vector indexes in one SQLite table, and the index that moves to a Chroma collection when it grows.

A Chroma collection has a fixed cost whatever it holds (measured with chromadb 1.5.9 on the 2-core machine, see
docs/benchmarks.md): about 2.8 MB of process memory and 180 KB of disk, and 30-95 ms to create, for one vector as
for a hundred. With a collection per namespace, 10,000 users of 100 memories each would hold ~28 GB of memory.
One collection for every namespace with a ``where`` filter does not help: a filtered query costs what the
collection holds (69 ms at 100,000 vectors against 0.75 ms for the namespace's own collection).

So a namespace's vectors start as rows of one shared table (:class:`VectorTable`, ``agentmem-vectors.sqlite3``
inside the index directory), keyed by ``(collection, key)``: a search reads the namespace's rows through the
primary key and ranks them exactly (cosine, numpy), which costs what the namespace holds. A namespace that grows
past ``limit`` vectors (1,000 by default: there an exact scan costs about what an HNSW query does) moves to its
own Chroma collection (:class:`GrowingIndex`): the collection is filled first, then one SQLite transaction records
the move and deletes the rows. A crash in between leaves the rows in place and the move unrecorded; the half-filled
collection is cleared by the next move. Both are derived data, rebuilt from the store when lost.

One process uses a local index directory at a time (see ``claim_index_dir``); threads share a table through
its lock.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agentmem_plugin.embeddings import check_vectors, open_sqlite
from agentmem_plugin.errors import StorageError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_LIMIT",
    "GrowingIndex",
    "TableIndex",
    "VectorIndex",
    "VectorTable",
    "move_aside",
    "open_table",
    "release_table",
]

DEFAULT_LIMIT = 1000
"""Vectors a namespace keeps in the shared table before it moves to its own Chroma collection."""

logger = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
_CHUNK = 500  # keys per statement (SQLite's default limit on host parameters is 32,766; keep statements small)


def move_aside(path: Path) -> Path:
    """Rename *path* (a file with its ``-wal`` / ``-shm``, or a directory) to the first free ``<path>.damaged-<n>``."""
    n = 1
    while (aside := path.with_name(f"{path.name}.damaged-{n}")).exists():
        n += 1
    for suffix in ("-wal", "-shm"):
        journal = path.with_name(path.name + suffix)
        if journal.exists():
            journal.rename(aside.with_name(aside.name + suffix))
    path.rename(aside)
    return aside


class VectorIndex(Protocol):
    """What :class:`~agentmem_plugin.tiers.chroma.SemanticIndex` asks of a vector index keyed by entry key."""

    name: str

    def upsert(self, keys: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        """Insert or replace the vectors of *keys*."""

    def delete(self, keys: Sequence[str]) -> None:
        """Remove *keys* (missing ones are ignored)."""

    def query(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        """Return up to *k* ``(key, cosine similarity)`` pairs, most similar first."""
        ...

    def present(self, keys: Sequence[str]) -> set[str]:
        """Return the keys among *keys* that have a vector."""
        ...

    def count(self) -> int:
        """Return the number of vectors."""
        ...

    def clear(self) -> None:
        """Drop every vector."""

    def check(self) -> None:
        """Read one vector: raise when the storage behind the index cannot be read."""


class VectorTable:
    """The vectors of many small indexes in one SQLite file (or in memory), keyed by ``(collection, key)``.

    Thread-safe. Vectors are stored as float32 bytes. The ``moved`` table lists the collections that live in
    Chroma now (see :class:`GrowingIndex`).

    Args:
        path: The SQLite file (created with its directory), or None for an in-memory table.

    Raises:
        StorageError: the file cannot be opened or was written by a newer version.

    """

    def __init__(self, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else Path(path)
        try:
            try:
                self._conn = self._connect()
            except sqlite3.DatabaseError as exc:
                if self.path is None or not self.path.exists():
                    raise
                aside = move_aside(self.path)  # derived data: rebuilt from the store, never deleted
                logger.warning(
                    "the vector table %s cannot be read (%s: %s); moved it to %s and starting a new one "
                    "(the semantic index is rebuilt from the store)",
                    self.path,
                    type(exc).__name__,
                    exc,
                    aside,
                )
                self._conn = self._connect()
        except sqlite3.Error as exc:
            raise StorageError(
                f"the vector table {str(self.path)!r} cannot be opened ({type(exc).__name__}: {exc})"
            ) from exc
        self._lock = threading.RLock()

    def _connect(self) -> sqlite3.Connection:
        """Open the file (or memory) and create or check the schema."""
        conn = open_sqlite(self.path)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > _SCHEMA_VERSION:
                raise StorageError(
                    f"the vector table {str(self.path)!r} has schema version {version}, newer than this "
                    f"version of agentmem-plugin reads ({_SCHEMA_VERSION}); upgrade agentmem-plugin"
                )
            if version < _SCHEMA_VERSION:
                with conn:
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute(
                        # A rowid table: a 1.5 KB vector is more than a WITHOUT ROWID (index) page keeps in
                        # place, and each row spilled to an overflow page of its own (4.5 KB a vector, not 1.6).
                        "CREATE TABLE IF NOT EXISTS vectors (collection TEXT NOT NULL, key TEXT NOT NULL, "
                        "vector BLOB NOT NULL, PRIMARY KEY (collection, key))"
                    )
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS moved (collection TEXT PRIMARY KEY) WITHOUT ROWID"
                    )
                    conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _write(self, statements: Callable[[sqlite3.Connection], object]) -> None:
        """Run *statements* in one write transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                statements(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _write_unless_moved(
        self, collection: str, statements: Callable[[sqlite3.Connection], object]
    ) -> bool:
        """Run *statements* in one write transaction unless *collection* was moved; return False when moved.

        The check and the write are one transaction, so a write never lands as a row of a collection that another
        index object (a second ``Memory`` on the same store in this process) has just moved to Chroma.
        """
        done = False

        def guarded(c: sqlite3.Connection) -> None:
            nonlocal done
            if (
                c.execute("SELECT 1 FROM moved WHERE collection = ?", (collection,)).fetchone()
                is None
            ):
                statements(c)
                done = True

        self._write(guarded)
        return done

    def upsert(self, collection: str, keys: Sequence[str], rows: np.ndarray) -> bool:
        """Insert or replace the vectors of *keys* (one float32 row each); False (nothing written) when moved."""
        data = [(collection, key, row.tobytes()) for key, row in zip(keys, rows, strict=True)]
        return self._write_unless_moved(
            collection,
            lambda c: c.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", data),
        )

    def delete(self, collection: str, keys: Sequence[str]) -> bool:
        """Remove the vectors of *keys* (missing ones are ignored); False (nothing done) when moved."""
        data = [(collection, key) for key in keys]
        return self._write_unless_moved(
            collection,
            lambda c: c.executemany("DELETE FROM vectors WHERE collection = ? AND key = ?", data),
        )

    def vectors(self, collection: str, dim: int) -> tuple[list[str], np.ndarray]:
        """Return the keys of *collection* (in key order) and their vectors as one ``(n, dim)`` float32 matrix."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, vector FROM vectors WHERE collection = ? ORDER BY key", (collection,)
            ).fetchall()
        import numpy as np  # the semantic extra: imported when vectors are used, not with the module

        if not rows:
            return [], np.zeros((0, dim), dtype=np.float32)
        matrix = np.frombuffer(b"".join(blob for _, blob in rows), dtype=np.float32)
        return [key for key, _ in rows], matrix.reshape(len(rows), -1)

    def present(self, collection: str, keys: Sequence[str]) -> set[str]:
        """Return the keys among *keys* that *collection* holds a vector for."""
        found: set[str] = set()
        with self._lock:
            for start in range(0, len(keys), _CHUNK):
                chunk = list(keys[start : start + _CHUNK])
                marks = ",".join("?" * len(chunk))
                found.update(
                    key
                    for (key,) in self._conn.execute(
                        f"SELECT key FROM vectors WHERE collection = ? AND key IN ({marks})",  # noqa: S608 (marks only)
                        [collection, *chunk],
                    )
                )
        return found

    def count(self, collection: str) -> int:
        """Return how many vectors *collection* holds in the table."""
        with self._lock:
            return int(
                self._conn.execute(
                    "SELECT count(*) FROM vectors WHERE collection = ?", (collection,)
                ).fetchone()[0]
            )

    def clear(self, collection: str) -> None:
        """Drop the vectors of *collection* and its ``moved`` mark."""

        def clear(c: sqlite3.Connection) -> None:
            c.execute("DELETE FROM vectors WHERE collection = ?", (collection,))
            c.execute("DELETE FROM moved WHERE collection = ?", (collection,))

        self._write(clear)

    def is_moved(self, collection: str) -> bool:
        """Return True when *collection* lives in Chroma (its move was recorded)."""
        with self._lock:
            return (
                self._conn.execute(
                    "SELECT 1 FROM moved WHERE collection = ?", (collection,)
                ).fetchone()
                is not None
            )

    def record_move(self, collection: str) -> None:
        """Record that *collection* lives in Chroma now and drop its rows, in one transaction."""

        def move(c: sqlite3.Connection) -> None:
            c.execute("INSERT OR IGNORE INTO moved VALUES (?)", (collection,))
            c.execute("DELETE FROM vectors WHERE collection = ?", (collection,))

        self._write(move)

    def locked(self) -> threading.RLock:
        """Return the table's lock (reentrant): every read and write of the table waits while it is held."""
        return self._lock

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


_TABLES: dict[str, tuple[VectorTable, int]] = {}  # resolved file -> (table, users in this process)
_TABLES_LOCK = threading.Lock()


def open_table(path: str | PathLike[str]) -> VectorTable:
    """Return this process's :class:`VectorTable` for the file *path* (shared; see :func:`release_table`)."""
    name = str(Path(path).resolve())
    with _TABLES_LOCK:
        held = _TABLES.get(name)
        if held is not None:
            _TABLES[name] = (held[0], held[1] + 1)
            return held[0]
        table = VectorTable(path)
        _TABLES[name] = (table, 1)
        return table


def release_table(path: str | PathLike[str]) -> None:
    """Undo one :func:`open_table` of *path*; the last one closes the table."""
    name = str(Path(path).resolve())
    with _TABLES_LOCK:
        held = _TABLES.get(name)
        if held is None:
            return
        if held[1] > 1:
            _TABLES[name] = (held[0], held[1] - 1)
            return
        del _TABLES[name]
    held[0].close()


def _unit_rows(
    vectors: Sequence[Sequence[float]], count: int, dim: int | None, source: str
) -> np.ndarray:
    """Check *vectors* (count, dimension, finite values) and return them as a float32 matrix."""
    rows = check_vectors(vectors, count, dim, source=source)
    import numpy as np

    return np.asarray(rows, dtype=np.float32).reshape(count, -1)


class TableIndex:
    """One collection of a :class:`VectorTable`: exact cosine search over its rows.

    Args:
        table: The shared table.
        name: The collection name (the partition of the table).
        dim: The vector dimension (checked on every write and query).

    """

    def __init__(self, table: VectorTable, name: str, *, dim: int) -> None:
        self.table = table
        self.name = name
        self.dim = dim

    def upsert(self, keys: Sequence[str], vectors: Sequence[Sequence[float]]) -> bool:
        """Insert or replace the vectors of *keys*; False (nothing written) when the collection was moved."""
        if not keys:
            return True
        return self.table.upsert(
            self.name, keys, _unit_rows(vectors, len(keys), self.dim, self.name)
        )

    def delete(self, keys: Sequence[str]) -> bool:
        """Remove *keys* (missing ones are ignored); False (nothing done) when the collection was moved."""
        return self.table.delete(self.name, keys) if keys else True

    def query(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        """Return up to *k* ``(key, cosine similarity)`` pairs, most similar first (ties in key order)."""
        if k <= 0:
            return []
        row = _unit_rows([vector], 1, self.dim, self.name)[0]
        keys, matrix = self.table.vectors(self.name, self.dim)
        if not keys:
            return []
        import numpy as np

        norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(row))
        sims = (matrix @ row) / np.maximum(norms, np.finfo(np.float32).tiny)
        order = np.argsort(-sims, kind="stable")[:k]
        return [(keys[i], float(sims[i])) for i in order]

    def present(self, keys: Sequence[str]) -> set[str]:
        """Return the keys among *keys* that have a vector."""
        return self.table.present(self.name, keys)

    def count(self) -> int:
        """Return the number of vectors."""
        return self.table.count(self.name)

    def clear(self) -> None:
        """Drop every vector."""
        self.table.clear(self.name)

    def check(self) -> None:
        """Read one row (the table is opened and checked on open; nothing more to read here)."""
        self.table.count(self.name)


class GrowingIndex:
    """A namespace's vectors: rows of the shared table while small, its own Chroma collection once large.

    See the module docstring for the move and what a crash during it leaves.

    Args:
        table: The shared table.
        name: The collection name (in the table, and in Chroma once moved).
        dim: The vector dimension.
        open_collection: Returns the Chroma index named *name* (created when missing).
        drop_collection: Deletes the Chroma collection named *name* (ignoring a missing one).
        limit: Vectors kept in the table; the write that passes it moves the index to Chroma.
        existing_count: Returns how many vectors the Chroma collection named *name* holds, 0 when there is
            none, without creating it (see :meth:`stray_collection`); None: never asked.

    """

    def __init__(
        self,
        table: VectorTable,
        name: str,
        *,
        dim: int,
        open_collection: Callable[[], Any],
        drop_collection: Callable[[], None],
        limit: int = DEFAULT_LIMIT,
        existing_count: Callable[[], int] | None = None,
    ) -> None:
        self.table = table
        self.name = name
        self.dim = dim
        self.limit = limit
        self._open_collection = open_collection
        self._drop_collection = drop_collection
        self._stray_count = existing_count or (lambda: 0)
        self._small = TableIndex(table, name, dim=dim)
        self._large: Any = None

    def _large_index(self) -> Any:
        """Return the Chroma index (opened on first use)."""
        if self._large is None:
            self._large = self._open_collection()
        return self._large

    def _on_table(self, op: Callable[[TableIndex], Any]) -> tuple[bool, Any]:
        """Run *op* on the table part, unless the collection was moved: ``(True, result)`` or ``(False, None)``.

        The moved check and *op* are one step under the table's lock, and a move holds that lock from reading
        the rows to recording it, so *op* never reads the rows of a collection that is being moved (or was just
        moved) by another index object on the same store (a second ``Memory`` opened meanwhile).
        """
        with self.table.locked():
            if self.table.is_moved(self.name):
                return False, None
            self._large = None  # cleared by another index object: back in the table
            return True, op(self._small)

    @property
    def layout(self) -> str:
        """``"table"`` while the vectors are rows of the shared table, ``"collection"`` once moved to Chroma."""
        return "table" if self._on_table(lambda small: None)[0] else "collection"

    @property
    def collection(self) -> Any:
        """The Chroma collection behind a moved index (benchmarks query it directly as their reference).

        Raises:
            StorageError: the index still lives in the shared table.

        """
        if self.layout == "table":
            raise StorageError(
                f"the vector index {self.name!r} is in the shared table, not in Chroma"
            )
        return self._large_index().collection

    def upsert(self, keys: Sequence[str], vectors: Sequence[Sequence[float]]) -> None:
        """Insert or replace the vectors of *keys*; move to Chroma when the table part passes ``limit``."""
        on_table, count = self._on_table(
            lambda small: (small.count() if keys else 0) if small.upsert(keys, vectors) else None
        )
        if not on_table or count is None:  # moved (count None: the table refused the rows as moved)
            self._large_index().upsert(keys, vectors)
        elif count > self.limit:
            self._move()

    def _move(self) -> None:
        """Fill this index's Chroma collection from the table, then record the move (see the module docstring).

        Atomic for this process: the table's lock is held from reading the rows to recording the move, so no
        write to the table (by this or another index object on the same store) lands in between, and a move
        another index object recorded first is seen before anything is cleared.
        """
        with self.table.locked():
            if self.table.is_moved(self.name):
                return
            large = self._open_collection()
            large.clear()  # what an interrupted move (or an older version of this library) left
            keys, matrix = self.table.vectors(self.name, self.dim)
            large.upsert(keys, matrix)
            self.table.record_move(self.name)
            self._large = large

    def delete(self, keys: Sequence[str]) -> None:
        """Remove *keys* (missing ones are ignored)."""
        if not self._on_table(lambda small: small.delete(keys))[0]:
            self._large_index().delete(keys)

    def query(self, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        """Return up to *k* ``(key, cosine similarity)`` pairs, most similar first."""
        on_table, hits = self._on_table(lambda small: small.query(vector, k))
        return list(hits if on_table else self._large_index().query(vector, k))

    def present(self, keys: Sequence[str]) -> set[str]:
        """Return the keys among *keys* that have a vector."""
        on_table, found = self._on_table(lambda small: small.present(keys))
        return set(found if on_table else self._large_index().present(keys))

    def count(self) -> int:
        """Return the number of vectors."""
        on_table, n = self._on_table(lambda small: small.count())
        return int(n if on_table else self._large_index().count())

    def stray_collection(self) -> bool:
        """Return True when the index is in the table but a Chroma collection of its name holds vectors.

        What an interrupted move leaves, or an older version of this library (a collection per namespace),
        which may have acknowledged changes into the collection that the table never saw: the caller rebuilds.
        """
        return bool(self._on_table(lambda small: None)[0] and self._stray_count() > 0)

    def clear(self) -> None:
        """Drop every vector, in Chroma and in the table; the index is back in the table.

        Under the table's lock, so no write of another index object lands between the two (a rebuild moves the
        index again when it is large).
        """
        with self.table.locked():
            self._drop_collection()
            self._large = None
            self.table.clear(self.name)

    def check(self) -> None:
        """Read one vector: raise when the table or the Chroma collection cannot be read."""
        if not self._on_table(lambda small: small.check())[0]:
            self._large_index().check()
