"""The persistent long-term tier: SQLite through sqlite-utils, durable, concurrent and keyword-searchable.

Design:

* **One file, many users.** WAL journal, a busy timeout, and every write in a ``BEGIN IMMEDIATE``
  transaction, so several threads (one connection per tier, guarded by a lock) and several processes can use
  one file at once without "database is locked" errors under normal contention.
* **Durability trade-off.** ``synchronous=NORMAL``: a committed write survives a crash of the process
  (``kill -9``) but the last transactions may be lost on power failure or an OS crash. Pass
  ``synchronous="FULL"`` to make every commit survive those too, at a cost in write speed.
* **Versioned schema.** sqlite-utils :class:`~sqlite_utils.migrations.Migrations`, applied on open inside one
  immediate transaction; a store that records a migration this version does not know was written by a newer
  version and is refused (:class:`SchemaVersionError`).
* **Keyword search.** An FTS5 index (``porter`` stemming, ranked by ``bm25()``) over each entry's key, value
  text and tags, kept in sync by triggers in the same transaction as the row.
* **Reads stay reads.** Counting a read (access_count, last_accessed, recency) would turn every ``get`` into a
  write transaction. Reads are recorded in memory and flushed with the next write, every
  ``touch_flush_interval`` seconds, every 1024 reads, and on :meth:`close`. A process killed with pending reads
  loses those counts, never data.
* Values are JSON (orjson), zstd-compressed above ``compression_threshold`` bytes; nothing is pickled and no SQL
  is built from user text: the only identifier that varies (the table name) is validated against
  ``[A-Za-z_][A-Za-z0-9_]{0,62}`` and quoted.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import re
import sqlite3
import time
import weakref
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

from agentmem_plugin.codec import (
    DEFAULT_COMPRESSION_THRESHOLD,
)
from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import (
    InvalidArgumentError,
    ReadOnlyStoreError,
    SchemaVersionError,
    StorageError,
    StoreCorruptError,
)
from agentmem_plugin.search import tokenize
from agentmem_plugin.tiers.base import (
    ENTRY_COLUMNS,
    UNCHANGED,
    UPDATED_COLUMNS,
    EvictionCallback,
    Tier,
    entry_to_row,
    namespace_bounds,
    row_to_entry,
)
from agentmem_plugin.tiers.postings import KeywordIndex

__all__ = ["SqliteTier", "validate_identifier"]

logger = logging.getLogger(__name__)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_COLUMNS = ", ".join(ENTRY_COLUMNS)
_TOUCH_FLUSH_COUNT = 1024
_CHUNK = 500  # keys per batched query (SQLite allows 32766 variables)
_UPDATES = ", ".join(f"{c} = excluded.{c}" for c in UPDATED_COLUMNS)
_LIVE = "(expires_at IS NULL OR expires_at > ?)"


def validate_identifier(name: object, *, what: str = "table_name") -> str:
    """Return *name* if it is a safe SQL identifier (``[A-Za-z_][A-Za-z0-9_]{0,62}``), else raise.

    Raises:
        InvalidArgumentError: *name* is not such an identifier (it is never put into SQL).

    """
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or name.startswith("sqlite_"):
        raise InvalidArgumentError(
            f"{what} must match [A-Za-z_][A-Za-z0-9_]{{0,62}} and not start with 'sqlite_'; got {name!r:.80}"
        )
    return name


def _migrations(table: str) -> Any:
    """Return the ordered schema migrations for *table* (a validated identifier)."""
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(f"agentmem:{table}")
    t = f'"{table}"'
    fts = f'"{table}_fts"'

    @migrations(name="0001_entries_and_fts")
    def create_entries(db: Any) -> None:
        db.executescript(
            f"""
            CREATE TABLE {t} (
                id INTEGER PRIMARY KEY,
                namespace TEXT NOT NULL DEFAULT '',
                key TEXT NOT NULL,
                value BLOB NOT NULL,
                search_text TEXT NOT NULL DEFAULT '',
                created_at REAL NOT NULL,
                expires_at REAL,
                ttl REAL,
                priority INTEGER NOT NULL DEFAULT 0,
                tags TEXT NOT NULL DEFAULT '[]',
                metadata TEXT NOT NULL DEFAULT '{{}}',
                access_count INTEGER NOT NULL DEFAULT 0,
                last_accessed REAL,
                seq INTEGER NOT NULL DEFAULT 0,
                UNIQUE (namespace, key)
            );
            CREATE INDEX "{table}_expiry" ON {t} (namespace, expires_at) WHERE expires_at IS NOT NULL;
            CREATE INDEX "{table}_victims" ON {t} (namespace, priority, seq);
            CREATE INDEX "{table}_seq" ON {t} (seq);
            CREATE VIRTUAL TABLE {fts} USING fts5(
                search_text, content={t}, content_rowid='id', tokenize='porter unicode61'
            );
            CREATE TRIGGER "{table}_ai" AFTER INSERT ON {t} BEGIN
                INSERT INTO {fts} (rowid, search_text) VALUES (new.id, new.search_text);
            END;
            CREATE TRIGGER "{table}_ad" AFTER DELETE ON {t} BEGIN
                INSERT INTO {fts} ({fts}, rowid, search_text) VALUES ('delete', old.id, old.search_text);
            END;
            CREATE TRIGGER "{table}_au" AFTER UPDATE OF search_text ON {t} BEGIN
                INSERT INTO {fts} ({fts}, rowid, search_text) VALUES ('delete', old.id, old.search_text);
                INSERT INTO {fts} (rowid, search_text) VALUES (new.id, new.search_text);
            END;
            """
        )

    @migrations(name="0002_namespace_counts")
    def create_counts(db: Any) -> None:
        # O(1) capacity checks: a per-namespace row count kept by triggers (count(*) is O(n)).
        db.executescript(
            f"""
            CREATE TABLE "{table}_counts" (namespace TEXT PRIMARY KEY, n INTEGER NOT NULL);
            INSERT INTO "{table}_counts" (namespace, n) SELECT namespace, count(*) FROM {t} GROUP BY namespace;
            CREATE TRIGGER "{table}_count_ai" AFTER INSERT ON {t} BEGIN
                INSERT INTO "{table}_counts" (namespace, n) VALUES (new.namespace, 1)
                ON CONFLICT (namespace) DO UPDATE SET n = n + 1;
            END;
            CREATE TRIGGER "{table}_count_ad" AFTER DELETE ON {t} BEGIN
                UPDATE "{table}_counts" SET n = n - 1 WHERE namespace = old.namespace;
            END;
            """
        )

    @migrations(name="0003_semantic_outbox")
    def create_outbox(db: Any) -> None:
        # Changes a semantic index must apply, written by triggers in the same transaction as the entry, and
        # only for namespaces that have an index (a row in index_meta).
        out = f'"{table}_outbox"'
        meta = f'"{table}_index_meta"'
        when_new = f"WHEN EXISTS (SELECT 1 FROM {meta} WHERE namespace = new.namespace)"
        db.executescript(
            f"""
            CREATE INDEX "{table}_ns_id" ON {t} (namespace, id);
            CREATE TABLE {out} (id INTEGER PRIMARY KEY, namespace TEXT NOT NULL, key TEXT NOT NULL);
            CREATE INDEX "{table}_outbox_ns" ON {out} (namespace, id);
            CREATE TABLE {meta} (namespace TEXT PRIMARY KEY, model TEXT NOT NULL, dim INTEGER NOT NULL);
            CREATE TRIGGER "{table}_outbox_ai" AFTER INSERT ON {t} {when_new} BEGIN
                INSERT INTO {out} (namespace, key) VALUES (new.namespace, new.key);
            END;
            CREATE TRIGGER "{table}_outbox_au" AFTER UPDATE OF search_text ON {t} {when_new} BEGIN
                INSERT INTO {out} (namespace, key) VALUES (new.namespace, new.key);
            END;
            CREATE TRIGGER "{table}_outbox_ad" AFTER DELETE ON {t}
            WHEN EXISTS (SELECT 1 FROM {meta} WHERE namespace = old.namespace) BEGIN
                INSERT INTO {out} (namespace, key) VALUES (old.namespace, old.key);
            END;
            """
        )

    @migrations(name="0004_versions")
    def add_versions(db: Any) -> None:
        # Which write of its key a row holds (MemoryEntry.version): moves compare it instead of values. Rows
        # written before are version 0, older than any write.
        db.execute(f"ALTER TABLE {t} ADD COLUMN version INTEGER NOT NULL DEFAULT 0")

    @migrations(name="0005_namespace_keyword_index")
    def namespace_keyword_index(db: Any) -> None:
        # The shared FTS5 table ranked every match in the store before filtering by namespace, with store-wide
        # BM25 statistics. Each namespace now has its own postings, document frequencies and lengths (keyed
        # by a namespace id), so a search costs what its namespace holds; see docs/storage.md.
        kw = KeywordIndex(table)
        db.executescript(
            f"""
            DROP TRIGGER IF EXISTS "{table}_ai";
            DROP TRIGGER IF EXISTS "{table}_ad";
            DROP TRIGGER IF EXISTS "{table}_au";
            DROP TABLE IF EXISTS {fts};
            CREATE TABLE {kw.ns} (
                id INTEGER PRIMARY KEY, namespace TEXT NOT NULL UNIQUE,
                docs INTEGER NOT NULL DEFAULT 0, length INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE {kw.df} (
                ns INTEGER NOT NULL, term TEXT NOT NULL, df INTEGER NOT NULL, PRIMARY KEY (ns, term)
            ) WITHOUT ROWID;
            CREATE TABLE "{table}_kw_post" (
                ns INTEGER NOT NULL, term TEXT NOT NULL, doc INTEGER NOT NULL, tf INTEGER NOT NULL,
                dl INTEGER NOT NULL, PRIMARY KEY (ns, term, doc)
            ) WITHOUT ROWID;
            CREATE TABLE {kw.queue} (
                id INTEGER PRIMARY KEY, doc INTEGER NOT NULL, namespace TEXT NOT NULL, old TEXT
            );
            CREATE TRIGGER "{table}_kw_ai" AFTER INSERT ON {t} BEGIN
                INSERT INTO {kw.queue} (doc, namespace, old) VALUES (new.id, new.namespace, NULL);
            END;
            CREATE TRIGGER "{table}_kw_ad" AFTER DELETE ON {t} BEGIN
                INSERT INTO {kw.queue} (doc, namespace, old) VALUES (old.id, old.namespace, old.search_text);
            END;
            CREATE TRIGGER "{table}_kw_au" AFTER UPDATE OF search_text, namespace ON {t}
            WHEN old.search_text IS NOT new.search_text OR old.namespace IS NOT new.namespace BEGIN
                INSERT INTO {kw.queue} (doc, namespace, old) VALUES (old.id, old.namespace, old.search_text);
            END;
            INSERT INTO {kw.queue} (doc, namespace, old) SELECT id, namespace, NULL FROM {t} ORDER BY id;
            """
        )
        # the queue is applied by 0006, into the blocks it creates (a store that applied 0005 before 0006
        # existed has its postings in {table}_kw_post: 0006 packs them)

    @migrations(name="0006_keyword_blocks")
    def keyword_blocks(db: Any) -> None:
        # One posting per row cost about a microsecond each to read: a term's postings are packed in blocks
        # now (agentmem_plugin/tiers/postings.py).
        kw = KeywordIndex(table)
        kw.create_blocks(db.conn, rows_from=f'"{table}_kw_post"')
        kw.sync(db.conn)

    return migrations


def _enable_wal(conn: sqlite3.Connection, timeout: float) -> str:
    """Switch to WAL, retrying while another process holds the lock.

    Changing the journal mode needs an exclusive lock and SQLite does not always run the busy handler for it:
    two processes opening a new file at once otherwise see "database is locked".
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _close_connection(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):  # best effort at interpreter exit
        conn.close()


class SqliteTier(Tier):
    """A durable SQLite tier with FTS5 keyword search, capacity and TTL.

    Args:
        path: The database file; None (or ``":memory:"``) keeps a private in-memory database.
        table: Table name (a validated identifier); several tables can share one file.
        namespace: Every entry of this tier lives in this namespace; other namespaces are invisible.
        capacity: Maximum live entries in this namespace (None: unbounded).
        clock: Source of the current time.
        on_evict: Called inside the write transaction with entries evicted for capacity; if it raises, the
            whole write is rolled back.
        compression_threshold: Encoded values above this many bytes are zstd-compressed (None: never).
        busy_timeout: Seconds a write waits for another writer before failing.
        synchronous: ``"NORMAL"`` (default, see module docs) or ``"FULL"``.
        touch_flush_interval: Seconds between flushes of recorded reads.

    Raises:
        StoreCorruptError: *path* holds a file that is not a SQLite database or a table that is not ours.
        SchemaVersionError: the store was written by a newer version.
        ReadOnlyStoreError: *path* cannot be written.

    Example:
        >>> from agentmem_plugin.entry import MemoryEntry
        >>> tier = SqliteTier(None)
        >>> tier.put(MemoryEntry("prefs", {"language": "english"}, tags=["user"]))
        >>> [e.key for e, _ in tier.keyword_search("english")]
        ['prefs']

    """

    name = "sqlite"
    persistent = True

    def __init__(
        self,
        path: str | PathLike[str] | None = None,
        *,
        table: str = "memories",
        namespace: str = "",
        capacity: int | None = None,
        clock: Clock | None = None,
        on_evict: EvictionCallback | None = None,
        compression_threshold: int | None = DEFAULT_COMPRESSION_THRESHOLD,
        busy_timeout: float = 30.0,
        synchronous: str = "NORMAL",
        touch_flush_interval: float = 1.0,
        share_connection_with: SqliteTier | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.table = validate_identifier(table)
        self._configure(
            namespace=namespace,
            capacity=capacity,
            on_evict=on_evict,
            compression_threshold=compression_threshold,
        )
        if synchronous not in ("NORMAL", "FULL"):
            raise InvalidArgumentError(
                f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}"
            )
        self.touch_flush_interval = touch_flush_interval
        self._pending: dict[str, list[Any]] = {}  # key -> [reads, last_accessed]
        self._pending_since = 0.0
        self._closed = False
        self._busy_timeout_ms = int(busy_timeout * 1000)
        self.path: Path | None
        self.in_memory: bool
        self._conn: sqlite3.Connection
        if share_connection_with is not None:
            # Another table in the same database, on the same connection and lock: a transaction of either
            # tier can include writes to both (the manager's atomic moves between tiers).
            other = share_connection_with
            self.in_memory, self.path = other.in_memory, other.path
            self._conn, self._lock, self._owns_connection = other._conn, other._lock, False
        else:
            self.in_memory = path is None or str(path) == ":memory:"
            self.path = None if self.in_memory else Path(path)  # type: ignore[arg-type]
            self._conn = self._connect(busy_timeout, synchronous)
            self._owns_connection = True
        self._finalizer = (
            weakref.finalize(self, _close_connection, self._conn) if self._owns_connection else None
        )
        from sqlite_utils import Database

        # sqlite-utils runs and commits a PRAGMA: never inside another thread's transaction on this connection
        with self._lock:
            self.db = Database(self._conn, execute_plugins=False)
        self._q = self._statements()
        self._kw = KeywordIndex(self.table)
        self._migrate()

    # -- opening ------------------------------------------------------------------------------------------------

    def _connect(self, busy_timeout: float, synchronous: str) -> sqlite3.Connection:
        if self.path is None:
            conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            conn.execute(f"PRAGMA synchronous={synchronous}")
            return conn
        path = self.path
        if path.exists() and not path.is_file():
            raise InvalidArgumentError(f"SQLite path {str(path)!r} exists and is not a file")
        parent = path.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ReadOnlyStoreError(f"cannot create the directory {str(parent)!r}: {exc}") from exc
        if not os.access(parent, os.W_OK | os.X_OK) or (
            path.exists() and not os.access(path, os.W_OK)
        ):
            raise ReadOnlyStoreError(f"the store at {str(path)!r} is not writable")
        if path.exists() and path.stat().st_size > 0:
            with open(path, "rb") as fh:
                if fh.read(16) != b"SQLite format 3\x00":
                    raise StoreCorruptError(
                        f"{str(path)!r} is not a SQLite database (left untouched); "
                        "choose another path or move the file away"
                    )
        try:
            conn = sqlite3.connect(
                str(path), timeout=busy_timeout, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the store at {str(path)!r}: {exc}") from exc
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            mode = _enable_wal(conn, busy_timeout)
            if str(mode).lower() != "wal":
                logger.warning("could not enable WAL on %s (journal_mode=%s)", path, mode)
            conn.execute(f"PRAGMA synchronous={synchronous}")
            # A larger page cache and in-memory temp b-trees speed up bulk writes (FTS + indexes) ~1.4x.
            conn.execute("PRAGMA cache_size=-65536")
            conn.execute("PRAGMA temp_store=MEMORY")
        except sqlite3.DatabaseError as exc:
            conn.close()
            if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc).lower():
                raise ReadOnlyStoreError(f"the store at {str(path)!r} is read-only: {exc}") from exc
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc).lower():
                raise StorageError(  # a valid file another connection holds: busy, not corrupt
                    f"the store at {str(path)!r} is busy: another connection held its lock for more than "
                    f"{busy_timeout} s ({exc}); try again, or raise busy_timeout"
                ) from exc
            raise StoreCorruptError(
                f"{str(path)!r} is not a usable SQLite database (left untouched): {exc}"
            ) from exc
        return conn

    def _migrate(self) -> None:
        migrations = _migrations(self.table)
        known = [m.name for m in migrations._migrations]
        where = str(self.path) if self.path else ":memory:"
        try:
            # under the connection's lock: a namespace view opening on a connection it shares with others must
            # not begin (or nest into) a transaction another thread has open on it
            with self._lock, self._immediate():
                applied = [m.name for m in migrations.applied(self.db)]
                unknown = [name for name in applied if name not in known]
                if unknown:
                    raise SchemaVersionError(
                        f"the store at {where!r} (table {self.table!r}) was written by a newer version of "
                        f"agentmem_plugin (unknown migrations {unknown}); upgrade agentmem-plugin to open it"
                    )
                if not applied and self.db[self.table].exists():
                    raise StoreCorruptError(
                        f"{where!r} already has a table {self.table!r} that agentmem_plugin did not create; "
                        "pass another table name"
                    )
                pending = [name for name in known if name not in applied]
                if pending:
                    migrations.apply(self.db)
                    logger.info("store %s: applied migrations %s", where, pending)
        except sqlite3.OperationalError as exc:
            self.close()
            if "readonly" in str(exc).lower():
                raise ReadOnlyStoreError(f"the store at {where!r} is read-only: {exc}") from exc
            raise StorageError(f"cannot prepare the store at {where!r}: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def _statements(self) -> dict[str, str]:
        t = f'"{self.table}"'
        live = "namespace = ? AND (expires_at IS NULL OR expires_at > ?)"
        return {
            "get": f"SELECT {_COLUMNS} FROM {t} WHERE namespace = ? AND key = ?",
            "get_in": f"SELECT {_COLUMNS} FROM {t} WHERE namespace = ? AND key IN ",  # + "(?,?,...)"
            "upsert": (
                f"INSERT INTO {t} (namespace, key, value, search_text, created_at, expires_at, ttl, priority, "
                "tags, metadata, access_count, last_accessed, version, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                f"ON CONFLICT (namespace, key) DO UPDATE SET {_UPDATES}"
            ),
            "delete": f"DELETE FROM {t} WHERE namespace = ? AND key = ?",
            "max_seq": f"SELECT coalesce(max(seq), 0) FROM {t}",
            "touch": (
                f"UPDATE {t} SET access_count = access_count + ?, last_accessed = ?, seq = ? "
                "WHERE namespace = ? AND key = ?"
            ),
            "touch_stats": (
                f"UPDATE {t} SET access_count = access_count + ?, last_accessed = ? WHERE namespace = ? AND key = ?"
            ),
            "count_all": f'SELECT n FROM "{self.table}_counts" WHERE namespace = ?',
            "count_expired": f"SELECT count(*) FROM {t} WHERE namespace = ? AND expires_at <= ?",
            "expired_keys": f"SELECT key FROM {t} WHERE namespace = ? AND expires_at <= ?",
            "delete_expired": f"DELETE FROM {t} WHERE namespace = ? AND expires_at <= ?",
            "victims": (
                f"SELECT {_COLUMNS} FROM {t} WHERE namespace = ? ORDER BY priority, seq LIMIT ?"
            ),
            "scan": f"SELECT {_COLUMNS} FROM {t} WHERE {live} ORDER BY seq",
            "clear": f"DELETE FROM {t} WHERE namespace = ?",
            "by_ids": f"SELECT id, {_COLUMNS} FROM {t} WHERE namespace = ? AND id IN ",
        }

    # -- transactions -------------------------------------------------------------------------------------------

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: take the write lock up front, waiting up to busy_timeout).

        Inside a transaction already open on this connection it becomes a savepoint of that transaction.
        """
        conn = self._conn
        if conn.in_transaction:
            conn.execute("SAVEPOINT agentmem_nested")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK TO agentmem_nested")
                    conn.execute("RELEASE agentmem_nested")
                raise
            else:
                conn.execute("RELEASE agentmem_nested")
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        else:
            try:
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @contextmanager
    def _write(self, what: str) -> Iterator[sqlite3.Connection]:
        """Open a write transaction that flushes recorded reads first; SQLite errors become StorageError."""
        self._check_open()
        try:
            with self._immediate() as conn:
                self._flush_touches(conn)
                yield conn
                self._kw.sync(conn)
        except sqlite3.Error as exc:
            where = str(self.path) if self.path else ":memory:"
            raise StorageError(f"{what} failed on {where!r} and was rolled back: {exc}") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"the store at {str(self.path or ':memory:')!r} is closed")

    def _flush_touches(self, conn: sqlite3.Connection) -> None:
        if not self._pending:
            return
        ns = self.namespace
        if self.capacity is None:
            # Recency order only matters for eviction: without a capacity, leave the indexed seq alone.
            rows = [(reads, last, ns, key) for key, (reads, last) in self._pending.items()]
            conn.executemany(self._q["touch_stats"], rows)
        else:
            seq = conn.execute(self._q["max_seq"]).fetchone()[0]
            ranked = [
                (reads, last, seq + i, ns, key)
                for i, (key, (reads, last)) in enumerate(self._pending.items(), 1)
            ]
            conn.executemany(self._q["touch"], ranked)
        self._pending.clear()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes of this tier (and of tiers sharing its connection) into one atomic transaction."""
        with self._lock, self._write("a grouped write"):
            yield

    def shares_connection(self, other: Tier) -> bool:
        """Return True when *other* is a SQLite tier on this very connection (one transaction holds both)."""
        return isinstance(other, SqliteTier) and other._conn is self._conn

    def flush(self) -> None:
        """Write recorded reads (access counts, recency) to the database now."""
        with self._lock:
            if self._pending and not self._closed:
                with self._write("flushing read statistics"):
                    pass

    # -- capacity -------------------------------------------------------------------------------------------------

    def _enforce_capacity(self, conn: sqlite3.Connection, now: float) -> None:
        if self.capacity is None:
            return
        row = conn.execute(self._q["count_all"], (self.namespace,)).fetchone()
        total = row[0] if row else 0
        if total <= self.capacity:
            return
        purged = conn.execute(self._q["delete_expired"], (self.namespace, now)).rowcount
        if purged:
            self.stats_counters.expirations += purged
            total -= purged
        excess = total - self.capacity
        if excess <= 0:
            return
        victims = [
            row_to_entry(r) for r in conn.execute(self._q["victims"], (self.namespace, excess))
        ]
        if self.on_evict is not None:
            self.on_evict(victims)
        conn.executemany(self._q["delete"], [(self.namespace, v.key) for v in victims])
        self.stats_counters.evictions += len(victims)
        logger.debug("sqlite: evicted %d entries for capacity %d", len(victims), self.capacity)

    # -- primitives -------------------------------------------------------------------------------------------------

    def _encode(self, entry: MemoryEntry, seq: int) -> tuple[Any, ...]:
        row = entry_to_row(entry, compression_threshold=self.compression_threshold)
        return (self.namespace, *row, seq)

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        """Insert or replace *entries* in one transaction (all or nothing).

        Raises:
            SerializationError: a value or metadata is not JSON; nothing was written.
            StorageError: the database failed (locked, full, ...); the whole batch was rolled back.

        """
        batch: dict[str, MemoryEntry] = {}
        for entry in entries:
            batch.pop(entry.key, None)
            batch[entry.key] = entry
        rows = [
            self._encode(e, i) for i, e in enumerate(batch.values(), start=1)
        ]  # seq offset fixed below
        with self._lock, self._write(f"storing a batch of {len(rows)} entries") as conn:
            base = conn.execute(self._q["max_seq"]).fetchone()[0]
            conn.executemany(self._q["upsert"], [(*r[:-1], base + r[-1]) for r in rows])
            for key in batch:
                self._pending.pop(key, None)
            self._enforce_capacity(conn, self.clock())
            self.stats_counters.writes += len(rows)

    def get(self, key: str, *, touch: bool = True) -> MemoryEntry | None:
        """Return the live entry for *key*, or None; ``touch`` records the read."""
        with self._lock:
            self._check_open()
            row = self._conn.execute(self._q["get"], (self.namespace, key)).fetchone()
            now = self.clock()
            if row is None or (row[3] is not None and row[3] <= now):
                if touch:
                    self.stats_counters.misses += 1
                return None
            entry = row_to_entry(row)
            pending = self._pending.get(key)
            if pending is not None:
                entry.access_count += pending[0]
                entry.last_accessed = pending[1]
            if touch:
                if pending is None:
                    if not self._pending:
                        self._pending_since = now
                    self._pending[key] = [1, now]
                else:
                    del self._pending[key]  # re-insert: the dict order is the recency order
                    self._pending[key] = [pending[0] + 1, now]
                entry.access_count += 1
                entry.last_accessed = now
                self.stats_counters.hits += 1
                if (
                    len(self._pending) >= _TOUCH_FLUSH_COUNT
                    or now - self._pending_since >= self.touch_flush_interval
                ):
                    self._try_flush()
            return entry

    def _try_flush(self) -> None:
        # Called from reads: never wait for another writer, just try again on a later read.
        self._conn.execute("PRAGMA busy_timeout=0")
        try:
            with self._write("flushing read statistics"):
                pass
        except StorageError as exc:
            logger.debug("deferred flushing read statistics: %s", exc)
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")

    def get_many(self, keys: Sequence[str], *, touch: bool = True) -> list[MemoryEntry | None]:
        """Return the live entry for each key, or None.

        Without ``touch`` (a search fetching what it found, a move reading what it copies) the keys are read in
        batches of one ``IN (...)`` query each; a touching read counts each key as :meth:`get` does.
        """
        if touch:
            return [self.get(k, touch=True) for k in keys]
        found: dict[str, MemoryEntry] = {}
        wanted = list(dict.fromkeys(keys))
        with self._lock:
            self._check_open()
            now = self.clock()
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                sql = (
                    self._q["get_in"] + "(" + ",".join("?" * len(chunk)) + ")"
                )  # placeholders only
                for row in self._conn.execute(sql, (self.namespace, *chunk)):
                    if row[3] is not None and row[3] <= now:
                        continue
                    entry = row_to_entry(row)
                    pending = self._pending.get(entry.key)
                    if pending is not None:
                        entry.access_count += pending[0]
                        entry.last_accessed = pending[1]
                    found[entry.key] = entry
        out: list[MemoryEntry | None] = []
        given: set[str] = set()
        for key in keys:  # a key asked twice gets two independent copies, as from get()
            hit = found.get(key)
            out.append(hit.copy() if hit is not None and key in given else hit)
            given.add(key)
        return out

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete *keys* in one transaction; return how many live entries were removed."""
        with self._lock:
            now = self.clock()
            removed = 0
            with self._write(f"deleting {len(keys)} entries") as conn:
                for key in keys:
                    row = conn.execute(self._q["get"], (self.namespace, key)).fetchone()
                    if row is None:
                        continue
                    conn.execute(self._q["delete"], (self.namespace, key))
                    if row[3] is None or row[3] > now:
                        removed += 1
            self.stats_counters.deletes += removed
            return removed

    def scan(self) -> list[MemoryEntry]:
        """Return every live entry, least recently used first."""
        with self._lock:
            self._check_open()
            entries = [
                row_to_entry(r)
                for r in self._conn.execute(self._q["scan"], (self.namespace, self.clock()))
            ]
            for e in entries:
                pending = self._pending.get(e.key)
                if pending is not None:
                    e.access_count += pending[0]
                    e.last_accessed = pending[1]
            return entries

    def keyword_search(self, query: str, limit: int = 10) -> list[tuple[MemoryEntry, float]]:
        """BM25 over this namespace's own postings and statistics (higher is better).

        Costs what the namespace holds: the postings of the query's terms in this namespace, pruned (see
        :class:`~agentmem_plugin.tiers.postings.KeywordIndex`); other namespaces are never read and never change the ranking.
        """
        terms = tokenize(query)
        if not terms or limit <= 0:
            return []
        limit = min(limit, 2**31)
        with self._lock:
            self._check_open()
            conn = self._conn
            now = self.clock()
            k = limit
            while True:
                ranked = self._kw.search(conn, self.namespace, terms, k)
                rows: dict[int, Any] = {}
                ids = [doc for doc, _ in ranked]
                for start in range(0, len(ids), _CHUNK):
                    chunk = ids[start : start + _CHUNK]
                    marks = ",".join("?" * len(chunk))  # placeholders only
                    for r in conn.execute(
                        f"{self._q['by_ids']}({marks}) AND {_LIVE}", (self.namespace, *chunk, now)
                    ):
                        rows[r[0]] = r[1:]
                hits = [(row_to_entry(rows[doc]), score) for doc, score in ranked if doc in rows]
                if len(hits) >= limit or len(ranked) < k:
                    return hits[:limit]
                k *= 4  # expired entries took places: look deeper

    def compute(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        """Atomic read-modify-write of *key* inside one immediate transaction."""
        with self._lock, self._write(f"updating key {key!r}") as conn:
            now = self.clock()
            row = conn.execute(self._q["get"], (self.namespace, key)).fetchone()
            current = (
                None if row is None or (row[3] is not None and row[3] <= now) else row_to_entry(row)
            )
            new = fn(current)
            if new is UNCHANGED:
                return current
            if new is None:
                if row is not None:
                    conn.execute(self._q["delete"], (self.namespace, key))
                    self.stats_counters.deletes += current is not None
                return None
            seq = conn.execute(self._q["max_seq"]).fetchone()[0] + 1
            conn.execute(self._q["upsert"], self._encode(new, seq))
            self._enforce_capacity(conn, now)
            self.stats_counters.writes += 1
            return new

    def _versions(
        self, conn: sqlite3.Connection, keys: Sequence[str], now: float
    ) -> dict[str, int]:
        """Return the live versions of *keys*, in batches of ``_CHUNK`` keys per query."""
        out: dict[str, int] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start : start + _CHUNK]
            marks = ",".join("?" * len(chunk))  # placeholders only: no caller text enters the SQL
            rows = conn.execute(
                f'SELECT key, version FROM "{self.table}" WHERE namespace = ? AND key IN ({marks}) AND {_LIVE}',
                (self.namespace, *chunk, now),
            )
            out.update((str(k), int(v)) for k, v in rows)
        return out

    def put_if_newer(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        """Write each entry unless its key holds a live entry at that version or a newer one (one transaction)."""
        batch = self._normalized_batch(entries)
        rows = {k: self._encode(e, 0) for k, e in batch.items()}
        with self._lock, self._write(f"moving in a batch of {len(rows)} entries") as conn:
            now = self.clock()
            held = self._versions(conn, list(batch), now)
            written = [e for k, e in batch.items() if held.get(k, -1) < e.version]
            if written:
                seq = conn.execute(self._q["max_seq"]).fetchone()[0]
                conn.executemany(
                    self._q["upsert"],
                    [(*rows[e.key][:-1], seq + i) for i, e in enumerate(written, 1)],
                )
                for entry in written:
                    self._pending.pop(entry.key, None)
                self._enforce_capacity(conn, now)
            self.stats_counters.writes += len(written)
        return written

    def delete_if(self, versions: Mapping[str, int], *, older: bool = False) -> list[str]:
        """Remove each key only if it holds the version given (``older``: a lower one), in one transaction."""
        compare = "<" if older else "="
        items = list(versions.items())
        removed: list[str] = []
        with self._lock, self._write(f"removing {len(items)} moved entries") as conn:
            for start in range(0, len(items), _CHUNK):
                chunk = items[start : start + _CHUNK]
                pairs = ",".join("(?, ?)" for _ in chunk)  # placeholders only
                t = f'"{self.table}"'
                rows = conn.execute(
                    f"DELETE FROM {t} WHERE id IN (SELECT e.id FROM {t} e JOIN (VALUES {pairs}) AS v "
                    f"ON e.key = v.column1 WHERE e.namespace = ? AND e.version {compare} v.column2) RETURNING key",
                    (*(x for pair in chunk for x in pair), self.namespace),
                ).fetchall()
                removed += [str(r[0]) for r in rows]
            self.stats_counters.deletes += len(removed)
        return removed

    def versions(self, keys: Sequence[str]) -> dict[str, int]:
        """Return the version of each key holding a live entry (no read counted)."""
        with self._lock:
            self._check_open()
            return self._versions(self._conn, keys, self.clock())

    def in_transaction(self) -> bool:
        """Return True while a transaction is open on this tier's connection."""
        return self._conn.in_transaction

    def change_token(self) -> object:
        """``PRAGMA data_version`` of a file database: it changes when another connection commits."""
        if self.in_memory:
            return None
        with self._lock:
            self._check_open()
            return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def cleanup(self) -> list[str]:
        """Delete expired entries; return their keys."""
        with self._lock:
            now = self.clock()
            with self._write("removing expired entries") as conn:
                keys = [r[0] for r in conn.execute(self._q["expired_keys"], (self.namespace, now))]
                if keys:
                    conn.execute(self._q["delete_expired"], (self.namespace, now))
            self.stats_counters.expirations += len(keys)
            return keys

    def count(self) -> int:
        """Return the number of live entries in this namespace."""
        with self._lock:
            self._check_open()
            row = self._conn.execute(self._q["count_all"], (self.namespace,)).fetchone()
            total = row[0] if row else 0
            expired = self._conn.execute(
                self._q["count_expired"], (self.namespace, self.clock())
            ).fetchone()[0]
            return int(total - expired)

    def clear(self) -> None:
        """Delete every entry of this namespace."""
        with self._lock, self._write("clearing the store") as conn:
            conn.execute(self._q["clear"], (self.namespace,))
            self._kw.clear_namespace(conn, self.namespace)
            self._pending.clear()

    # -- extras -----------------------------------------------------------------------------------------------------

    def compression_stats(self) -> dict[str, Any]:
        """Return how many stored values are compressed and their byte sizes (live entries of this namespace)."""
        with self._lock:
            self._check_open()
            total, compressed, stored_bytes, compressed_bytes = self._conn.execute(
                f"SELECT count(*), coalesce(sum(substr(value, 1, 4) = ?), 0), coalesce(sum(length(value)), 0), "
                f"coalesce(sum(CASE WHEN substr(value, 1, 4) = ? THEN length(value) ELSE 0 END), 0) "
                f'FROM "{self.table}" WHERE namespace = ? AND (expires_at IS NULL OR expires_at > ?)',
                (_ZSTD_MAGIC, _ZSTD_MAGIC, self.namespace, self.clock()),
            ).fetchone()
        return {
            "total_items": total,
            "compressed_items": compressed,
            "stored_bytes": stored_bytes,
            "compressed_bytes": compressed_bytes,
        }

    def analytics(self) -> dict[str, Any]:
        """Return aggregate access statistics of the live entries of this namespace."""
        self.flush()
        with self._lock:
            self._check_open()
            total, avg, mx, tagged = self._conn.execute(
                f"SELECT count(*), avg(access_count), max(access_count), sum(tags != '[]') FROM \"{self.table}\" "
                "WHERE namespace = ? AND (expires_at IS NULL OR expires_at > ?)",
                (self.namespace, self.clock()),
            ).fetchone()
        return {
            "total_items": total,
            "average_access_count": float(avg or 0.0),
            "max_access_count": int(mx or 0),
            "tagged_items": int(tagged or 0),
        }

    def neighbors(self, keys: Sequence[str], radius: int) -> dict[str, list[str]]:
        """For each live key, the keys inserted up to *radius* rows before and after it (insertion order).

        Two statements for all *keys*: their row ids, then every live row of the namespace within *radius* ids
        of one (a ``VALUES`` list of windows, each a range of the rowid). Where other namespaces'
        rows sit between a key and its neighbours the window holds fewer than *radius* of them on a side; that
        key alone is then looked up row by row.
        """
        return self._neighbor_rows(keys, radius, None)[0]

    def neighbor_entries(
        self, keys: Sequence[str], radius: int, *, known: Collection[str] = ()
    ) -> tuple[dict[str, list[str]], dict[str, MemoryEntry]]:
        """:meth:`neighbors`, with the neighbours' entries read by the same statements (except *known*)."""
        return self._neighbor_rows(keys, radius, known)

    def _neighbor_rows(
        self, keys: Sequence[str], radius: int, known: Collection[str] | None
    ) -> tuple[dict[str, list[str]], dict[str, MemoryEntry]]:
        t = f'"{self.table}"'
        live = "(expires_at IS NULL OR expires_at > ?)"
        cols = "id, key" if known is None else f"id, {_COLUMNS}"
        t_cols = ", ".join(f"t.{c}" for c in cols.split(", "))
        radius = max(radius, 0)
        near: dict[str, list[str]] = {}
        with self._lock:
            self._check_open()
            now = self.clock()
            conn = self._conn
            ids: dict[str, int] = {}
            wanted = list(dict.fromkeys(keys))
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))  # placeholders only
                ids.update(
                    conn.execute(
                        f"SELECT key, id FROM {t} WHERE namespace = ? AND key IN ({marks}) AND {live}",
                        (self.namespace, *chunk, now),
                    ).fetchall()
                )
            anchors = sorted(ids.values())
            rows: dict[int, Any] = {}  # id -> (key, the entry's columns...) of every row read
            for start in range(0, len(anchors), _CHUNK):
                part = anchors[start : start + _CHUNK]
                windows = ",".join("(?, ?)" for _ in part)  # placeholders only
                bounds = [b for a in part for b in (a - radius, a + radius)]
                for row in conn.execute(
                    f"WITH w(lo, hi) AS (VALUES {windows}) SELECT {t_cols} FROM w "
                    f"JOIN {t} AS t ON +t.namespace = ? AND t.id BETWEEN w.lo AND w.hi "
                    f"WHERE {live.replace('expires_at', 't.expires_at')}",
                    (*bounds, self.namespace, now),
                ):
                    rows[row[0]] = row[1:]
            order = sorted(rows)
            for key in wanted:
                anchor = ids.get(key)
                if anchor is None:
                    continue  # absent or expired: no neighbours
                at = bisect.bisect_left(order, anchor)
                before = order[max(0, at - radius) : at]
                after = order[at + 1 : at + 1 + radius]
                # a side is certain when it has radius rows inside the key's own window (ids are unique, so
                # rows within radius ids of the key are the nearest ones), else it is looked up
                if len([i for i in before if i >= anchor - radius]) < radius:
                    found = conn.execute(
                        f"SELECT {cols} FROM {t} WHERE namespace = ? AND id < ? AND {live} "
                        "ORDER BY id DESC LIMIT ?",
                        (self.namespace, anchor, now, radius),
                    ).fetchall()[::-1]
                    rows.update((r[0], r[1:]) for r in found)
                    before = [r[0] for r in found]
                if len([i for i in after if i <= anchor + radius]) < radius:
                    found = conn.execute(
                        f"SELECT {cols} FROM {t} WHERE namespace = ? AND id > ? AND {live} ORDER BY id LIMIT ?",
                        (self.namespace, anchor, now, radius),
                    ).fetchall()
                    rows.update((r[0], r[1:]) for r in found)
                    after = [r[0] for r in found]
                near[key] = [rows[i][0] for i in (*before, *after)]
            entries: dict[str, MemoryEntry] = {}
            if known is not None:
                named = {k for ks in near.values() for k in ks}
                for row in rows.values():
                    if row[0] in named and row[0] not in known and row[0] not in entries:
                        entry = row_to_entry(row)
                        pending = self._pending.get(entry.key)
                        if pending is not None:  # reads not flushed yet, as get_many counts them
                            entry.access_count += pending[0]
                            entry.last_accessed = pending[1]
                        entries[entry.key] = entry
        return near, entries

    def index_meta(self) -> tuple[str, int] | None:
        """Return the (model, dimension) of this namespace's semantic index, or None."""
        with self._lock:
            self._check_open()
            row = self._conn.execute(
                f'SELECT model, dim FROM "{self.table}_index_meta" WHERE namespace = ?',
                (self.namespace,),
            ).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    def set_index_meta(self, model: str, dim: int) -> None:
        """Record the semantic index's model; from now on every change of this namespace enters the outbox."""
        with self._lock, self._write("recording the semantic index model") as conn:
            conn.execute(
                f'INSERT OR REPLACE INTO "{self.table}_index_meta" (namespace, model, dim) VALUES (?, ?, ?)',
                (self.namespace, model, dim),
            )

    def changes(self, limit: int) -> list[tuple[int, str]]:
        """Return up to *limit* outbox rows of this namespace, oldest first."""
        with self._lock:
            self._check_open()
            rows = self._conn.execute(
                f'SELECT id, key FROM "{self.table}_outbox" WHERE namespace = ? ORDER BY id LIMIT ?',
                (self.namespace, min(limit, 2**62)),
            ).fetchall()
        return [(int(i), str(k)) for i, k in rows]

    def ack_changes(self, changes: Sequence[tuple[int, str]]) -> None:
        """Delete applied outbox rows."""
        if not changes:
            return
        with self._lock, self._write(f"acknowledging {len(changes)} index changes") as conn:
            conn.executemany(
                f'DELETE FROM "{self.table}_outbox" WHERE id = ?', [(i,) for i, _ in changes]
            )

    def stats(self) -> dict[str, Any]:
        """Counters, sizes, the path and the bytes the database file takes on disk."""
        stats = super().stats()
        size = 0
        if self.path is not None:
            for suffix in ("", "-wal", "-shm"):
                p = Path(str(self.path) + suffix)
                if p.exists():
                    size += p.stat().st_size
        stats.update(
            path=str(self.path) if self.path else None,
            table=self.table,
            namespace=self.namespace,
            bytes_on_disk=size,
        )
        return stats

    def namespaces(self, prefix: str | None = None) -> list[str]:
        """Return the namespaces of this tier's table holding at least one entry (expired included), sorted.

        *prefix*: only it and those below it, read as two ranges of the per-namespace counts' primary key (the
        rows of other namespaces are never read).
        """
        bounds = namespace_bounds(prefix)
        sql = f'SELECT namespace FROM "{self.table}_counts" WHERE n > 0'
        if bounds is not None:
            sql += " AND (namespace = ? OR (namespace >= ? AND namespace < ?))"
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY namespace", bounds or ()).fetchall()
        return [row[0] for row in rows]

    def close(self) -> None:
        """Flush recorded reads and close the connection (idempotent)."""
        with self._lock:
            if self._closed:
                return
            if self._pending:
                try:
                    with self._write("flushing read statistics"):
                        pass
                except StorageError as exc:
                    logger.warning("read statistics not saved on close: %s", exc)
            self._closed = True
            if self._finalizer is not None:
                self._finalizer()
