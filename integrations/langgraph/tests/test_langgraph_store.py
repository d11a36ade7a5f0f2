"""The BaseStore contract, checked against LangGraph's own InMemoryStore where they must agree.

Every test runs on an in-memory and an on-disk store (the ``where`` fixture). The namespace-listing cases are
those of LangGraph's ``libs/checkpoint/tests/test_store.py``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from agentmem_plugin.errors import (
    InvalidArgumentError,
    InvalidKeyError,
    SerializationError,
    StorageError,
)
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchItem,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore
from lg_fakes import FakeClock

from agentmem_langgraph import AgentMemStore


def _keys(items: list[SearchItem]) -> list[tuple[tuple[str, ...], str]]:
    return [(item.namespace, item.key) for item in items]


# -- put / get / delete ---------------------------------------------------------------------------------------


def test_put_get_delete_round_trip(store: AgentMemStore) -> None:
    value = {"text": "likes jazz", "n": 3, "nested": {"tags": ["a", "b"]}, "ok": True, "none": None}
    store.put(("users", "u1"), "prefs", value)
    item = store.get(("users", "u1"), "prefs")
    assert isinstance(item, Item)
    assert (item.namespace, item.key, item.value) == (("users", "u1"), "prefs", value)
    assert isinstance(item.created_at, datetime)
    assert item.created_at.tzinfo is timezone.utc
    assert item.updated_at == item.created_at
    store.delete(("users", "u1"), "prefs")
    assert store.get(("users", "u1"), "prefs") is None
    store.delete(("users", "u1"), "never-there")  # deleting a missing item is not an error
    store.delete(("nobody",), "x")


def test_items_are_long_term_entries_with_timestamps_in_metadata(store: AgentMemStore) -> None:
    store.put(("docs",), "d1", {"text": "hello"})
    view = store.manager.with_namespace(("docs",))
    assert view.tier_of("d1") == "long_term"
    store.get(("docs",), "d1")
    assert view.tier_of("d1") == "long_term"  # reads do not promote items out of long-term
    meta = view.long_tier.get("d1", touch=False).metadata
    assert set(meta) == {"_lg_created_at", "_lg_updated_at"}


def test_update_keeps_created_at_and_moves_updated_at(tmp_path: Path, clock: FakeClock) -> None:
    with AgentMemStore(tmp_path / "s", clock=clock) as store:
        store.put(("a",), "k", {"v": 1})
        first = store.get(("a",), "k")
        clock.advance(90)
        store.put(("a",), "k", {"v": 2})
        second = store.get(("a",), "k")
    assert first is not None and second is not None
    assert second.value == {"v": 2}
    assert (
        second.created_at
        == first.created_at
        == datetime.fromtimestamp(clock.now - 90, timezone.utc)
    )
    assert second.updated_at == datetime.fromtimestamp(clock.now, timezone.utc)


def test_get_of_a_missing_namespace_opens_nothing(store: AgentMemStore) -> None:
    assert store.get(("ghost", "town"), "k") is None
    assert store.manager.namespaces() == []
    assert store.list_namespaces() == []


def test_values_are_copies(store: AgentMemStore) -> None:
    value = {"list": [1, 2]}
    store.put(("a",), "k", value)
    value["list"].append(3)
    item = store.get(("a",), "k")
    assert item is not None and item.value == {"list": [1, 2]}
    item.value["list"].append(4)
    assert store.get(("a",), "k").value == {"list": [1, 2]}  # type: ignore[union-attr]


def test_root_label_langgraph_allowed_through_batch_only(store: AgentMemStore) -> None:
    doc = {"foo": "bar"}
    with pytest.raises(InvalidNamespaceError):
        store.put(("langgraph", "foo"), "bar", doc)
    store.batch([PutOp(("langgraph", "foo"), "bar", doc)])
    assert store.get(("langgraph", "foo"), "bar").value == doc  # type: ignore[union-attr]
    store.put(("foo", "langgraph", "foo"), "bar", doc)
    assert store.search(("foo", "langgraph", "foo"))[0].value == doc


# -- namespaces: escaping, isolation -------------------------------------------------------------------------------


def test_labels_with_slashes_and_percents_are_escaped_reversibly(store: AgentMemStore) -> None:
    tricky = [("a/b",), ("a", "b"), ("a%2Fb",), ("100%", "x/y/z")]
    for i, ns in enumerate(tricky):
        store.put(ns, "k", {"i": i})
    for i, ns in enumerate(tricky):
        assert store.get(ns, "k").value == {"i": i}  # type: ignore[union-attr]
    assert sorted(store.list_namespaces()) == sorted(tricky)
    assert [item.value["i"] for item in store.search(("a",))] == [1]  # ("a/b",) is not under ("a",)


def test_namespaces_are_isolated_and_prefix_search_spans_them(store: AgentMemStore) -> None:
    store.put(("users", "alice"), "k", {"owner": "alice"})
    store.put(("users", "bob"), "k", {"owner": "bob"})
    store.put(("usersx",), "k", {"owner": "nobody"})
    assert store.get(("users", "alice"), "k").value == {"owner": "alice"}  # type: ignore[union-attr]
    assert [i.value["owner"] for i in store.search(("users", "bob"))] == ["bob"]
    assert sorted(i.value["owner"] for i in store.search(("users",))) == ["alice", "bob"]
    assert len(store.search(())) == 3


def test_store_over_a_namespaced_manager_roots_everything_there(tmp_path: Path) -> None:
    from agentmem_plugin import MemoryManager

    with MemoryManager(storage_path=tmp_path / "mm") as mm:
        store = AgentMemStore(manager=mm.with_namespace("app"))
        store.put(("users", "u1"), "k", {"v": 1})
        mm.with_namespace("other").store("x", {"v": 2}, memory_type="long_term")
        assert store.list_namespaces() == [("users", "u1")]
        assert "app/users/u1" in mm.namespaces()
        assert [i.value for i in store.search(())] == [{"v": 1}]
        store.close()
        assert mm.with_namespace("app/users/u1").retrieve("k") == {"v": 1}  # the manager stays open


# -- search without a query -----------------------------------------------------------------------------------


def test_search_filters_like_inmemorystore(store: AgentMemStore) -> None:
    reference = InMemoryStore()
    docs = [
        ("doc1", {"text": "red apple", "color": "red", "score": 4.5, "meta": {"kind": "fruit"}}),
        ("doc2", {"text": "red car", "color": "red", "score": 3.0, "meta": {"kind": "vehicle"}}),
        ("doc3", {"text": "green apple", "color": "green", "score": 4.0, "tags": ["x", "y"]}),
        ("doc4", {"text": "blue car", "color": "blue", "score": 3.5}),
    ]
    for s in (store, reference):
        for key, value in docs:
            s.put(("test",), key, value)
    filters: list[dict[str, Any]] = [
        {"color": "red"},
        {"score": {"$gt": 3.2}},
        {"score": {"$gte": 4.0}, "color": "green"},
        {"score": {"$lt": 4.0}},
        {"score": {"$lte": 3.5}},
        {"color": {"$ne": "red"}},
        {"color": {"$eq": "blue"}},
        {"meta": {"kind": "fruit"}},
        {"tags": ["x", "y"]},
        {"color": "purple"},
    ]
    for flt in filters:
        ours = sorted(i.key for i in store.search(("test",), filter=flt))
        theirs = sorted(i.key for i in reference.search(("test",), filter=flt))
        assert ours == theirs, flt
        assert ours or flt == {"color": "purple"}


def test_ordering_filters_skip_items_missing_the_field(store: AgentMemStore) -> None:
    store.put(("t",), "has", {"n": 5})
    store.put(("t",), "lacks", {"m": 5})
    store.put(("t",), "text", {"n": "five"})
    assert [i.key for i in store.search(("t",), filter={"n": {"$gt": 1}})] == ["has"]
    assert sorted(i.key for i in store.search(("t",), filter={"n": {"$ne": 5}})) == [
        "lacks",
        "text",
    ]


def test_search_order_offset_and_limit_follow_insertion(store: AgentMemStore) -> None:
    reference = InMemoryStore()
    for s in (store, reference):
        for i in range(7):
            s.put(("docs",), f"d{i}", {"i": i})
        s.put(("docs",), "d2", {"i": 22})  # an update keeps its place
    for offset, limit in [(0, 10), (0, 3), (3, 3), (6, 3), (7, 3), (2, 0)]:
        ours = [i.key for i in store.search(("docs",), offset=offset, limit=limit)]
        theirs = [i.key for i in reference.search(("docs",), offset=offset, limit=limit)]
        assert ours == theirs, (offset, limit)
    assert store.search(("docs",), filter={"i": 22})[0].score is None


def test_search_spans_sub_namespaces_oldest_first(tmp_path: Path, clock: FakeClock) -> None:
    with AgentMemStore(tmp_path / "s", clock=clock) as store:
        for ns, key in [(("a", "x"), "1"), (("a",), "2"), (("a", "y", "z"), "3"), (("b",), "4")]:
            clock.advance(1)
            store.put(ns, key, {"k": key})
        assert [i.key for i in store.search(("a",))] == ["1", "2", "3"]
        assert [i.key for i in store.search(())] == ["1", "2", "3", "4"]


# -- search with a query (keyword mode: no index) ------------------------------------------------------------------


def test_keyword_query_ranks_matches_first_then_the_rest_unscored(store: AgentMemStore) -> None:
    assert store.mode == "keyword"
    store.put(("n",), "a", {"text": "the weather in Lisbon is sunny"})
    store.put(("n",), "b", {"text": "grandma bakes apple pie on sundays"})
    store.put(("n",), "c", {"text": "apple pie recipe with cinnamon apple slices"})
    results = store.search(("n",), query="apple pie")
    assert [r.key for r in results[:2]] == ["c", "b"]
    assert results[0].score is not None and results[0].score > results[1].score > 0  # type: ignore[operator]
    assert (results[2].key, results[2].score) == ("a", None)  # a query orders, it does not hide
    assert [r.key for r in store.search(("n",), query="apple pie", limit=1, offset=1)] == ["b"]
    assert [
        r.key for r in store.search(("n",), query="apple", filter={"text": {"$ne": "x"}}, limit=2)
    ] == [
        "c",
        "b",
    ]
    assert len(store.search(("n",), query="")) == 3  # empty query: like no query
    assert len(store.search(("n",), query="!@#$%^&*()")) == 3


def test_keyword_query_merges_namespaces_by_score(store: AgentMemStore) -> None:
    store.put(("u", "1"), "k", {"text": "tennis tennis tennis on saturday"})
    store.put(("u", "2"), "k", {"text": "went hiking, then played tennis once"})
    store.put(("u", "3"), "k", {"text": "nothing relevant here"})
    results = store.search(("u",), query="tennis")
    assert [r.namespace for r in results] == [("u", "1"), ("u", "2"), ("u", "3")]
    one = store.search(("u", "2"), query="tennis")[0]
    assert one.score == pytest.approx(results[1].score)  # the same score whichever prefix finds it


# -- list_namespaces (LangGraph's own cases, compared with InMemoryStore) ------------------------------------------


_LIST_CASES: list[dict[str, Any]] = [
    {"prefix": ("a", "b")},
    {"suffix": ("f",)},
    {"prefix": ("a",), "suffix": ("f",)},
    {"prefix": ("a", "b"), "max_depth": 3},
    {"prefix": ("a", "b"), "limit": 2},
    {"prefix": ("a", "b"), "offset": 2},
    {"prefix": ("a", "*", "f")},
    {"suffix": ("*", "f")},
    {"prefix": ("nonexistent",)},
    {"prefix": ("users", "123")},
    {"prefix": ("users", "*")},
    {"suffix": ("*", "preferences")},
    {"prefix": ("*", "users"), "suffix": ("*", "settings")},
    {"max_depth": 2},
    {"max_depth": 1, "limit": 2, "offset": 1},
    {},
]


def test_list_namespaces_matches_inmemorystore(store: AgentMemStore) -> None:
    reference = InMemoryStore()
    namespaces = [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
        ("users", "123"),
        ("users", "456", "settings"),
        ("admin", "users", "789"),
        ("guests", "456", "preferences"),
        ("h", "i", "j", "k"),
    ]
    for s in (store, reference):
        for i, ns in enumerate(namespaces):
            s.put(ns, f"id_{i}", {"data": f"value_{i:02d}"})
    for case in _LIST_CASES:
        assert store.list_namespaces(**case) == reference.list_namespaces(**case), case
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]


def test_list_namespaces_pagination(store: AgentMemStore) -> None:
    for i in range(20):
        store.put(("namespace", f"sub_{i:02d}"), f"id_{i:02d}", {"data": i})
    for offset in (0, 5, 15):
        assert store.list_namespaces(prefix=("namespace",), limit=5, offset=offset) == [
            ("namespace", f"sub_{i:02d}") for i in range(offset, offset + 5)
        ]


def test_list_namespaces_forgets_emptied_namespaces(store: AgentMemStore) -> None:
    assert store.list_namespaces() == []
    store.put(("a", "b"), "k", {"v": 1})
    store.put(("c",), "k", {"v": 1})
    store.delete(("a", "b"), "k")
    assert store.list_namespaces() == [("c",)]


# -- batch -------------------------------------------------------------------------------------------------------


def test_batch_results_in_op_order_reads_before_writes_like_inmemorystore(
    store: AgentMemStore,
) -> None:
    reference = InMemoryStore()
    ops = [
        PutOp(("b",), "k1", {"v": 1}),
        GetOp(("b",), "k1"),
        PutOp(("b",), "k1", {"v": 2}),
        SearchOp(("b",)),
        ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("b",)),)),
        GetOp(("b",), "k0"),
    ]
    for s in (store, reference):
        s.put(("b",), "k0", {"v": 0})
    ours, theirs = store.batch(ops), reference.batch(ops)
    assert len(ours) == len(ops)

    def plain(result: Any) -> Any:
        if isinstance(result, Item):
            return (result.namespace, result.key, result.value)
        if isinstance(result, list):
            return [plain(r) for r in result]
        return result

    assert plain(ours) == plain(theirs)
    assert plain(ours) == [
        None,
        None,
        None,
        [(("b",), "k0", {"v": 0})],
        [("b",)],
        (("b",), "k0", {"v": 0}),
    ]
    assert store.get(("b",), "k1").value == {"v": 2}  # type: ignore[union-attr]  # the last put won
    assert store.batch([]) == []


def test_batch_put_then_delete_of_one_key_deletes(store: AgentMemStore) -> None:
    store.batch([PutOp(("d",), "k", {"v": 1}), PutOp(("d",), "k", None)])
    assert store.get(("d",), "k") is None


# -- async twins ---------------------------------------------------------------------------------------------------


async def test_async_twins(store: AgentMemStore) -> None:
    await store.aput(("users", "u1"), "k1", {"text": "plays chess", "n": 1})
    await store.aput(("users", "u2"), "k2", {"text": "plays go", "n": 2})
    item = await store.aget(("users", "u1"), "k1")
    assert item is not None and item.value["text"] == "plays chess"
    assert [i.key for i in await store.asearch(("users",), filter={"n": {"$gte": 2}})] == ["k2"]
    assert (await store.asearch(("users",), query="chess"))[0].key == "k1"
    assert await store.alist_namespaces(prefix=("users",)) == [("users", "u1"), ("users", "u2")]
    results = await store.abatch([GetOp(("users", "u2"), "k2"), PutOp(("users", "u2"), "k2", None)])
    assert results[0].value["n"] == 2  # type: ignore[union-attr]
    await store.adelete(("users", "u1"), "k1")
    assert await store.aget(("users", "u1"), "k1") is None
    assert await store.aget(("users", "u2"), "k2") is None


async def test_concurrent_async_calls_from_many_tasks(store: AgentMemStore) -> None:
    await asyncio.gather(*(store.aput(("c",), f"k{i}", {"i": i}) for i in range(20)))
    got = await asyncio.gather(*(store.aget(("c",), f"k{i}") for i in range(20)))
    assert [g.value["i"] for g in got] == list(range(20))  # type: ignore[union-attr]


# -- bad input -----------------------------------------------------------------------------------------------------


def _stored(store: AgentMemStore) -> list[tuple[tuple[str, ...], str]]:
    return _keys(store.search((), limit=100))


@pytest.mark.parametrize(
    ("bad_op", "error", "message"),
    [
        (PutOp((), "k", {"v": 1}), InvalidNamespaceError, "empty"),
        (PutOp(("a", "b.c"), "k", {"v": 1}), InvalidNamespaceError, "b.c"),
        (PutOp(("a", ""), "k", {"v": 1}), InvalidNamespaceError, "empty"),
        (PutOp(("a", 3), "k", {"v": 1}), InvalidNamespaceError, "3"),  # type: ignore[arg-type]
        (PutOp(("a",), "", {"v": 1}), InvalidKeyError, "key"),
        (PutOp(("a",), "k", ["not", "a", "dict"]), InvalidArgumentError, "list"),  # type: ignore[arg-type]
        (PutOp(("a",), "k", {"v": object()}), SerializationError, "'k'"),
        (PutOp(("a",), "k", {"v": 1}, ttl=-5), InvalidArgumentError, "-5"),
        (PutOp(("a",), "k", {"v": 1}, ttl=0), InvalidArgumentError, "ttl"),
        (PutOp(("a",), "k", {"v": 1}, ttl="10"), InvalidArgumentError, "'10'"),  # type: ignore[arg-type]
        (PutOp(("a",), "k", {"v": 1}, index="text"), InvalidArgumentError, "'text'"),  # type: ignore[arg-type]
        (PutOp(("a",), "k", {"v": 1}, index=[""]), InvalidArgumentError, "index"),
        (SearchOp(("a",), filter={"v": {"$regex": "x"}}), InvalidArgumentError, "$regex"),
        (SearchOp(("a",), limit=-1), InvalidArgumentError, "limit"),
        (SearchOp(("a",), offset=-2), InvalidArgumentError, "offset"),
        (SearchOp(("a.b",)), InvalidNamespaceError, "a.b"),
        (ListNamespacesOp(max_depth=0), InvalidArgumentError, "max_depth"),
        (
            ListNamespacesOp(match_conditions=(MatchCondition("middle", ("a",)),)),
            InvalidArgumentError,
            "middle",
        ),  # type: ignore[arg-type]
        (GetOp(("a",), 42), InvalidKeyError, "42"),  # type: ignore[arg-type]
        ("not an op", InvalidArgumentError, "not an op"),
    ],
)
def test_a_bad_op_raises_a_clear_error_and_nothing_is_stored(
    store: AgentMemStore, bad_op: Any, error: type[Exception], message: str
) -> None:
    store.put(("keep",), "k", {"v": 0})
    with pytest.raises(error) as caught:
        store.batch([PutOp(("a",), "first", {"v": 1}), bad_op, PutOp(("a",), "last", {"v": 2})])
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError | TypeError)
    assert _stored(store) == [(("keep",), "k")]


async def test_bad_input_through_the_public_api(store: AgentMemStore) -> None:
    with pytest.raises(InvalidNamespaceError, match=r"thing\.about"):
        store.put(("the", "thing.about"), "k", {"v": 1})
    with pytest.raises(InvalidNamespaceError):
        await store.aput((), "k", {"v": 1})
    with pytest.raises(InvalidArgumentError, match="ttl"):
        await store.aput(("a",), "k", {"v": 1}, ttl=-1)
    with pytest.raises(InvalidArgumentError, match=r"\$foo"):
        store.search(("a",), filter={"x": {"$foo": 1}})
    assert _stored(store) == []


def test_a_closed_store_refuses_work(where: Path | None) -> None:
    store = AgentMemStore(where)
    store.put(("a",), "k", {"v": 1})
    store.close()
    store.close()  # idempotent
    with pytest.raises(StorageError, match="closed"):
        store.get(("a",), "k")


def test_constructor_refuses_bad_configuration(tmp_path: Path) -> None:
    from agentmem_plugin import MemoryManager

    with pytest.raises(InvalidArgumentError, match="'fuzzy'"):
        AgentMemStore(mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="needs an index"):
        AgentMemStore(mode="semantic")
    with MemoryManager() as mm, pytest.raises(InvalidArgumentError, match="either manager"):
        AgentMemStore(tmp_path, manager=mm)
    assert not list(tmp_path.iterdir())


def test_is_a_langgraph_basestore_supporting_ttl(store: AgentMemStore) -> None:
    assert isinstance(store, BaseStore)
    assert store.supports_ttl is True
    assert "mode='keyword'" in repr(store)
