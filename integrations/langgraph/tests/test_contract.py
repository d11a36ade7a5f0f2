"""BaseStore contract: the behaviours LangGraph documents (``langgraph.store.base``) and its SQLite/PostgreSQL
store tests check, written from those documents, run on three backends: in memory, a SQLite directory, and
Redis + PostgreSQL servers.

Embeddings here are a FAKE character-count model (meaning does not matter: the scores are checked against the
formula LangGraph's stores use); the real MiniLM is exercised in test_langgraph_index.py.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from agentmem_plugin import MemoryManager
from langgraph.store.base import GetOp, InvalidNamespaceError, ListNamespacesOp, PutOp, SearchOp

from agentmem_langgraph import AgentMemStore, AsyncAgentMemStore

REDIS = "redis://127.0.0.1:6379/0"
POSTGRES = "postgresql://127.0.0.1:5432/test"


class FakeCharEmbed:
    """A FAKE embedding: counts of the letters a-h (8 dimensions, not normalized: l2 and dot products differ)."""

    def __call__(self, texts: list[str]) -> list[list[float]]:
        return [[float(t.count(c)) + 0.5 for c in "abcdefgh"] for t in texts]


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(
        sum(x * x for x in a) * sum(y * y for y in b)
    )


@pytest.fixture(params=["memory", "disk", "servers"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, object]]:
    """Where the store lives: keyword arguments for AgentMemStore."""
    if request.param == "memory":
        yield {}
    elif request.param == "disk":
        yield {"storage_path": tmp_path / "store"}
    else:
        root = MemoryManager(
            short_term=REDIS,
            long_term=POSTGRES,
            long_term_limit=2**62,
            namespace=f"c{uuid.uuid4().hex[:10]}",
        )
        yield {"manager": root}
        root.clear_all()
        root.close()


def _store(backend: dict[str, object], **options: object) -> AgentMemStore:
    if "manager" in backend:
        options.pop("clock", None)
    return AgentMemStore(**backend, **options)  # type: ignore[arg-type]


def test_put_get_update_delete(backend: dict[str, object]) -> None:
    with _store(backend) as store:
        store.put(("test", "docs"), "d1", {"title": "A", "n": 1})
        item = store.get(("test", "docs"), "d1")
        assert item is not None and (item.namespace, item.key, item.value) == (
            ("test", "docs"),
            "d1",
            {"title": "A", "n": 1},
        )
        store.put(("test", "docs"), "d1", {"title": "B"})
        again = store.get(("test", "docs"), "d1")
        assert (
            again is not None
            and again.value == {"title": "B"}
            and again.created_at == item.created_at
        )
        assert store.get(("test", "other"), "d1") is None  # another namespace
        store.delete(("test", "docs"), "d1")
        assert store.get(("test", "docs"), "d1") is None


def test_batch_reads_see_the_state_before_its_writes_and_keep_order(
    backend: dict[str, object],
) -> None:
    with _store(backend) as store:
        store.put(("b",), "k", {"v": 1})
        results = store.batch(
            [
                PutOp(("b",), "k", {"v": 2}),
                GetOp(("b",), "k"),
                SearchOp(("b",)),
                PutOp(("b",), "new", {"v": 3}),
                ListNamespacesOp(),
            ]
        )
        assert results[0] is None and results[3] is None
        assert results[1].value == {"v": 1}  # type: ignore[union-attr]
        assert [i.key for i in results[2]] == ["k"]  # type: ignore[union-attr]
        assert results[4] == [("b",)]
        assert store.get(("b",), "k").value == {"v": 2}  # type: ignore[union-attr]


def test_list_prefixes_are_accepted_like_the_sql_stores(backend: dict[str, object]) -> None:
    with _store(backend) as store:
        store.put(["test", "docs"], "d1", {"author": "Alice"})  # type: ignore[arg-type]
        store.put(("test", "img"), "i1", {"author": "Bob"})
        assert store.get(("test", "docs"), "d1") is not None
        assert len(store.search(["test"])) == 2  # type: ignore[arg-type]
        assert [i.key for i in store.search(["test", "docs"])] == ["d1"]  # type: ignore[arg-type]
        assert [i.key for i in store.search(["test"], filter={"author": "Bob"})] == ["i1"]  # type: ignore[arg-type]
        assert len(store.list_namespaces(prefix=["test"])) == 2  # type: ignore[arg-type]


def test_namespace_rules(backend: dict[str, object]) -> None:
    with _store(backend) as store:
        for bad in [(), ("a.b",), ("",), ("langgraph", "x"), ("a", 1)]:
            with pytest.raises(InvalidNamespaceError):
                store.put(bad, "k", {"v": 1})  # type: ignore[arg-type]
        store.put(("users", "a/b"), "k", {"v": 1})  # a "/" in a label is fine
        assert store.list_namespaces() == [("users", "a/b")]


def test_search_prefix_segments_filters_and_pages(backend: dict[str, object]) -> None:
    with _store(backend) as store:
        store.put(("user",), "a", {"score": 4.5, "color": "red"})
        store.put(("user", "x"), "b", {"score": 3.0, "color": "red"})
        store.put(("username",), "c", {"score": 5.0, "color": "blue"})
        assert {i.key for i in store.search(("user",))} == {"a", "b"}  # "user" is not "username"
        assert {i.key for i in store.search(())} == {"a", "b", "c"}  # the empty prefix: everything
        assert [
            i.key for i in store.search((), filter={"score": {"$gt": 4.0}, "color": "red"})
        ] == ["a"]
        assert {i.key for i in store.search((), filter={"color": {"$ne": "red"}})} == {"c"}
        page1 = store.search((), limit=2)
        page2 = store.search((), limit=2, offset=2)
        assert len(page1) == 2 and len(page2) == 1
        assert {i.key for i in page1 + page2} == {"a", "b", "c"}
        assert all(i.score is None for i in page1)  # no query: no score


def test_list_namespaces_conditions_depth_and_pages(backend: dict[str, object]) -> None:
    with _store(backend) as store:
        for ns in [("a", "b", "c"), ("a", "b", "d"), ("a", "e", "c"), ("f", "b", "c")]:
            store.put(ns, "k", {"v": 1})
        assert store.list_namespaces(prefix=("a",)) == [
            ("a", "b", "c"),
            ("a", "b", "d"),
            ("a", "e", "c"),
        ]
        assert store.list_namespaces(suffix=("c",)) == [
            ("a", "b", "c"),
            ("a", "e", "c"),
            ("f", "b", "c"),
        ]
        assert store.list_namespaces(prefix=("a", "*", "c")) == [("a", "b", "c"), ("a", "e", "c")]
        assert store.list_namespaces(max_depth=2) == [("a", "b"), ("a", "e"), ("f", "b")]
        assert store.list_namespaces(limit=2, offset=1) == [("a", "b", "d"), ("a", "e", "c")]


@pytest.mark.parametrize("distance", ["cosine", "inner_product", "l2"])
def test_scores_are_the_distance_types_similarities(
    backend: dict[str, object], distance: str
) -> None:
    embed = FakeCharEmbed()
    index = {"embed": embed, "dims": 8, "fields": ["key0"], "distance_type": distance}
    with _store(backend, index=index) as store:
        store.put(
            ("test",), "doc", {"key0": "aaa"}, index=["key0", "key1"]
        )  # key1 is missing: skipped
        for query in ["aaa", "bbb", "abcd", "poisson"]:
            (hit,) = store.search((), query=query)
            q, d = embed([query])[0], embed(["aaa"])[0]
            expected = {
                "cosine": _cos(q, d),
                "inner_product": sum(x * y for x, y in zip(q, d)),
                "l2": -math.dist(q, d),
            }[distance]
            assert hit.score == pytest.approx(
                expected, abs=1e-3
            )  # absolute: the same in every call


def test_each_path_and_element_is_embedded_and_the_best_one_scores(
    backend: dict[str, object],
) -> None:
    embed = FakeCharEmbed()
    index = {"embed": embed, "dims": 8, "fields": ["title", "items[*].text"]}
    with _store(backend, index=index) as store:
        store.put(("d",), "k", {"title": "hhhh", "items": [{"text": "aaaa"}, {"text": "cccc"}]})
        store.put(("d",), "plain", {"title": "gggg"})
        for query, best in [("aaaa", "aaaa"), ("cccc", "cccc"), ("hhhh", "hhhh")]:
            hits = {i.key: i.score for i in store.search(("d",), query=query)}
            assert hits["k"] == pytest.approx(_cos(embed([query])[0], embed([best])[0]), abs=1e-4)
            assert hits["k"] == pytest.approx(1.0, abs=1e-4)  # one element matches exactly
        assert store.search(("d",), query="gggg")[0].key == "plain"


def test_unembedded_items_follow_with_no_score(backend: dict[str, object]) -> None:
    with _store(backend, index={"embed": FakeCharEmbed(), "dims": 8, "fields": ["text"]}) as store:
        store.put(("d",), "ranked", {"text": "abc"})
        store.put(("d",), "off", {"text": "abc"}, index=False)
        store.put(("d",), "empty", {"other": "abc"})  # no text at the path
        results = store.search(("d",), query="abc")
        assert results[0].key == "ranked" and results[0].score is not None
        assert {(r.key, r.score) for r in results[1:]} == {("off", None), ("empty", None)}


def test_hybrid_is_an_explicit_option(backend: dict[str, object]) -> None:
    with _store(backend, index={"embed": FakeCharEmbed(), "dims": 8}, mode="hybrid") as store:
        assert store.mode == "hybrid"
        store.put(("d",), "k", {"text": "zebra crossing"})
        store.put(("d",), "other", {"text": "unrelated words"})
        assert store.search(("d",), query="zebra")[0].key == "k"


def test_omit_expired_both_ways(backend: dict[str, object]) -> None:
    from lg_fakes import FakeClock

    if "manager" in backend:
        pytest.skip(
            "the servers' manager brings its own clock; TTL is covered in memory and on disk"
        )
    for omit, visible in [(False, True), (True, False)]:
        clock = FakeClock()
        with _store(backend, ttl={"omit_expired": omit}, clock=clock) as store:
            store.put(("t", str(omit)), "k", {"v": 1}, ttl=1)
            clock.advance(61)
            assert (store.get(("t", str(omit)), "k", refresh_ttl=False) is not None) is visible
            assert (len(store.search(("t", str(omit)), refresh_ttl=False)) == 1) is visible
            assert (("t", str(omit)) in store.list_namespaces()) is visible


def test_a_get_in_a_new_namespace_lists_no_namespaces(
    backend: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    with _store(backend) as store:
        store.put(("a",), "k", {"v": 1})
        calls: list[object] = []
        listing = store.manager.namespaces
        monkeypatch.setattr(store.manager, "namespaces", lambda *a: calls.append(a) or listing(*a))
        assert store.get(("never", "opened"), "k") is None
        assert store.get(("a",), "k") is not None
        assert calls == []  # a get touches its own namespace only


async def test_the_async_api_and_store(backend: dict[str, object]) -> None:
    kwargs = dict(backend)
    async with AsyncAgentMemStore(**kwargs) as store:  # type: ignore[arg-type]
        await store.aput(("x",), "k", {"v": 1})
        assert (await store.aget(("x",), "k")).value == {"v": 1}  # type: ignore[union-attr]
        assert [i.key for i in await store.asearch(("x",))] == ["k"]
        assert await store.alist_namespaces() == [("x",)]
        assert await store.sweep_ttl() == 0
        await store.adelete(("x",), "k")
        assert await store.aget(("x",), "k") is None
