"""The spec's Memory variants: compressed, JSON-file, database, optimized, debuggable, resilient."""

from __future__ import annotations

import logging

import orjson
import pytest

from agentmem_plugin import (
    CompressedMemory,
    DatabaseMemory,
    DebuggableMemory,
    InvalidArgumentError,
    OptimizedMemory,
    PersistentMemory,
    ResilientMemory,
    SerializationError,
    StorageError,
    StoreCorruptError,
)


def test_compressed_memory_compresses_only_large_values(clock):
    m = CompressedMemory(compression_threshold=500, clock=clock)
    large = {"data": list(range(1000)), "metadata": "large dataset"}
    m.store("large_dataset", large)
    m.store("small_data", {"status": "active", "count": 5})
    assert m.retrieve("large_dataset") == large
    assert m.retrieve("small_data") == {"status": "active", "count": 5}
    stats = m.get_compression_stats()
    assert stats["total_items"] == 2 and stats["compressed_items"] == 1
    assert stats["compression_ratio"] == 0.5 and stats["compression_threshold"] == 500
    assert stats["compressed_bytes"] < len(orjson.dumps(large))


def test_compressed_memory_can_persist(tmp_path, clock):
    with CompressedMemory(
        compression_threshold=100, persistence=True, storage_path=tmp_path, clock=clock
    ) as m:
        m.store("big", "word " * 500)
    with CompressedMemory(
        compression_threshold=100, persistence=True, storage_path=tmp_path, clock=clock
    ) as m:
        assert m.retrieve("big") == "word " * 500
        assert m.get_compression_stats()["compressed_items"] == 1


def test_persistent_memory_saves_after_each_write_and_reloads(tmp_path, clock):
    path = tmp_path / "sub" / "agent_memory.json"
    m = PersistentMemory(storage_path=path, capacity=100, clock=clock)
    m.store("configuration", {"version": "1.0", "features": ["nlp", "vision"]}, tags=["cfg"])
    m.store("temp", 1, ttl=10)
    on_disk = orjson.loads(path.read_bytes())
    assert on_disk["format"] == "agentmem-json" and len(on_disk["entries"]) == 2
    m.delete("temp")
    assert len(orjson.loads(path.read_bytes())["entries"]) == 1
    again = PersistentMemory(storage_path=path, clock=clock)
    assert again.retrieve("configuration") == {"version": "1.0", "features": ["nlp", "vision"]}
    assert again.get_entry("configuration").tags == ("cfg",)
    assert not list(path.parent.glob(".*tmp*"))  # no temporary files left behind


def test_persistent_memory_without_auto_save(tmp_path, clock):
    path = tmp_path / "m.json"
    m = PersistentMemory(storage_path=path, auto_save=False, clock=clock)
    m.store("k", 1)
    assert not path.exists()
    assert m.save_to_disk() == 1
    m.store("j", 2)
    m.close()
    assert sorted(PersistentMemory(storage_path=path).keys()) == ["j", "k"]


def test_persistent_memory_reads_the_spec_plain_format(tmp_path):
    path = tmp_path / "legacy.json"
    path.write_text('{"a": 1, "b": {"x": [1, 2]}}')
    m = PersistentMemory(storage_path=path)
    assert m.retrieve("b") == {"x": [1, 2]} and sorted(m.keys()) == ["a", "b"]


def test_truncated_json_is_refused_and_the_file_kept(tmp_path, clock):
    path = tmp_path / "m.json"
    PersistentMemory(storage_path=path, clock=clock).store_many({f"k{i}": i for i in range(20)})
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    truncated = path.read_bytes()
    with pytest.raises(StoreCorruptError, match=r"m\.json"):
        PersistentMemory(storage_path=path, clock=clock)
    assert path.read_bytes() == truncated


def test_unserializable_value_keeps_the_file(tmp_path, clock):
    path = tmp_path / "m.json"
    m = PersistentMemory(storage_path=path, clock=clock)
    m.store("k", "old")
    before = path.read_bytes()
    with pytest.raises(SerializationError, match="'k'"):
        m.store("k", object())
    assert path.read_bytes() == before and m.retrieve("k") == "old"


def test_database_memory_analytics(tmp_path, clock):
    db = DatabaseMemory(
        db_path=tmp_path / "agent_memory.db", table_name="agent_memory", clock=clock
    )
    db.store("user_session", {"user_id": "12345"}, ttl=3600, tags=["session", "user"])
    db.store("plain", 1)
    for _ in range(3):
        db.retrieve("user_session")
    analytics = db.get_memory_analytics()
    assert analytics["total_items"] == 2 and analytics["tagged_items"] == 1
    assert analytics["max_access_count"] == 3 and analytics["average_access_count"] == 1.5
    assert analytics["database_path"].endswith("agent_memory.db")
    db.close()
    other_table = DatabaseMemory(
        db_path=tmp_path / "agent_memory.db", table_name="other", clock=clock
    )
    assert other_table.keys() == []


def test_database_memory_refuses_bad_table_names(tmp_path):
    with pytest.raises(InvalidArgumentError, match="table_name"):
        DatabaseMemory(db_path=tmp_path / "x.db", table_name="memory; DROP TABLE memory")


def test_optimized_memory_access_statistics(clock):
    m = OptimizedMemory(clock=clock)
    m.store_many({"a": 1, "b": 2, "c": 3})
    for key, n in (("a", 5), ("b", 2)):
        for _ in range(n):
            m.retrieve(key)
    stats = m.get_access_statistics()
    assert stats["total_accesses"] == 7 and stats["unique_keys_accessed"] == 2
    assert stats["most_accessed_key"] == "a" and stats["most_accessed_count"] == 5
    assert stats["access_patterns"] == {"a": 5, "b": 2}


def test_debuggable_memory_keeps_a_bounded_log(clock):
    m = DebuggableMemory(debug_mode=True, max_log_entries=5, clock=clock)
    m.store("k", 1)
    m.retrieve("k")
    m.retrieve("missing")
    with pytest.raises(SerializationError):
        m.store("bad", {1, 2})
    info = m.get_debug_info()
    ops = [(r["operation"], r.get("found")) for r in info["recent_operations"]]
    assert ops == [("store", None), ("retrieve", True), ("retrieve", False), ("store", None)]
    assert "error" in info["recent_operations"][-1]
    for i in range(10):
        m.store(f"x{i}", i)
    assert info["memory_stats"]["size"] == 1 and len(m.operation_log) == 5
    quiet = DebuggableMemory(clock=clock)
    quiet.store("k", 1)
    assert quiet.get_debug_info()["total_operations"] == 0


def test_resilient_memory_periodic_backup_and_restore(tmp_path, clock):
    m = ResilientMemory(backup_dir=tmp_path / "backups", backup_interval=60, clock=clock)
    m.store("a", 1)
    assert m.list_backups() == []
    clock.advance(61)
    m.store("b", 2)
    backups = m.list_backups()
    assert len(backups) == 1
    m.clear()
    assert m.restore_backup() == 2
    assert m.retrieve("a") == 1 and m.retrieve("b") == 2


def test_resilient_memory_counts_storage_errors_and_makes_emergency_backup(tmp_path, clock, caplog):
    m = ResilientMemory(
        backup_dir=tmp_path / "b",
        max_errors=3,
        persistence=True,
        storage_path=tmp_path / "s",
        clock=clock,
    )
    m.store("keep", "me")
    snapshot = m.tier.scan()
    m.tier.close()  # every further operation fails with StorageError
    with caplog.at_level(logging.ERROR, logger="agentmem_plugin.variants"):
        assert m.retrieve("keep") is None
        with pytest.raises(StorageError):
            m.store("x", 1)
        assert m.error_count == 2
        with pytest.raises(StorageError):
            m.store("y", 2)
    assert m.error_count == 0 and m.total_errors == 3  # reset by the emergency backup attempt
    assert any("emergency" in r.message for r in caplog.records)
    assert [e.key for e in snapshot] == ["keep"]


def test_resilient_memory_prunes_old_backups(tmp_path, clock):
    m = ResilientMemory(backup_dir=tmp_path, max_backups=2, clock=clock)
    m.store("a", 1)
    for _ in range(4):
        clock.advance(1)
        assert m.create_backup() is not None
    assert len(m.list_backups()) == 2
