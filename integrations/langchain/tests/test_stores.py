"""AgentMemStore and AgentMemByteStore beyond the standard suites: namespaces, persistence, byte safety, errors."""

from __future__ import annotations

import pytest
from agentmem_plugin import MemoryManager
from agentmem_plugin.errors import (
    IntegrityError,
    InvalidArgumentError,
    InvalidKeyError,
    SerializationError,
)

from langchain_agentmem import AgentMemByteStore, AgentMemStore

ALL_BYTES = bytes(range(256))


@pytest.mark.parametrize(
    ("cls", "one", "two"), [(AgentMemStore, {"v": 1}, [2]), (AgentMemByteStore, b"\x01", b"\x02")]
)
def test_namespace_isolation(tmp_path, cls, one, two):
    with MemoryManager(storage_path=tmp_path / "kv") as mm:
        a = cls(manager=mm, namespace=("user", "a"))
        b = cls(manager=mm, namespace=("user", "b"))
        a.mset([("shared", one), ("only-a", one)])
        b.mset([("shared", two)])
        assert a.mget(["shared", "only-a"]) == [one, one]
        assert b.mget(["shared", "only-a"]) == [two, None]
        assert sorted(a.yield_keys()) == ["only-a", "shared"]
        assert list(b.yield_keys()) == ["shared"]
        b.mdelete(["shared", "only-a"])
        assert a.mget(["shared", "only-a"]) == [one, one]
        assert mm.keys() == []  # nothing leaked into the manager's own (root) namespace


def test_persistence_across_reopen(tmp_path):
    with AgentMemStore(storage_path=tmp_path / "kv", namespace="cfg") as store:
        store.mset([("theme", {"dark": True, "font": ["mono", 12]}), ("lang", "pt")])
    with AgentMemByteStore(storage_path=tmp_path / "kv", namespace="blobs") as blobs:
        blobs.mset([("all", ALL_BYTES)])
    with AgentMemStore(storage_path=tmp_path / "kv", namespace="cfg") as store:
        assert store.mget(["theme", "lang"]) == [{"dark": True, "font": ["mono", 12]}, "pt"]
        assert list(store.yield_keys()) == ["lang", "theme"]
    with AgentMemByteStore(storage_path=tmp_path / "kv", namespace="blobs") as blobs:
        assert blobs.mget(["all"]) == [ALL_BYTES]


def test_bytes_are_stored_as_base64_json_and_round_trip_exactly():
    with MemoryManager() as mm:
        store = AgentMemByteStore(manager=mm)
        store.mset(
            [
                ("all", ALL_BYTES),
                ("empty", b""),
                ("view", memoryview(b"mv")),
                ("ba", bytearray(b"ba")),
            ]
        )
        assert store.mget(["all", "empty", "view", "ba"]) == [ALL_BYTES, b"", b"mv", b"ba"]
        assert mm.retrieve("empty") == {"base64": ""}
        assert mm.retrieve("view") == {"base64": "bXY="}


def test_non_bytes_value_is_refused_and_nothing_of_the_batch_is_stored():
    with AgentMemByteStore() as store:
        with pytest.raises(SerializationError, match="the value of key 'b' is a str"):
            store.mset([("a", b"fine"), ("b", "text")])
        assert store.mget(["a", "b"]) == [None, None]


def test_non_json_value_is_refused_and_nothing_of_the_batch_is_stored():
    with AgentMemStore() as store:
        with pytest.raises(SerializationError, match="'b'"):
            store.mset([("a", 1), ("b", object())])
        assert store.mget(["a", "b"]) == [None, None]
        store.mset([("t", (1, 2))])
        assert store.mget(["t"]) == [[1, 2]]  # JSON has no tuples


def test_a_foreign_value_in_a_byte_store_namespace_is_reported():
    with MemoryManager() as mm:
        mm.store("plain", "not bytes", "long_term")
        mm.store("bad64", {"base64": "***"}, "long_term")
        store = AgentMemByteStore(manager=mm)
        with pytest.raises(
            IntegrityError, match="key 'plain' does not hold a value written by AgentMemByteStore"
        ):
            store.mget(["plain"])
        with pytest.raises(IntegrityError, match="key 'bad64' holds invalid base64"):
            store.mget(["bad64"])


def test_duplicate_keys_in_one_batch_last_wins():
    with AgentMemStore() as store:
        store.mset([("k", 1), ("k", 2)])
        assert store.mget(["k"]) == [2]


@pytest.mark.parametrize("memory_type", ["short_term", "long_term", "external"])
def test_every_tier_works_and_short_term_overflow_loses_nothing(tmp_path, memory_type):
    with MemoryManager(short_term_limit=2, storage_path=tmp_path / "t") as mm:
        store = AgentMemStore(manager=mm, memory_type=memory_type)
        store.mset([(f"k{i}", i) for i in range(5)])
        assert store.mget([f"k{i}" for i in range(5)]) == [0, 1, 2, 3, 4]
        assert sorted(store.yield_keys(prefix="k")) == [f"k{i}" for i in range(5)]


async def test_async_yield_keys_with_prefix():
    with AgentMemStore(namespace="a") as store:
        await store.amset([("doc:1", 1), ("doc:2", 2), ("img:1", 3)])
        assert [k async for k in store.ayield_keys(prefix="doc:")] == ["doc:1", "doc:2"]
        await store.amdelete(["doc:1"])
        assert await store.amget(["doc:1", "doc:2"]) == [None, 2]


@pytest.mark.parametrize("cls", [AgentMemStore, AgentMemByteStore])
def test_bad_keys_and_arguments(tmp_path, cls):
    with cls() as store:
        with pytest.raises(InvalidKeyError, match="got ''"):
            store.mget([""])
        with pytest.raises(InvalidKeyError, match="got int"):
            store.mdelete([3])
        with pytest.raises(InvalidArgumentError, match="keys must be a sequence of str, got 'abc'"):
            store.mget("abc")
    with pytest.raises(InvalidArgumentError, match=r"memory_type must be one of .* got 'disk'"):
        cls(memory_type="disk")
    with pytest.raises(InvalidArgumentError, match=r"got \('a', ''\)"):
        cls(namespace=("a", ""))
    with MemoryManager() as mm, pytest.raises(InvalidArgumentError, match="not both"):
        cls(manager=mm, storage_path=tmp_path / "x")
    with pytest.raises(InvalidArgumentError, match="needs a MemoryManager as manager=, got dict"):
        cls(manager={})
    assert not (tmp_path / "x").exists()


def test_a_user_view_plus_a_namespace_stays_inside_that_user() -> None:
    """Regression: namespace= below a view was taken from the root, so two users' "notes" were one namespace."""
    from langchain_agentmem import AgentMemChatMessageHistory, AgentMemRetriever

    with MemoryManager() as mm:
        alice, bob = mm.with_namespace(("user", "alice")), mm.with_namespace(("user", "bob"))
        AgentMemStore(manager=alice, namespace="notes").mset([("pin", "4321")])
        bob_store = AgentMemStore(manager=bob, namespace="notes")
        assert bob_store.mget(["pin"]) == [None]
        assert list(bob_store.yield_keys()) == []
        assert AgentMemRetriever(memory=bob, namespace="notes").invoke("pin 4321") == []
        AgentMemChatMessageHistory("s1", manager=alice, namespace="chat").add_user_message(
            "private"
        )
        assert AgentMemChatMessageHistory("s1", manager=bob, namespace="chat").messages == []
        assert AgentMemStore(manager=alice, namespace="notes").mget(["pin"]) == ["4321"]
