"""A JSON-file memory (PersistentMemory, JsonFileTier) shared by several processes loses nothing.

Each save takes an exclusive lock on a file beside the JSON file, reads what the other processes saved since,
merges it (a three-way merge against what this process last saw: its own changes win, the others' are kept),
and writes the result. Issue 15, item 4: two processes storing 200 entries each used to leave about 200.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from agentmem_plugin import PersistentMemory
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import StoreCorruptError
from agentmem_plugin.tiers.jsonfile import JsonFileTier

WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agentmem_plugin import PersistentMemory
    path, prefix, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    memory = PersistentMemory(path)
    while not go.exists():
        time.sleep(0.001)
    for i in range(count):
        memory.store(f"{prefix}-{i}", {"i": i, "by": prefix})
        if i % 50 == 49:
            memory.delete(f"{prefix}-{i - 1}")  # deletes must survive the other's saves too
    memory.close()
    """
)


def test_two_processes_storing_200_entries_each_keep_all_400(tmp_path: Path) -> None:
    path = tmp_path / "agent_memory.json"
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), prefix, "200", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for prefix in ("alpha", "beta")
    ]
    time.sleep(1.0)  # both are past their imports and waiting
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    deleted = {f"{p}-{i - 1}" for p in ("alpha", "beta") for i in range(49, 200, 50)}
    expected = {f"{p}-{i}" for p in ("alpha", "beta") for i in range(200)} - deleted
    memory = PersistentMemory(path)
    assert set(memory.keys()) == expected  # 392: every store kept, every delete kept
    assert memory.retrieve("beta-199") == {"i": 199, "by": "beta"}
    assert not [p.name for p in tmp_path.iterdir() if "tmp" in p.name]


def test_a_save_keeps_what_another_instance_saved_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    a, b = JsonFileTier(path), JsonFileTier(path)
    a.put(MemoryEntry("a1", 1))
    b.put(MemoryEntry("b1", 2))  # b never saw a1, but keeps it
    a.put(MemoryEntry("a2", 3))
    assert sorted(JsonFileTier(path).keys()) == ["a1", "a2", "b1"]
    assert sorted(a.keys()) == ["a1", "a2", "b1"]  # a saw b1 when it saved


def test_deletes_and_updates_by_another_instance_are_not_undone(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    a = JsonFileTier(path)
    a.put_many([MemoryEntry("k", "old"), MemoryEntry("gone", 1)])
    b = JsonFileTier(path)
    b.put(MemoryEntry("k", "new"))
    b.delete("gone")
    a.get("k")  # a read in a counts an access; it must not bring back the old value
    a.put(MemoryEntry("other", 0))
    a.close()
    again = JsonFileTier(path)
    assert again.get("k", touch=False).value == "new"  # type: ignore[union-attr]
    assert again.get("gone") is None and sorted(again.keys()) == ["k", "other"]


def test_without_auto_save_unsaved_changes_merge_at_save(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    a = PersistentMemory(path, auto_save=False)
    b = PersistentMemory(path)
    a.store("mine", 1)
    b.store("theirs", 2)
    b.store("shared", "b")
    a.store("shared", "a")  # a saves later: its own change wins
    assert a.save_to_disk() == 3
    assert {k: PersistentMemory(path).retrieve(k) for k in ("mine", "theirs", "shared")} == {
        "mine": 1,
        "theirs": 2,
        "shared": "a",
    }


def test_clear_removes_what_the_file_held_and_keeps_what_came_after(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    a, b = JsonFileTier(path), JsonFileTier(path)
    a.put(MemoryEntry("x", 1))
    b.put(MemoryEntry("y", 2))
    a.clear()
    assert JsonFileTier(path).keys() == []
    b.put(MemoryEntry("z", 3))
    assert sorted(JsonFileTier(path).keys()) == ["z"]


def test_compute_is_atomic_across_instances(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    a, b = PersistentMemory(path), PersistentMemory(path)
    a.store("n", 0)
    for _ in range(5):
        a.update("n", lambda n: n + 1, default=0)
        b.update("n", lambda n: n + 1, default=0)
    assert PersistentMemory(path).retrieve("n") == 10


def test_a_file_damaged_by_someone_else_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    a = JsonFileTier(path)
    a.put(MemoryEntry("k", 1))
    path.write_bytes(b'{"format": "agentmem-json", "version": 1, "entries": [')
    damaged = path.read_bytes()
    with pytest.raises(StoreCorruptError, match=r"m\.json"):
        a.put(MemoryEntry("j", 2))
    assert path.read_bytes() == damaged
