"""IndexConfig: which embedder, which text is embedded (fields, per-put index, index=False), real semantic search."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
from agentmem_plugin import MemoryManager
from agentmem_plugin.errors import InvalidArgumentError
from langchain_core.embeddings import DeterministicFakeEmbedding
from lg_fakes import FakeRecordingEmbed

from agentmem_langgraph import AgentMemStore, item_embed_text

# -- the text that gets embedded (a FAKE recording embedder: meaning does not matter here) ------------------------


def test_default_fields_embed_the_whole_value_as_json(
    where: Path | None, fake_embed: FakeRecordingEmbed
) -> None:
    with AgentMemStore(where, index={"embed": fake_embed, "dims": 8}) as store:
        store.put(("d",), "k", {"b": "two", "a": "one"})
    assert fake_embed.documents() == [json.dumps({"a": "one", "b": "two"})]


def test_fields_choose_what_is_embedded(where: Path | None, fake_embed: FakeRecordingEmbed) -> None:
    index = {"embed": fake_embed, "dims": 8, "fields": ["title", "body.text", "notes[*].t"]}
    with AgentMemStore(where, index=index) as store:  # type: ignore[arg-type]
        store.put(
            ("d",),
            "k1",
            {
                "title": "T1",
                "body": {"text": "B1"},
                "secret": "S1",
                "notes": [{"t": "n1"}, {"t": "n2"}],
            },
        )
        # k2 has nothing to embed: it stays out of the index; k3 gives its own paths.
        store.put(("d",), "k2", {"secret": "only a secret"})
        store.put(("d",), "k3", {"title": "T3", "secret": "S3"}, index=["secret"])
        store.put(("d",), "k4", {"title": "T4"}, index=False)
        assert store.index_config is not None and store.index_config["fields"] == index["fields"]
        assert store.get(("d",), "k4").value == {"title": "T4"}  # type: ignore[union-attr]
    # one vector per path, and per element of a [*] path, as LangGraph's stores embed them
    assert fake_embed.documents() == ["T1", "B1", "n1", "n2", "S3"]


def test_index_false_items_are_returned_but_never_ranked(
    where: Path | None, fake_embed: FakeRecordingEmbed
) -> None:
    with AgentMemStore(where, index={"embed": fake_embed, "dims": 8}) as store:
        store.put(("d",), "ranked", {"text": "new text about dogs"})
        store.put(("d",), "hidden", {"text": "new text about dogs"}, index=False)
        results = store.search(("d",), query="new text about dogs")
        assert [(r.key, r.score is None) for r in results] == [("ranked", False), ("hidden", True)]
        assert [r.key for r in store.search(("d",), query="new text about dogs", limit=1)] == [
            "ranked"
        ]
        assert [r.key for r in store.search(("d",), filter={"text": "new text about dogs"})] == [
            "ranked",
            "hidden",
        ]
        view = store.manager.with_namespace(("d",))
        assert "_lg_vectors" not in view.long_tier.get("hidden", touch=False).metadata  # type: ignore[union-attr]


def test_reput_with_index_false_removes_the_vector(fake_embed: FakeRecordingEmbed) -> None:
    with AgentMemStore(index={"embed": fake_embed, "dims": 8}, mode="semantic") as store:
        store.put(("d",), "k", {"text": "alpha"})
        assert store.search(("d",), query="alpha")[0].score is not None
        store.put(("d",), "k", {"text": "alpha"}, index=False)
        assert store.search(("d",), query="alpha")[0].score is None


def test_item_embed_text_hook_for_a_manager_you_build(
    tmp_path: Path, fake_embed: FakeRecordingEmbed
) -> None:
    hook = item_embed_text(["text"])
    with MemoryManager(storage_path=tmp_path / "mm", embedder=fake_embed, embed_text=hook) as mm:
        store = AgentMemStore(manager=mm)
        assert store.mode == "semantic"  # the manager lends its embedder to the store's own vectors
        store.put(("d",), "k1", {"text": "kept", "other": "dropped"})
        store.put(("d",), "k2", {"text": "skipped"}, index=False)
        # Not an item: agentmem's default text.
        mm.store("plain", "a plain agentmem memory", memory_type="long_term")
        store.close()
    # the manager's index embeds by the hook; the store embeds each item's "$" (its whole value) itself
    assert [t for t in fake_embed.documents() if not t.startswith("{")] == [
        "kept",
        "a plain agentmem memory",
    ]
    with pytest.raises(InvalidArgumentError, match="fields"):
        item_embed_text("text")


# -- embedders -----------------------------------------------------------------------------------------------


def test_a_langchain_embeddings_object(where: Path | None) -> None:
    fake = DeterministicFakeEmbedding(size=16)  # FAKE: random vectors per text
    with AgentMemStore(where, index={"embed": fake, "dims": 16}, mode="semantic") as store:
        store.put(("d",), "k", {"text": "exact text"})
        hit = store.search(("d",), query=json.dumps({"text": "exact text"}))[0]
        assert hit.key == "k"
        assert hit.score == pytest.approx(1.0, abs=1e-5)  # the same text: cosine 1


def test_an_async_embedding_function_works_sync_and_async(fake_embed: FakeRecordingEmbed) -> None:
    async def aembed(texts: list[str]) -> list[list[float]]:
        await asyncio.sleep(0)
        return fake_embed(texts)

    with AgentMemStore(index={"embed": aembed, "dims": 8}) as store:
        store.put(("d",), "k1", {"text": "one"})

        async def main() -> list[str]:
            await store.aput(("d",), "k2", {"text": "two"})
            return [i.key for i in await store.asearch(("d",), query="two")]

        assert asyncio.run(main())[0] == "k2"
    assert fake_embed.documents() == [
        '{"text": "one"}',
        '{"text": "two"}',
        "two",
    ]  # 2 items, 1 query


async def test_abatch_runs_in_a_worker_thread_and_does_not_block_the_loop() -> None:
    slow_threads: set[int] = set()

    def slow_embed(texts: list[str]) -> list[list[float]]:
        slow_threads.add(threading.get_ident())
        threading.Event().wait(0.3)  # a slow remote embedder
        return [[1.0, float(len(t))] for t in texts]

    store = AgentMemStore(index={"embed": slow_embed, "dims": 2})
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    slow_threads.clear()
    await store.aput(("d",), "k", {"text": "a memory"})
    task.cancel()
    assert ticks >= 10  # the loop kept running while the batch embedded for 0.3 s
    assert threading.get_ident() not in slow_threads
    store.close()


# -- configuration errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("index", "message"),
    [
        ({"embed": "openai:text-embedding-3-small", "dims": 1536}, "offline"),
        ({"dims": 384}, "needs 'embed'"),
        ({"embed": 42, "dims": 8}, "int"),
        ({"embed": "default", "dims": 1536}, "dimension 384"),
        ({"embed": "default", "fields": "text"}, "'text'"),
        ({"embed": "default", "distance_type": "hamming"}, "distance_type"),
        ({"embed": "default", "ann_index_config": {}}, "ann_index_config"),
        ("default", "IndexConfig"),
    ],
)
def test_bad_index_config_is_refused(
    tmp_path: Path, index: object, message: str, minilm: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        AgentMemStore(tmp_path / "s", index=index)  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert not (tmp_path / "s").exists()  # nothing was created


def test_dims_mismatch_with_a_function(fake_embed: FakeRecordingEmbed) -> None:
    with pytest.raises(InvalidArgumentError, match=r"dims=16 .* dimension 8"):
        AgentMemStore(index={"embed": fake_embed, "dims": 16})


def test_a_manager_you_bring_takes_an_index_too(fake_embed: FakeRecordingEmbed) -> None:
    with MemoryManager() as mm:
        store = AgentMemStore(
            manager=mm, index={"embed": fake_embed, "dims": 8, "fields": ["text"]}
        )
        store.put(("d",), "k", {"text": "alpha"})
        assert store.search(("d",), query="alpha")[0].score == pytest.approx(1.0, abs=1e-5)
        with pytest.raises(InvalidArgumentError, match="storage_path"):
            AgentMemStore("x", manager=mm)


# -- real semantic search with the offline MiniLM ----------------------------------------------------------------


def test_a_query_sharing_no_words_finds_the_memory(semantic_store: AgentMemStore) -> None:
    assert semantic_store.mode == "semantic"
    ns = ("memories", "alice")
    semantic_store.put(ns, "m1", {"text": "I adore Italian food, especially pizza"})
    semantic_store.put(ns, "m2", {"text": "My sister lives in Lisbon"})
    semantic_store.put(ns, "m3", {"text": "The quarterly report is due on Friday"})
    results = semantic_store.search(ns, query="which cuisine does she enjoy?")
    assert results[0].key == "m1"
    assert results[0].score is not None and results[0].score > results[1].score  # type: ignore[operator]


def test_semantic_mode_scores_are_cosine_similarities(where: Path | None, minilm: str) -> None:
    with AgentMemStore(where, index={"embed": minilm, "dims": 384}, mode="semantic") as store:
        store.put(("u", "1"), "pets", {"text": "we adopted a puppy last week"})
        store.put(("u", "2"), "work", {"text": "the server migration finished"})
        store.put(("u", "2"), "cat", {"text": "my kitten sleeps all day"})
        results = store.search(("u",), query="dogs and cats")
        assert {r.key for r in results[:2]} == {"pets", "cat"}
        assert all(r.score is not None and -1.0 <= r.score <= 1.0 for r in results)
        narrow = store.search(("u", "2"), query="dogs and cats")
        assert narrow[0].key == "cat"
        assert narrow[0].score == pytest.approx(next(r.score for r in results if r.key == "cat"))


def test_semantic_search_with_filter_offset_limit(semantic_store: AgentMemStore) -> None:
    docs = [
        ("doc1", {"text": "red apple", "color": "red", "score": 4.5}),
        ("doc2", {"text": "red sports car", "color": "red", "score": 3.0}),
        ("doc3", {"text": "green apple", "color": "green", "score": 4.0}),
        ("doc4", {"text": "blue car", "color": "blue", "score": 3.5}),
    ]
    for key, value in docs:
        semantic_store.put(("test",), key, value)
    red = semantic_store.search(("test",), query="fruit", filter={"color": "red"})
    assert [r.key for r in red] == ["doc1", "doc2"]
    cars = semantic_store.search(("test",), query="vehicle", filter={"score": {"$lt": 4.0}})
    assert {r.key for r in cars} == {"doc2", "doc4"}
    page1 = semantic_store.search(("test",), query="apple", limit=2)
    page2 = semantic_store.search(("test",), query="apple", limit=2, offset=2)
    assert len(page1) == len(page2) == 2
    assert {r.key for r in page1} | {r.key for r in page2} == {"doc1", "doc2", "doc3", "doc4"}
    assert {r.key for r in page1} == {"doc1", "doc3"}


def test_update_re_embeds(semantic_store: AgentMemStore) -> None:
    semantic_store.put(("t",), "doc1", {"text": "zany zebra Xerxes"})
    semantic_store.put(("t",), "doc2", {"text": "something about trains"})
    semantic_store.put(("t",), "doc3", {"text": "text about birds"})
    before = semantic_store.search(("t",), query="Zany Xerxes")
    assert before[0].key == "doc1"
    semantic_store.put(("t",), "doc1", {"text": "a new text about puppies"})
    after = semantic_store.search(("t",), query="Zany Xerxes")
    assert next(r.score for r in after if r.key == "doc1") < before[0].score  # type: ignore[operator]
    assert semantic_store.search(("t",), query="young canines")[0].key == "doc1"


def test_index_survives_reopening(tmp_path: Path, minilm: str) -> None:
    index = {"embed": minilm, "dims": 384, "fields": ["text"]}
    with AgentMemStore(tmp_path / "s", index=index) as store:  # type: ignore[arg-type]
        store.put(("u",), "m", {"text": "allergic to peanuts", "id": 7})
        store.put(("u",), "n", {"text": "the car is parked outside"})
    with AgentMemStore(tmp_path / "s", index=index, mode="semantic") as store:  # type: ignore[arg-type]
        assert store.search(("u",), query="food intolerance")[0].key == "m"
        assert store.reindex() == 2
        assert store.search(("u",), query="food intolerance")[0].key == "m"


def test_reindex_needs_an_index(store: AgentMemStore) -> None:
    with pytest.raises(InvalidArgumentError, match="no index"):
        store.reindex()


@pytest.mark.parametrize("indexed", [False, True])
def test_non_ascii_text(indexed: bool, minilm: str) -> None:
    texts = ["这是中文", "これは日本語です", "이건 한국어야", "Это русский", "यह रूसी है"]
    index = {"embed": minilm, "dims": 384} if indexed else None
    with AgentMemStore(index=index) as store:  # type: ignore[arg-type]
        for i, text in enumerate(texts, 1):
            store.put(("user_123", "memories"), str(i), {"text": text})
        for i, text in enumerate(texts, 1):
            assert store.search(("user_123", "memories"), query=text)[0].key == str(i)
            assert store.get(("user_123", "memories"), str(i)).value == {"text": text}  # type: ignore[union-attr]
