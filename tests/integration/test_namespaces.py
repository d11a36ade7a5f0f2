"""MemoryManager.with_namespace / namespaces(), and the embed_text hook of the semantic index."""

from __future__ import annotations

from typing import Any

import pytest

from agentmem_plugin import MemoryManager
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import InvalidArgumentError, InvalidKeyError, StorageError


@pytest.fixture(params=["memory", "disk"])
def manager(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    mm = MemoryManager(
        short_term_limit=2, storage_path=None if request.param == "memory" else tmp_path
    )
    yield mm
    mm.close()


def test_views_are_isolated_and_cached(manager: MemoryManager) -> None:
    alice = manager.with_namespace(("user", "alice"))
    bob = manager.with_namespace("user/bob")
    assert alice is manager.with_namespace("user/alice")
    assert manager.with_namespace(()) is manager
    alice.store("color", "blue", tags=["pref"])
    bob.store("color", "red")
    for i in range(5):  # overflow alice's short-term into her long-term
        alice.store(f"note{i}", f"alice note {i}")
    assert alice.retrieve("color") == "blue"
    assert bob.retrieve("color") == "red"
    assert manager.retrieve("color") is None
    assert alice.tier_of("note0") == "long_term"
    assert bob.tier_of("note0") is None
    assert [h["key"] for h in bob.search("note", mode="keyword")] == []
    assert "note0" not in [h["key"] for h in bob.search("note", limit=50)]  # by meaning too: never alice's
    assert {h["key"] for h in alice.search("note")} >= {"note0", "note4"}
    assert bob.delete("note0") is False
    assert alice.exists("note0")


def test_namespaces_lists_views_with_entries(manager: MemoryManager) -> None:
    manager.with_namespace("user/alice").store("a", 1)
    manager.with_namespace("user/bob").store("b", 1, memory_type="long_term")
    manager.with_namespace("users/x").store("c", 1)
    manager.with_namespace("empty")
    assert manager.namespaces() == ["user/alice", "user/bob", "users/x"]
    assert manager.namespaces("user") == ["user/alice", "user/bob"]
    bob = manager.with_namespace("user/bob")
    assert bob.namespaces() == [""]  # a view lists only its own subtree, relative to itself
    bob.with_namespace("notes").store("n", 1)
    assert bob.namespaces() == ["", "notes"]
    assert bob.namespaces("notes") == ["notes"]
    assert manager.namespaces("user") == ["user/alice", "user/bob", "user/bob/notes"]


def test_a_view_never_reaches_outside_its_namespace(manager: MemoryManager) -> None:
    alice = manager.with_namespace(("user", "alice"))
    manager.with_namespace(("user", "bob")).store("pin", "1234")
    escaped = alice.with_namespace(("user", "bob"))  # nests: user/alice/user/bob
    assert escaped.namespace == "user/alice/user/bob"
    assert escaped.retrieve("pin") is None
    assert alice.with_namespace(()) is alice


def test_views_reopen_from_disk(tmp_path: Any) -> None:
    with MemoryManager(storage_path=tmp_path) as mm:
        mm.with_namespace("user/alice").store("color", "blue", memory_type="long_term")
        mm.with_namespace("user/bob").store("color", "red")
    with MemoryManager(storage_path=tmp_path) as mm:
        assert mm.namespaces() == ["user/alice", "user/bob"]
        assert mm.with_namespace("user/alice").retrieve("color") == "blue"
        assert mm.with_namespace("user/bob").retrieve("color") == "red"


@pytest.mark.parametrize("bad", [("user", ""), ("a/b", "c"), ("user", 3)])
def test_bad_namespace_is_refused(manager: MemoryManager, bad: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="namespace"):
        manager.with_namespace(bad)
    assert manager.namespaces() == []


def test_closing_the_root_closes_views(tmp_path: Any) -> None:
    mm = MemoryManager(storage_path=tmp_path)
    view = mm.with_namespace("v")
    view.store("k", "v", memory_type="long_term")
    mm.close()
    with pytest.raises(StorageError, match="closed"):
        view.store("k2", "v2", memory_type="long_term")


# -- embed_text --------------------------------------------------------------------------------------------------


def _only_title(entry: MemoryEntry) -> str | None:
    if entry.metadata.get("index") is False:
        return None
    value = entry.value
    return value.get("title") if isinstance(value, dict) else str(value)


def test_embed_text_chooses_what_is_embedded(fake_embedder: Any) -> None:
    mm = MemoryManager(embedder=fake_embedder, embed_text=_only_title)
    mm.store("d1", {"title": "alpha", "body": "long body text"}, memory_type="long_term")
    mm.store(
        "d2", {"title": "beta", "body": "alpha"}, memory_type="long_term", metadata={"index": False}
    )
    mm.search("x", mode="semantic")  # syncs the index
    assert "alpha" in fake_embedder.embedded
    assert all("body" not in t for t in fake_embedder.embedded)
    # the fake embedder gives equal vectors to equal texts: "alpha" finds d1 with similarity 1
    hits = mm.search("alpha", mode="semantic", memory_types=["long_term"])
    assert [h["key"] for h in hits] == ["d1"]  # d2 is not in the semantic index at all
    assert hits[0]["similarity"] == pytest.approx(1.0)
    # still found by keyword
    assert "d2" in [h["key"] for h in mm.search("alpha", mode="keyword")]
    # an update that opts out removes the vector
    mm.store("d1", {"title": "alpha"}, memory_type="long_term", metadata={"index": False})
    assert mm.search("alpha", mode="semantic", memory_types=["long_term"]) == []
    mm.close()


def test_views_share_embed_text(fake_embedder: Any) -> None:
    mm = MemoryManager(embedder=fake_embedder, embed_text=_only_title)
    view = mm.with_namespace("v")
    view.store("d", {"title": "gamma", "body": "delta"}, memory_type="long_term")
    assert [h["key"] for h in view.search("gamma", mode="semantic")] == ["d"]
    assert "delta" not in fake_embedder.embedded
    mm.close()


@pytest.mark.parametrize("on_disk", [False, True])
def test_promoting_an_entry_that_short_term_evicts_at_once_keeps_it(
    tmp_path: Any, on_disk: bool
) -> None:
    """Regression: a promoted low-priority entry was evicted back to long-term, then deleted from there."""
    mm = MemoryManager(short_term_limit=2, storage_path=tmp_path if on_disk else None, cache_size=0)
    mm.store("low", "low priority", memory_type="long_term", priority=0)
    mm.store("high1", "h1", priority=9)
    mm.store("high2", "h2", priority=9)
    assert mm.retrieve("low") == "low priority"
    assert mm.tier_of("low") == "long_term"  # it overflowed straight back
    assert mm.retrieve("low") == "low priority"
    assert {mm.tier_of(k) for k in ("high1", "high2")} == {"short_term"}
    mm.close()


async def test_get_many_reads_every_tier_without_moving(manager: MemoryManager) -> None:
    manager.store("s", "short")
    manager.store("l", "long", memory_type="long_term")
    manager.store("e", "archived", memory_type="external")
    got = manager.get_many(["e", "missing", "l", "s", "l"])
    assert [None if g is None else g.value for g in got] == [
        "archived",
        None,
        "long",
        "short",
        "long",
    ]
    assert [manager.tier_of(k) for k in ("s", "l", "e")] == ["short_term", "long_term", "external"]
    got = await manager.aget_many(["l"], promote=True)
    assert got[0] is not None and got[0].value == "long"
    assert manager.tier_of("l") == "short_term"
    with pytest.raises(InvalidKeyError):
        manager.get_many(["ok", ""])


def test_cleanup_removes_expired_entries_from_every_tier(clock: Any) -> None:
    mm = MemoryManager(short_term_limit=5, clock=clock)
    mm.store("s", "short", ttl=10)
    mm.store("l", "long", ttl=10, memory_type="long_term")
    mm.store("e", "archived", ttl=10, memory_type="external")
    mm.store("keep", "forever", memory_type="long_term")
    assert mm.cleanup() == {"short_term": 0, "long_term": 0, "external": 0}
    clock.advance(11)
    assert mm.cleanup() == {"short_term": 1, "long_term": 1, "external": 1}
    assert mm.keys() == ["keep"]
    mm.close()


def test_a_closed_view_is_replaced_and_threads_share_one_view(manager: MemoryManager) -> None:
    import threading

    with manager.with_namespace("v") as view:
        view.store("k", "kept", memory_type="long_term")
    fresh = manager.with_namespace("v")
    assert fresh is not view
    assert fresh.retrieve("k") == "kept"
    got: list[MemoryManager] = []
    threads = [
        threading.Thread(target=lambda: got.append(manager.with_namespace("t"))) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(v) for v in got}) == 1
