"""Behaviours of the core that a plausible one-line bug would break unnoticed (issue 21), each from the spec.

* The archive hands back only the key it was asked for: a blob that holds another key is refused.
* A read cache never serves a value that was overwritten (the manager's, and the archive's decoded blobs).
* Shared memory: an agent listed both read-write and read-only gets read-write.
"""

from __future__ import annotations

import pytest

from agentmem_plugin.adapters.shared import SharedMemory
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import AccessDeniedError, IntegrityError
from agentmem_plugin.manager import MemoryManager
from agentmem_plugin.tiers.archive import ArchiveTier


class DictStore:
    """A BlobStore in a dict, recording the names written in order (an S3 bucket stand-in, no stamps)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.written: list[str] = []

    def put(self, name: str, data: bytes) -> None:
        self.blobs[name] = data
        self.written.append(name)

    def get(self, name: str) -> bytes | None:
        return self.blobs.get(name)

    def delete(self, name: str) -> None:
        self.blobs.pop(name, None)

    def describe(self) -> str:
        return "dict://test"


def blob_name_of(store: DictStore, archive: ArchiveTier, key: str) -> str:
    """The name of the blob that archiving *key* wrote (the one new name, once the key index exists)."""
    if not archive.archived_keys():
        archive.put_many([MemoryEntry("first", 0)])  # writes the key index
    before = set(store.blobs)
    archive.put_many([MemoryEntry(key, f"value of {key}")])
    (name,) = set(store.blobs) - before
    return name


# -- the archive checks what a blob holds ---------------------------------------------------------------------


def test_archive_refuses_a_blob_that_holds_another_key() -> None:
    # Unencrypted: the checksum alone cannot tell a swapped blob (the payload is intact), only the key in it can.
    store = DictStore()
    archive = ArchiveTier(store=store, encrypt=False)
    name_a = blob_name_of(store, archive, "a")
    name_b = blob_name_of(store, archive, "b")
    store.blobs[name_b] = store.blobs[name_a]  # b's blob now holds a's entry, intact
    reader = ArchiveTier(store=store, encrypt=False)  # no decoded copies in memory
    with pytest.raises(IntegrityError, match="'b'"):
        reader.get_many(["b"])
    assert reader.get_many(["a"], touch=False)[0].value == "value of a"  # type: ignore[union-attr]


def test_encrypted_archive_refuses_a_blob_that_holds_another_key(tmp_path) -> None:
    store = DictStore()
    key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
    archive = ArchiveTier(store=store, key=key)
    name_a = blob_name_of(store, archive, "a")
    name_b = blob_name_of(store, archive, "b")
    store.blobs[name_b] = store.blobs[name_a]
    with pytest.raises(IntegrityError):
        ArchiveTier(store=store, key=key).get_many(["b"])


# -- read caches never serve an overwritten value -------------------------------------------------------------


def test_archive_read_after_overwrite_sees_the_new_value() -> None:
    # A store without file stamps: the archive's decoded copies must be dropped by its own writes.
    store = DictStore()
    archive = ArchiveTier(store=store, encrypt=False)
    archive.put_many([MemoryEntry("k", "old")])
    assert archive.get_many(["k"], touch=False)[0].value == "old"  # type: ignore[union-attr]
    assert archive.get_many(["k"])[0].value == "old"  # type: ignore[union-attr]
    archive.put_many([MemoryEntry("k", "new")])
    assert archive.get_many(["k"], touch=False)[0].value == "new"  # type: ignore[union-attr]
    assert [e.value for e in archive.scan()] == ["new"]
    archive.delete_many(["k"])
    assert archive.get_many(["k"]) == [None]


def test_archive_read_returns_a_copy_not_the_cached_entry() -> None:
    archive = ArchiveTier(store=DictStore(), encrypt=False)
    archive.put_many([MemoryEntry("k", {"n": 1})])
    first = archive.get_many(["k"], touch=False)[0]
    assert first is not None
    first.value["n"] = 99  # the caller's copy
    assert archive.get_many(["k"], touch=False)[0].value == {"n": 1}  # type: ignore[union-attr]


def test_manager_read_after_overwrite_sees_the_new_value() -> None:
    mm = MemoryManager(short_term_limit=10, embedder=None, cache_size=16)
    try:
        mm.store("k", "old")
        assert mm.retrieve("k") == "old"
        assert mm.retrieve("k") == "old"  # served from the read cache now
        mm.store("k", "new")
        assert mm.retrieve("k") == "new"
        mm.store_many([("k", "newer")])
        assert mm.retrieve("k") == "newer"
        mm.delete("k")
        assert mm.retrieve("k") is None
    finally:
        mm.close()


def test_manager_read_after_overwrite_of_a_long_term_key() -> None:
    # "a" overflows into long-term, is read (cached), then overwritten: the new write wins
    mm = MemoryManager(short_term_limit=2, embedder=None, cache_size=16)
    try:
        mm.store("a", 1)
        mm.store("b", 2)
        mm.store("c", 3)
        assert mm.retrieve("a") == 1
        mm.store("a", 10)
        assert mm.retrieve("a") == 10
        mm.consolidate()
        assert mm.retrieve("a") == 10
    finally:
        mm.close()


# -- shared memory: read-write wins for an agent listed twice ---------------------------------------------------


def test_agent_listed_read_write_and_read_only_can_write() -> None:
    shared = SharedMemory()
    shared.create_shared_memory("team", {}, ["both", "writer"], read_only_agents=["both", "reader"])
    assert shared.permissions("team") == {
        "both": "read_write",
        "reader": "read_only",
        "writer": "read_write",
    }
    handle = shared.access_memory("team", "both")
    assert handle is not None
    handle.store("k", "v")
    assert handle.retrieve("k") == "v"
    reader = shared.access_memory("team", "reader")
    assert reader is not None
    assert reader.retrieve("k") == "v"
    with pytest.raises(AccessDeniedError, match="read-only"):
        reader.store("k", "w")
    assert shared.access_memory("team", "stranger") is None


def test_a_later_grant_replaces_the_mode() -> None:
    shared = SharedMemory()
    shared.create_shared_memory("team", {}, ["a"])
    handle = shared.access_memory("team", "a")
    assert handle is not None
    shared.grant_access("team", "a", read_only=True)
    with pytest.raises(AccessDeniedError):
        handle.store("k", "v")
    assert handle.retrieve("k") is None  # reading is still allowed
    shared.grant_access("team", "a")
    handle.store("k", "v")
    shared.revoke_access("team", "a")
    with pytest.raises(AccessDeniedError, match="no access"):
        handle.retrieve("k")
    denied = [r for r in shared.audit_log() if not r.allowed]
    assert [r.action for r in denied] == ["store", "retrieve"]
