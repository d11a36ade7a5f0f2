"""PostgresTier against a real PostgreSQL server (skipped when unreachable; AGENTMEM_REQUIRE_SERVICES=1 fails).

The tier contract runs in tests/conformance (backend "postgres"); here: the schema, concurrency across
processes, full-text search and failures. Every test works on its own table and drops it afterwards.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from conftest import FakeClock
from integration.backends import (
    EvictionLog,
    TcpProxy,
    apply_op,
    drop_postgres_table,
    lost_writes,
    postgres_functions,
    postgres_relations,
    race_writers,
    random_ops,
    require_postgres,
    unique_table,
)

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import (
    InvalidArgumentError,
    MissingDependencyError,
    SchemaVersionError,
    StorageError,
    StoreCorruptError,
)
from agentmem_plugin.tiers.buffer import BufferTier
from agentmem_plugin.tiers.postgres import PostgresTier, redact_dsn

Factory = Callable[..., PostgresTier]


@pytest.fixture
def dsn() -> str:
    return require_postgres()


@pytest.fixture
def table(dsn: str) -> Iterator[str]:
    name = unique_table()
    yield name
    drop_postgres_table(name)
    assert postgres_relations(name) == []
    assert postgres_functions(name) == []  # the trigger and namespace-terms functions too


@pytest.fixture
def make(dsn: str, table: str) -> Iterator[Factory]:
    made: list[PostgresTier] = []

    def factory(**kwargs: object) -> PostgresTier:
        kwargs.setdefault("table", table)
        kwargs.setdefault("max_size", 2)
        tier = PostgresTier(str(kwargs.pop("dsn", dsn)), **kwargs)  # type: ignore[arg-type]
        made.append(tier)
        return tier

    yield factory
    for tier in made:
        tier.close()


def entry(
    key: str, value: object = None, clock: FakeClock | None = None, **kw: object
) -> MemoryEntry:
    return MemoryEntry(key, key if value is None else value, clock=clock, **kw)  # type: ignore[arg-type]


def sql(dsn: str, query: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.execute(query, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


# -- schema --------------------------------------------------------------------------------------------------------


def test_migrations_are_recorded_once_and_reopening_is_idempotent(make, dsn, table):
    make().put(entry("k", 1))
    applied = sql(dsn, f'SELECT name, applied_at FROM "{table}_migrations" ORDER BY name')
    assert [name for name, _ in applied] == [
        "0001_entries_and_search",
        "0002_semantic_outbox",
        "0003_versions",
        "0004_namespace_search",
        "0005_namespace_counts",
        "0006_namespace_listing",
    ]
    relations = postgres_relations(table)
    reopened = make()
    assert reopened.get("k").value == 1
    assert sql(dsn, f'SELECT name, applied_at FROM "{table}_migrations" ORDER BY name') == applied
    assert postgres_relations(table) == relations


def test_concurrent_openers_of_a_new_table_all_succeed(make, dsn, table):
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_one() -> None:
        try:
            barrier.wait()
            make(min_size=0, max_size=1).count()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sql(dsn, f'SELECT count(*) FROM "{table}_migrations"') == [(6,)]


def test_a_newer_schema_is_refused(make, dsn, table):
    make().put(entry("k", 1))
    sql(dsn, f'INSERT INTO "{table}_migrations" VALUES (%s, 0)', ("0099_from_the_future",))
    with pytest.raises(SchemaVersionError, match="0099_from_the_future"):
        make()


def test_a_table_we_did_not_create_is_left_alone(make, dsn, table):
    sql(dsn, f'CREATE TABLE "{table}" (x integer)')
    sql(dsn, f'INSERT INTO "{table}" VALUES (7)')
    with pytest.raises(StoreCorruptError, match="did not create"):
        make()
    assert sql(dsn, f'SELECT x FROM "{table}"') == [(7,)]


@pytest.mark.parametrize(
    "name", ['memories"; DROP TABLE x; --', "1abc", "pg_memories", "a" * 49, "", None]
)
def test_unsafe_table_names_are_refused(dsn, name):
    with pytest.raises(InvalidArgumentError, match="table"):
        PostgresTier(dsn, table=name)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"namespace": 3}, "namespace"),
        ({"capacity": -1}, "capacity"),
        ({"min_size": 3, "max_size": 2}, "max_size"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_arguments_are_refused(dsn, kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        PostgresTier(dsn, **kwargs)


def test_priority_beyond_64_bits_is_refused_and_nothing_is_written(make):
    tier = make()
    with pytest.raises(InvalidArgumentError, match="'big'"):
        tier.put_many([entry("ok", 1), entry("big", 2, priority=2**64)])
    assert tier.count() == 0


# -- namespaces, search, transactions ------------------------------------------------------------------------------------


def test_namespaces_share_a_table_and_see_only_their_own(make):
    alice, bob = make(namespace="user/alice"), make(namespace="user/bob")
    alice.put_many([entry("k", "alice likes tea"), entry("only-alice", "x")])
    bob.put(entry("k", "bob likes coffee"))
    assert alice.get("k").value == "alice likes tea" and bob.get("only-alice") is None
    assert [e.key for e, _ in bob.keyword_search("tea or coffee?")] == ["k"]
    assert bob.keyword_search("tea") == []
    assert alice.namespaces() == ["user/alice", "user/bob"]
    alice.clear()
    assert alice.count() == 0 and bob.count() == 1


def test_a_question_finds_entries_sharing_some_of_its_words(make):
    tier = make()
    tier.put_many(
        [
            entry("lang", "The user prefers the Python programming language"),
            entry("food", "The user is vegetarian and loves pasta"),
            entry("city", "Lives in Lisbon"),
        ]
    )
    hits = tier.keyword_search("Which programming languages does the user prefer?", 5)
    keys = [e.key for e, _ in hits]
    assert keys[0] == "lang" and "city" not in keys
    # websearch syntax in user text is inert: quotes, minus and OR are just words or nothing
    assert [e.key for e, _ in tier.keyword_search('"lisbon" -pasta OR', 5)][:1] == ["city"]
    assert tier.keyword_search("--- ''' ???", 5) == []


def test_transaction_groups_writes_atomically(make):
    tier = make()
    tier.put(entry("old", 0))

    def failing_group() -> None:
        with tier.transaction():
            tier.put(entry("a", 1))
            tier.delete("old")
            raise RuntimeError("abort")

    def failing_nested_group() -> None:
        with tier.transaction():  # nested: a savepoint
            tier.put(entry("b", 2))
            raise RuntimeError("inner")

    with pytest.raises(RuntimeError, match="abort"):
        failing_group()
    assert tier.keys() == ["old"]
    with tier.transaction():
        tier.put(entry("a", 1))
        with pytest.raises(RuntimeError, match="inner"):
            failing_nested_group()
        tier.delete("old")
        assert tier.get("a").access_count == 1
        # a read inside the group does not relax the durability of the group's commit
        assert tier._local.conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
    assert tier.keys() == ["a"]


def test_change_feed_outbox(make, clock):
    tier = make(clock=clock)
    tier.put(entry("before", 1, clock))
    assert tier.index_meta() is None and tier.changes(10) == []
    tier.set_index_meta("fake-model", 16)
    assert tier.index_meta() == ("fake-model", 16)
    tier.put_many([entry("a", 1, clock), entry("b", 2, clock)])
    tier.get("a")  # a read is not a change
    tier.delete("before")
    changes = tier.changes(10)
    assert [k for _, k in changes] == ["a", "b", "before"]
    tier.ack_changes(changes[:2])
    assert [k for _, k in tier.changes(10)] == ["before"]
    assert make(namespace="other").changes(10) == []


def test_neighbors_follow_insertion_order(make):
    tier = make()
    tier.put_many([entry(k) for k in "abcde"])
    tier.put(entry("b", "again"))  # a replaced key keeps its place
    assert [e.key for e in tier.scan()] == list("abcde")
    assert tier.neighbors(["c", "zz"], 1) == {"c": ["b", "d"]}


# -- capacity, priority, LRU ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_eviction_order_and_ttl_match_the_buffer_tier(make, seed):
    """Random puts/reads/deletes/clock steps: same evictions, keys and counts as the in-memory buffer."""
    clock = FakeClock()
    buffer_evicted: list[list[str]] = []
    pg_evicted: list[list[str]] = []
    buffer = BufferTier(
        5, clock=clock, on_evict=lambda es: buffer_evicted.append([e.key for e in es])
    )
    tier = make(capacity=5, clock=clock, on_evict=lambda es: pg_evicted.append([e.key for e in es]))
    for i, op in enumerate(random_ops(seed, 120)):
        if op[0] == "advance":
            clock.advance(op[1])
            continue
        apply_op(buffer, op, clock)
        apply_op(tier, op, clock)
        assert pg_evicted == buffer_evicted, f"op {i}: {op}"
        assert sorted(tier.keys()) == sorted(buffer.keys()), f"op {i}: {op}"
        assert tier.count() == buffer.count() <= 5
    assert buffer_evicted, "the ops never filled the tier: the test proves nothing"


def test_capacity_is_atomic_under_four_threads(make):
    """Four threads rewrite keys of a full tier: no write lost, each evicted version handed over once."""
    capacity = 20
    log = EvictionLog(delay=0.001)
    tier = make(capacity=capacity, on_evict=log, max_size=4)
    observer = make()  # another client watching the count
    last, counts, violations, errors = race_writers(tier, observer, log)
    assert errors == []
    assert violations == []
    final = {e.key: e.value for e in tier.scan()}
    assert len(log.events) > 50, "hardly any evictions: the test proves nothing"
    assert len(log.events) == len(set(log.events)), "an evicted entry reached on_evict twice"
    assert lost_writes(last, final, log.events) == []
    assert set(final) <= set(last)
    assert tier.count() == capacity
    assert counts and max(counts) <= capacity


PROCESS_WRITER = textwrap.dedent(
    """
    import sys
    import time
    from agentmem_plugin.entry import MemoryEntry
    from agentmem_plugin.tiers.postgres import PostgresTier

    dsn, table, name, count, capacity = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    out = []

    def on_evict(entries):
        out.extend(f"EVICT {e.key}" for e in entries)

    def bump(cur):
        return MemoryEntry("counter", (cur.value if cur else 0) + 1, priority=100)

    tier = PostgresTier(dsn, table=table, namespace="shared", capacity=capacity or None, on_evict=on_evict,
                        max_size=1)
    tier.put(MemoryEntry(f"ready-{name}", 1, priority=100))
    while tier.get("ready-alpha", touch=False) is None or tier.get("ready-beta", touch=False) is None:
        time.sleep(0.002)
    for i in range(count):
        key = f"{name}-{i}"
        if i % 10 == 9:
            tier.put_many([MemoryEntry(f"{key}-{j}", j, priority=j % 2) for j in range(3)])
            out.extend(f"PUT {key}-{j}" for j in range(3))
        else:
            tier.put(MemoryEntry(key, i, priority=i % 3))
            out.append("PUT " + key)
        if i % 4 == 0:
            tier.compute("counter", bump)
        if i % 3 == 0:
            tier.get(f"{name}-{i // 2}")
    tier.close()
    sys.stdout.write("\\n".join(out) + "\\n")
    """
)


@pytest.mark.parametrize("capacity", [None, 20])
def test_two_processes_write_concurrently(make, dsn, table, capacity):
    count = 100
    observer = make(namespace="shared")
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                PROCESS_WRITER,
                dsn,
                table,
                name,
                str(count),
                str(capacity or 0),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    counts = []
    while any(p.poll() is None for p in procs):
        counts.append(observer.count())
        time.sleep(0.005)
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    lines = [line for out, _ in outputs for line in out.splitlines()]
    put = {line[4:] for line in lines if line.startswith("PUT ")}
    evicted = [line[6:] for line in lines if line.startswith("EVICT ")]
    assert len(put) == 2 * (count + 2 * (count // 10))
    counter = observer.get("counter")
    assert counter is not None and counter.value == 2 * len(range(0, count, 4))  # no lost update
    remaining = set(observer.keys()) - {"counter", "ready-alpha", "ready-beta"}
    assert len(evicted) == len(set(evicted)), "an entry reached on_evict twice"
    assert set(evicted).isdisjoint(remaining)
    assert set(evicted) | remaining == put  # nothing lost
    if capacity is None:
        assert evicted == []
    else:
        assert observer.count() == capacity
        assert counts and max(counts) <= capacity
        for (
            out,
            _,
        ) in outputs:  # the writers really interleaved: each evicted entries the other one wrote
            owners = {
                line[6:].split("-")[0] for line in out.splitlines() if line.startswith("EVICT ")
            }
            assert owners == {"alpha", "beta"}


# -- failures ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_dsn",
    [
        "postgresql://agent:s3cret@127.0.0.1:1/test",
        "host=127.0.0.1 port=1 user=agent password=s3cret dbname=test",
        "postgresql://agent@127.0.0.1:1/test?password=s3cret",
    ],
)
def test_unreachable_server_raises_storage_error_without_the_password(bad_dsn, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StorageError) as info:
        PostgresTier(bad_dsn, timeout=2)
    message = str(info.value)
    assert "127.0.0.1" in message and "unavailable" in message
    assert "s3cret" not in message and "s3cret" not in repr(info.value)
    assert "s3cret" not in caplog.text


def test_redact_dsn():
    assert redact_dsn("postgresql://u:s3cret@db:5432/x") == "postgresql://u:***@db:5432/x"
    assert redact_dsn("postgres://u:p%40ss@db/x") == "postgres://u:***@db/x"
    assert redact_dsn("host=db password='a b' user=u") == "host=db password=*** user=u"
    assert (
        redact_dsn("postgresql://db/x?user=u&password=s3cret")
        == "postgresql://db/x?user=u&password=***"
    )
    assert redact_dsn("postgresql://u@db/x") == "postgresql://u@db/x"


def test_server_gone_mid_operation_acknowledges_only_whole_writes(make, dsn):
    proxy = TcpProxy("127.0.0.1", 5432)
    try:
        tier = make(dsn=f"postgresql://127.0.0.1:{proxy.port}/test", timeout=2)
        direct = make()
        acknowledged: list[int] = []
        failures: list[BaseException] = []

        def writer() -> None:
            for batch in range(100_000):
                try:
                    tier.put_many([entry(f"b{batch}-{i}", i) for i in range(20)])
                except StorageError as exc:
                    failures.append(exc)
                    return
                acknowledged.append(batch)

        thread = threading.Thread(target=writer)
        thread.start()
        while len(acknowledged) < 10:
            time.sleep(0.005)
        proxy.stop()
        thread.join(timeout=30)
        assert not thread.is_alive()
    finally:
        proxy.stop()
    assert len(failures) == 1
    keys = set(direct.keys())
    for batch in range(acknowledged[-1] + 2):
        present = sum(f"b{batch}-{i}" in keys for i in range(20))
        assert present in (0, 20), f"batch {batch} is partly written"
        if batch in acknowledged:
            assert present == 20
    with pytest.raises(StorageError, match="unavailable"):
        tier.count()


def test_pool_passed_in_is_used_and_not_closed(dsn, table):
    from psycopg_pool import ConnectionPool

    with ConnectionPool(
        dsn, min_size=1, max_size=2, open=True, kwargs={"autocommit": True}
    ) as pool:
        tier = PostgresTier(pool=pool, table=table)
        tier.put(entry("k", 1))
        tier.close()
        assert not pool.closed
        assert PostgresTier(pool=pool, table=table).get("k").value == 1


def test_missing_psycopg_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg_pool", None)
    with pytest.raises(MissingDependencyError, match=r"agentmem-plugin\[postgres\]"):
        PostgresTier()
