"""The manager's cache of namespace views (``view_cache_size``): bounded, never duplicating, never losing.

Each view's tier set holds the lock that orders this process's moves and writes in its namespace and, with the
in-process buffer, the namespace's short-term entries: the cache may drop a view only when nobody holds it and
after its buffer has moved to long-term, and asking again for a namespace whose view lives returns that view.
"""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentmem_plugin import MemoryManager
from agentmem_plugin.errors import InvalidArgumentError, StorageError


@pytest.fixture(params=["memory", "disk"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Path | None:
    """None: the in-process buffer over in-memory SQLite; a directory: both tiers in one SQLite file."""
    return None if request.param == "memory" else tmp_path


def _manager(where: Path | None, size: int, **kwargs: Any) -> MemoryManager:
    return MemoryManager(storage_path=where, embedder=None, view_cache_size=size, **kwargs)


@pytest.fixture
def small(where: Path | None) -> Iterator[MemoryManager]:
    mm = _manager(where, 3)
    yield mm
    mm.close()


def _alive(refs: list[weakref.ref[MemoryManager]]) -> int:
    gc.collect()
    return sum(r() is not None for r in refs)


def test_the_cache_keeps_at_most_view_cache_size_views_nobody_holds(small: MemoryManager) -> None:
    refs = []
    for i in range(20):
        view = small.with_namespace(f"n{i}")
        view.store("k", i)
        refs.append(weakref.ref(view))
        del view
    assert _alive(refs) == 3
    assert [r() is not None for r in refs[-3:]] == [True, True, True]  # the most recently used ones


def test_a_view_still_held_is_never_opened_twice(small: MemoryManager) -> None:
    held = small.with_namespace("user/alice")
    held.store("color", "blue")
    for i in range(20):  # pushes "user/alice" out of the cache
        small.with_namespace(f"other{i}").store("k", i)
    again = small.with_namespace(("user", "alice"))
    assert again is held
    assert again.tiers is held.tiers  # one tier set: one lock, one buffer
    held.store("color", "green")
    assert small.with_namespace("user/alice").retrieve("color") == "green"


def _open_views(root: MemoryManager) -> int:
    """Count the views of *root* alive in this process (its registry holds every one weakly)."""
    gc.collect()
    return len(root._live)


def test_eviction_never_loses_an_entry(small: MemoryManager) -> None:
    for i in range(30):
        view = small.with_namespace(f"n{i}")
        view.store_many({f"k{j}": (i, j) for j in range(5)})  # short-term: the buffer in memory
    del view
    assert _open_views(small) == 3  # bounded although every buffer held entries
    for i in range(30):
        view = small.with_namespace(f"n{i}")
        assert view.get_many([f"k{j}" for j in range(5)], promote=False) is not None
        assert [view.retrieve(f"k{j}") for j in range(5)] == [[i, j] for j in range(5)]
    assert small.namespaces() == [f"n{i}" for i in sorted(range(30), key=str)]


def test_a_buffer_written_after_its_view_left_the_cache_is_kept(where: Path | None) -> None:
    mm = _manager(where, 1)
    try:
        held = mm.with_namespace("late")
        mm.with_namespace(
            "other"
        )  # "late" leaves the cache (its buffer consolidated), but is still held
        held.store("k", "written after eviction")
        tiers = held.tiers
        del held  # collected now, its buffer holding an entry
        gc.collect()
        assert mm.namespaces("late") == ["late"]
        again = mm.with_namespace("late")
        # the buffer's tiers are reopened, never a second buffer; SQLite's are released and opened afresh
        assert (again.tiers is tiers) is (where is None)
        assert again.retrieve("k") == "written after eviction"
    finally:
        mm.close()


def test_a_view_leaving_the_cache_moves_only_an_in_process_buffer(where: Path | None) -> None:
    mm = _manager(where, 1)
    try:
        mm.with_namespace("a").store("k", 1)
        mm.with_namespace("b")
        # the buffer is consolidated into long-term; a SQLite short-term outlives the view as it is
        assert mm.with_namespace("a").tier_of("k") == (
            "long_term" if where is None else "short_term"
        )
    finally:
        mm.close()


def test_a_collected_view_releases_its_own_tiers_not_the_shared_connection(
    where: Path | None,
) -> None:
    mm = _manager(where, 1)
    try:
        view = mm.with_namespace("gone")
        view.store("k", 1, memory_type="long_term")
        tiers = view.tiers
        ref = weakref.ref(view)
        del view
        mm.with_namespace(
            "next"
        )  # "gone" leaves the cache, nobody holds it: collected and released
        gc.collect()
        assert ref() is None
        with pytest.raises(StorageError, match="closed"):
            tiers.long.get("k")
        mm.store(
            "root", 1, memory_type="long_term"
        )  # the root's connection, shared by views, stays open
        assert mm.retrieve("root") == 1
        assert mm.with_namespace("gone").retrieve("k") == 1
    finally:
        mm.close()


def test_a_zero_cache_keeps_views_only_while_held(where: Path | None) -> None:
    mm = _manager(where, 0)
    try:
        held = mm.with_namespace("a")
        assert mm.with_namespace("a") is held
        ref = weakref.ref(held)
        held.store("k", 1)
        del held
        gc.collect()
        assert ref() is None
        assert mm.with_namespace("a").retrieve("k") == 1
        assert mm.namespaces() == ["a"]
    finally:
        mm.close()


def test_views_inherit_the_bound_and_nested_views_share_the_roots_cache() -> None:
    mm = MemoryManager(embedder=None, view_cache_size=2)
    try:
        alice = mm.with_namespace("user/alice")
        notes = alice.with_namespace("notes")
        assert notes is mm.with_namespace("user/alice/notes")
        assert alice._options["view_cache_size"] == 2
        refs = [weakref.ref(alice.with_namespace(f"n{i}")) for i in range(5)]
        assert _alive(refs) == 2
    finally:
        mm.close()


def test_threads_asking_for_namespaces_at_once_share_one_view_each() -> None:
    mm = MemoryManager(embedder=None, view_cache_size=4)
    seen: dict[str, set[int]] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            held = {}
            for step in range(200):
                ns = f"n{(seed * 7 + step) % 12}"
                view = mm.with_namespace(ns)
                view.store(f"k{seed}-{step}", step)
                held[ns] = (
                    view  # this thread holds every view it used: never two objects per namespace
                )
                with lock:
                    seen.setdefault(ns, set()).add(id(view))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert all(len(ids) == 1 for ids in seen.values()), seen
        for seed in range(4):
            for step in range(200):
                ns = f"n{(seed * 7 + step) % 12}"
                assert mm.with_namespace(ns).retrieve(f"k{seed}-{step}") == step
    finally:
        mm.close()


def test_closing_the_root_closes_every_view() -> None:
    mm = MemoryManager(embedder=None, view_cache_size=2)
    held = mm.with_namespace("held")
    cached = mm.with_namespace("cached")
    mm.close()
    for view in (held, cached):
        with pytest.raises(StorageError, match="closed"):
            view.long_tier.get("k")


def test_a_closed_view_is_opened_afresh() -> None:
    with MemoryManager(embedder=None) as mm:
        view = mm.with_namespace("a")
        view.store("k", 1, memory_type="long_term")
        view.close()
        fresh = mm.with_namespace("a")
        assert fresh is not view
        assert fresh.retrieve("k") == 1


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True, None])
def test_a_bad_view_cache_size_is_refused_naming_it(bad: object) -> None:
    with pytest.raises(InvalidArgumentError, match="view_cache_size"):
        MemoryManager(embedder=None, view_cache_size=bad)  # type: ignore[arg-type]


def test_a_view_whose_temporary_archive_holds_entries_is_kept() -> None:
    # without storage_path each view archives into a temporary directory removed when its tiers close
    with MemoryManager(embedder=None, view_cache_size=1, long_term_limit=1) as mm:
        view = mm.with_namespace("a")
        for i in range(3):
            view.store(f"k{i}", i, memory_type="long_term")
        assert view.tier_of("k0") == "external"
        del view
        for i in range(5):
            mm.with_namespace(f"other{i}")
        assert [mm.with_namespace("a").retrieve(f"k{i}") for i in range(3)] == [0, 1, 2]
