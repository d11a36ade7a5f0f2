"""RedisTier against a real Redis server (skipped when unreachable; AGENTMEM_REQUIRE_SERVICES=1 makes that fail).

The tier contract runs in tests/conformance (backend "redis"); here: what is specific to a server shared by
many processes. Every test works under its own key prefix and deletes it afterwards.
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
    delete_redis_prefix,
    lost_writes,
    race_writers,
    random_ops,
    redis_keys,
    require_redis,
    unique_prefix,
)

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError, MissingDependencyError, StorageError
from agentmem_plugin.tiers.buffer import BufferTier
from agentmem_plugin.tiers.redis import RedisTier, redact_url

Factory = Callable[..., RedisTier]


@pytest.fixture
def url() -> str:
    return require_redis()


@pytest.fixture
def prefix(url: str) -> Iterator[str]:
    name = unique_prefix()
    yield name
    delete_redis_prefix(name)


@pytest.fixture
def make(url: str, prefix: str) -> Iterator[Factory]:
    made: list[RedisTier] = []

    def factory(**kwargs: object) -> RedisTier:
        kwargs.setdefault("prefix", prefix)
        tier = RedisTier(str(kwargs.pop("url", url)), **kwargs)  # type: ignore[arg-type]
        made.append(tier)
        return tier

    yield factory
    for tier in made:
        tier.close()


def entry(
    key: str, value: object = None, clock: FakeClock | None = None, **kw: object
) -> MemoryEntry:
    return MemoryEntry(key, key if value is None else value, clock=clock, **kw)  # type: ignore[arg-type]


# -- layout and namespaces -----------------------------------------------------------------------------------------


def test_every_key_lives_under_prefix_and_namespace(make, prefix, clock):
    tier = make(namespace="user/alice", clock=clock)
    tier.put_many([entry("a", 1, clock, ttl=60), entry("b", 2, clock, tags=["t"])])
    tier.get("a")
    names = redis_keys(prefix)
    assert f"{prefix}:namespaces" in names  # the one key of the prefix: its sorted set of namespace names
    names.remove(f"{prefix}:namespaces")
    assert names and all(n.startswith(f"{prefix}:user/alice:") for n in names)
    assert f"{prefix}:user/alice:e:a" in names and f"{prefix}:user/alice:e:b" in names


def test_namespaces_are_isolated_and_clear_removes_only_its_own(make, prefix, clock):
    alice = make(namespace="alice", clock=clock)
    bob = make(namespace="bob", clock=clock)
    # "a:e" would collide with entries of "a" without escaping (a:e:lru is entry "lru" of namespace "a")
    colon = make(namespace="a:e", clock=clock)
    plain = make(namespace="a", clock=clock)
    alice.put_many([entry("k", "alice's"), entry("only-alice", "x")])
    bob.put(entry("k", "bob's", tags=["bob"]))
    plain.put(entry("lru", "entry named lru"))
    colon.put_many([entry(f"c{i}", i) for i in range(3)])
    assert alice.get("k").value == "alice's" and bob.get("k").value == "bob's"
    assert bob.get("only-alice") is None
    assert (alice.count(), bob.count(), plain.count(), colon.count()) == (2, 1, 1, 3)
    assert [e.key for e, _ in bob.keyword_search("bob")] == ["k"]
    assert alice.keyword_search("bob") == []
    assert alice.namespaces() == ["a", "a:e", "alice", "bob"]

    bob_keys = [n for n in redis_keys(prefix) if n.startswith(f"{prefix}:bob:")]
    alice.clear()
    assert alice.count() == 0 and alice.keys() == []
    assert not [n for n in redis_keys(prefix) if n.startswith(f"{prefix}:alice:")]  # nothing left
    assert [n for n in redis_keys(prefix) if n.startswith(f"{prefix}:bob:")] == bob_keys
    assert bob.get("k").value == "bob's" and plain.get("lru").value == "entry named lru"
    assert colon.count() == 3
    plain.drop()
    assert not [n for n in redis_keys(prefix) if n.startswith(f"{prefix}:a:")]
    assert colon.count() == 3


def test_two_tiers_on_one_namespace_share_everything(make, clock):
    one, two = make(namespace="shared", clock=clock), make(namespace="shared", clock=clock)
    one.put(entry("k", {"n": 1}, clock, priority=2, tags=["x"], metadata={"m": True}))
    got = two.get("k")
    assert got is not None and got.value == {"n": 1} and got.metadata == {"m": True}
    assert one.get("k", touch=False).access_count == 1  # the read through `two` was recorded
    two.delete("k")
    assert one.get("k") is None


def test_keyword_search_sees_what_other_clients_wrote(make, clock):
    """Each tier keeps a local BM25 index: it must follow writes, replacements, deletes and expiry by others."""
    reader, writer = make(namespace="shared", clock=clock), make(namespace="shared", clock=clock)
    writer.put_many(
        [entry("tea", "green tea from japan", clock), entry("soon", "tea time", clock, ttl=5)]
    )
    assert sorted(e.key for e, _ in reader.keyword_search("tea")) == ["soon", "tea"]
    writer.put(entry("coffee", "black coffee", clock))
    writer.put(entry("tea", "oolong from taiwan", clock))  # replaced: "japan" is gone
    assert [e.key for e, _ in reader.keyword_search("coffee")] == ["coffee"]
    assert reader.keyword_search("japan") == []
    assert [e.key for e, _ in reader.keyword_search("taiwan")] == ["tea"]
    clock.advance(5)  # "soon" expires without any write
    assert reader.keyword_search("time") == []
    writer.delete("coffee")
    assert reader.keyword_search("coffee") == []
    writer.clear()
    assert reader.keyword_search("taiwan") == []
    writer.put(entry("again", "taiwan again", clock))
    assert [e.key for e, _ in reader.keyword_search("taiwan")] == ["again"]


def test_scan_keeps_insertion_order_and_neighbors(make, clock):
    tier = make(clock=clock)
    tier.put_many([entry(k, k, clock) for k in "abcde"])
    tier.put(entry("b", "again", clock))  # a replaced key keeps its place
    tier.get("a")
    assert [e.key for e in tier.scan()] == list("abcde")
    assert tier.neighbors(["c", "zz"], 1) == {"c": ["b", "d"]}


# -- capacity, priority, LRU ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_eviction_order_and_ttl_match_the_buffer_tier(make, seed):
    """Random puts/reads/deletes/clock steps: same evictions, keys and counts as the in-memory buffer."""
    clock = FakeClock()
    buffer_evicted: list[list[str]] = []
    redis_evicted: list[list[str]] = []
    buffer = BufferTier(
        5, clock=clock, on_evict=lambda es: buffer_evicted.append([e.key for e in es])
    )
    tier = make(
        capacity=5, clock=clock, on_evict=lambda es: redis_evicted.append([e.key for e in es])
    )
    for i, op in enumerate(random_ops(seed, 150)):
        if op[0] == "advance":
            clock.advance(op[1])
            continue
        apply_op(buffer, op, clock)
        apply_op(tier, op, clock)
        assert redis_evicted == buffer_evicted, f"op {i}: {op}"
        assert sorted(tier.keys()) == sorted(buffer.keys()), f"op {i}: {op}"
        assert tier.count() == buffer.count() <= 5
    assert buffer_evicted, "the ops never filled the tier: the test proves nothing"
    for e in buffer.scan():
        got = tier.get(e.key, touch=False)
        assert got is not None and (got.value, got.priority, got.access_count) == (
            e.value,
            e.priority,
            e.access_count,
        )


def test_capacity_is_atomic_under_four_threads(make):
    """Four threads rewrite keys of a full tier: no write lost, each evicted version handed over once."""
    capacity = 20
    log = EvictionLog(delay=0.001)
    tier = make(namespace="threads", capacity=capacity, on_evict=log)
    observer = make(namespace="threads")  # another client watching the count
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
    from agentmem_plugin.tiers.redis import RedisTier

    url, prefix, name, count, capacity = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    log = prefix + ":evicted"  # outside the namespace: both processes' evictions, in order
    out, last = [], {}

    def on_evict(entries):
        time.sleep(0.001)  # widen the window between choosing the victims and removing them
        tier._client.rpush(log, *[f"{e.key}={e.value}" for e in entries])

    def bump(cur):
        return MemoryEntry("counter", (cur.value if cur else 0) + 1, priority=100)

    tier = RedisTier(url, prefix=prefix, namespace="shared", capacity=capacity, on_evict=on_evict)
    tier._client.incr(prefix + ":ready")  # start together: wait until both writers are ready
    while int(tier._client.get(prefix + ":ready")) < 2:
        time.sleep(0.001)
    for i in range(count):
        if i % 4 == 1:  # a key written once
            key = f"{name}-{i}"
        else:  # one of 8 keys rewritten over and over: only this process writes it, so it knows what must be there
            key = f"{name}-r{i % 8}"
            current = tier.get(key, touch=False)
            if key in last and current is None:
                if f"{key}={last[key]}".encode() not in tier._client.lrange(log, 0, -1):
                    out.append(f"VIOLATION {key}={last[key]} vanished without reaching on_evict")
            elif current is not None and current.value != last[key]:
                out.append(f"VIOLATION {key} holds {current.value}, not {last[key]}")
        tier.put(MemoryEntry(key, i, priority=i % 3))
        last[key] = i
        if i % 4 == 0:
            tier.compute("counter", bump)
        if i % 3 == 0:
            tier.get(f"{name}-{i // 2}")
    tier.close()
    out.extend(f"LAST {key}={value}" for key, value in last.items())
    sys.stdout.write("\\n".join(out) + "\\n")
    """
)


def test_capacity_is_atomic_across_two_processes(make, url, prefix):
    """Two processes fill one namespace: no write lost, each evicted version handed over once, count bounded."""
    import redis

    capacity, count = 12, 120
    observer = make(namespace="shared")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PROCESS_WRITER, url, prefix, name, str(count), str(capacity)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("alpha", "beta")
    ]
    counts = []
    while any(p.poll() is None for p in procs):
        counts.append(observer.count())
        time.sleep(0.002)
    outputs = [p.communicate(timeout=60) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
    lines = [line for out, _ in outputs for line in out.splitlines()]
    assert [line for line in lines if line.startswith("VIOLATION")] == []
    last = dict(line[5:].split("=") for line in lines if line.startswith("LAST "))
    assert len(last) == 2 * (count // 4 + 6)
    client = redis.Redis.from_url(url)
    try:
        events = [e.decode().split("=") for e in client.lrange(f"{prefix}:evicted", 0, -1)]
    finally:
        client.close()
    assert len(events) > 50, "hardly any evictions: the test proves nothing"
    assert len(events) == len({tuple(e) for e in events}), "an evicted entry reached on_evict twice"
    evicted_by = {key.split("-")[0] for key, _ in events}
    assert evicted_by == {"alpha", "beta"}
    final = {e.key: e.value for e in observer.scan()}
    assert final.pop("counter") == 2 * len(range(0, count, 4))  # no lost compute
    assert (
        lost_writes({k: int(v) for k, v in last.items()}, final, [(k, int(v)) for k, v in events])
        == []
    )
    assert set(final) <= set(last)
    assert observer.count() == capacity
    assert counts and max(counts) <= capacity


def test_failing_eviction_callback_releases_the_lock(make, clock):
    calls = []

    def flaky(entries: list[MemoryEntry]) -> None:
        calls.append([e.key for e in entries])
        if len(calls) == 1:
            raise RuntimeError("long-term store is down")

    tier = make(capacity=2, clock=clock, on_evict=flaky)
    other = make(clock=clock)  # same namespace, no capacity of its own
    tier.put_many([entry("a", 1, clock), entry("b", 2, clock)])
    with pytest.raises(RuntimeError, match="down"):
        tier.put(entry("c", 3, clock))
    assert sorted(tier.keys()) == ["a", "b"]
    started = time.monotonic()
    other.put(
        entry("x", 0, clock, priority=9)
    )  # would wait for lock_timeout if the lock were still held
    assert time.monotonic() - started < 1.0
    tier.put(entry("c", 3, clock))
    assert calls == [
        ["a"],
        ["a", "b"],
    ]  # "a" is handed over again: its first eviction never happened
    assert sorted(tier.keys()) == ["c", "x"]


def test_an_eviction_outliving_its_lock_writes_nothing(make, clock):
    def slow(entries: list[MemoryEntry]) -> None:
        time.sleep(0.5)

    tier = make(capacity=1, clock=clock, on_evict=slow, lock_timeout=0.2)
    tier.put(entry("a", 1, clock))
    with pytest.raises(StorageError, match="lapsed"):
        tier.put(entry("b", 2, clock))
    assert tier.keys() == ["a"]


# -- TTL -----------------------------------------------------------------------------------------------------------


def test_fake_clock_expiry_sets_a_real_redis_expiry_of_the_remaining_time(make, prefix, clock):
    tier = make(clock=clock)
    tier.put(entry("k", 1, clock, ttl=30))
    import redis

    client = redis.Redis.from_url(require_redis())
    try:
        remaining_ms = client.pttl(f"{prefix}::e:k")
    finally:
        client.close()
    assert 29_000 < remaining_ms <= 30_500  # the clock's 30 s, not a deadline in 1970
    clock.advance(30)
    assert tier.get("k") is None and tier.count() == 0


def test_real_short_expiry_is_collected_by_redis(make, prefix):
    tier = make()  # the real clock
    tier.put_many([entry("short", 1, ttl=0.2), entry("keep", 2)])
    assert tier.get("short") is not None
    time.sleep(0.25)
    assert tier.get("short") is None and tier.count() == 1  # hidden by the clock at once
    deadline = time.monotonic() + 5
    while f"{prefix}::e:short" in redis_keys(prefix):  # ...and removed by Redis shortly after
        assert time.monotonic() < deadline, "Redis never expired the entry"
        time.sleep(0.05)
    assert tier.keys() == ["keep"]
    assert tier.cleanup() == []  # the scan already dropped the dangling index entries
    assert tier.count() == 1


# -- failures ------------------------------------------------------------------------------------------------------


def test_unreachable_server_raises_storage_error_without_the_password(caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StorageError) as info:
        RedisTier("redis://agent:s3cret@127.0.0.1:1/0", socket_timeout=2)
    message = str(info.value)
    assert "127.0.0.1:1" in message and "unavailable" in message
    assert "s3cret" not in message and "s3cret" not in repr(info.value)
    assert "s3cret" not in caplog.text
    with pytest.raises(StorageError) as info:
        RedisTier("redis://127.0.0.1:1/0?password=s3cret", socket_timeout=2)
    assert "s3cret" not in str(info.value)


def test_redact_url():
    assert redact_url("redis://user:s3cret@cache:6379/0") == "redis://user:***@cache:6379/0"
    assert redact_url("rediss://:s3cret@cache/1") == "rediss://:***@cache/1"
    assert "s3cret" not in redact_url("redis://cache/0?password=s3cret&ssl_cert_reqs=none")
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"


def test_server_gone_mid_operation_acknowledges_only_whole_writes(make, url):
    proxy = TcpProxy("127.0.0.1", int(url.split(":")[2].split("/")[0]))
    try:
        tier = make(url=f"redis://127.0.0.1:{proxy.port}/0", socket_timeout=2)
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
        while len(acknowledged) < 20:
            time.sleep(0.005)
        proxy.stop()
        thread.join(timeout=30)
        assert not thread.is_alive()
    finally:
        proxy.stop()
    assert len(failures) == 1 and "unavailable" in str(failures[0])
    keys = set(direct.keys())
    for batch in range(acknowledged[-1] + 2):
        present = sum(f"b{batch}-{i}" in keys for i in range(20))
        assert present in (0, 20), f"batch {batch} is partly written"
        if batch in acknowledged:
            assert present == 20
    with pytest.raises(StorageError):
        tier.count()


# -- change feed, clients, arguments -----------------------------------------------------------------------------------


def test_change_feed_records_writes_deletes_and_evictions(make, clock):
    tier = make(capacity=2, clock=clock)
    tier.put(entry("before", 1, clock))
    assert tier.index_meta() is None and tier.changes(10) == []
    tier.set_index_meta("fake-model", 16)
    assert tier.index_meta() == ("fake-model", 16)
    tier.put_many([entry("a", 1, clock), entry("b", 2, clock)])  # evicts "before"
    tier.delete("a")
    changes = tier.changes(10)
    assert [k for _, k in changes] == ["b", "before", "a"]  # by latest change: "a" changed again
    tier.put(entry("b", 3, clock))  # b changes again before the ack: its newer change survives
    tier.ack_changes(changes)
    assert [k for _, k in tier.changes(10)] == ["b"]
    tier.clear()
    assert [k for _, k in tier.changes(10)] == ["b"]


def test_client_passed_in_is_used_and_not_closed(url, prefix):
    import redis

    client = redis.Redis.from_url(url)
    try:
        tier = RedisTier(client=client, prefix=prefix)
        tier.put(entry("k", 1))
        tier.close()
        assert client.ping()
        assert RedisTier(client=client, prefix=prefix).get("k").value == 1
        decoding = redis.Redis.from_url(url, decode_responses=True)
        with pytest.raises(InvalidArgumentError, match="decode_responses"):
            RedisTier(client=decoding, prefix=prefix)
        decoding.close()
    finally:
        client.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prefix": ""}, "prefix"),
        ({"prefix": "has space"}, "prefix"),
        ({"namespace": 3}, "namespace"),
        ({"capacity": 0}, "capacity"),
        ({"lock_timeout": 0}, "lock_timeout"),
        ({"compression_threshold": -1}, "compression_threshold"),
    ],
)
def test_bad_arguments_are_refused(url, kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        RedisTier(url, **kwargs)


def test_bad_url_is_refused_without_the_password():
    with pytest.raises(InvalidArgumentError) as info:
        RedisTier("http://user:s3cret@127.0.0.1:6379/0")
    assert "s3cret" not in str(info.value)


def test_missing_redis_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingDependencyError, match=r"agentmem-plugin\[redis\]"):
        RedisTier()


def test_an_unreachable_service_skips_or_fails_under_require_services(monkeypatch):
    from integration.backends import unavailable

    monkeypatch.delenv("AGENTMEM_REQUIRE_SERVICES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no server here"):
        unavailable("no server here")
    monkeypatch.setenv("AGENTMEM_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match=r"no server here.*AGENTMEM_REQUIRE_SERVICES=1"):
        unavailable("no server here")
