from __future__ import annotations

import itertools
import math

import orjson
import pytest

from agentmem_plugin.entry import (
    MAX_KEY_LENGTH,
    MemoryEntry,
    validate_capacity,
    validate_key,
    validate_metadata,
    validate_priority,
    validate_tags,
    validate_ttl,
)
from agentmem_plugin.errors import InvalidArgumentError, InvalidKeyError


def test_construction_defaults(clock) -> None:
    e = MemoryEntry("k", {"a": 1}, clock=clock)
    assert e.key == "k"
    assert e.value == {"a": 1}
    assert e.ttl is None
    assert e.priority == 0
    assert e.metadata == {}
    assert e.tags == ()
    assert e.created_at == clock()
    assert e.expires_at is None
    assert e.access_count == 0
    assert e.last_accessed is None


def test_construction_with_fields(clock) -> None:
    e = MemoryEntry(
        "k", "v", ttl=30, priority=3, metadata={"m": 1}, tags=["x", "y", "x"], clock=clock
    )
    assert e.ttl == 30.0
    assert isinstance(e.ttl, float)
    assert e.priority == 3
    assert e.metadata == {"m": 1}
    assert e.tags == ("x", "y")
    assert e.expires_at == clock() + 30


def test_explicit_created_and_expires_at() -> None:
    e = MemoryEntry("k", 1, ttl=10, created_at=100.0)
    assert e.expires_at == 110.0
    e2 = MemoryEntry("k", 1, ttl=10, created_at=100.0, expires_at=500.0)
    assert e2.expires_at == 500.0


def test_metadata_is_copied_at_construction() -> None:
    meta = {"a": 1}
    e = MemoryEntry("k", 1, metadata=meta)
    meta["a"] = 2
    assert e.metadata == {"a": 1}


def test_never_expires_without_ttl(clock) -> None:
    e = MemoryEntry("k", 1, clock=clock)
    assert not e.is_expired(now=clock() + 1e12)


def test_expires_exactly_at_created_plus_ttl(clock) -> None:
    e = MemoryEntry("k", 1, ttl=60, clock=clock)
    assert not e.is_expired(now=clock())
    clock.advance(59.999)
    assert not e.is_expired(now=clock())
    clock.advance(0.001)
    assert clock() == e.created_at + 60
    assert e.is_expired(now=clock())
    clock.advance(1)
    assert e.is_expired(now=clock())


def test_update_access(clock) -> None:
    e = MemoryEntry("k", 1, clock=clock)
    clock.advance(5)
    e.update_access(now=clock())
    assert e.access_count == 1
    assert e.last_accessed == clock()
    clock.advance(5)
    e.update_access(now=clock())
    assert e.access_count == 2
    assert e.last_accessed == clock()


def test_bad_access_count() -> None:
    with pytest.raises(InvalidArgumentError):
        MemoryEntry("k", 1, access_count=-1)
    with pytest.raises(InvalidArgumentError):
        MemoryEntry("k", 1, access_count=True)


def _full_entry(clock) -> MemoryEntry:
    e = MemoryEntry(
        "user:1",
        {"name": "ada", "langs": ["en", "fr"], "n": 3, "x": 1.5, "ok": True, "none": None},
        ttl=120,
        priority=2,
        metadata={"importance": 0.9, "source": "chat"},
        tags=["user", "profile"],
        clock=clock,
    )
    e.update_access(now=clock() + 1)
    return e


def test_to_dict_from_dict_round_trip(clock) -> None:
    e = _full_entry(clock)
    d = e.to_dict()
    assert set(d) == {
        "key",
        "value",
        "ttl",
        "priority",
        "metadata",
        "tags",
        "created_at",
        "expires_at",
        "access_count",
        "last_accessed",
        "version",
    }
    assert d["tags"] == ["user", "profile"]
    back = MemoryEntry.from_dict(d)
    assert back == e
    assert back is not e
    assert back.version == e.version  # a round trip is the same write of the key


def test_each_write_gets_a_new_larger_version_and_copies_keep_it(clock) -> None:
    first, second = MemoryEntry("k", 1, clock=clock), MemoryEntry("k", 1, clock=clock)
    assert second.version > first.version
    assert first.copy().version == first.version
    assert first == second  # same fields: versions say which write, not what was written
    bumped = first.copy().new_version()
    assert bumped.version > second.version
    legacy = dict(first.to_dict())
    del legacy["version"]
    assert MemoryEntry.from_dict(legacy).version == 0  # written before versions: older than any write


def test_versions_differ_between_processes() -> None:
    import multiprocessing

    from agentmem_plugin.entry import next_version

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        theirs = pool.starmap(_versions, [(500,), (500,)])
    ours = _versions(500)
    everything = theirs[0] + theirs[1] + ours
    assert len(set(everything)) == len(everything)
    assert all(a < b for a, b in itertools.pairwise(ours))
    assert next_version() > ours[-1]


def test_a_forked_child_draws_its_own_process_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import secrets

    from agentmem_plugin.entry import next_version

    ours = next_version() & 1023  # the low 10 bits name the process
    drawn = ours ^ 1  # what the child will draw: anything but ours
    monkeypatch.setattr(secrets, "randbits", lambda bits: drawn)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no test machinery, just its next version, then out
        os.write(write, str(next_version()).encode())
        os._exit(0)
    os.close(write)
    child = int(os.read(read, 64))
    os.close(read)
    os.waitpid(pid, 0)
    assert child & 1023 == drawn  # redrawn at fork: a child never repeats its parent's versions
    assert next_version() & 1023 == ours  # the parent keeps its own


def _versions(n: int) -> list[int]:
    from agentmem_plugin.entry import next_version

    return [next_version() for _ in range(n)]


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("created_at", "yesterday"),
        ("last_accessed", "yesterday"),
        ("expires_at", float("nan")),
        ("version", -1),
        ("version", "3"),
    ],
)
def test_bad_times_and_versions_are_refused(field: str, bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match=field):
        MemoryEntry("k", 1, **{field: bad})


def test_round_trip_through_orjson(clock) -> None:
    e = _full_entry(clock)
    back = MemoryEntry.from_dict(orjson.loads(orjson.dumps(e.to_dict())))
    assert back == e


def test_to_dict_metadata_is_a_copy(clock) -> None:
    e = _full_entry(clock)
    d = e.to_dict()
    d["metadata"]["source"] = "changed"
    assert e.metadata["source"] == "chat"


def test_from_dict_refuses_unknown_fields() -> None:
    with pytest.raises(InvalidArgumentError, match="bogus"):
        MemoryEntry.from_dict({"key": "k", "value": 1, "bogus": 2})


def test_from_dict_needs_key_and_value() -> None:
    with pytest.raises(InvalidArgumentError):
        MemoryEntry.from_dict({"key": "k"})
    with pytest.raises(InvalidArgumentError):
        MemoryEntry.from_dict({"value": 1})


def test_from_dict_minimal() -> None:
    e = MemoryEntry.from_dict({"key": "k", "value": [1]})
    assert e.key == "k"
    assert e.value == [1]
    assert e.priority == 0


def test_copy_is_independent_in_metadata(clock) -> None:
    e = _full_entry(clock)
    c = e.copy()
    assert c == e
    assert c is not e
    c.metadata["importance"] = 0.1
    c.metadata["new"] = 1
    assert e.metadata == {"importance": 0.9, "source": "chat"}
    c.priority = 99
    c.access_count = 50
    assert e.priority == 2
    assert e.access_count == 1


def test_equality_and_unhashable() -> None:
    a = MemoryEntry("k", 1, created_at=1.0)
    b = MemoryEntry("k", 1, created_at=1.0)
    c = MemoryEntry("k", 2, created_at=1.0)
    assert a == b
    assert a != c
    assert a != "k"
    with pytest.raises(TypeError):
        hash(a)


# -- validators ------------------------------------------------------------------------------------


def test_validate_key_ok() -> None:
    assert validate_key("user:42") == "user:42"
    assert validate_key("a" * MAX_KEY_LENGTH) == "a" * MAX_KEY_LENGTH


def test_validate_key_str_subclass_becomes_plain_str() -> None:
    class S(str):
        pass

    out = validate_key(S("abc"))
    assert out == "abc"
    assert type(out) is str


@pytest.mark.parametrize(
    "bad",
    ["", None, 5, b"x", ["k"], "a" * (MAX_KEY_LENGTH + 1), "a\x00b"],
    ids=["empty", "none", "int", "bytes", "list", "too-long", "nul"],
)
def test_validate_key_rejects(bad: object) -> None:
    with pytest.raises(InvalidKeyError):
        validate_key(bad)
    with pytest.raises(InvalidKeyError):
        MemoryEntry(bad, 1)  # type: ignore[arg-type]


def test_validate_key_too_long_message_names_limit() -> None:
    with pytest.raises(InvalidKeyError, match=str(MAX_KEY_LENGTH)):
        validate_key("a" * (MAX_KEY_LENGTH + 1))


@pytest.mark.parametrize("good", [None, 1, 0.5, 1e9])
def test_validate_ttl_ok(good: object) -> None:
    out = validate_ttl(good)
    assert out == good
    if good is not None:
        assert isinstance(out, float)


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, -math.inf, True, "5"], ids=repr)
def test_validate_ttl_rejects(bad: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        validate_ttl(bad)
    assert repr(bad) in str(info.value)
    with pytest.raises(InvalidArgumentError):
        MemoryEntry("k", 1, ttl=bad)  # type: ignore[arg-type]


def test_validate_priority() -> None:
    assert validate_priority(0) == 0
    assert validate_priority(-3) == -3
    assert validate_priority(10) == 10
    for bad in (1.5, True, "1", None):
        with pytest.raises(InvalidArgumentError):
            validate_priority(bad)
        with pytest.raises(InvalidArgumentError):
            MemoryEntry("k", 1, priority=bad)  # type: ignore[arg-type]


def test_validate_tags_ok_and_dedupe() -> None:
    assert validate_tags(None) == ()
    assert validate_tags([]) == ()
    assert validate_tags(["b", "a", "b", "c", "a"]) == ("b", "a", "c")
    assert validate_tags(("x",)) == ("x",)
    assert validate_tags(iter(["x", "y"])) == ("x", "y")


@pytest.mark.parametrize("bad", ["abc", b"abc", [""], [1], ["ok", None], 5], ids=repr)
def test_validate_tags_rejects(bad: object) -> None:
    with pytest.raises(InvalidArgumentError):
        validate_tags(bad)


def test_validate_metadata() -> None:
    assert validate_metadata(None) == {}
    src = {"a": 1}
    out = validate_metadata(src)
    assert out == src
    assert out is not src
    with pytest.raises(InvalidArgumentError):
        validate_metadata({1: "x"})
    with pytest.raises(InvalidArgumentError):
        validate_metadata([("a", 1)])


def test_validate_capacity() -> None:
    assert validate_capacity(None) is None
    assert validate_capacity(1) == 1
    assert validate_capacity(1000) == 1000
    for bad in (0, -1, True, 1.5, "10"):
        with pytest.raises(InvalidArgumentError) as info:
            validate_capacity(bad)
        assert repr(bad) in str(info.value)
