"""MemoryManager: tiers, moves, read-through, overflow, archiving, consolidation, search, persistence."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from agentmem_plugin import (
    InvalidArgumentError,
    KeyNotFoundError,
    MemoryEntry,
    MemoryManager,
    SerializationError,
    StorageError,
    StoreCorruptError,
)
from agentmem_plugin.policies import ImportanceConsolidationPolicy
from agentmem_plugin.tiers.archive import generate_key


@pytest.fixture(params=["memory", "disk"])
def make(request, tmp_path, clock):
    made: list[MemoryManager] = []

    def factory(**kw) -> MemoryManager:
        kw.setdefault("clock", clock)
        if request.param == "disk":
            kw.setdefault("storage_path", tmp_path / "mm")
        mm = MemoryManager(**kw)
        made.append(mm)
        return mm

    yield factory
    for mm in made:
        mm.close()


def test_short_term_overflow_is_consolidated_not_lost(make):
    mm = make(short_term_limit=5, long_term_limit=1000)
    mm.store_many({f"k{i}": i for i in range(20)})
    assert len(mm.keys("short_term")) == 5
    assert len(mm.keys("long_term")) == 15
    assert [mm.retrieve(f"k{i}") for i in range(20)] == list(range(20))
    assert mm.get_stats()["overflowed"] >= 15


def test_a_key_lives_in_exactly_one_tier(make):
    mm = make()
    mm.store("k", "v1")
    assert mm.tier_of("k") == "short_term"
    mm.store("k", "v2", memory_type="long_term")
    assert mm.tier_of("k") == "long_term" and mm.keys("short_term") == []
    mm.store("k", "v3", memory_type="external")
    assert mm.keys() == ["k"] and mm.tier_of("k") == "external"
    mm.store("k", "v4")
    assert mm.keys() == ["k"] and mm.retrieve("k") == "v4"


def test_retrieve_promotes_from_long_term_and_restores_from_the_archive(make):
    mm = make(cache_size=0)
    mm.store("warm", "in long-term", memory_type="long_term")
    mm.store("cold", "in the archive", memory_type="external")
    assert mm.retrieve("warm") == "in long-term" and mm.tier_of("warm") == "short_term"
    assert mm.retrieve("cold") == "in the archive" and mm.tier_of("cold") == "long_term"
    stats = mm.get_stats()
    assert stats["promotions"] == 1 and stats["restores"] == 1
    assert mm.retrieve("nothing") is None
    with pytest.raises(KeyNotFoundError):
        mm.get_entry("nothing")


def test_long_term_limit_archives_the_least_important(make):
    mm = make(short_term_limit=2, long_term_limit=3)
    mm.store("vip", "keep me", memory_type="long_term", priority=10, metadata={"importance": 1.0})
    mm.store_many({f"low{i}": i for i in range(6)}, memory_type="long_term")
    assert len(mm.keys("long_term")) == 3 and "vip" in mm.keys("long_term")
    assert len(mm.keys("external")) == 4
    assert sorted(mm.keys()) == sorted(["vip", *[f"low{i}" for i in range(6)]])


def test_only_expiry_deletes(make, clock):
    mm = make(short_term_limit=2)
    mm.store("brief", 1, ttl=5)
    mm.store_many({"a": 1, "b": 2, "c": 3})
    clock.advance(6)
    assert mm.retrieve("brief") is None
    assert sorted(mm.keys()) == ["a", "b", "c"]


def test_consolidate_moves_selected_entries_in_verified_batches(make):
    mm = make(short_term_limit=100, batch_size=3)
    mm.store_many({f"k{i}": {"n": i} for i in range(10)})
    report = mm.consolidate()
    assert report == {"selected": 10, "moved": 10, "batches": 4, "failed": 0}
    assert mm.keys("short_term") == [] and len(mm.keys("long_term")) == 10
    assert mm.retrieve("k3") == {"n": 3}


def test_consolidation_policy_chooses_what_moves(make):
    policy = ImportanceConsolidationPolicy(min_score=3.0)
    mm = make(consolidation_policy=policy)
    mm.store("important", 1, priority=5)
    mm.store("trivial", 2)
    assert mm.consolidate()["moved"] == 1
    assert mm.tier_of("important") == "long_term" and mm.tier_of("trivial") == "short_term"


def test_consolidation_retries_then_leaves_entries_in_short_term(make, monkeypatch):
    mm = make()
    mm.store_many({"a": 1, "b": 2})
    real = mm.long_tier.put_if_newer  # what a move writes with
    failures = [1]

    def flaky(entries):
        if failures[0] > 0:
            failures[0] -= 1
            raise StorageError("disk hiccup")
        return real(entries)

    monkeypatch.setattr(mm.long_tier, "put_if_newer", flaky)
    assert mm.consolidate(retries=2)["moved"] == 2
    assert mm.get_stats()["retries"] == 1
    mm.store_many({"c": 3})
    failures[0] = 100
    report = mm.consolidate(retries=1)
    assert report["failed"] == 1 and mm.tier_of("c") == "short_term"


def test_automatic_consolidation_triggers(make, clock):
    mm = make(short_term_limit=10, consolidation_threshold=0.5)
    mm.store_many({f"k{i}": i for i in range(4)})
    assert len(mm.keys("short_term")) == 4
    mm.store("k4", 4)  # 5 of 10: the threshold
    assert mm.keys("short_term") == [] and len(mm.keys("long_term")) == 5
    timed = make(short_term_limit=10, consolidation_interval=60, storage_path=None)
    timed.store("a", 1)
    clock.advance(61)
    timed.store("b", 2)
    assert timed.keys("short_term") == []


def test_search_across_tiers(make):
    mm = make()
    mm.store("s", "the red bicycle in the garage", tags=["home"])
    mm.store(
        "l",
        "a red sports car on the highway",
        memory_type="long_term",
        metadata={"kind": "vehicle"},
    )
    mm.store("e", "old red wagon archived", memory_type="external")
    hits = mm.search("red", limit=10)
    assert {(h["key"], h["tier"]) for h in hits} == {
        ("s", "short_term"),
        ("l", "long_term"),
        ("e", "external"),
    }
    assert all(0 < h["score"] <= 1 for h in hits)
    assert [h["key"] for h in mm.search("red", memory_types=["long_term"])] == ["l"]
    assert [h["key"] for h in mm.search("red", filter={"tags": ["home"]})] == ["s"]
    assert [h["key"] for h in mm.search("red", filter={"kind": "vehicle"})] == ["l"]
    assert mm.search("   ") == []
    with pytest.raises(InvalidArgumentError):
        mm.search("red", memory_types=["attic"])


def test_bad_input_changes_nothing(make):
    mm = make()
    mm.store("k", "old", memory_type="long_term")
    with pytest.raises(SerializationError, match="'k'"):
        mm.store("k", {1, 2})
    assert mm.tier_of("k") == "long_term" and mm.retrieve("k") == "old"
    with pytest.raises(InvalidArgumentError, match="attic"):
        mm.store("j", 1, memory_type="attic")
    assert mm.keys() == ["k"]
    with pytest.raises(InvalidArgumentError):
        MemoryManager(short_term_limit=0)


def test_persistent_manager_reopens_with_every_tier(tmp_path, clock):
    path = tmp_path / "mm"
    with MemoryManager(short_term_limit=2, long_term_limit=3, storage_path=path, clock=clock) as mm:
        mm.store_many({f"k{i}": i for i in range(8)})
        placement = {k: mm.tier_of(k) for k in mm.keys()}
    with MemoryManager(short_term_limit=2, long_term_limit=3, storage_path=path, clock=clock) as mm:
        assert {k: mm.tier_of(k) for k in mm.keys()} == placement
        assert [mm.retrieve(f"k{i}") for i in range(8)] == list(range(8))


def test_namespaces_never_cross(tmp_path, clock):
    path = tmp_path / "shared"
    alice = MemoryManager(
        short_term_limit=2,
        long_term_limit=2,
        storage_path=path,
        namespace=("user", "alice"),
        clock=clock,
    )
    bob = MemoryManager(
        short_term_limit=2,
        long_term_limit=2,
        storage_path=path,
        namespace=("user", "bob"),
        clock=clock,
    )
    alice.store_many({f"a{i}": f"alice secret {i}" for i in range(6)})
    bob.store("b", "bob note")
    assert bob.keys() == ["b"] and bob.retrieve("a0") is None
    assert bob.search("secret", mode="keyword") == []
    assert [h["key"] for h in bob.search("secret")] == ["b"]  # by meaning: bob's own memory, never alice's
    assert sorted(alice.keys()) == [f"a{i}" for i in range(6)]
    assert {len(alice.keys(t)) for t in ("short_term", "long_term", "external")} == {2}
    alice.close()
    bob.close()


def test_encrypted_archive(tmp_path, clock):
    key = generate_key()
    path = tmp_path / "enc"
    with MemoryManager(storage_path=path, archive_key=key, clock=clock) as mm:
        mm.store("secret", "the launch code", memory_type="external")
        assert mm.get_stats()["archive_encrypted"] is True
    blobs = b"".join(p.read_bytes() for p in (path / "archive").rglob("*.amar"))
    assert b"launch" not in blobs
    with pytest.raises(StoreCorruptError, match="encrypted"):
        MemoryManager(storage_path=path, clock=clock)
    with MemoryManager(storage_path=path, archive_key=key, clock=clock) as mm:
        assert mm.retrieve("secret") == "the launch code"
    with pytest.raises(InvalidArgumentError, match="key"):
        MemoryManager(encrypt=True)
    with MemoryManager() as plain:
        assert plain.get_stats()["archive_encrypted"] is False


def test_named_memories(make):
    mm = make()
    notes = mm.create_memory("notes", {"capacity": 10})
    mm.create_memory("archive", {"capacity": 10})
    notes.store_many({"a": 1, "b": 2})
    assert mm.list_memories() == ["archive", "notes"] and mm.get_memory("nope") is None
    assert mm.transfer_memory("notes", "archive", ["a", "zz"]) == 1
    assert mm.get_memory("archive").retrieve("a") == 1 and notes.retrieve("a") is None  # type: ignore[union-attr]
    with pytest.raises(InvalidArgumentError):
        mm.create_memory("notes", {})


CRASHER = textwrap.dedent(
    """
    import os, sys
    from agentmem_plugin import MemoryManager
    mm = MemoryManager(short_term_limit=1000, long_term_limit=100000, storage_path=sys.argv[1], batch_size=50)
    mm.store_many({f"k{i}": {"i": i} for i in range(500)})
    real = mm.short_tier.delete_if
    done = [0]
    def dying(versions, *, older=False):
        if not older:  # a move's compare-and-delete (a store removes older versions instead)
            if done[0] == 3:
                os._exit(9)  # die in the 4th batch: written to long-term, not yet gone from short-term
            done[0] += 1
        return real(versions, older=older)
    mm.short_tier.delete_if = dying
    mm.consolidate()
    """
)


def test_crash_mid_consolidation_loses_nothing_and_duplicates_nothing(tmp_path):
    path = tmp_path / "crash"
    proc = subprocess.run(
        [sys.executable, "-c", CRASHER, str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 9, proc.stderr
    with MemoryManager(short_term_limit=1000, long_term_limit=100000, storage_path=path) as mm:
        short, long_ = mm.keys("short_term"), mm.keys("long_term")
        assert len(long_) == 150 and len(short) == 350
        assert set(short).isdisjoint(long_)
        assert sorted(short + long_, key=lambda k: int(k[1:])) == [f"k{i}" for i in range(500)]
        assert mm.retrieve("k499") == {"i": 499}


@pytest.mark.parametrize("persistent", [False, True])
def test_backup_and_restore_a_named_memory(make, tmp_path, persistent):
    mm = make()
    config = {"capacity": 100}
    if persistent:
        config.update(persistence=True, storage_path=tmp_path / "named")
    notes = mm.create_memory("notes", config)
    notes.store("a", {"x": 1}, tags=["t"], ttl=1000, priority=2)
    notes.store("b", "two")
    manifest = mm.backup_memory("notes", tmp_path / "bk")
    assert manifest["count"] == 2 and manifest["format"] == "agentmem-backup"
    notes.store("c", "added later")
    notes.delete("a")
    assert mm.restore_memory("notes", tmp_path / "bk") == 2
    assert sorted(notes.keys()) == ["a", "b"]
    restored = notes.get_entry("a")
    assert restored.value == {"x": 1} and restored.tags == ("t",) and restored.priority == 2
    manifest_again = mm.backup_memory("notes", tmp_path / "bk")  # replaces the old backup
    assert manifest_again["count"] == 2


def test_damaged_backup_is_refused_and_changes_nothing(make, tmp_path):
    from agentmem_plugin import IntegrityError

    mm = make()
    notes = mm.create_memory("notes", {"capacity": 10})
    notes.store_many({"a": 1, "b": 2})
    mm.backup_memory("notes", tmp_path / "bk")
    notes.store("c", 3)
    entries_file = tmp_path / "bk" / "entries.jsonl.zst"
    blob = bytearray(entries_file.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    entries_file.write_bytes(bytes(blob))
    with pytest.raises(IntegrityError, match="checksum"):
        mm.restore_memory("notes", tmp_path / "bk")
    assert sorted(notes.keys()) == ["a", "b", "c"]
    (tmp_path / "bk" / "manifest.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="manifest"):
        mm.restore_memory("notes", tmp_path / "bk")
    with pytest.raises(KeyNotFoundError):
        mm.backup_memory("missing", tmp_path / "x")


def test_from_config_dict_file_and_environment(tmp_path, monkeypatch):
    with MemoryManager.from_config({"short_term_limit": 7, "namespace": ["user", "u1"]}) as mm:
        assert mm.short_term_limit == 7 and mm.namespace == "user/u1"
    monkeypatch.setenv("AGENTMEM_LONG_TERM_LIMIT", "77")
    monkeypatch.setenv("AGENTMEM_CACHE_SIZE", "5")
    with MemoryManager.from_config() as mm:
        assert mm.long_term_limit == 77 and mm.cache_size == 5
    toml = tmp_path / "agentmem.toml"
    toml.write_text(
        '[agentmem.manager]\nshort_term_limit = 9\nstorage_path = "%s"\n' % (tmp_path / "store")
    )
    with MemoryManager.from_config(toml, cache_size=1) as mm:  # the file wins over the environment,
        assert (
            mm.short_term_limit == 9 and mm.long_term_limit == 77 and mm.cache_size == 1
        )  # overrides win
        assert mm.storage_path == tmp_path / "store"
    yaml_file = tmp_path / "agentmem.yaml"
    yaml_file.write_text("short_term_limit: 11\nbatch_size: 3\n")
    with MemoryManager.from_config(yaml_file) as mm:
        assert mm.short_term_limit == 11 and mm.batch_size == 3
    monkeypatch.setenv("AGENTMEM_VIEW_CACHE_SIZE", "1")
    with MemoryManager.from_config() as mm:  # the bound of the namespace views' cache, from the environment
        assert mm._options["view_cache_size"] == 1


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"short_term_limit": 0}, "short_term_limit"),
        ({"shortterm_limit": 5}, "shortterm_limit"),
        ({"consolidation_threshold": 2}, "consolidation_threshold"),
        ({"embedder": "openai"}, "embedder"),
        ({"view_cache_size": -1}, "view_cache_size"),
    ],
)
def test_from_config_errors_name_the_field(config, field):
    with pytest.raises(InvalidArgumentError, match=field):
        MemoryManager.from_config(config)


def test_from_config_bad_files(tmp_path):
    bad = tmp_path / "x.ini"
    bad.write_text("a=1")
    with pytest.raises(InvalidArgumentError, match="yaml"):
        MemoryManager.from_config(bad)
    broken = tmp_path / "x.toml"
    broken.write_text("short_term_limit = = 3")
    with pytest.raises(InvalidArgumentError, match="does not parse"):
        MemoryManager.from_config(broken)


def test_semantic_search_through_the_manager(tmp_path, real_embedder):
    path = tmp_path / "sem"
    with MemoryManager(
        short_term_limit=2, storage_path=path, embedder=real_embedder, namespace="u1"
    ) as mm:
        mm.store("pet", "The feline slept on the rug all afternoon", memory_type="long_term")
        mm.store("car", "The mechanic replaced the brake pads", memory_type="long_term")
        mm.store("note", "buy milk")
        hits = mm.search("cat", mode="semantic", memory_types=["long_term"])
        assert hits[0]["key"] == "pet" and hits[0]["tier"] == "long_term"
        assert mm.retrieve("pet") is not None and mm.tier_of("pet") == "short_term"  # promoted...
        assert "pet" not in [
            h["key"] for h in mm.search("cat", mode="semantic", memory_types=["long_term"])
        ]
    with MemoryManager(
        short_term_limit=2, storage_path=path, embedder=real_embedder, namespace="u2"
    ) as other:
        assert (
            other.search("brakes", mode="semantic", memory_types=["long_term"]) == []
        )  # another namespace
    with MemoryManager(
        short_term_limit=2, storage_path=path, embedder=real_embedder, namespace="u1"
    ) as mm:
        assert mm.search("brakes", mode="semantic", memory_types=["long_term"])[0]["key"] == "car"


async def test_async_twins(clock):
    with MemoryManager(short_term_limit=2, clock=clock) as mm:
        await mm.astore("a", "apple pie recipe")
        assert await mm.astore_many({"b": 2, "c": 3}, "long_term") == 2
        assert await mm.aretrieve("b") == 2 and mm.tier_of("b") == "short_term"
        assert (await mm.aget_entry("a")).value == "apple pie recipe"
        assert [h["key"] for h in await mm.asearch("apple")] == ["a"]
        assert (await mm.aconsolidate())["moved"] == 2
        assert await mm.adelete("a") and await mm.aretrieve("a") is None
        assert (await mm.aget_stats())["consolidations"] == 1


def test_reopen_removes_archive_copies_left_by_a_crash(tmp_path, clock):
    path = tmp_path / "dup"
    with MemoryManager(storage_path=path, clock=clock) as mm:
        mm.store("k", "current", memory_type="long_term")
        # what a crash between "write to the archive" and "delete from long-term" leaves behind:
        mm.external_tier.put(mm.long_tier.get("k", touch=False).copy())
        assert mm.external_tier.archived_keys() == ["k"]
    with MemoryManager(storage_path=path, clock=clock) as mm:
        assert mm.keys("external") == [] and mm.tier_of("k") == "long_term"
        assert mm.retrieve("k") == "current"


def test_reopen_keeps_the_newest_write_when_a_crash_left_a_key_in_two_tiers(tmp_path, clock):
    path = tmp_path / "dup"
    with MemoryManager(storage_path=path, clock=clock) as mm:
        mm.store("k", "older", memory_type="long_term")
        # a store(memory_type="external") that crashed after its archive write, before removing the older copy
        mm.external_tier.put(MemoryEntry("k", "newer", clock=clock))
    with MemoryManager(storage_path=path, clock=clock) as mm:
        assert mm.keys("long_term") == [] and mm.tier_of("k") == "external"
        assert mm.retrieve("k") == "newer"


def test_store_many_refuses_a_str_as_tags(make):
    mm = make()
    with pytest.raises(InvalidArgumentError, match="tags"):
        mm.store_many({"a": 1}, tags="abc")
    with pytest.raises(InvalidArgumentError, match="pair"):
        mm.store_many([("a", 1), "oops"])
    assert mm.keys() == []


def test_named_memory_backup_can_be_encrypted(tmp_path):
    from agentmem_plugin.errors import IntegrityError
    from agentmem_plugin.tiers.archive import generate_key

    key = generate_key()
    mm = MemoryManager()
    mm.create_memory("notes", {"capacity": 10})
    mm.get_memory("notes").store("secret", "the vault code is 1234")
    mm.backup_memory("notes", tmp_path / "b", key=key)
    assert b"vault" not in (tmp_path / "b" / "entries.jsonl.zst").read_bytes()
    mm.get_memory("notes").store("secret", "changed")
    with pytest.raises(IntegrityError, match="encrypted"):
        mm.restore_memory("notes", tmp_path / "b")
    with pytest.raises(IntegrityError, match="wrong key"):
        mm.restore_memory("notes", tmp_path / "b", key=generate_key())
    assert (
        mm.get_memory("notes").retrieve("secret") == "changed"
    )  # refused restores changed nothing
    assert mm.restore_memory("notes", tmp_path / "b", key=key) == 1
    assert mm.get_memory("notes").retrieve("secret") == "the vault code is 1234"
    mm.close()


class _RefusesPoison:
    """A FAKE embedder (no meaning) that cannot embed any text mentioning "poison", as a model can fail on one."""

    name, dim = "fake-refuses-poison", 8

    def embed_documents(self, texts):  # type: ignore[no-untyped-def]
        from agentmem_plugin.errors import EmbeddingError

        if any("poison" in t for t in texts):
            raise EmbeddingError("this text cannot be embedded")
        return [[1.0] + [0.0] * 7 for _ in texts]

    def embed_query(self, text):  # type: ignore[no-untyped-def]
        return [1.0] + [0.0] * 7


def test_an_entry_that_cannot_be_embedded_never_blocks_overflow_or_consolidation():
    """Regression: once the entry had to move to long-term, every later store() and consolidate() raised."""
    mm = MemoryManager(short_term_limit=2, embedder=_RefusesPoison())
    mm.store("bad", "poison pill", priority=-1)  # short-term is not embedded: it is stored
    for i in range(5):
        mm.store(f"k{i}", f"note {i}")  # overflow moves "bad" to long-term: stores keep working
    mm.store_many({"x": "more", "y": "and more"})
    assert mm.consolidate()["failed"] == 0
    assert mm.retrieve("bad") == "poison pill"  # not lost: only left out of the semantic index
    assert {h["key"] for h in mm.search("note", mode="keyword", limit=10)} >= {"k0", "k1", "k2"}
    mm.close()


def test_restore_into_a_smaller_memory_reports_what_it_holds_afterwards(tmp_path):
    """Regression: restore_memory reported every entry of the backup while capacity had evicted most."""
    mm = MemoryManager()
    big = mm.create_memory("big", {"capacity": 10})
    big.store_many({f"k{i}": i for i in range(6)})
    mm.backup_memory("big", tmp_path / "backup")
    small = mm.create_memory("small", {"capacity": 3})
    assert mm.restore_memory("small", tmp_path / "backup") == 3 == len(small)
    mm.close()
