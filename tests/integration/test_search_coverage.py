"""Search sees every memory, whatever tier holds it; a persistent store searches by meaning by default.

The meaning queries share no word with the memory they must find ("what can she eat?" for "vegetarian, no meat
or fish"), so only the real embedding model can find them: these tests use the offline MiniLM.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CountingEmbedder, FakeHashEmbedder

from agentmem_plugin import Memory, MemoryManager
from agentmem_plugin.errors import InvalidArgumentError, MissingDependencyError
from agentmem_plugin.tiers import factory
from agentmem_plugin.tiers.chroma import report_progress

DIET = ("diet", "vegetarian, no meat or fish")
QUESTION = "what can she eat?"
OTHERS = {
    "car": "drives a red bicycle to work every morning",
    "job": "works as a nurse in the night shift",
    "music": "plays the violin in an orchestra",
    "city": "lives in a flat in Lisbon near the river",
}


def semantic_keys(mm: MemoryManager, query: str = QUESTION, limit: int = 1) -> list[str]:
    return [h["key"] for h in mm.search(query, limit=limit, mode="semantic")]


@pytest.fixture
def mm(tmp_path: Path) -> MemoryManager:
    """A persistent manager with no embedder argument: semantic by default."""
    manager = MemoryManager(storage_path=tmp_path / "store", short_term_limit=3)
    yield manager
    manager.close()


def test_a_persistent_manager_searches_by_meaning_without_an_embedder_argument(
    mm: MemoryManager,
) -> None:
    mm.store(*DIET)  # the default store: short-term
    mm.store_many(OTHERS, memory_type="long_term")
    assert mm.tier_of("diet") == "short_term"
    assert semantic_keys(mm) == ["diet"]
    assert mm.search(QUESTION, limit=1)[0]["key"] == "diet"  # hybrid is the default mode


def test_a_read_never_hides_a_memory_from_semantic_search(mm: MemoryManager) -> None:
    mm.store(*DIET, memory_type="long_term")
    mm.store_many(OTHERS, memory_type="long_term")
    assert semantic_keys(mm) == ["diet"]
    assert mm.retrieve("diet") == DIET[1]
    assert mm.tier_of("diet") == "short_term"  # promoted
    assert semantic_keys(mm) == ["diet"]
    assert mm.search(QUESTION, limit=1)[0]["tier"] == "short_term"


def test_overflow_into_the_archive_stays_searchable_by_meaning_and_keyword(tmp_path: Path) -> None:
    mm = MemoryManager(storage_path=tmp_path, short_term_limit=3, long_term_limit=3)
    mm.store(*DIET, memory_type="long_term", priority=-5)  # the least important: archived first
    mm.store_many(OTHERS, memory_type="long_term")
    assert mm.tier_of("diet") == "external"
    assert semantic_keys(mm) == ["diet"]
    assert mm.search(QUESTION, limit=1)[0]["key"] == "diet"
    keyword = mm.search("vegetarian", mode="keyword")
    assert [(h["key"], h["tier"]) for h in keyword] == [("diet", "external")]
    mm.close()


def test_consolidation_and_overflow_never_change_what_search_finds(mm: MemoryManager) -> None:
    mm.store(*DIET)
    for key, value in OTHERS.items():
        mm.store(key, value)  # short-term holds 3: the rest overflows into long-term
    before = {k: semantic_keys(mm, v, limit=1)[0] for k, v in [("diet", QUESTION)]}
    mm.consolidate()
    assert {k: semantic_keys(mm, v, limit=1)[0] for k, v in [("diet", QUESTION)]} == before
    everything = semantic_keys(mm, "anything", limit=50)
    assert sorted(everything) == sorted(["diet", *OTHERS])


def test_memory_types_still_restrict_a_semantic_search(mm: MemoryManager) -> None:
    mm.store(*DIET)
    mm.store_many(OTHERS, memory_type="long_term")
    assert [h["key"] for h in mm.search(QUESTION, mode="semantic", memory_types=["long_term"])][
        :1
    ] != ["diet"]
    only_short = mm.search(QUESTION, mode="semantic", memory_types=["short_term"])
    assert {h["tier"] for h in only_short} == {"short_term"}


def test_long_term_limit_none_is_unbounded(tmp_path: Path, fake_embedder: FakeHashEmbedder) -> None:
    with MemoryManager(
        storage_path=tmp_path, short_term_limit=2, long_term_limit=None, embedder=fake_embedder
    ) as mm:
        mm.store_many({f"k{i}": i for i in range(30)}, memory_type="long_term")
        assert len(mm.keys("long_term")) == 30 and mm.keys("external") == []


def test_embedder_none_is_keyword_only(tmp_path: Path) -> None:
    with MemoryManager(storage_path=tmp_path, embedder=None) as mm:
        mm.store(*DIET)
        assert mm.tiers.semantic == ()
        assert mm.search("vegetarian")[0]["key"] == "diet"
        with pytest.raises(InvalidArgumentError, match="embedder"):
            mm.search(QUESTION, mode="semantic")


def test_an_in_memory_manager_stays_keyword_only_by_default() -> None:
    with MemoryManager() as mm:
        assert mm.tiers.semantic == ()


def test_without_the_semantic_extra_auto_is_keyword_and_semantic_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The detection looks the modules up with importlib: one that is not installed stands for the missing extra.
    monkeypatch.setattr(factory, "_SEMANTIC_MODULES", ("agentmem_no_such_module_xyz",))
    with MemoryManager(storage_path=tmp_path) as mm:
        mm.store(*DIET)
        assert mm.search("vegetarian")[0]["key"] == "diet"
        with pytest.raises(MissingDependencyError, match=r"agentmem-plugin\[semantic\]"):
            mm.search(QUESTION, mode="semantic")
    with (
        Memory(persistence=True, storage_path=tmp_path / "m") as memory,
        pytest.raises(MissingDependencyError, match="semantic"),
    ):
        memory.search(QUESTION, mode="semantic")


def test_the_model_loads_at_the_first_search_not_at_open_or_store(tmp_path: Path) -> None:
    script = f"""
import sys
from agentmem_plugin import MemoryManager
mm = MemoryManager(storage_path={str(tmp_path)!r})
mm.store("diet", "vegetarian, no meat or fish")
loaded_before = "sentence_transformers" in sys.modules
hits = mm.search("what can she eat?", mode="semantic", limit=1)
print(loaded_before, "sentence_transformers" in sys.modules, hits[0]["key"])
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.split() == ["False", "True", "diet"]


def test_a_move_reuses_the_vector_instead_of_calling_the_model(
    tmp_path: Path, fake_embedder: FakeHashEmbedder
) -> None:
    counting = CountingEmbedder(fake_embedder)
    with MemoryManager(storage_path=tmp_path, short_term_limit=2, embedder=counting) as mm:
        mm.store("a", "alpha text", memory_type="long_term")
        mm.search("alpha", mode="semantic")
        embedded = list(counting.documents)
        mm.retrieve("a")  # promoted to short-term
        assert mm.tier_of("a") == "short_term"
        assert [h["key"] for h in mm.search("alpha text", mode="semantic")] == ["a"]
        mm.consolidate()  # back to long-term
        mm.search("alpha", mode="semantic")
        assert counting.documents == embedded  # the same text was never embedded again


def test_the_archive_is_indexed_while_it_stays_encrypted_at_rest(
    tmp_path: Path, fake_embedder: FakeHashEmbedder
) -> None:
    key = "0" * 64
    with MemoryManager(
        storage_path=tmp_path, long_term_limit=1, archive_key=key, embedder=fake_embedder
    ) as mm:
        mm.store("secret", "the launch code is swordfish", memory_type="long_term", priority=-1)
        mm.store("other", "nothing to see", memory_type="long_term")
        assert mm.tier_of("secret") == "external"
        hits = mm.search("the launch code is swordfish", mode="semantic")
        assert hits[0]["key"] == "secret"
        assert mm.search("swordfish", mode="keyword")[0]["key"] == "secret"
    blobs = [p.read_bytes() for p in (tmp_path / "archive").rglob("*") if p.is_file()]
    assert blobs and not any(b"swordfish" in blob for blob in blobs)


def test_a_long_embedding_job_reports_progress_per_batch(
    tmp_path: Path, fake_embedder: FakeHashEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    items = {f"doc{i}": f"document number {i}" for i in range(600)}
    with MemoryManager(storage_path=tmp_path, embedder=fake_embedder) as mm:
        with caplog.at_level(logging.INFO, logger="agentmem_plugin.tiers.chroma"):
            mm.store_many(items, memory_type="long_term")
        lines = [r.getMessage() for r in caplog.records if " embedding: " in r.getMessage()]
        assert len(lines) == 3 and lines[-1].split(": ")[1].startswith("600 of 600")
        advanced: list[int] = []
        with report_progress(lambda desc, total: advanced.append):
            mm.reindex()
        assert sum(advanced) == 600


def test_the_first_search_after_a_large_short_term_import_reports_progress(
    tmp_path: Path, fake_embedder: FakeHashEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    with MemoryManager(storage_path=tmp_path, short_term_limit=2000, embedder=fake_embedder) as mm:
        mm.store_many(
            {f"s{i}": f"short entry {i}" for i in range(700)}
        )  # short-term: embedded lazily
        assert fake_embedder.embedded == []
        with caplog.at_level(logging.INFO, logger="agentmem_plugin.tiers.chroma"):
            hits = mm.search("short entry 5", mode="semantic", limit=700)
        assert len(hits) == 700
        assert any(" indexing: " in r.getMessage() for r in caplog.records)
        assert fake_embedder.calls < 20  # in batches, not one call per entry


# -- one store format: Memory(persistence=True) and the CLI -------------------------------------------------------


def _tables(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentmem_plugin", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_cli_sees_a_persistent_memory_and_a_read_adds_no_table(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with Memory(persistence=True, storage_path=store, embedder=None) as memory:
        memory.store("current_task", "data_processing", tags=["task"])
    tables = _tables(store / "memory.sqlite3")
    got = _cli("get", str(store), "current_task")
    assert got.returncode == 0, got.stderr
    assert got.stdout.strip() == "data_processing"
    stats = _cli("stats", str(store), "--json")
    assert stats.returncode == 0, stats.stderr
    assert json.loads(stats.stdout)["short_term"]["size"] == 1
    assert _tables(store / "memory.sqlite3") == tables
    backup = _cli("backup", str(store), str(tmp_path / "bk"))
    assert backup.returncode == 0, backup.stderr
    assert "backed up 1 entries" in backup.stderr
    with MemoryManager(storage_path=store, embedder=None) as mm:
        assert mm.retrieve("current_task") == "data_processing"


def test_a_memory_and_a_manager_on_one_directory_see_the_same_memories(tmp_path: Path) -> None:
    with MemoryManager(storage_path=tmp_path, embedder=None) as mm:
        mm.store("fact", "the sky is blue", memory_type="long_term")
        mm.store("note", "buy milk")
    with Memory(
        memory_type="long_term", persistence=True, storage_path=tmp_path, embedder=None
    ) as long:
        assert long.retrieve("fact") == "the sky is blue"
    with Memory(persistence=True, storage_path=tmp_path, embedder=None) as short:
        assert short.retrieve("note") == "buy milk"


def test_an_old_memory_table_is_moved_into_the_store_format(tmp_path: Path) -> None:
    from agentmem_plugin.entry import MemoryEntry
    from agentmem_plugin.tiers.sqlite import SqliteTier

    old = SqliteTier(tmp_path / "memory.sqlite3", table="memories")
    old.put(MemoryEntry("kept", "from an older version"))
    old.close()
    with Memory(persistence=True, storage_path=tmp_path, embedder=None) as memory:
        assert memory.retrieve("kept") == "from an older version"
    with MemoryManager(storage_path=tmp_path, embedder=None) as mm:
        assert mm.tier_of("kept") == "short_term"


def test_a_persistent_memory_searches_by_meaning_by_default(tmp_path: Path) -> None:
    with Memory(persistence=True, storage_path=tmp_path) as memory:
        memory.store(*DIET)
        for key, value in OTHERS.items():
            memory.store(key, value)
        assert memory.search(QUESTION, limit=1, mode="semantic")[0]["key"] == "diet"


def test_a_second_process_on_a_store_searches_by_keyword_instead_of_breaking_the_index(
    tmp_path: Path,
) -> None:
    """A local Chroma index has one process as its user; another process on the store still works."""
    with MemoryManager(storage_path=tmp_path) as mm:
        mm.store(*DIET, memory_type="long_term")
        script = f"""
from agentmem_plugin import MemoryManager
with MemoryManager(storage_path={str(tmp_path)!r}) as other:
    other.store("pet", "has a dog named Rex", memory_type="long_term")
    print(other.tiers.semantic == (), other.search("vegetarian")[0]["key"])
"""
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300
        )
        assert out.stdout.split() == ["True", "diet"]
        assert "open in another process" in out.stderr
        # the other process's write reaches this process's index through the store's change feed
        assert semantic_keys(mm, "which animal does she have?") == ["pet"]
        explicit = subprocess.run(
            [
                sys.executable,
                "-c",
                "from agentmem_plugin import MemoryManager\n"
                f"MemoryManager(storage_path={str(tmp_path)!r}, embedder='default')",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert explicit.returncode != 0
        assert "IndexInUseError" in explicit.stderr and "Chroma server" in explicit.stderr
