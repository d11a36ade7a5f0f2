"""SharedMemory: grants, revokes enforced on live handles, read-only grants, the audit log, races, sync."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from agentmem_plugin.adapters.shared import SharedMemory, SharedMemoryHandle
from agentmem_plugin.errors import AccessDeniedError, InvalidArgumentError, KeyNotFoundError
from agentmem_plugin.memory import Memory

READS: dict[str, Callable[[SharedMemoryHandle], Any]] = {
    "retrieve": lambda h: h.retrieve("k"),
    "retrieve_many": lambda h: h.retrieve_many(["k"]),
    "get_entry": lambda h: h.get_entry("k"),
    "exists": lambda h: h.exists("k"),
    "keys": lambda h: h.keys(),
    "search": lambda h: h.search("value"),
    "get_stats": lambda h: h.get_stats(),
    "len": lambda h: len(h),
    "contains": lambda h: "k" in h,
}
WRITES: dict[str, Callable[[SharedMemoryHandle], Any]] = {
    "store": lambda h: h.store("k2", "value two"),
    "store_many": lambda h: h.store_many({"k3": 3}),
    "update": lambda h: h.update("n", lambda n: n + 1, default=0),
    "delete": lambda h: h.delete("k"),
    "cleanup": lambda h: h.cleanup(),
    "clear": lambda h: h.clear(),
}
ALL_OPS = {**READS, **WRITES}


@pytest.fixture
def shared() -> SharedMemory:
    s = SharedMemory()
    team = s.create_shared_memory("team", {"capacity": 100}, allowed_agents=["a1", "a2"])
    team.store("k", "some value")
    return s


def test_allowed_agents_get_a_working_handle_and_others_get_none(shared: SharedMemory) -> None:
    h1 = shared.access_memory("team", "a1")
    h2 = shared.access_memory("team", "a2")
    assert h1 is not None and h2 is not None
    h1.store("insight", "parallel processing")
    assert h2.retrieve("insight") == "parallel processing"
    assert shared.access_memory("team", "a3") is None
    assert shared.permissions("team") == {"a1": "read_write", "a2": "read_write"}


def test_handle_is_truthy_even_over_an_empty_memory() -> None:
    s = SharedMemory()
    s.create_shared_memory("empty", {}, ["a"])
    handle = s.access_memory("empty", "a")
    assert handle is not None and len(handle) == 0
    assert bool(handle) is True


def test_grant_gives_access_to_a_new_agent(shared: SharedMemory) -> None:
    assert shared.access_memory("team", "a3") is None
    shared.grant_access("team", "a3")
    handle = shared.access_memory("team", "a3")
    assert handle is not None
    assert handle.retrieve("k") == "some value"


@pytest.mark.parametrize("op", sorted(ALL_OPS))
def test_existing_handle_is_refused_every_operation_after_revoke(
    shared: SharedMemory, op: str
) -> None:
    handle = shared.access_memory("team", "a1")
    assert handle is not None
    ALL_OPS[op](handle)  # works while granted
    shared.revoke_access("team", "a1")
    with pytest.raises(AccessDeniedError, match=r"'a1'.*'team'") as info:
        ALL_OPS[op](handle)
    assert isinstance(info.value, PermissionError)
    assert shared.access_memory("team", "a1") is None


@pytest.mark.parametrize("op", sorted(WRITES))
def test_read_only_grant_refuses_writes_and_changes_nothing(shared: SharedMemory, op: str) -> None:
    shared.grant_access("team", "reader", read_only=True)
    handle = shared.access_memory("team", "reader")
    assert handle is not None
    with pytest.raises(AccessDeniedError, match=r"'reader'.*read-only.*'team'"):
        WRITES[op](handle)
    writer = shared.access_memory("team", "a1")
    assert writer is not None
    assert writer.keys() == ["k"]
    assert writer.retrieve("k") == "some value"


@pytest.mark.parametrize("op", sorted(READS))
def test_read_only_grant_allows_reads(shared: SharedMemory, op: str) -> None:
    shared.grant_access("team", "reader", read_only=True)
    handle = shared.access_memory("team", "reader")
    assert handle is not None
    READS[op](handle)
    assert handle.retrieve("k") == "some value"


def test_downgrade_and_upgrade_apply_to_an_existing_handle(shared: SharedMemory) -> None:
    handle = shared.access_memory("team", "a1")
    assert handle is not None
    shared.grant_access("team", "a1", read_only=True)
    with pytest.raises(AccessDeniedError):
        handle.store("x", 1)
    assert handle.retrieve("k") == "some value"
    shared.grant_access("team", "a1")
    handle.store("x", 1)
    assert handle.retrieve("x") == 1


def test_audit_log_records_operations_admin_and_denials(shared: SharedMemory) -> None:
    shared.grant_access("team", "reader", read_only=True)
    writer = shared.access_memory("team", "a1")
    reader = shared.access_memory("team", "reader")
    assert writer is not None and reader is not None
    writer.store("x", 1)
    reader.retrieve("x")
    with pytest.raises(AccessDeniedError):
        reader.delete("x")
    shared.revoke_access("team", "a1")
    with pytest.raises(AccessDeniedError):
        writer.retrieve("x")
    assert shared.access_memory("team", "a1") is None

    a1 = [(r.action, r.key, r.allowed) for r in shared.audit_log("team", agent="a1")]
    assert a1 == [
        ("access", None, True),
        ("store", "x", True),
        ("revoke", None, True),
        ("retrieve", "x", False),
        ("access", None, False),
    ]
    reader_log = [(r.action, r.key, r.allowed) for r in shared.audit_log(agent="reader")]
    assert reader_log == [
        ("grant", None, True),
        ("access", None, True),
        ("retrieve", "x", True),
        ("delete", "x", False),
    ]
    denied = [r for r in shared.audit_log() if not r.allowed]
    assert {(r.agent, r.action) for r in denied} == {
        ("reader", "delete"),
        ("a1", "retrieve"),
        ("a1", "access"),
    }
    assert shared.audit_log("team")[0].action == "create"
    assert shared.audit_log("other") == []


def test_audit_log_is_bounded_and_timestamped(clock: Any) -> None:
    s = SharedMemory(audit_size=5, clock=clock)
    s.create_shared_memory("m", {}, ["a"])
    handle = s.access_memory("m", "a")
    assert handle is not None
    for i in range(10):
        clock.advance(1)
        handle.store(f"k{i}", i)
    log = s.audit_log()
    assert len(log) == 5
    assert [r.key for r in log] == [f"k{i}" for i in range(5, 10)]
    assert [r.timestamp for r in log] == [clock.now - 4 + i for i in range(5)]


def test_unknown_names_raise_clear_errors(shared: SharedMemory) -> None:
    with pytest.raises(KeyNotFoundError, match="'nope'"):
        shared.grant_access("nope", "a1")
    with pytest.raises(KeyNotFoundError, match="'nope'"):
        shared.revoke_access("nope", "a1")
    with pytest.raises(KeyNotFoundError, match="'nope'"):
        shared.access_memory("nope", "a1")
    with pytest.raises(KeyNotFoundError, match=r"'ghost'.*'team'"):
        shared.revoke_access("team", "ghost")
    with pytest.raises(KeyNotFoundError, match="'nope'"):
        shared.synchronize_memories("team", "nope")
    with pytest.raises(InvalidArgumentError, match="already exists"):
        shared.create_shared_memory("team", {})
    with pytest.raises(InvalidArgumentError, match="agent name"):
        shared.grant_access("team", "")
    with pytest.raises(InvalidArgumentError):
        shared.create_shared_memory("bad", {"capacity": 0})
    assert "bad" not in shared.memory_names


def test_synchronize_memories_copies_entries_with_their_metadata() -> None:
    s = SharedMemory()
    src = s.create_shared_memory("src", {})
    dst = s.create_shared_memory("dst", {})
    src.store("a", 1, tags=["x"], metadata={"importance": 0.9})
    src.store("b", 2)
    dst.store("b", "old")
    assert s.synchronize_memories("src", "dst", keys=["a", "missing"]) == 1
    assert sorted(dst.keys()) == ["a", "b"]
    entry = dst.get_entry("a")
    assert entry.value == 1 and entry.tags == ("x",) and entry.metadata == {"importance": 0.9}
    assert dst.retrieve("b") == "old"
    assert s.synchronize_memories("src", "dst") == 2
    assert dst.retrieve("b") == 2
    assert src.get_entry("a").access_count == 1  # the sync itself did not count as reads
    with pytest.raises(InvalidArgumentError):
        s.synchronize_memories("src", "src")
    assert any(r.action == "synchronize" for r in s.audit_log("src"))


def test_persistent_shared_memory(tmp_path: Any) -> None:
    s = SharedMemory()
    memory = s.create_shared_memory(
        "p", {"persistence": True, "storage_path": tmp_path / "p"}, ["a"], read_only_agents=["r"]
    )
    handle = s.access_memory("p", "a")
    assert handle is not None
    handle.store("k", {"v": 1})
    memory.close()
    with Memory(persistence=True, storage_path=tmp_path / "p") as reopened:
        assert reopened.retrieve("k") == {"v": 1}
    assert s.permissions("p") == {"a": "read_write", "r": "read_only"}


async def test_async_twins_are_checked_too(shared: SharedMemory) -> None:
    handle = shared.access_memory("team", "a1")
    assert handle is not None
    await handle.astore("ak", "async value")
    assert await handle.aretrieve("ak") == "async value"
    assert [hit["key"] for hit in await handle.asearch("async")] == ["ak"]
    shared.revoke_access("team", "a1")
    with pytest.raises(AccessDeniedError):
        await handle.akeys()


def test_grants_and_revokes_racing_operations() -> None:
    s = SharedMemory(audit_size=1000)
    s.create_shared_memory("race", {"capacity": 500}, ["worker", "steady"])
    handles = [s.access_memory("race", "worker") for _ in range(4)]
    assert all(h is not None for h in handles)
    steady = s.access_memory("race", "steady")
    assert steady is not None
    stop = threading.Event()
    unexpected: list[BaseException] = []
    outcomes = {"ok": 0, "denied": 0}
    count_lock = threading.Lock()

    def work(handle: SharedMemoryHandle, n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                handle.store(f"w{n}-{i % 20}", i)
                handle.retrieve(f"w{n}-{i % 20}")
                handle.update("counter", lambda c: c + 1, default=0)
                handle.search("w")
                handle.keys()
                with count_lock:
                    outcomes["ok"] += 1
            except AccessDeniedError:
                with count_lock:
                    outcomes["denied"] += 1
            except BaseException as exc:
                unexpected.append(exc)
                return

    def admin() -> None:
        try:
            for _ in range(300):
                s.revoke_access("race", "worker")
                s.grant_access("race", "worker", read_only=False)
                s.grant_access("race", "worker", read_only=True)
                s.grant_access("race", "worker")
            s.revoke_access("race", "worker")
        except BaseException as exc:
            unexpected.append(exc)

    workers = [threading.Thread(target=work, args=(h, n)) for n, h in enumerate(handles)]
    for t in workers:
        t.start()
    admin_thread = threading.Thread(target=admin)
    admin_thread.start()
    admin_thread.join(timeout=60)
    # Let the workers run a little after the final revoke: everything they do now must be refused.
    with count_lock:
        denied_at_revoke, ok_at_revoke = outcomes["denied"], outcomes["ok"]
    threading.Event().wait(0.2)
    stop.set()
    for t in workers:
        t.join(timeout=30)
    assert not admin_thread.is_alive() and not any(t.is_alive() for t in workers)
    assert unexpected == []
    assert outcomes["ok"] > 0 and outcomes["denied"] > denied_at_revoke
    # At most the one iteration each worker had in flight when the final revoke returned can still succeed.
    assert outcomes["ok"] <= ok_at_revoke + len(handles)
    for h in handles:
        assert h is not None
        for op in ALL_OPS.values():
            with pytest.raises(AccessDeniedError):
                op(h)
    assert steady.retrieve("counter") >= 1  # the other agent was never affected
    assert s.permissions("race") == {"steady": "read_write"}
