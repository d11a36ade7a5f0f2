"""Every bad input raises a typed error that names the bad value, and changes nothing."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentmem_plugin import (
    MAX_KEY_LENGTH,
    AgentMemError,
    InvalidArgumentError,
    InvalidKeyError,
    Memory,
    MemoryEntry,
    SerializationError,
)

BAD_KEYS = ["", None, 5, b"x", "a" * (MAX_KEY_LENGTH + 1), "a\x00b"]
BAD_KEY_IDS = ["empty", "none", "int", "bytes", "too-long", "nul"]
BAD_TTLS = [0, -1, math.nan, "5", True]


@pytest.fixture
def mem(clock) -> Memory:
    m = Memory(capacity=10, clock=clock)
    m.store("a", {"v": 1}, ttl=100, tags=["t"])
    m.store("b", [1, 2])
    return m


def state(mem: Memory) -> tuple[list[str], dict[str, Any], int]:
    keys = sorted(mem.keys())
    values = {k: mem.tier.get(k, touch=False).value for k in keys}  # type: ignore[union-attr]
    return keys, values, mem.get_stats()["size"]


@pytest.fixture
def unchanged(mem: Memory) -> Iterator[None]:
    before = state(mem)
    yield
    assert state(mem) == before


def _names(exc: BaseException, bad: object) -> bool:
    """True when the error message names the bad value."""
    msg = str(exc)
    if isinstance(bad, str) and len(bad) > MAX_KEY_LENGTH:
        return str(len(bad)) in msg and str(MAX_KEY_LENGTH) in msg
    return repr(bad) in msg


KEY_OPS: dict[str, Callable[[Memory, Any], object]] = {
    "store": lambda m, k: m.store(k, 1),
    "retrieve": lambda m, k: m.retrieve(k),
    "get_entry": lambda m, k: m.get_entry(k),
    "delete": lambda m, k: m.delete(k),
    "exists": lambda m, k: m.exists(k),
    "update": lambda m, k: m.update(k, lambda v: 1, default=0),
    "retrieve_many": lambda m, k: m.retrieve_many(["a", k]),
    "store_many": lambda m, k: m.store_many([("c", 1), (k, 2)]),
}


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("op", list(KEY_OPS))
@pytest.mark.parametrize("bad", BAD_KEYS, ids=BAD_KEY_IDS)
def test_bad_key(mem: Memory, op: str, bad: object) -> None:
    with pytest.raises(InvalidKeyError) as info:
        KEY_OPS[op](mem, bad)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, AgentMemError)
    assert _names(info.value, bad), str(info.value)


def test_contains_with_bad_key_is_false(mem: Memory) -> None:
    assert 5 not in mem
    assert None not in mem


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("bad", BAD_TTLS, ids=repr)
def test_bad_ttl(mem: Memory, bad: object) -> None:
    for call in (
        lambda: mem.store("a", "new", ttl=bad),
        lambda: mem.store("new", 1, ttl=bad),
        lambda: mem.store_many({"new": 1}, ttl=bad),
    ):
        with pytest.raises(InvalidArgumentError) as info:
            call()
        assert isinstance(info.value, ValueError)
        assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", BAD_TTLS, ids=repr)
def test_bad_default_ttl(bad: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        Memory(default_ttl=bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "10"], ids=repr)
def test_bad_capacity(bad: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        Memory(capacity=bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)


def test_bad_memory_type() -> None:
    with pytest.raises(InvalidArgumentError, match="banana"):
        Memory(memory_type="banana")


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize(
    "bad", [object(), {1, 2}, {"nested": {3}}, b"raw"], ids=["object", "set", "nested", "bytes"]
)
def test_unserializable_value_names_key_and_keeps_previous(mem: Memory, bad: object) -> None:
    with pytest.raises(SerializationError) as info:
        mem.store("a", bad)
    assert "'a'" in str(info.value)
    assert isinstance(info.value, TypeError)
    with pytest.raises(SerializationError, match="'brand_new'"):
        mem.store("brand_new", bad)
    with pytest.raises(SerializationError, match="'a'"):
        mem.update("a", lambda v: bad)
    assert mem.retrieve("a") == {"v": 1}


@pytest.mark.usefixtures("unchanged")
def test_unserializable_metadata(mem: Memory) -> None:
    with pytest.raises(SerializationError, match="'a'"):
        mem.store("a", "new", metadata={"x": object()})
    with pytest.raises(SerializationError):
        mem.store("new", 1, metadata={"x": {1, 2}})


@pytest.mark.usefixtures("unchanged")
def test_metadata_with_non_str_key(mem: Memory) -> None:
    with pytest.raises(InvalidArgumentError, match="1"):
        mem.store("a", "new", metadata={1: "x"})
    with pytest.raises(InvalidArgumentError):
        mem.store("a", "new", metadata=["not", "a", "mapping"])


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("bad", ["abc", [""], [1], 5], ids=repr)
def test_bad_tags(mem: Memory, bad: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        mem.store("a", "new", tags=bad)
    assert repr(bad if not isinstance(bad, list) else bad[0]) in str(info.value)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("bad", ["abc", [""], [1], 5], ids=repr)
def test_store_many_bad_tags(mem: Memory, bad: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        mem.store_many({"new": 1, "a": "changed"}, tags=bad)
    assert repr(bad if not isinstance(bad, list) else bad[0]) in str(info.value)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("bad", [1.5, True, "high", None], ids=repr)
def test_bad_priority(mem: Memory, bad: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        mem.store("a", "new", priority=bad)
    assert repr(bad) in str(info.value)


BAD_THIRD = {
    "bad-key": ("", 3),
    "unserializable": ("c", object()),
    "not-a-pair": "just-a-string",
    "triple": ("c", 1, 2),
    "bad-entry-value": MemoryEntry("c", {1, 2}),
}


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("case", list(BAD_THIRD))
def test_store_many_bad_third_item_stores_nothing(mem: Memory, case: str) -> None:
    items = [("a", "changed"), ("x", 1), BAD_THIRD[case], ("y", 2)]
    with pytest.raises(AgentMemError) as info:
        mem.store_many(items)
    expected = {
        "bad-key": InvalidKeyError,
        "unserializable": SerializationError,
        "not-a-pair": InvalidArgumentError,
        "triple": InvalidArgumentError,
        "bad-entry-value": SerializationError,
    }[case]
    assert isinstance(info.value, expected)
    if case == "not-a-pair":
        assert "just-a-string" in str(info.value)
    if case in ("unserializable", "bad-entry-value"):
        assert "'c'" in str(info.value)
    assert mem.retrieve("a") == {"v": 1}
    assert not mem.exists("x")
    assert not mem.exists("y")


@pytest.mark.usefixtures("unchanged")
def test_store_many_with_a_string(mem: Memory) -> None:
    with pytest.raises(InvalidArgumentError):
        mem.store_many("ab")  # type: ignore[arg-type]


@pytest.mark.usefixtures("unchanged")
def test_store_many_bad_dict_value(mem: Memory) -> None:
    with pytest.raises(SerializationError, match="'c'"):
        mem.store_many({"x": 1, "y": 2, "c": object()})


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("bad", [0, -1, "x", 1.5, True, None], ids=repr)
def test_bad_search_limit(mem: Memory, bad: object) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        mem.search("v", limit=bad)  # type: ignore[arg-type]
    assert repr(bad) in str(info.value)


@pytest.mark.usefixtures("unchanged")
@pytest.mark.parametrize("bad", [None, 5, b"query", ["q"]], ids=repr)
def test_non_str_query(mem: Memory, bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match=type(bad).__name__):
        mem.search(bad)  # type: ignore[arg-type]


@pytest.mark.usefixtures("unchanged")
def test_retrieve_many_with_a_string(mem: Memory) -> None:
    with pytest.raises(InvalidArgumentError):
        mem.retrieve_many("ab")


def test_bad_input_never_prints(mem: Memory, capsys: pytest.CaptureFixture[str], caplog) -> None:
    calls: list[Callable[[], object]] = [
        lambda: mem.store("", 1),
        lambda: mem.store("k", object()),
        lambda: mem.store("k", 1, ttl=-1),
        lambda: mem.store("k", 1, tags="abc"),
        lambda: mem.store_many([("x", 1), ("y", 2), ("", 3)]),
        lambda: mem.search("q", limit=0),
        lambda: mem.retrieve(None),
        lambda: Memory(capacity=0),
    ]
    for call in calls:
        with pytest.raises(AgentMemError):
            call()
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == ""


def test_eviction_callback_failure_is_logged_not_printed(
    clock, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(entries: list[MemoryEntry]) -> None:
        raise RuntimeError("sink down")

    mem = Memory(capacity=1, clock=clock, on_evict=refuse)
    mem.store("a", 1)
    with caplog.at_level(logging.DEBUG, logger="agentmem_plugin"), pytest.raises(RuntimeError):
        mem.store("b", 2)
    assert any(
        r.levelno >= logging.WARNING and r.name.startswith("agentmem_plugin")
        for r in caplog.records
    )
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == ""
    assert mem.keys() == ["a"]
