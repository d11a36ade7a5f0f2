"""The persistent SQLite tier behind Memory(persistence=True): reopening, schema versions, faults, bad input."""

from __future__ import annotations

import os
import sqlite3
import threading

import pytest

from agentmem_plugin import (
    InvalidArgumentError,
    Memory,
    MemoryEntry,
    ReadOnlyStoreError,
    SchemaVersionError,
    StorageError,
    StoreCorruptError,
)
from agentmem_plugin.memory import DATABASE_FILENAME
from agentmem_plugin.tiers.sqlite import SqliteTier, _migrations, validate_identifier


def open_memory(path, clock, **kw) -> Memory:
    return Memory(persistence=True, storage_path=path, clock=clock, **kw)


def test_reopen_gives_back_entries_tags_ttls_and_access_counts(tmp_path, clock):
    with open_memory(tmp_path, clock) as m:
        m.store(
            "prefs",
            {"language": "english"},
            tags=["user", "prefs"],
            priority=2,
            metadata={"importance": 0.9},
        )
        m.store("task", "summarize", ttl=120)
        m.store("gone", "soon", ttl=1)
        for _ in range(3):
            m.retrieve("prefs")
    clock.advance(2)
    with open_memory(tmp_path, clock) as m:
        assert sorted(m.keys()) == ["prefs", "task"]
        prefs = m.get_entry("prefs")  # this read counts too
        assert prefs.value == {"language": "english"}
        assert prefs.tags == ("user", "prefs") and prefs.priority == 2
        assert prefs.metadata == {"importance": 0.9}
        assert prefs.access_count == 4
        task = m.get_entry("task")
        assert task.ttl == 120 and task.expires_at == pytest.approx(clock.now - 2 + 120)
        assert [h["key"] for h in m.search("english", mode="keyword")] == ["prefs"]


def test_storage_path_is_a_directory_created_on_demand(tmp_path, clock):
    target = tmp_path / "a" / "b"
    with open_memory(target, clock) as m:
        m.store("k", 1)
    assert (target / DATABASE_FILENAME).is_file()
    a_file = tmp_path / "file.txt"
    a_file.write_text("hello")
    with pytest.raises(InvalidArgumentError, match="must be a directory"):
        open_memory(a_file, clock)
    with pytest.raises(InvalidArgumentError, match="storage_path"):
        Memory(persistence=True)


def test_namespaces_do_not_see_each_other(tmp_path, clock):
    db = tmp_path / "shared.sqlite3"
    alice = SqliteTier(db, namespace="user:alice", clock=clock)
    bob = SqliteTier(db, namespace="user:bob", clock=clock)
    alice.put(MemoryEntry("pref", "tea", clock=clock))
    bob.put(MemoryEntry("pref", "coffee", clock=clock))
    assert alice.get("pref").value == "tea" and bob.get("pref").value == "coffee"  # type: ignore[union-attr]
    assert [e.value for e, _ in alice.keyword_search("coffee")] == []
    bob.clear()
    assert alice.count() == 1 and bob.count() == 0
    alice.close()
    bob.close()


def test_older_store_is_migrated_on_open(tmp_path, clock):
    from sqlite_utils import Database

    path = tmp_path / "old.sqlite3"
    db = Database(str(path))
    _migrations("memories").apply(db, stop_before="0002_namespace_counts")
    db.execute(
        "INSERT INTO memories (namespace, key, value, search_text, created_at) VALUES ('', 'k', ?, 'k old', 1.0)",
        [b'"old value"'],
    )
    db.close()
    tier = SqliteTier(path, clock=clock, capacity=5)
    assert tier.get("k").value == "old value"  # type: ignore[union-attr]
    assert tier.count() == 1  # the counts table was backfilled by the migration
    tier.close()


def test_store_from_a_newer_version_is_refused(tmp_path, clock):
    path = tmp_path / "new.sqlite3"
    SqliteTier(path, clock=clock).close()
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('agentmem:memories', '9999_future', 'x')"
    )
    conn.commit()
    conn.close()
    with pytest.raises(SchemaVersionError, match="newer version"):
        SqliteTier(path, clock=clock)


@pytest.mark.parametrize(
    "content", [b"this is not a database at all" * 10, b"SQLite format 3\x00" + b"\xff" * 300]
)
def test_corrupt_file_is_refused_and_left_untouched(tmp_path, content):
    path = tmp_path / "broken.sqlite3"
    path.write_bytes(content)
    with pytest.raises(StoreCorruptError, match=r"broken\.sqlite3"):
        SqliteTier(path)
    assert path.read_bytes() == content
    assert not (tmp_path / "broken.sqlite3-wal").exists()


def test_foreign_table_with_our_name_is_refused(tmp_path):
    path = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE memories (id INTEGER, stuff TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorruptError, match="did not create"):
        SqliteTier(path)


def test_read_only_location_fails_at_open():
    with pytest.raises(ReadOnlyStoreError, match="/sys/agentmem-test"):
        Memory(persistence=True, storage_path="/sys/agentmem-test/store")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_read_only_directory_fails_at_open(
    tmp_path,
):  # pragma: no cover - runs as a normal user only
    with Memory(persistence=True, storage_path=tmp_path) as m:
        m.store("k", 1)
    os.chmod(tmp_path / DATABASE_FILENAME, 0o444)
    os.chmod(tmp_path, 0o555)
    try:
        with pytest.raises(ReadOnlyStoreError):
            Memory(persistence=True, storage_path=tmp_path)
    finally:
        os.chmod(tmp_path, 0o755)


@pytest.mark.parametrize(
    "name", ["memory; DROP TABLE x", "1abc", "", "a-b", "sqlite_master", "x" * 64, None, 5]
)
def test_table_name_must_be_an_identifier(tmp_path, name):
    with pytest.raises(InvalidArgumentError, match="table_name"):
        SqliteTier(tmp_path / "db.sqlite3", table=name)  # type: ignore[arg-type]
    assert not (tmp_path / "db.sqlite3").exists()


def test_valid_identifiers_pass():
    assert validate_identifier("agent_memory_2") == "agent_memory_2"


def test_locked_database_rolls_back_the_whole_batch(tmp_path, clock):
    path = tmp_path / "locked.sqlite3"
    tier = SqliteTier(path, clock=clock, busy_timeout=0.2)
    tier.put(MemoryEntry("existing", 1, clock=clock))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match=r"batch of 3 entries failed .* rolled back.*locked"):
            tier.put_many([MemoryEntry(f"n{i}", i, clock=clock) for i in range(3)])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert sorted(tier.keys()) == ["existing"]
    tier.put(MemoryEntry("after", 2, clock=clock))  # usable again
    assert sorted(tier.keys()) == ["after", "existing"]
    tier.close()


def test_full_disk_rolls_back_the_whole_batch(tmp_path, clock):
    tier = SqliteTier(tmp_path / "full.sqlite3", clock=clock, compression_threshold=None)
    tier.put(MemoryEntry("existing", 1, clock=clock))
    pages = tier._conn.execute("PRAGMA page_count").fetchone()[0]
    tier._conn.execute(
        f"PRAGMA max_page_count={pages + 5}"
    )  # the file may hardly grow: a full disk
    batch = [MemoryEntry(f"big{i}", "x" * 4000, clock=clock) for i in range(50)]
    with pytest.raises(StorageError, match=r"rolled back.*full"):
        tier.put_many(batch)
    assert tier.keys() == ["existing"]
    assert tier.count() == 1
    tier.close()


def test_closed_tier_raises_storage_error(tmp_path, clock):
    tier = SqliteTier(tmp_path / "c.sqlite3", clock=clock)
    tier.close()
    tier.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        tier.get("k")


def test_threads_share_one_tier(tmp_path, clock):
    tier = SqliteTier(tmp_path / "threads.sqlite3", clock=clock)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(200):
                tier.put(MemoryEntry(f"t{n}-{i}", i, clock=clock))
                assert tier.get(f"t{n}-{i}") is not None
                if i % 50 == 0:
                    tier.keyword_search(f"t{n}", 5)
        except BaseException as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert tier.count() == 800
    tier.close()


def test_reads_are_flushed_in_batches_not_per_read(tmp_path, clock):
    path = tmp_path / "touch.sqlite3"
    tier = SqliteTier(path, clock=clock, touch_flush_interval=3600)
    tier.put(MemoryEntry("k", 1, clock=clock))
    before = tier._conn.total_changes
    for _ in range(10):
        tier.get("k")
    assert tier._conn.total_changes == before  # reads did not write
    assert tier.get("k").access_count == 11  # type: ignore[union-attr]
    tier.close()
    reopened = SqliteTier(path, clock=clock)
    assert reopened.get("k", touch=False).access_count == 11  # type: ignore[union-attr]
    reopened.close()
