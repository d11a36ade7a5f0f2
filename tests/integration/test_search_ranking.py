"""The ranking of ``Memory.search`` and ``MemoryManager.search``: explained scores, sessions, recency, importance.

Meaning does not matter here, so the embedder is a FAKE one: a bag of hashed words, whose cosine is the share of
words two texts have in common (0 when they share none). That makes every score below computable by hand.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import FakeClock

from agentmem_plugin import Memory, MemoryManager
from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.ranking import DEFAULT_CONFIG, RankingConfig
from agentmem_plugin.search import tokenize


class FakeBagOfWordsEmbedder:
    """A FAKE embedder: each stemmed word is one hashed dimension (cosine = word overlap, nothing more)."""

    name = "fake-bag-of-words"
    dim = 256

    def _vector(self, text: str) -> list[float]:
        v = [0.0] * self.dim
        for word in tokenize(text):
            v[int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = math.sqrt(sum(x * x for x in v))
        if norm == 0:  # no word: a fixed direction of its own, far from every text
            v[0] = 1.0
            return v
        return [x / norm for x in v]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


# The turns of two sessions, in the order they were stored: the answer turn ("hiking") shares no word with the
# question; it sits right after the turn that does, in the same session. The next session's first turn sits
# right after it too, but belongs to another conversation.
TURNS = [
    ("t1", "good morning, how was your weekend", "s1"),
    ("t2", "what did you do on Sunday with Maria", "s1"),
    ("t3", "we went hiking up the mountain", "s1"),
    ("t4", "the invoice for the printer arrived", "s2"),
    ("t5", "please pay it before friday", "s2"),
]
QUESTION = "what did Maria do on Sunday"


def _store_turns(memory: Memory, *, sessions: bool = True) -> None:
    for key, text, session in TURNS:
        memory.store(key, text, metadata={"session": session} if sessions else None)


@pytest.fixture
def memory() -> Memory:
    m = Memory(capacity=None, embedder=FakeBagOfWordsEmbedder())
    yield m
    m.close()


def test_explain_gives_the_terms_the_score_is_the_sum_of(memory: Memory) -> None:
    _store_turns(memory)
    hits = memory.search(QUESTION, limit=5, explain=True)
    assert hits[0]["key"] == "t2"
    for h in hits:
        parts = h["explain"]
        assert {"bm25", "cosine", "bm25_norm", "cos_norm", "fused"} <= set(parts)
        assert parts["bm25"] == h["keyword_score"] and parts["cosine"] == h["similarity"]
        w = DEFAULT_CONFIG.keyword_weight
        assert parts["fused"] == pytest.approx(w * parts["bm25_norm"] + (1 - w) * parts["cos_norm"])
        total = parts["fused"] + sum(parts.get(k) or 0.0 for k in ("entity", "recency", "importance", "context"))
        assert h["score"] == pytest.approx(total)
    # "Maria" is the question's one name besides its first word: t2 holds it (and so do no other turns)
    assert hits[0]["explain"]["entity"] == pytest.approx(DEFAULT_CONFIG.entity_weight)
    assert all("explain" not in h for h in memory.search(QUESTION, limit=5))


def test_contiguity_lifts_the_next_turn_of_the_same_session_only(memory: Memory) -> None:
    _store_turns(memory)
    hits = {h["key"]: h for h in memory.search(QUESTION, limit=5, explain=True)}
    top = hits["t2"]["score"]
    # t3 (same session, next turn) gets half of t2's score; t4 (next session) gets nothing from t2
    assert hits["t3"]["explain"]["context"] == pytest.approx(DEFAULT_CONFIG.context_weight * top)
    assert hits["t4"]["explain"].get("context", 0.0) < DEFAULT_CONFIG.context_weight * top
    order = [h["key"] for h in memory.search(QUESTION, limit=5)]
    assert order.index("t3") < order.index("t4")


def test_without_sessions_context_spreads_to_every_neighbour() -> None:
    m = Memory(capacity=None, embedder=FakeBagOfWordsEmbedder())
    _store_turns(m, sessions=False)
    hits = {h["key"]: h for h in m.search(QUESTION, limit=5, explain=True)}
    top = hits["t2"]["score"]
    assert hits["t4"]["explain"]["context"] == pytest.approx(DEFAULT_CONFIG.context_weight * top)
    m.close()


def test_a_neighbour_neither_side_found_enters_through_context() -> None:
    # t3's text is kept out of both indexes' reach: no shared word, and not embedded at all
    m = Memory(
        capacity=None,
        embedder=FakeBagOfWordsEmbedder(),
        embed_text=lambda e: None if e.key == "t3" else str(e.value),
    )
    _store_turns(m)
    hits = {h["key"]: h for h in m.search(QUESTION, limit=5, explain=True)}
    assert "t3" in hits
    assert hits["t3"]["keyword_score"] is None and hits["t3"]["similarity"] is None
    assert hits["t3"]["score"] == pytest.approx(hits["t3"]["explain"]["context"])
    m.close()


def test_keyword_and_semantic_explain_their_one_side(memory: Memory) -> None:
    _store_turns(memory)
    for h in memory.search(QUESTION, mode="keyword", explain=True):
        assert h["explain"] == {"bm25": h["score"]}
    for h in memory.search(QUESTION, mode="semantic", explain=True):
        assert h["explain"] == {"cosine": h["score"]} and h["similarity"] == h["score"]


def test_recency_and_importance_are_off_by_default_and_reorder_when_asked() -> None:
    clock = FakeClock(1_000_000.0)
    m = Memory(capacity=None, embedder=FakeBagOfWordsEmbedder(), clock=clock)
    m.store("old", "the meeting moved to room four", metadata={"importance": 0.9})
    clock.advance(60 * 86400)
    m.store("new", "the meeting moved to room five", metadata={"importance": 0.1})
    query = "where is the meeting"
    for mode in ("keyword", "semantic", "hybrid"):
        plain = m.search(query, mode=mode, explain=True)
        assert all("recency" not in h["explain"] and "importance" not in h["explain"] for h in plain)
        recent = m.search(query, mode=mode, recency_weight=1.0, explain=True)
        assert [h["key"] for h in recent] == ["new", "old"], mode
        # 60 days at a 30-day half-life: a quarter of the weight for the old memory, all of it for the new
        parts = {h["key"]: h["explain"] for h in recent}
        assert parts["new"]["recency"] == pytest.approx(1.0)
        assert parts["old"]["recency"] == pytest.approx(0.25)
        important = m.search(query, mode=mode, importance_weight=1.0, explain=True)
        assert [h["key"] for h in important] == ["old", "new"], mode
        assert important[0]["explain"]["importance"] == pytest.approx(0.9)
    m.close()


@pytest.mark.parametrize(
    ("option", "value"),
    [("recency_weight", -1.0), ("importance_weight", math.nan), ("recency_weight", "high")],
)
def test_a_bad_weight_is_refused_naming_it(memory: Memory, option: str, value: object) -> None:
    _store_turns(memory)
    with pytest.raises(InvalidArgumentError, match=option):
        memory.search(QUESTION, **{option: value})  # type: ignore[arg-type]
    assert len(memory.keys()) == len(TURNS)


def test_explain_must_be_a_bool(memory: Memory) -> None:
    with pytest.raises(InvalidArgumentError, match="explain"):
        memory.search(QUESTION, explain="yes")  # type: ignore[arg-type]


def test_a_near_tie_of_the_only_two_matches_stays_a_near_tie() -> None:
    """On a small store the keyword side returns every match: BM25 is scaled from 0, not from the weaker match."""
    m = Memory(capacity=None, embedder=FakeBagOfWordsEmbedder())
    m.store("a", "the user speaks english and prefers formal replies")
    m.store("b", "the user has a dog called Rex")
    m.store("c", "flight to Lisbon booked for May")
    hits = {h["key"]: h["explain"] for h in m.search("what animal does the user own", explain=True)}
    assert hits["a"]["bm25"] > 0 and hits["b"]["bm25"] > 0
    low = min(hits["a"]["bm25_norm"], hits["b"]["bm25_norm"])
    assert low == pytest.approx(min(hits["a"]["bm25"], hits["b"]["bm25"]) / max(hits["a"]["bm25"], hits["b"]["bm25"]))
    assert low > 0.5
    m.close()


def test_the_ranking_is_configurable_and_checked() -> None:
    m = Memory(capacity=None, ranking=RankingConfig(context_mode="off"), keyword_weight=0.9)
    assert m.ranking.context_mode == "off" and m.keyword_weight == 0.9
    assert Memory(capacity=None).ranking == DEFAULT_CONFIG
    with pytest.raises(InvalidArgumentError, match="ranking"):
        Memory(capacity=None, ranking={"keyword_weight": 0.5})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="keyword_weight"):
        Memory(capacity=None, keyword_weight=1.5)
    with pytest.raises(InvalidArgumentError, match="context_mode"):
        RankingConfig(context_mode="sometimes")  # type: ignore[arg-type]
    m.close()


def test_manager_search_explains_and_keeps_contiguity_inside_a_tier(tmp_path: Path) -> None:
    mm = MemoryManager(storage_path=tmp_path / "s", embedder=FakeBagOfWordsEmbedder())
    for key, text, session in TURNS:
        mm.store(key, text, memory_type="long_term", metadata={"session": session})
    mm.store("note", "Maria called about Sunday")  # short-term, a match in another tier
    hits = {h["key"]: h for h in mm.search(QUESTION, limit=10, explain=True)}
    assert hits["note"]["tier"] == "short_term" and hits["t2"]["tier"] == "long_term"
    assert hits["t3"]["explain"]["context"] > 0
    assert hits["t4"]["explain"].get("context", 0.0) < hits["t3"]["explain"]["context"]
    for h in mm.search(QUESTION, mode="keyword", explain=True):
        assert h["explain"]["bm25_norm"] == h["score"] and h["explain"]["bm25"] > 0
    recent = mm.search(QUESTION, recency_weight=0.5, explain=True)
    assert all("recency" in h["explain"] for h in recent)
    mm.close()


def test_a_managers_ranking_reaches_its_namespace_views(tmp_path: Path) -> None:
    config = RankingConfig(keyword_weight=0.8, context_mode="off")
    mm = MemoryManager(storage_path=tmp_path / "s", embedder=FakeBagOfWordsEmbedder(), ranking=config)
    view = mm.with_namespace(("user", "u1"))
    assert view.long_term.ranking == config
    view.store("t2", "what did you do on Sunday with Maria", memory_type="long_term")
    view.store("t3", "we went hiking up the mountain", memory_type="long_term")
    hits = {h["key"]: h["explain"] for h in view.search(QUESTION, explain=True)}
    assert "context" not in hits.get("t3", {})
    mm.close()


def test_an_untouched_get_many_reads_in_batches_and_counts_nothing(tmp_path: Path) -> None:
    """SQLite's get_many without touch: every key in order, duplicates as independent copies, no read counted."""
    clock = FakeClock(1000.0)
    m = Memory(capacity=None, persistence=True, storage_path=tmp_path / "m", embedder=None, clock=clock)
    m.store_many({f"k{i}": f"value {i}" for i in range(1200)})  # more than one IN (...) batch
    m.store("short", "gone soon", ttl=1)
    m.retrieve("k5")  # one pending read count
    clock.advance(2)
    keys = ["k1199", "missing", "k5", "k0", "k5", "short", "k600"]
    got = m.tier.get_many(keys, touch=False)
    assert [e and e.key for e in got] == ["k1199", None, "k5", "k0", "k5", None, "k600"]
    assert got[2] is not got[4] and got[2] == got[4]
    assert got[2].access_count == 1  # the pending read shows; this read adds none
    got[2].value = "changed"
    assert m.retrieve("k5") == "value 5"
    assert m.tier.get("k0", touch=False).access_count == 0
    m.close()
