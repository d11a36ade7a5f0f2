"""A long-term tier on PostgreSQL (psycopg 3 + a connection pool): the SQLite tier's contract, for many hosts.

Design:

* **Versioned schema.** A ``{table}_migrations`` table records the migrations applied; they run on open inside
  one transaction holding an advisory lock, so concurrent openers (processes, hosts) wait for each other
  instead of racing. A store that records a migration this version does not know was written by a newer
  version and is refused (:class:`SchemaVersionError`); a table of that name that we did not create is left
  alone (:class:`StoreCorruptError`).
* **One row per entry**, ``UNIQUE (namespace, key)``, written with ``INSERT ... ON CONFLICT DO UPDATE``. Values
  are JSON (orjson) in a ``bytea``, zstd-compressed above the compression threshold.
* **Keyword search.** A stored generated ``tsvector`` column (``to_tsvector('english', search_text)``) over
  each entry's key, value text and tags, GIN-indexed by namespace-qualified lexemes (a search reads its
  namespace's posting lists only, whatever the other namespaces hold); free text becomes an OR of its words
  (``websearch_to_tsquery('english', 'w1 or w2 ...')``, as the SQLite tier does for FTS5), so a question finds
  the entries sharing some of its words, ranked by ``ts_rank_cd``.
* **Concurrent writers.** Every write is one transaction. Rows are locked in key order (no deadlock between
  batches); a capacity-bound tier serializes the writers of its namespace with a transaction-scoped advisory
  lock, so the count never exceeds the capacity and the victims handed to ``on_evict`` (inside the
  transaction, before they are deleted) are exactly the rows removed; if the callback raises, the whole
  write is rolled back. ``compute`` also locks its key (advisory lock + ``SELECT ... FOR UPDATE``), so
  concurrent read-modify-writes of one key never lose an update. A deadlock or serialization failure is
  retried when no callback has run yet.
* **Reads stay reads.** ``get(touch=True)`` is one ``SELECT``; the read (access_count, last_accessed,
  recency) is recorded in memory and written in batches: with the next transactional write (a batch, or any
  write of a capacity-bound tier, in its transaction, before its rows, so the recency order stays exact for
  eviction), every ``touch_flush_interval`` seconds (a timer), every 1024 keys read, by :meth:`flush`,
  :meth:`stats` and :meth:`close`. Until then this process's reads, entries and scans show the pending
  counts; other processes see them once flushed. The flush is one statement of atomic increments
  (``access_count = access_count + n``) that applies only to the write of the key that was read (same
  ``version``), its rows locked in key order, committed without waiting for the WAL flush
  (``synchronous_commit`` off for that statement only). A process that ends without :meth:`close`, or a
  server crash, may forget the last reads' counts, never an entry. ``touch_flush_interval=0`` records every
  read as it happens (``UPDATE ... RETURNING``, one round trip). Writes are committed durably.
* Nothing user-supplied enters SQL text: the table name is validated (:func:`validate_identifier`) and
  quoted with :class:`psycopg.sql.Identifier`; every value is a parameter. Passwords never appear in logs or
  error messages (:func:`redact_dsn`).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from agentmem_plugin.codec import (
    DEFAULT_COMPRESSION_THRESHOLD,
)
from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import (
    AgentMemError,
    BackendUnavailableError,
    InvalidArgumentError,
    MissingDependencyError,
    SchemaVersionError,
    StorageError,
    StoreCorruptError,
)
from agentmem_plugin.search import words
from agentmem_plugin.tiers.base import (
    ENTRY_COLUMNS,
    ROW_FIELDS,
    UNCHANGED,
    UPDATED_COLUMNS,
    EvictionCallback,
    Tier,
    entry_to_row,
    namespace_bounds,
    row_to_entry,
)
from agentmem_plugin.tiers.sqlite import validate_identifier
from agentmem_plugin.tiers.urls import redact_url

__all__ = ["PostgresTier", "redact_dsn"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_TABLE_LENGTH = 48  # room for the longest derived name ("{table}_index_meta") within 63 bytes
_MIGRATION_LOCK = 0x61676D31  # advisory lock class of schema migrations ("agm1")
_NAMESPACE_LOCK = 0x61676D32  # advisory lock class of capacity-bound namespaces ("agm2")
_INT64 = 2**63
_RETRIES = 5
_TOUCH_FLUSH_COUNT = 1024  # pending keys that trigger a flush of recorded reads
_COUNT_ROWS_FOLDED = (
    64  # a namespace's rows in {table}_counts beyond which a count folds them into one
)
_PASSWORD_KV = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_PASSWORD_PARAM = re.compile(r"([?&]password=)([^&#]*)", re.IGNORECASE)


redact_dsn = redact_url  # one redaction for every backend (agentmem_plugin.tiers.urls)


def _secrets_of(dsn: str) -> list[str]:
    """Return the password of *dsn* (as libpq reads it, and as written), to scrub from any text."""
    found: list[str] = []
    with contextlib.suppress(Exception):
        from psycopg.conninfo import conninfo_to_dict

        password = conninfo_to_dict(dsn).get("password")
        if password:
            found.append(str(password))
    for pattern in (_PASSWORD_KV, _PASSWORD_PARAM):
        found += [m.group(2).strip("'") for m in pattern.finditer(dsn)]
    match = re.match(r"^[a-z][a-z0-9+.-]*://([^@/?#]*)@", dsn, re.IGNORECASE)
    if match and ":" in match.group(1):
        found.append(match.group(1).split(":", 1)[1])
    return [s for s in dict.fromkeys(found) if s and s != "***"]


def _lock_id(*parts: str) -> int:
    """Return a signed 32-bit advisory lock id (crc32: stable across processes and versions)."""
    value = zlib.crc32("\x00".join(parts).encode("utf-8", "surrogatepass"))
    return value - 2**32 if value >= 2**31 else value


def _key_lock_id(table: str, namespace: str, key: str) -> int:
    """Return a signed 64-bit id for the advisory lock of one key."""
    import hashlib

    digest = hashlib.blake2b(
        "\x00".join((table, namespace, key)).encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def _tsquery_text(query: str) -> str | None:
    """Free text as a websearch query: its words (stop words dropped) OR-ed; None when nothing is left."""
    terms = [w for w in dict.fromkeys(words(query)) if w != "or"]
    return " or ".join(terms) if terms else None


def _import_psycopg() -> tuple[Any, Any, Any]:
    try:
        import psycopg
        import psycopg_pool
        from psycopg import sql
    except ImportError as exc:  # pragma: no cover - the postgres extra is installed in development
        raise MissingDependencyError(
            "PostgresTier needs psycopg 3 and psycopg-pool: pip install 'agentmem-plugin[postgres]'"
        ) from exc
    return psycopg, psycopg_pool, sql


def _migrations(sql: Any, table: str) -> list[tuple[str, list[Any]]]:
    """Return the ordered schema migrations of *table* (a validated identifier): ``(name, statements)``."""
    ident = sql.Identifier
    t = ident(table)

    def name(suffix: str) -> Any:
        return ident(f"{table}_{suffix}")

    seq_literal = sql.Literal(f'"{table}_seq"')
    entries = [
        sql.SQL("CREATE SEQUENCE {}").format(name("seq")),
        sql.SQL(
            """CREATE TABLE {t} (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                namespace text NOT NULL DEFAULT '',
                key text NOT NULL,
                value bytea NOT NULL,
                search_text text NOT NULL DEFAULT '',
                search tsvector GENERATED ALWAYS AS (to_tsvector('english', search_text)) STORED,
                created_at double precision NOT NULL,
                expires_at double precision,
                ttl double precision,
                priority bigint NOT NULL DEFAULT 0,
                tags text NOT NULL DEFAULT '[]',
                metadata text NOT NULL DEFAULT '{{}}',
                access_count bigint NOT NULL DEFAULT 0,
                last_accessed double precision,
                seq bigint NOT NULL DEFAULT nextval({seq}::regclass),
                UNIQUE (namespace, key)
            )"""
        ).format(t=t, seq=seq_literal),
        sql.SQL("CREATE INDEX {} ON {} USING gin (search)").format(name("search"), t),
        sql.SQL(
            "CREATE INDEX {} ON {} (namespace, expires_at) WHERE expires_at IS NOT NULL"
        ).format(name("expiry"), t),
        sql.SQL("CREATE INDEX {} ON {} (namespace, priority, seq)").format(name("victims"), t),
        sql.SQL("CREATE INDEX {} ON {} (namespace, id)").format(name("ns_id"), t),
    ]
    out, meta = name("outbox"), name("index_meta")
    feed = [
        # Changes a semantic index must apply, written by a trigger in the same transaction as the entry, and
        # only for namespaces that have an index (a row in index_meta).
        sql.SQL(
            "CREATE TABLE {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "namespace text NOT NULL, key text NOT NULL)"
        ).format(out),
        sql.SQL("CREATE INDEX {} ON {} (namespace, id)").format(name("outbox_ns"), out),
        sql.SQL(
            "CREATE TABLE {} (namespace text PRIMARY KEY, model text NOT NULL, dim integer NOT NULL)"
        ).format(meta),
        sql.SQL(
            """CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $body$
            BEGIN
                IF TG_OP = 'DELETE' THEN
                    IF EXISTS (SELECT 1 FROM {meta} WHERE namespace = OLD.namespace) THEN
                        INSERT INTO {out} (namespace, key) VALUES (OLD.namespace, OLD.key);
                    END IF;
                    RETURN OLD;
                END IF;
                IF EXISTS (SELECT 1 FROM {meta} WHERE namespace = NEW.namespace) THEN
                    INSERT INTO {out} (namespace, key) VALUES (NEW.namespace, NEW.key);
                END IF;
                RETURN NEW;
            END
            $body$"""
        ).format(fn=name("changed"), meta=meta, out=out),
        sql.SQL(
            "CREATE TRIGGER {} AFTER INSERT OR DELETE ON {} FOR EACH ROW EXECUTE FUNCTION {}()"
        ).format(name("changed_id"), t, name("changed")),
        sql.SQL(
            "CREATE TRIGGER {} AFTER UPDATE OF search_text ON {} FOR EACH ROW EXECUTE FUNCTION {}()"
        ).format(name("changed_u"), t, name("changed")),
    ]
    # Which write of its key a row holds (MemoryEntry.version): moves compare it instead of values.
    versions = [sql.SQL("ALTER TABLE {} ADD COLUMN version bigint NOT NULL DEFAULT 0").format(t)]
    # Keyword search costs what the namespace holds: the GIN index of ``search`` alone held every namespace's
    # rows under one lexeme, so a common word of one namespace read everyone's matches. Its replacement
    # indexes namespace-qualified lexemes (a 48-bit hash of the namespace, then the lexeme): the posting list
    # a query reads is its namespace's own. ts_rank_cd uses no collection statistics, so nothing else
    # crosses namespaces. The function's high COST tells the planner to use the index rather than evaluate
    # the function row by row after a namespace scan.
    terms = name("ns_terms")
    namespace_search = [
        sql.SQL(
            "CREATE FUNCTION {fn}(ns text, v tsvector) RETURNS text[] LANGUAGE sql IMMUTABLE STRICT COST 10000 "
            "PARALLEL SAFE AS $body$ SELECT coalesce(array_agg(p.prefix || l.lexeme), '{{}}') FROM "
            "(SELECT left(md5(ns), 12) || ':' AS prefix) AS p, unnest(tsvector_to_array(v)) AS l(lexeme) $body$"
        ).format(fn=terms),
        # fastupdate off: GIN's pending list is one store-wide list every search scans whole
        sql.SQL(
            "CREATE INDEX {} ON {} USING gin ({}(namespace, search)) WITH (fastupdate = off)"
        ).format(name("ns_search"), t, terms),
        sql.SQL("DROP INDEX IF EXISTS {}").format(name("search")),
    ]
    # Counting costs what changed, not what the namespace holds: every INSERT or DELETE statement appends
    # one row per namespace it touched (+n / -n) to {table}_counts, so writers never wait for each other on a
    # shared counter row; count() sums a namespace's rows and folds them into one now and then (see
    # _COUNT_ROWS_FOLDED). The writers are held off while the existing rows are counted once.
    counts, counted = name("counts"), name("counted")
    namespace_counts = [
        sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(t),
        sql.SQL(
            "CREATE TABLE {} (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
            "namespace text NOT NULL, n bigint NOT NULL)"
        ).format(counts),
        sql.SQL("CREATE INDEX {} ON {} (namespace)").format(name("counts_ns"), counts),
        sql.SQL(
            """CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $body$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO {counts} (namespace, n)
                        SELECT namespace, count(*) FROM new_rows GROUP BY namespace;
                ELSE
                    INSERT INTO {counts} (namespace, n)
                        SELECT namespace, -count(*) FROM old_rows GROUP BY namespace;
                END IF;
                RETURN NULL;
            END
            $body$"""
        ).format(fn=counted, counts=counts),
        sql.SQL(
            "CREATE TRIGGER {} AFTER INSERT ON {} REFERENCING NEW TABLE AS new_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION {}()"
        ).format(name("counted_i"), t, counted),
        sql.SQL(
            "CREATE TRIGGER {} AFTER DELETE ON {} REFERENCING OLD TABLE AS old_rows "
            "FOR EACH STATEMENT EXECUTE FUNCTION {}()"
        ).format(name("counted_d"), t, counted),
        sql.SQL(
            "INSERT INTO {} (namespace, n) SELECT namespace, count(*) FROM {} GROUP BY namespace"
        ).format(counts, t),
    ]
    # Listing namespaces costs one index probe per namespace listed: a skip scan of this index (the next name
    # after the last one found), in byte order (``COLLATE "C"``) whatever the database's collation, so a prefix is
    # one range of it ("user/" up to "user0").
    namespace_listing = [
        sql.SQL('CREATE INDEX {} ON {} ((namespace COLLATE "C"))').format(name("ns_c"), t)
    ]
    return [
        ("0001_entries_and_search", entries),
        ("0002_semantic_outbox", feed),
        ("0003_versions", versions),
        ("0004_namespace_search", namespace_search),
        ("0005_namespace_counts", namespace_counts),
        ("0006_namespace_listing", namespace_listing),
    ]


class PostgresTier(Tier):
    """A durable PostgreSQL tier with full-text keyword search, capacity, TTL and a semantic change feed.

    Args:
        dsn: libpq connection string or URL (``postgresql://user:password@host:5432/db``); ignored with *pool*.
        table: Table name (a validated identifier, at most 48 characters); several tiers and namespaces can
            share one table.
        namespace: Every entry of this tier lives in this namespace; other namespaces are invisible.
        capacity: Maximum live entries in this namespace (None: unbounded), enforced across processes.
        clock: Source of the current time.
        on_evict: Called inside the write transaction with the entries evicted for capacity; if it raises,
            the whole write is rolled back.
        pool: A ``psycopg_pool.ConnectionPool`` to use (not closed by :meth:`close`); by default the tier
            opens its own, of *min_size* to *max_size* connections.
        min_size: Connections the tier's pool keeps open.
        max_size: Most connections the tier's pool opens (concurrent operations beyond it wait).
        compression_threshold: Encoded values above this many bytes are zstd-compressed (None: never).
        timeout: Seconds to wait for a connection (connect or pool checkout) before failing.
        touch_flush_interval: Seconds a recorded read may wait before it is written (see the module docs);
            0 writes every read as it happens.

    Raises:
        InvalidArgumentError: a bad table name, namespace, capacity or pool size.
        StorageError: the server cannot be reached (the message shows the DSN without its password).
        StoreCorruptError: *table* exists and was not created by agentmem_plugin.
        SchemaVersionError: the table was written by a newer version.
        MissingDependencyError: psycopg or psycopg-pool is not installed.

    Example:
        >>> from agentmem_plugin.entry import MemoryEntry
        >>> tier = PostgresTier("postgresql://127.0.0.1:5432/test", namespace="doc")  # doctest: +SKIP
        >>> tier.put(MemoryEntry("prefs", {"language": "english"}, tags=["user"]))  # doctest: +SKIP
        >>> [e.key for e, _ in tier.keyword_search("which language?")]  # doctest: +SKIP
        ['prefs']

    """

    name = "postgres"
    persistent = True

    def __init__(
        self,
        dsn: str = "postgresql://127.0.0.1:5432/test",
        *,
        table: str = "memories",
        namespace: str = "",
        capacity: int | None = None,
        clock: Clock | None = None,
        on_evict: EvictionCallback | None = None,
        pool: Any | None = None,
        min_size: int = 1,
        max_size: int = 4,
        compression_threshold: int | None = DEFAULT_COMPRESSION_THRESHOLD,
        timeout: float = 10.0,
        touch_flush_interval: float = 1.0,
    ) -> None:
        super().__init__(clock=clock)
        self.table = validate_identifier(table)
        if len(table) > _MAX_TABLE_LENGTH or table.lower().startswith("pg_"):
            raise InvalidArgumentError(
                f"table must be at most {_MAX_TABLE_LENGTH} characters and not start with 'pg_'; got {table!r}"
            )
        self._configure(
            namespace=namespace,
            capacity=capacity,
            on_evict=on_evict,
            compression_threshold=compression_threshold,
        )
        for what, size in (("min_size", min_size), ("max_size", max_size)):
            if isinstance(size, bool) or not isinstance(size, int) or size < (what == "max_size"):
                raise InvalidArgumentError(f"{what} must be a non-negative int, got {size!r}")
        if max_size < min_size:
            raise InvalidArgumentError(
                f"max_size ({max_size}) must be at least min_size ({min_size})"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise InvalidArgumentError(f"timeout must be a positive number, got {timeout!r}")
        self.timeout = float(timeout)
        if (
            isinstance(touch_flush_interval, bool)
            or not isinstance(touch_flush_interval, (int, float))
            or not 0 <= touch_flush_interval < float("inf")
        ):
            raise InvalidArgumentError(
                f"touch_flush_interval must be a non-negative number of seconds, got {touch_flush_interval!r}"
            )
        self.touch_flush_interval = float(touch_flush_interval)
        # Recorded reads: key -> [version read, reads, last access], in read order (oldest first). A flush
        # moves them to _inflight until its statement commits (this process's reads show both meanwhile).
        self._pending: dict[str, list[Any]] = {}
        self._inflight: list[dict[str, list[Any]]] = []
        self._pending_lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closing = False  # no timer is armed from then on
        self.dsn = redact_dsn(dsn) if pool is None else "<pool>"
        self._secrets = _secrets_of(dsn) if pool is None else []
        self._closed = False
        self._local = (
            threading.local()
        )  # .conn: the connection of an open transaction() on this thread
        self._pool: Any = None
        self._owns_pool = pool is None
        self._psycopg, pool_module, self._sql = _import_psycopg()
        self._transient = (
            self._psycopg.errors.DeadlockDetected,
            self._psycopg.errors.SerializationFailure,
        )
        self._namespace_lock = (_NAMESPACE_LOCK ^ _lock_id(self.table), _lock_id(namespace))
        self._q = self._statements()
        self._x = self._rendered()
        if pool is None:
            self._migrate_with(
                lambda: self._psycopg.connect(
                    dsn, autocommit=True, connect_timeout=max(1, round(self.timeout))
                )
            )
            pool = pool_module.ConnectionPool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                open=False,
                timeout=self.timeout,
                kwargs={"autocommit": True, "connect_timeout": max(1, round(self.timeout))},
                name=f"agentmem-{self.table}",
            )
            self._pool = pool
            try:
                with self._errors("opening the connection pool"):
                    pool.open(wait=True, timeout=self.timeout)
            except BaseException:
                self.close()
                raise
        else:
            self._pool = pool
            self._migrate_with(lambda: pool.connection(timeout=self.timeout))

    # -- plumbing ------------------------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn psycopg and pool failures into :class:`StorageError` naming the DSN without its password."""
        try:
            yield
        except AgentMemError:
            raise
        except Exception as exc:
            module = type(exc).__module__ or ""
            if not (module.startswith(("psycopg", "psycopg_pool")) or isinstance(exc, OSError)):
                raise
            detail = self._scrub(str(exc).strip())
            cause = None if detail != str(exc).strip() else exc
            psycopg = self._psycopg
            if isinstance(exc, psycopg.OperationalError | OSError) or module.startswith(
                "psycopg_pool"
            ):
                raise BackendUnavailableError(
                    f"PostgreSQL at {self.dsn!r} is unavailable while {what}: {detail}"
                ) from cause
            raise StorageError(
                f"PostgreSQL at {self.dsn!r} failed while {what} (table {self.table!r}): {detail}"
            ) from cause

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(
                f"the PostgreSQL tier at {self.dsn!r} (table {self.table!r}) is closed"
            )

    @contextlib.contextmanager
    def _connection(self, what: str) -> Iterator[Any]:
        """Yield this thread's open :meth:`transaction` connection, else one from the pool."""
        self._check_open()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self._errors(what), self._pool.connection() as conn:
            yield conn

    def _read(self, what: str, query: Any, params: Sequence[Any]) -> list[Any]:
        with self._connection(what) as conn, self._errors(what):
            return list(conn.execute(query, params).fetchall())

    def _transact(
        self, what: str, body: Callable[[Any, list[bool]], T], *, single: bool = False
    ) -> T:
        """Run ``body(conn, acted)`` in one transaction; retry deadlocks while ``acted`` (callbacks ran) is empty.

        ``single=True`` marks a body of one statement: it needs no BEGIN/COMMIT of its own (autocommit).
        """
        nested = getattr(self._local, "conn", None) is not None
        attempt = 0
        while True:
            acted: list[bool] = []
            try:
                with contextlib.ExitStack() as stack:
                    conn = stack.enter_context(self._connection(what))
                    stack.enter_context(self._errors(what))
                    if not single or not conn.autocommit:
                        stack.enter_context(conn.transaction())
                    return body(conn, acted)
            except StorageError as exc:
                attempt += 1
                if (
                    nested
                    or acted
                    or attempt >= _RETRIES
                    or not isinstance(exc.__cause__, self._transient)
                ):
                    raise
                logger.debug("postgres: retrying %s after %s", what, type(exc.__cause__).__name__)
                time.sleep(0.005 * attempt)

    def _migrate_with(self, connect: Callable[[], Any]) -> None:
        """Apply the pending migrations on a connection from *connect* (a context manager factory)."""
        sql = self._sql
        migrations = _migrations(sql, self.table)
        known = [name for name, _ in migrations]
        log = sql.Identifier(f"{self.table}_migrations")
        what = f"preparing table {self.table!r}"
        with contextlib.ExitStack() as stack:
            stack.enter_context(self._errors(what))
            conn = stack.enter_context(connect())
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", (_MIGRATION_LOCK, _lock_id(self.table))
                )
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, applied_at double precision NOT NULL)"
                    ).format(log)
                )
                applied = [
                    r[0]
                    for r in conn.execute(
                        sql.SQL("SELECT name FROM {} ORDER BY name").format(log)
                    ).fetchall()
                ]
                unknown = [name for name in applied if name not in known]
                if unknown:
                    raise SchemaVersionError(
                        f"table {self.table!r} at {self.dsn!r} was written by a newer version of "
                        f"agentmem_plugin (unknown migrations {unknown}); upgrade agentmem-plugin to open it"
                    )
                exists = conn.execute("SELECT to_regclass(%s)", (f'"{self.table}"',)).fetchone()[0]
                if not applied and exists is not None:
                    raise StoreCorruptError(
                        f"{self.dsn!r} already has a table {self.table!r} that agentmem_plugin did not "
                        "create; pass another table name"
                    )
                pending = [(n, stmts) for n, stmts in migrations if n not in applied]
                for name, statements in pending:
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute(
                        sql.SQL("INSERT INTO {} (name, applied_at) VALUES (%s, %s)").format(log),
                        (name, time.time()),
                    )
                if pending:
                    logger.info(
                        "postgres %s: applied migrations %s to table %s",
                        self.dsn,
                        [n for n, _ in pending],
                        self.table,
                    )

    def _statements(self) -> dict[str, Any]:
        sql = self._sql
        t = sql.Identifier(self.table)
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in ENTRY_COLUMNS)
        tcols = sql.SQL(", ").join(sql.Identifier(self.table, c) for c in ENTRY_COLUMNS)
        seq = sql.Literal(f'"{self.table}_seq"')
        live = sql.SQL("(expires_at IS NULL OR expires_at > %s)")
        updates = sql.SQL(", ").join(
            sql.SQL("{c} = excluded.{c}").format(c=sql.Identifier(c)) for c in UPDATED_COLUMNS
        )
        q = {
            "get": "SELECT {cols} FROM {t} WHERE namespace = %s AND key = ANY(%s) AND {live}",
            "get_one": "SELECT {cols} FROM {t} WHERE namespace = %s AND key = %s AND {live}",
            "get_for_update": "SELECT {cols} FROM {t} WHERE namespace = %s AND key = %s FOR UPDATE",
            "touch": (
                "UPDATE {t} SET access_count = {t}.access_count + 1, last_accessed = %s, "
                "seq = nextval({seq}::regclass) FROM (SELECT id FROM {t} WHERE namespace = %s AND key = ANY(%s) "
                'AND {live} ORDER BY key COLLATE "C" FOR UPDATE) AS s WHERE {t}.id = s.id RETURNING {tcols}'
            ),
            # the same, when it is a transaction of its own: read bookkeeping need not wait for the WAL flush
            "touch_relaxed": (
                "UPDATE {t} SET access_count = {t}.access_count + 1, last_accessed = %s, "
                "seq = nextval({seq}::regclass) FROM (SELECT id FROM {t} WHERE namespace = %s AND key = ANY(%s) "
                'AND {live} ORDER BY key COLLATE "C" FOR UPDATE) AS s, '
                "(SELECT set_config('synchronous_commit', 'off', true)) AS relaxed "
                "WHERE {t}.id = s.id RETURNING {tcols}"
            ),
            # Recorded reads, oldest first: counts added, last access kept, a new recency (nextval in the
            # arrays' order), only where the row is still the write that was read; rows locked in key order.
            "flush": (
                "WITH a AS MATERIALIZED (SELECT r.key, r.version, r.n, r.la, nextval({seq}::regclass) AS s "
                "FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::float8[]) AS r(key, version, n, la)) "
                "UPDATE {t} SET access_count = {t}.access_count + u.n, "
                "last_accessed = greatest({t}.last_accessed, u.la), seq = u.s FROM ("
                "SELECT e.id, a.n, a.la, a.s FROM {t} AS e JOIN a ON e.key = a.key AND e.version = a.version "
                'WHERE e.namespace = %s ORDER BY e.key COLLATE "C" FOR UPDATE OF e) AS u WHERE {t}.id = u.id'
            ),
            "flush_relaxed": (
                "WITH a AS MATERIALIZED (SELECT r.key, r.version, r.n, r.la, nextval({seq}::regclass) AS s "
                "FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::float8[]) AS r(key, version, n, la)) "
                "UPDATE {t} SET access_count = {t}.access_count + u.n, "
                "last_accessed = greatest({t}.last_accessed, u.la), seq = u.s FROM ("
                "SELECT e.id, a.n, a.la, a.s FROM {t} AS e JOIN a ON e.key = a.key AND e.version = a.version "
                'WHERE e.namespace = %s ORDER BY e.key COLLATE "C" FOR UPDATE OF e) AS u, '
                "(SELECT set_config('synchronous_commit', 'off', true)) AS relaxed WHERE {t}.id = u.id"
            ),
            "seqs": "SELECT nextval({seq}::regclass) FROM generate_series(1, %s) ORDER BY 1",
            # a batch is one statement (one count row, one round trip), its rows taken in the arrays' order
            "upsert": (
                "INSERT INTO {t} (namespace, key, value, search_text, created_at, expires_at, ttl, priority, "
                "tags, metadata, access_count, last_accessed, version, seq) SELECT * FROM unnest("
                "%s::text[], %s::text[], %s::bytea[], %s::text[], %s::float8[], %s::float8[], %s::float8[], "
                "%s::bigint[], %s::text[], %s::text[], %s::bigint[], %s::float8[], %s::bigint[], %s::bigint[]) "
                "ON CONFLICT (namespace, key) DO UPDATE SET {updates}"
            ),
            "upsert_one": (
                "INSERT INTO {t} (namespace, key, value, search_text, created_at, expires_at, ttl, priority, "
                "tags, metadata, access_count, last_accessed, version) VALUES "
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (namespace, key) DO UPDATE SET {updates}"
            ),
            "delete": (
                "DELETE FROM {t} WHERE id IN (SELECT id FROM {t} WHERE namespace = %s AND key = ANY(%s) "
                'ORDER BY key COLLATE "C" FOR UPDATE) RETURNING expires_at'
            ),
            # entries (expired included) from the namespace's count rows, minus the expired ones (read from
            # the expiry index: what has expired and is not purged yet), and how many count rows there are
            "count": (
                "SELECT coalesce(sum(n), 0) - (SELECT count(*) FROM {t} WHERE namespace = %s "
                "AND expires_at <= %s), count(*) FROM {counts} WHERE namespace = %s"
            ),
            "count_all": "SELECT coalesce(sum(n), 0), count(*) FROM {counts} WHERE namespace = %s",
            # each count row is deleted once and its value inserted back once, in one statement: concurrent
            # folds and writers never lose or double a row
            "fold_counts": (
                "WITH d AS (DELETE FROM {counts} WHERE namespace = %s RETURNING n) "
                "INSERT INTO {counts} (namespace, n) SELECT %s, sum(n) FROM d HAVING count(*) > 0"
            ),
            "purge": "DELETE FROM {t} WHERE namespace = %s AND expires_at <= %s RETURNING key",
            "victims": (
                "SELECT {cols} FROM {t} WHERE namespace = %s ORDER BY priority, seq LIMIT %s FOR UPDATE"
            ),
            "scan": "SELECT {cols} FROM {t} WHERE namespace = %s AND {live} ORDER BY id",
            "clear": "DELETE FROM {t} WHERE namespace = %s",
            "search": (
                "SELECT {tcols}, ts_rank_cd({t}.search, q) AS rank "
                "FROM {t}, websearch_to_tsquery('english', %s) AS q "
                "WHERE {t}.namespace = %s AND {terms}({t}.namespace, {t}.search) && "
                "{terms}(%s::text, to_tsvector('english', %s::text)) "
                "AND {t}.search @@ q AND ({t}.expires_at IS NULL OR {t}.expires_at > %s) "
                "ORDER BY rank DESC, {t}.id LIMIT %s"
            ),
            # a skip scan of the index of 0006 (one probe per namespace); "below": the range [%s, %s), then
            # the prefix itself
            "namespaces": (
                'WITH RECURSIVE ns(name) AS ((SELECT namespace COLLATE "C" FROM {t} '
                'ORDER BY namespace COLLATE "C" LIMIT 1) UNION ALL SELECT (SELECT namespace COLLATE "C" '
                'FROM {t} WHERE namespace COLLATE "C" > ns.name ORDER BY namespace COLLATE "C" LIMIT 1) '
                "FROM ns WHERE ns.name IS NOT NULL) SELECT name FROM ns WHERE name IS NOT NULL"
            ),
            "namespaces_below": (
                'WITH RECURSIVE ns(name) AS ((SELECT namespace COLLATE "C" FROM {t} '
                'WHERE namespace COLLATE "C" >= %s AND namespace COLLATE "C" < %s '
                'ORDER BY namespace COLLATE "C" LIMIT 1) UNION ALL SELECT (SELECT namespace COLLATE "C" '
                'FROM {t} WHERE namespace COLLATE "C" > ns.name AND namespace COLLATE "C" < %s '
                'ORDER BY namespace COLLATE "C" LIMIT 1) FROM ns WHERE ns.name IS NOT NULL) '
                "SELECT name FROM ns WHERE name IS NOT NULL "
                "UNION ALL SELECT %s::text WHERE EXISTS (SELECT 1 FROM {t} WHERE namespace = %s)"
            ),
            "id_of": "SELECT id FROM {t} WHERE namespace = %s AND key = %s AND {live}",
            "before": (
                "SELECT key FROM {t} WHERE namespace = %s AND id < %s AND {live} ORDER BY id DESC LIMIT %s"
            ),
            "after": "SELECT key FROM {t} WHERE namespace = %s AND id > %s AND {live} ORDER BY id LIMIT %s",
            "meta_get": "SELECT model, dim FROM {meta} WHERE namespace = %s",
            "meta_set": (
                "INSERT INTO {meta} (namespace, model, dim) VALUES (%s, %s, %s) "
                "ON CONFLICT (namespace) DO UPDATE SET model = excluded.model, dim = excluded.dim"
            ),
            "changes": "SELECT id, key FROM {outbox} WHERE namespace = %s ORDER BY id LIMIT %s",
            "ack": "DELETE FROM {outbox} WHERE id = ANY(%s)",
        }
        parts = {
            "t": t,
            "cols": cols,
            "tcols": tcols,
            "seq": seq,
            "live": live,
            "updates": updates,
            "meta": sql.Identifier(f"{self.table}_index_meta"),
            "outbox": sql.Identifier(f"{self.table}_outbox"),
            "terms": sql.Identifier(f"{self.table}_ns_terms"),
            "counts": sql.Identifier(f"{self.table}_counts"),
        }
        return {name: sql.SQL(text).format(**parts) for name, text in q.items()}

    def _rendered(self) -> dict[str, bytes]:
        """Render the statements once, as the bytes sent (composing them per call costs as much as a read)."""
        return {name: q.as_bytes(None) for name, q in self._q.items()}

    # -- writing ---------------------------------------------------------------------------------------------------

    def _encode(self, entry: MemoryEntry) -> list[Any]:
        key = entry.key
        if not -_INT64 <= entry.priority < _INT64:
            raise InvalidArgumentError(
                f"priority of key {key!r} must fit in 64 bits for PostgreSQL, got {entry.priority!r}"
            )
        row = entry_to_row(entry, compression_threshold=self.compression_threshold)
        row[2] = row[2].replace("\x00", " ")  # PostgreSQL text cannot hold NUL
        return [self.namespace, *row]

    def _upsert(self, conn: Any, rows: list[list[Any]]) -> None:
        """Write *rows* (batch order = recency order) locking them in key order."""
        seqs = [r[0] for r in conn.execute(self._x["seqs"], (len(rows),)).fetchall()]
        ranked = sorted(
            ([*row, s] for row, s in zip(rows, seqs, strict=True)),
            key=lambda r: r[1].encode("utf-8", "surrogatepass"),
        )
        conn.execute(self._x["upsert"], [list(column) for column in zip(*ranked, strict=True)])

    def _lock_namespace(self, conn: Any) -> None:
        if self.capacity is not None:
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", self._namespace_lock)

    def _enforce_capacity(self, conn: Any, now: float, acted: list[bool]) -> None:
        if self.capacity is None:
            return
        ns = self.namespace
        total, rows = conn.execute(self._x["count_all"], (ns,)).fetchone()
        if rows > _COUNT_ROWS_FOLDED:
            conn.execute(self._x["fold_counts"], (ns, ns))
        if total <= self.capacity:
            return
        purged = len(conn.execute(self._x["purge"], (ns, now)).fetchall())
        excess = total - purged - self.capacity
        victims: list[MemoryEntry] = []
        if excess > 0:
            victims = [
                row_to_entry(r) for r in conn.execute(self._x["victims"], (ns, excess)).fetchall()
            ]
            if self.on_evict is not None and victims:
                acted.append(True)
                try:
                    self.on_evict(victims)
                except BaseException:
                    logger.warning("postgres: eviction callback failed; the write was rolled back")
                    raise
            conn.execute(self._x["delete"], (ns, [v.key for v in victims]))
            logger.debug(
                "postgres: evicted %d entries for capacity %d", len(victims), self.capacity
            )
        with self._lock:
            self.stats_counters.expirations += purged
            self.stats_counters.evictions += len(victims)

    # -- recorded reads --------------------------------------------------------------------------------------------

    def _show_pending(self, entries: Sequence[MemoryEntry]) -> None:
        """Add this process's recorded, not yet written reads to *entries* (caller holds ``_pending_lock``)."""
        if not self._pending and not self._inflight:
            return
        for entry in entries:
            for recorded in (*self._inflight, self._pending):
                p = recorded.get(entry.key)
                if p is not None and p[0] == entry.version:
                    entry.access_count += p[1]
                    last = entry.last_accessed
                    entry.last_accessed = p[2] if last is None else max(last, p[2])

    def _record(self, entries: Sequence[MemoryEntry], now: float) -> bool:
        """Record one read of each entry (caller holds ``_pending_lock``); True when a flush is due."""
        pending = self._pending
        if (
            not pending
            and self.touch_flush_interval > 0
            and self._timer is None
            and not self._closing
        ):
            timer = threading.Timer(self.touch_flush_interval, self._flush_from_timer)
            timer.daemon = True
            timer.name = f"agentmem-{self.table}-flush"
            self._timer = timer
            timer.start()
        for entry in entries:
            p = pending.pop(entry.key, None)  # re-inserted below: the dict order is the read order
            if p is None or p[0] != entry.version:
                p = [entry.version, 0, now]
            p[1] += 1
            p[2] = now if p[2] is None else max(p[2], now)
            pending[entry.key] = p
            entry.access_count += 1
            entry.last_accessed = now
        return len(pending) >= _TOUCH_FLUSH_COUNT

    def _take_pending(self) -> dict[str, list[Any]]:
        """Move the recorded reads to the in-flight list and return them (empty: nothing to write)."""
        with self._pending_lock:
            taken, self._pending = self._pending, {}
            if taken:
                self._inflight.append(taken)
            return taken

    def _settle(self, taken: dict[str, list[Any]], *, written: bool) -> None:
        """Forget *taken* once written; else put its reads back before the ones recorded since."""
        if not taken:
            return
        with self._pending_lock:
            self._inflight = [r for r in self._inflight if r is not taken]
            if written:
                return
            merged = dict(taken)
            for key, q in self._pending.items():
                p = merged.pop(key, None)
                if p is not None and p[0] == q[0]:
                    q = [q[0], p[1] + q[1], max(p[2], q[2])]
                merged[key] = q
            self._pending = merged

    def _forget_pending(self, keys: Sequence[str] | None) -> None:
        """Drop the recorded reads of *keys* (None: all), whose rows a write of this tier just replaced."""
        with self._pending_lock:
            if keys is None:
                self._pending.clear()
            else:
                for key in keys:
                    self._pending.pop(key, None)

    def _write_reads(self, conn: Any, taken: dict[str, list[Any]], *, relaxed: bool) -> None:
        """Run the flush statement for *taken* on *conn* (in the caller's transaction, or on its own)."""
        if not taken:
            return
        keys = list(taken)
        values = list(taken.values())
        conn.execute(
            self._x["flush_relaxed" if relaxed else "flush"],
            (
                keys,
                [p[0] for p in values],
                [p[1] for p in values],
                [p[2] for p in values],
                self.namespace,
            ),
        )

    def _transact_with_reads(
        self, what: str, body: Callable[[Any, list[bool]], T], *, flush: bool = True
    ) -> T:
        """:meth:`_transact` whose transaction first writes the recorded reads (kept when it rolls back)."""
        nested = getattr(self._local, "conn", None) is not None
        taken: list[dict[str, list[Any]]] = []

        def with_reads(conn: Any, acted: list[bool]) -> T:
            for earlier in taken:  # a retried attempt: the earlier one's flush was rolled back
                self._settle(earlier, written=False)
            taken.clear()
            if flush and not nested:
                taken.append(self._take_pending())
                self._write_reads(conn, taken[0], relaxed=False)
            return body(conn, acted)

        try:
            result = self._transact(what, with_reads)
        except BaseException:
            for earlier in taken:
                self._settle(earlier, written=False)
            raise
        for done in taken:
            self._settle(done, written=True)
        return result

    def flush(self) -> None:
        """Write this process's recorded reads (access counts, last access, recency) to the database now."""
        taken = self._take_pending()
        if not taken:
            return
        grouped = getattr(self._local, "conn", None) is not None  # relaxed commit only on its own
        try:
            self._transact(
                "writing recorded reads",
                lambda conn, _: self._write_reads(conn, taken, relaxed=not grouped),
                single=True,
            )
        except BaseException:
            self._settle(taken, written=False)
            raise
        self._settle(taken, written=True)

    def _flush_quietly(self) -> bool:
        """Flush from a read, the timer or close: a failure keeps the reads for the next flush (False)."""
        if getattr(self._pool, "closed", False):
            # a borrowed pool closed before this tier: nowhere to write them
            with self._pending_lock:
                dropped, self._pending = len(self._pending), {}
            if dropped:
                logger.debug("postgres: %d recorded reads dropped: the pool is closed", dropped)
            return False
        try:
            self.flush()
        except StorageError as exc:
            logger.warning("postgres: recorded reads kept for a later flush: %s", exc)
            return False
        return True

    def _flush_from_timer(self) -> None:
        with self._pending_lock:
            self._timer = None
        if not self._closing:
            self._flush_quietly()
            with self._pending_lock:  # a failed flush put its reads back: try again later
                if self._pending and self._timer is None and not self._closing:
                    timer = threading.Timer(self.touch_flush_interval, self._flush_from_timer)
                    timer.daemon = True
                    self._timer = timer
                    timer.start()

    # -- primitives ------------------------------------------------------------------------------------------------

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        """Insert or replace *entries* in one transaction (all or nothing; later duplicates of a key win).

        Raises:
            SerializationError: a value or metadata is not JSON; nothing was written.
            StorageError: the database failed or is unreachable; the whole batch was rolled back.

        """
        batch: dict[str, MemoryEntry] = {}
        for entry in entries:
            batch.pop(entry.key, None)
            batch[entry.key] = entry
        if not batch:
            return
        rows = [self._encode(e) for e in batch.values()]
        if len(rows) == 1 and self.capacity is None:  # one statement: no BEGIN/COMMIT round trips
            self._transact(
                "storing an entry",
                lambda conn, _: conn.execute(self._x["upsert_one"], rows[0]),
                single=True,
            )
            self._forget_pending(list(batch))
            with self._lock:
                self.stats_counters.writes += 1
            return

        def body(conn: Any, acted: list[bool]) -> None:
            self._lock_namespace(conn)
            self._upsert(conn, rows)
            self._enforce_capacity(conn, self.clock(), acted)

        # the recorded reads go first, in the same transaction: eviction sees them, in the order they happened
        self._transact_with_reads(f"storing a batch of {len(rows)} entries", body)
        self._forget_pending(list(batch))
        with self._lock:
            self.stats_counters.writes += len(rows)

    def get_many(self, keys: Sequence[str], *, touch: bool = True) -> list[MemoryEntry | None]:
        """Return the live entry for each key (None when missing or expired); ``touch`` records the reads."""
        if not keys:
            return []
        unique = list(dict.fromkeys(keys))
        now = self.clock()
        grouped = getattr(self._local, "conn", None) is not None
        if touch and self.touch_flush_interval == 0:  # every read written as it happens
            # inside transaction() the relaxed commit would apply to the grouped writes too: not there
            query = self._x["touch" if grouped else "touch_relaxed"]
            rows = self._transact(
                "reading entries",
                lambda conn, _: conn.execute(query, (now, self.namespace, unique, now)).fetchall(),
                single=True,
            )
            found = {r[0]: r for r in rows}
            out = [None if k not in found else row_to_entry(found[k]) for k in keys]
            with self._pending_lock:
                self._show_pending([e for e in out if e is not None])
        else:
            params: tuple[Any, ...]
            if (
                len(unique) == 1
            ):  # key = %s: an array parameter costs more than the rest of the read
                query, params = self._x["get_one"], (self.namespace, unique[0], now)
            else:
                query, params = self._x["get"], (self.namespace, unique, now)
            found = {r[0]: r for r in self._read("reading entries", query, params)}
            out = [None if k not in found else row_to_entry(found[k]) for k in keys]
            due = False
            with self._pending_lock:
                self._show_pending([e for e in out if e is not None])
                if touch:
                    first = {e.key: e for e in out if e is not None}
                    due = self._record(list(first.values()), now)
                    for e in out:  # a key asked twice is one read, shown on every copy
                        if e is not None and e is not first[e.key]:
                            e.access_count = first[e.key].access_count
                            e.last_accessed = now
            if due and not grouped:
                self._flush_quietly()
        if touch:
            hits = sum(e is not None for e in out)
            with self._lock:
                self.stats_counters.hits += hits
                self.stats_counters.misses += len(out) - hits
        return out

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete *keys* in one transaction; return how many live entries were removed."""
        if not keys:
            return 0
        now = self.clock()
        unique = list(dict.fromkeys(keys))
        rows = self._transact(
            f"deleting {len(unique)} entries",
            lambda conn, _: conn.execute(self._x["delete"], (self.namespace, unique)).fetchall(),
            single=True,
        )
        removed = sum(1 for (expires_at,) in rows if expires_at is None or expires_at > now)
        self._forget_pending(unique)
        with self._lock:
            self.stats_counters.deletes += removed
        return removed

    def scan(self) -> list[MemoryEntry]:
        """Return every live entry of the namespace, in insertion order."""
        rows = self._read("listing entries", self._x["scan"], (self.namespace, self.clock()))
        entries = [row_to_entry(r) for r in rows]
        with self._pending_lock:
            self._show_pending(entries)
        return entries

    def keyword_search(self, query: str, limit: int = 10) -> list[tuple[MemoryEntry, float]]:
        """Full-text search (English stemming) for any of the query's words, ranked by ``ts_rank_cd``."""
        text = _tsquery_text(query)
        if text is None or limit <= 0:
            return []
        rows = self._read(
            "searching",
            self._x["search"],
            (text, self.namespace, self.namespace, text, self.clock(), min(limit, 2**62)),
        )
        found = [(row_to_entry(r), float(r[ROW_FIELDS])) for r in rows if r[ROW_FIELDS] > 0]
        with self._pending_lock:
            self._show_pending([e for e, _ in found])
        return found

    def compute(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        """Atomic read-modify-write of *key* (locked against every other ``compute`` and writer of the key)."""

        def body(conn: Any, acted: list[bool]) -> MemoryEntry | None:
            self._lock_namespace(conn)
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s)",
                (_key_lock_id(self.table, self.namespace, key),),
            )
            now = self.clock()
            row = conn.execute(self._x["get_for_update"], (self.namespace, key)).fetchone()
            current = (
                None if row is None or (row[3] is not None and row[3] <= now) else row_to_entry(row)
            )
            acted.append(True)
            new = fn(current)
            if new is UNCHANGED:
                return current
            if new is None:
                if row is not None:
                    conn.execute(self._x["delete"], (self.namespace, [key]))
                    with self._lock:
                        self.stats_counters.deletes += current is not None
                return None
            self._upsert(conn, [self._encode(new)])
            self._enforce_capacity(conn, now, acted)
            with self._lock:
                self.stats_counters.writes += 1
            return new

        # the recorded reads are written first, in the same transaction: fn sees the counts they make
        result = self._transact_with_reads(f"updating key {key!r}", body)
        self._forget_pending([key])  # its reads were just written; a rewrite replaced them
        return result

    def cleanup(self) -> list[str]:
        """Delete the expired entries of the namespace; return their keys."""
        now = self.clock()
        rows = self._transact(
            "removing expired entries",
            lambda conn, _: conn.execute(self._x["purge"], (self.namespace, now)).fetchall(),
            single=True,
        )
        with self._lock:
            self.stats_counters.expirations += len(rows)
        return [r[0] for r in rows]

    def count(self) -> int:
        """Return the number of live entries in the namespace."""
        ns = self.namespace
        (live, rows), *_ = self._read("counting entries", self._x["count"], (ns, self.clock(), ns))
        if rows > _COUNT_ROWS_FOLDED:
            self._transact(
                "folding the namespace's counts",
                lambda conn, _: conn.execute(self._x["fold_counts"], (ns, ns)),
                single=True,
            )
        return int(live)

    def clear(self) -> None:
        """Delete every entry of this namespace (other namespaces of the table are untouched)."""
        self._transact(
            "clearing the namespace",
            lambda conn, _: conn.execute(self._x["clear"], (self.namespace,)),
            single=True,
        )
        self._forget_pending(None)

    # -- transactions ------------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group this thread's writes to the tier into one atomic transaction (nested: a savepoint).

        Example:
            >>> with tier.transaction():  # doctest: +SKIP
            ...     tier.put(MemoryEntry("a", 1))
            ...     tier.delete("b")

        """
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            with self._errors("a grouped write"), conn.transaction():
                yield
            return
        self._check_open()
        with (
            self._errors("a grouped write"),
            self._pool.connection() as conn,
            conn.transaction(),
        ):
            self._local.conn = conn
            try:
                yield
            finally:
                self._local.conn = None

    # -- change feed ---------------------------------------------------------------------------------------------

    def index_meta(self) -> tuple[str, int] | None:
        """Return the (model, dimension) of this namespace's semantic index, or None."""
        rows = self._read(
            "reading the semantic index model", self._x["meta_get"], (self.namespace,)
        )
        return None if not rows else (str(rows[0][0]), int(rows[0][1]))

    def set_index_meta(self, model: str, dim: int) -> None:
        """Record the semantic index's model; from now on every change of this namespace enters the outbox."""
        self._transact(
            "recording the semantic index model",
            lambda conn, _: conn.execute(self._x["meta_set"], (self.namespace, model, int(dim))),
            single=True,
        )

    def changes(self, limit: int) -> list[tuple[int, str]]:
        """Return up to *limit* outbox rows of this namespace, oldest first."""
        if limit <= 0:
            return []
        rows = self._read(
            "reading index changes", self._x["changes"], (self.namespace, min(limit, 2**62))
        )
        return [(int(i), str(k)) for i, k in rows]

    def ack_changes(self, changes: Sequence[tuple[int, str]]) -> None:
        """Delete applied outbox rows."""
        if changes:
            ids = [int(i) for i, _ in changes]
            self._transact(
                f"acknowledging {len(ids)} index changes",
                lambda conn, _: conn.execute(self._x["ack"], (ids,)),
                single=True,
            )

    # -- extras ----------------------------------------------------------------------------------------------------

    def neighbors(self, keys: Sequence[str], radius: int) -> dict[str, list[str]]:
        """For each live key, the keys inserted up to *radius* rows before and after it (insertion order)."""
        out: dict[str, list[str]] = {}
        now = self.clock()
        ns = self.namespace
        with self._connection("finding neighbors") as conn, self._errors("finding neighbors"):
            for key in keys:
                row = conn.execute(self._x["id_of"], (ns, key, now)).fetchone()
                if row is None:
                    continue
                before = conn.execute(self._x["before"], (ns, row[0], now, radius)).fetchall()
                after = conn.execute(self._x["after"], (ns, row[0], now, radius)).fetchall()
                out[key] = [r[0] for r in reversed(before)] + [r[0] for r in after]
        return out

    @property
    def pool(self) -> Any:
        """The connection pool; another tier (a namespace view) may borrow it with ``pool=``."""
        return self._pool

    def namespaces(self, prefix: str | None = None) -> list[str]:
        """Return the namespaces of this tier's table holding at least one entry (expired included), sorted.

        One index probe per namespace listed (a skip scan), whatever the namespaces hold; *prefix*: only it and
        those below it, one range of that index.
        """
        bounds = namespace_bounds(prefix)
        if bounds is None:
            rows = self._read("listing namespaces", self._x["namespaces"], ())
        else:
            name, low, high = bounds
            params = (low, high, high, name, name)
            rows = self._read("listing namespaces", self._x["namespaces_below"], params)
        return sorted(r[0] for r in rows)

    def drop_tables(self) -> None:
        """Drop this tier's table and everything created with it, for **every** namespace (irreversible)."""
        sql = self._sql

        def body(conn: Any, _: list[bool]) -> None:
            for suffix in ("", "_outbox", "_index_meta", "_migrations", "_counts"):
                conn.execute(
                    sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(
                        sql.Identifier(self.table + suffix)
                    )
                )
            conn.execute(
                sql.SQL("DROP SEQUENCE IF EXISTS {}").format(sql.Identifier(f"{self.table}_seq"))
            )
            conn.execute(
                sql.SQL("DROP FUNCTION IF EXISTS {}()").format(
                    sql.Identifier(f"{self.table}_changed")
                )
            )
            conn.execute(
                sql.SQL("DROP FUNCTION IF EXISTS {}(text, tsvector)").format(
                    sql.Identifier(f"{self.table}_ns_terms")
                )
            )
            conn.execute(
                sql.SQL("DROP FUNCTION IF EXISTS {}()").format(
                    sql.Identifier(f"{self.table}_counted")
                )
            )

        self._transact(f"dropping table {self.table!r}", body)
        self._forget_pending(None)

    def stats(self) -> dict[str, Any]:
        """Counters, size, and where the tier lives (DSN without password, table, namespace).

        The recorded reads are written first, so what the database holds agrees with the counters.
        """
        self.flush()
        return {
            **super().stats(),
            "dsn": self.dsn,
            "table": self.table,
            "namespace": self.namespace,
        }

    def close(self) -> None:
        """Close the connection pool this tier opened (idempotent; a pool passed in stays open)."""
        if self._closed:
            return
        with self._pending_lock:
            timer, self._timer, self._closing = self._timer, None, True
        if timer is not None:
            timer.cancel()
        # A flushed count survives the close: write what is recorded, and wait for the flushes of other
        # threads (a timer's) under way, whose reads come back here if they fail.
        deadline = time.monotonic() + self.timeout
        while self._pool is not None and self._flush_quietly():
            with self._pending_lock:
                busy = bool(self._inflight or self._pending)
            if not busy or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        self._closed = True
        with self._pending_lock:
            self._pending.clear()
        if self._owns_pool and self._pool is not None:
            with contextlib.suppress(Exception):
                self._pool.close(timeout=5.0)

    def __repr__(self) -> str:
        return f"PostgresTier(dsn={self.dsn!r}, table={self.table!r}, namespace={self.namespace!r})"
