"""Backups and restores never destroy what they did not write, stay inside the backup, and are all-or-nothing.

Issue 15, items 1, 2 and 10: ``backup_memory`` / ``agentmem backup`` onto a directory that is not one of our
backups; a restore that is staged and swapped in (tested by ``kill -9`` at random moments, in real
subprocesses); a manifest naming a path outside its backup.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from agentmem_plugin.backup import (
    MAX_BACKUP_SIZE,
    RestoreResult,
    StoreBackupPart,
    backup_store,
    read_backup,
    read_store_backup,
    restore_store,
    write_backup,
)
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import IntegrityError, InvalidArgumentError, StoreCorruptError
from agentmem_plugin.manager import MemoryManager

TIERS = ("short_term", "long_term", "external")
Snapshot = dict[tuple[str, str, str], Any]


def fill(path: Path, tag: str, *, n: int = 4, namespaces: tuple[str, ...] = ("", "user/a")) -> None:
    """A store with *n* entries per tier in each namespace, keys and values marked with *tag*."""
    with MemoryManager(storage_path=path, short_term_limit=10_000, long_term_limit=10_000) as mm:
        for ns in namespaces:
            view = mm.with_namespace(ns) if ns else mm
            for tier in TIERS:
                view.store_many(
                    [
                        MemoryEntry(f"{tag}-{tier}-{i}", {"tag": tag, "i": i}, tags=[tag])
                        for i in range(n)
                    ],
                    memory_type=tier,
                )


def snapshot(path: Path) -> Snapshot:
    """Every live entry by (namespace, tier, key): value, tags, priority (reads are not counted)."""
    out: Snapshot = {}
    with MemoryManager(storage_path=path, short_term_limit=2**40, long_term_limit=2**40) as mm:
        for ns in mm.namespaces():
            view = mm.with_namespace(ns)
            for name, tier in zip(TIERS, (view.short_tier, view.long_tier, view.external_tier)):
                for e in tier.scan():
                    out[(ns, name, e.key)] = (e.value, e.tags, e.priority)
    return out


def listing(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


# -- item 1: never remove a directory the package did not write ----------------------------------------------


def test_backup_memory_refuses_a_directory_of_other_files(tmp_path: Path) -> None:
    documents = tmp_path / "Documents"
    documents.mkdir()
    (documents / "thesis.txt").write_text("years of work")
    (documents / "sub").mkdir()
    (documents / "sub" / "data.csv").write_text("1,2")
    before = listing(documents)
    with MemoryManager() as mm:
        mm.create_memory("notes", {"capacity": 10}).store("n", "note")
        with pytest.raises(InvalidArgumentError, match="Documents") as info:
            mm.backup_memory("notes", documents)
    assert "not an agentmem backup" in str(info.value)
    assert listing(documents) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Documents"]  # no staging left beside it


def test_backup_memory_onto_the_store_itself_is_refused_and_keeps_every_memory(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    fill(store, "old")
    before = snapshot(store)
    with MemoryManager(storage_path=store) as mm:
        mm.create_memory("notes", {"capacity": 10}).store("n", "note")
        with pytest.raises(InvalidArgumentError, match="store"):
            mm.backup_memory("notes", mm.storage_path)  # type: ignore[arg-type]
    assert snapshot(store) == before


@pytest.mark.parametrize("kind", ["file", "symlink", "foreign file beside our manifest"])
def test_write_backup_refuses_what_is_not_a_backup(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "t"
    if kind == "file":
        target.write_text("precious")
    elif kind == "symlink":
        (tmp_path / "real").mkdir()
        (tmp_path / "real" / "keep.txt").write_text("keep")
        target.symlink_to(tmp_path / "real")
    else:
        write_backup(target, [MemoryEntry("a", 1)])
        (target / "notes.txt").write_text("mine")
    before = {p.name: (p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*")}
    with pytest.raises(InvalidArgumentError, match=str(target)):
        write_backup(target, [MemoryEntry("b", 2)])
    after = {p.name: (p.read_bytes() if p.is_file() else None) for p in tmp_path.rglob("*")}
    assert after == before


def test_our_own_backup_and_an_empty_directory_can_be_written_over(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert write_backup(empty, [MemoryEntry("a", 1)])["count"] == 1
    first = read_backup(empty)[1]
    assert [e.key for e in first] == ["a"]
    assert write_backup(empty, [MemoryEntry("b", 2), MemoryEntry("c", 3)])["count"] == 2
    assert [e.key for e in read_backup(empty)[1]] == ["b", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_backup_store_refuses_foreign_directories_and_places_inside_the_store(
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    fill(store, "s")
    before = snapshot(store)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "a.txt").write_text("keep")
    with pytest.raises(InvalidArgumentError, match="not an agentmem store backup"):
        backup_store(store, precious)
    assert (precious / "a.txt").read_text() == "keep"
    for inside in (store, store / "backups" / "b", tmp_path):
        with pytest.raises(InvalidArgumentError, match="inside the store"):
            backup_store(store, inside)
    single = tmp_path / "single"
    write_backup(single, [MemoryEntry("a", 1)])  # a single-memory backup is not a store backup
    with pytest.raises(InvalidArgumentError, match="not an agentmem store backup"):
        backup_store(store, single)
    assert snapshot(store) == before


def test_the_cli_refuses_the_store_itself_as_a_backup_target(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agentmem_plugin.cli import EXIT_USAGE, app

    store = tmp_path / "store"
    fill(store, "s")
    before = snapshot(store)
    result = CliRunner().invoke(app, ["backup", str(store), str(store)], catch_exceptions=False)
    assert result.exit_code == EXIT_USAGE and "inside the store" in result.stderr
    assert snapshot(store) == before


# -- item 2: store backup and restore, in the library ----------------------------------------------------------


def test_backup_store_and_restore_store_round_trip_every_tier(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fill(store, "s")
    manifest = backup_store(store, tmp_path / "bk")
    assert manifest["count"] == 24 and len(manifest["parts"]) == 6
    parts = read_store_backup(tmp_path / "bk")
    assert all(isinstance(p, StoreBackupPart) for p in parts)
    assert {(p.namespace, p.tier) for p in parts} == {
        (ns, t) for ns in ("", "user/a") for t in TIERS
    }
    result = restore_store(tmp_path / "bk", tmp_path / "copy")
    assert result == RestoreResult(restored=24, skipped=0, replaced=0)
    assert snapshot(tmp_path / "copy") == snapshot(store)


def test_restore_store_replaces_everything_only_with_force(tmp_path: Path) -> None:
    fill(tmp_path / "new", "new", namespaces=("", "b"))
    backup_store(tmp_path / "new", tmp_path / "bk")
    store = tmp_path / "store"
    fill(store, "old")
    (store / "my-notes.txt").write_text("kept by the user")
    before = snapshot(store)
    with pytest.raises(InvalidArgumentError, match=r"holds 24 entries.*add --force"):
        restore_store(tmp_path / "bk", store)
    assert snapshot(store) == before
    result = restore_store(tmp_path / "bk", store, force=True)
    assert result.restored == 24 and result.replaced == 24
    assert snapshot(store) == snapshot(
        tmp_path / "new"
    )  # namespace "user/a" is gone with the old store
    assert (store / "my-notes.txt").read_text() == "kept by the user"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bk", "new", "store"]


def test_restore_store_skips_expired_entries(tmp_path: Path) -> None:
    entries = [MemoryEntry("live", 1), MemoryEntry("dead", 2, ttl=1, clock=lambda: 0.0)]
    write_backup(tmp_path / "bk", entries)
    result = restore_store(tmp_path / "bk", tmp_path / "s")
    assert (result.restored, result.skipped) == (1, 1)
    assert snapshot(tmp_path / "s") == {("", "long_term", "live"): (1, (), 0)}


def test_restore_store_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    write_backup(tmp_path / "bk", [MemoryEntry("a", 1)])
    other = tmp_path / "other"
    other.mkdir()
    (other / "file.txt").write_text("x")
    with pytest.raises(StoreCorruptError, match="not a store"):
        restore_store(tmp_path / "bk", other, force=True)
    assert listing(other) == {"file.txt": b"x"}
    (tmp_path / "afile").write_text("y")
    with pytest.raises(StoreCorruptError, match="is a file"):
        restore_store(tmp_path / "bk", tmp_path / "afile", force=True)


def test_restore_store_refuses_a_backup_inside_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fill(store, "s")
    backup_store(store, tmp_path / "bk")
    os.rename(tmp_path / "bk", store / "bk")
    with pytest.raises(InvalidArgumentError, match="inside the store"):
        restore_store(store / "bk", store, force=True)
    assert (store / "bk" / "agentmem-store.json").is_file()


def test_a_restore_that_fails_midway_leaves_the_old_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(tmp_path / "new", "new")
    backup_store(tmp_path / "new", tmp_path / "bk")
    store = tmp_path / "store"
    fill(store, "old")
    before = snapshot(store)
    calls = {"n": 0}
    real = MemoryManager.store_many

    def failing(self: MemoryManager, *args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(MemoryManager, "store_many", failing)
    with pytest.raises(OSError, match="No space left"):
        restore_store(tmp_path / "bk", store, force=True)
    monkeypatch.undo()
    assert snapshot(store) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bk", "new", "store"]


def test_a_restored_store_rebuilds_its_semantic_index(tmp_path: Path, fake_embedder: Any) -> None:
    """The replaced store's vectors go with it; the next process opening it with an embedder reindexes."""
    with MemoryManager(storage_path=tmp_path / "new") as mm:
        mm.store("fruit", "bananas and apples", memory_type="long_term")
    backup_store(tmp_path / "new", tmp_path / "bk")
    store = tmp_path / "store"
    with MemoryManager(storage_path=store, embedder=fake_embedder) as mm:
        mm.store("car", "a red sports car", memory_type="long_term")
        assert [h["key"] for h in mm.search("a red sports car", mode="semantic")] == ["car"]
    restore_store(tmp_path / "bk", store, force=True)
    assert not (store / "chroma").exists()
    # chromadb caches its client per path inside a process, so the store is reopened in a fresh one.
    script = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[2])
        from conftest import FakeHashEmbedder
        from agentmem_plugin.manager import MemoryManager
        with MemoryManager(storage_path=sys.argv[1], embedder=FakeHashEmbedder()) as mm:
            print([h["key"] for h in mm.search("bananas and apples", mode="semantic")])
        """
    )
    tests = str(Path(__file__).resolve().parents[1])
    result = subprocess.run(
        [sys.executable, "-c", script, str(store), tests],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['fruit']"


def test_encrypted_store_backup_needs_its_key(tmp_path: Path) -> None:
    from agentmem_plugin.tiers.archive import generate_key

    key = generate_key()
    fill(tmp_path / "s", "s")
    backup_store(tmp_path / "s", tmp_path / "bk", key=key)
    with pytest.raises(IntegrityError, match="encrypted"):
        restore_store(tmp_path / "bk", tmp_path / "r")
    with pytest.raises(IntegrityError, match="wrong key"):
        restore_store(tmp_path / "bk", tmp_path / "r", key=generate_key())
    assert not (tmp_path / "r").exists()
    assert restore_store(tmp_path / "bk", tmp_path / "r", key=key).restored == 24


def test_max_size_is_checked_and_enforced(tmp_path: Path) -> None:
    write_backup(tmp_path / "bk", [MemoryEntry(f"k{i}", "x" * 100) for i in range(10)])
    with pytest.raises(InvalidArgumentError, match="max_size"):
        read_backup(tmp_path / "bk", max_size=0)
    with pytest.raises(IntegrityError, match=r"more than (the limit of )?500 bytes"):
        read_backup(tmp_path / "bk", max_size=500)
    with pytest.raises(IntegrityError, match=r"more than (the limit of )?500 bytes"):
        read_store_backup(tmp_path / "bk", max_size=500)
    assert len(read_backup(tmp_path / "bk", max_size=MAX_BACKUP_SIZE)[1]) == 10


# -- item 10: every path read from a backup stays inside it ----------------------------------------------------


def _point_entries_at(backup: Path, name: str) -> None:
    manifest = orjson.loads((backup / "manifest.json").read_bytes())
    manifest["entries_file"] = name
    (backup / "manifest.json").write_bytes(orjson.dumps(manifest))


@pytest.mark.parametrize("how", ["../x", "absolute", "symlink", "nested/dir", ".."])
def test_a_manifest_cannot_point_outside_its_backup(tmp_path: Path, how: str) -> None:
    """The outside file is a valid entries file with the checksum the manifest expects: only the path is wrong."""
    backup = tmp_path / "bk"
    write_backup(backup, [MemoryEntry("planted", "from outside")])
    outside = tmp_path / "x"
    os.rename(backup / "entries.jsonl.zst", outside)
    if how == "../x":
        _point_entries_at(backup, "../x")
    elif how == "absolute":
        _point_entries_at(backup, str(outside))
    elif how == "symlink":
        (backup / "entries.jsonl.zst").symlink_to(outside)
    elif how == "nested/dir":
        (backup / "nested").mkdir()
        os.rename(outside, backup / "nested" / "dir")
        _point_entries_at(backup, "nested/dir")
    else:
        _point_entries_at(backup, "..")
    with pytest.raises(IntegrityError, match="entries_file") as info:
        read_backup(backup)
    assert "outside" in str(info.value) or "only a file name" in str(info.value)
    with MemoryManager() as mm:
        notes = mm.create_memory("notes", {"capacity": 10})
        notes.store("mine", "kept")
        with pytest.raises(IntegrityError):
            mm.restore_memory("notes", backup)
        assert notes.keys() == ["mine"]
    with pytest.raises(IntegrityError):
        restore_store(backup, tmp_path / "s")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("how", ["../elsewhere", "absolute", "symlink"])
def test_a_store_manifest_cannot_point_outside_its_backup(tmp_path: Path, how: str) -> None:
    fill(tmp_path / "s", "s", namespaces=("",))
    backup = tmp_path / "bk"
    backup_store(tmp_path / "s", backup)
    elsewhere = tmp_path / "elsewhere"
    os.rename(backup / "part-0000", elsewhere)
    manifest = orjson.loads((backup / "agentmem-store.json").read_bytes())
    if how == "../elsewhere":
        manifest["parts"][0]["dir"] = "../elsewhere"
    elif how == "absolute":
        manifest["parts"][0]["dir"] = str(elsewhere)
    else:
        (backup / "part-0000").symlink_to(elsewhere)
    (backup / "agentmem-store.json").write_bytes(orjson.dumps(manifest))
    with pytest.raises(IntegrityError, match="a part"):
        read_store_backup(backup)
    with pytest.raises(IntegrityError):
        restore_store(backup, tmp_path / "r")


def test_a_manifest_that_is_a_symlink_out_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real"
    write_backup(real, [MemoryEntry("a", 1)])
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "manifest.json").symlink_to(real / "manifest.json")
    with pytest.raises(IntegrityError, match="outside"):
        read_backup(fake)


def test_a_damaged_manifest_is_an_integrity_error(tmp_path: Path) -> None:
    write_backup(tmp_path / "bk", [MemoryEntry("a", 1)])
    for bad in (b"[]", b"{", b'{"format": "agentmem-backup", "version": 1, "count": "1"}'):
        (tmp_path / "bk" / "manifest.json").write_bytes(bad)
        with pytest.raises(IntegrityError, match="bk"):
            read_backup(tmp_path / "bk")
    fill(tmp_path / "s", "s", namespaces=("",))
    backup_store(tmp_path / "s", tmp_path / "sb")
    manifest = orjson.loads((tmp_path / "sb" / "agentmem-store.json").read_bytes())
    for parts in ("nope", [5], [{**manifest["parts"][0], "tier": "elsewhere"}],
                  [{**manifest["parts"][0], "namespace": "a//b"}]):
        (tmp_path / "sb" / "agentmem-store.json").write_bytes(
            orjson.dumps({**manifest, "parts": parts})
        )
        with pytest.raises(IntegrityError, match="sb"):
            read_store_backup(tmp_path / "sb")


# -- kill -9 at random moments ---------------------------------------------------------------------------------

RUNNER = textwrap.dedent(
    """
    import sys
    from agentmem_plugin.cli import main
    print("ready", flush=True)
    sys.exit(main(sys.argv[1:]))
    """
)


def _killed_run(args: list[str], delay: float) -> int | None:
    """Run ``agentmem *args`` in a subprocess; SIGKILL it *delay* seconds after its imports are done."""
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return proc.returncode


def _timed(args: list[str]) -> float:
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    start = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return time.monotonic() - start


@pytest.mark.slow
def test_kill_9_during_restore_leaves_the_old_or_the_new_store(tmp_path: Path) -> None:
    rng = random.Random(15_2)
    fill(tmp_path / "new", "new", n=40, namespaces=("", "b"))
    new = snapshot(tmp_path / "new")
    assert _timed(["backup", str(tmp_path / "new"), str(tmp_path / "bk")]) > 0
    store = tmp_path / "store"
    fill(store, "old", n=40)
    old = snapshot(store)
    backup_store(
        store, tmp_path / "old-bk"
    )  # to go back to the old store after a kill that came too late
    duration = _timed(["restore", str(tmp_path / "new-copy"), str(tmp_path / "bk")])
    outcomes = {"old": 0, "new": 0}
    for _ in range(8):
        _killed_run(
            ["restore", str(store), str(tmp_path / "bk"), "--force"], rng.uniform(0, duration)
        )
        now = snapshot(store)  # it opens, and is one of the two
        assert now in (old, new), f"a half-restored store: {len(now)} entries"
        outcomes["old" if now == old else "new"] += 1
        if now == new:
            restore_store(tmp_path / "old-bk", store, force=True)
            assert snapshot(store) == old
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    restore_store(tmp_path / "bk", store, force=True)  # the next restore tidies what kills left
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert snapshot(store) == new
    print(
        f"restore killed 8 times over {duration:.2f} s: {outcomes}, leftovers before tidying {leftovers}"
    )
    assert outcomes["old"] and outcomes["new"]  # the kills did land before and after the swap


@pytest.mark.slow
def test_kill_9_during_backup_leaves_the_old_or_the_new_backup(tmp_path: Path) -> None:
    rng = random.Random(15_1)
    fill(tmp_path / "a", "a", n=40)
    fill(tmp_path / "b", "b", n=40, namespaces=("", "c"))
    bk = tmp_path / "bk"
    backup_store(tmp_path / "a", bk)

    def content() -> set[tuple[str, str, str]]:
        return {(p.namespace, p.tier, e.key) for p in read_store_backup(bk) for e in p.entries}

    old = content()
    duration = _timed(["backup", str(tmp_path / "b"), str(tmp_path / "probe")])
    backup_store(tmp_path / "b", tmp_path / "probe")
    new = {
        (p.namespace, p.tier, e.key)
        for p in read_store_backup(tmp_path / "probe")
        for e in p.entries
    }
    outcomes = {"old": 0, "new": 0}
    for _ in range(8):
        _killed_run(["backup", str(tmp_path / "b"), str(bk)], rng.uniform(0, duration))
        now = content()
        assert now in (old, new)
        outcomes["old" if now == old else "new"] += 1
        if now == new:
            backup_store(tmp_path / "a", bk)
    print(f"backup killed 8 times over {duration:.2f} s: {outcomes}")
    assert snapshot(tmp_path / "a") and snapshot(tmp_path / "b")
