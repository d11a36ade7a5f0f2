"""agentmem_plugin.ranking: orders derived by hand from the formula on small corpora."""

from __future__ import annotations

from typing import Any

import pytest

from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.ranking import (
    ABLATIONS,
    DEFAULT_CONFIG,
    Candidate,
    RankingConfig,
    group_of,
    query_entities,
    rank,
)

PLAIN = RankingConfig(
    keyword_weight=0.5, bm25_norm="max", entity_weight=0.0, context_mode="off", session_weight=0.0
)


def keys(hits: list) -> list[str]:
    return [h.key for h in hits]


def test_fusion_is_max_bm25_plus_minmax_cosine() -> None:
    # bm25_norm: a 1.0, b 0.5; cos_norm: b 1.0, c 0.0 (min-max over b, c); w = 0.5
    cands = [
        Candidate("a", bm25=8.0),
        Candidate("b", bm25=4.0, cosine=0.9),
        Candidate("c", cosine=0.5),
    ]
    hits = rank("q", cands, config=PLAIN.with_(keyword_weight=0.5))
    assert keys(hits) == ["b", "a", "c"]  # c scores 0 (the dense minimum) but a side found it: kept
    assert hits[0].score == pytest.approx(0.75)
    assert hits[1].score == pytest.approx(0.5)
    assert hits[0].components["bm25"] == 4.0
    assert hits[0].components["cosine"] == 0.9
    assert hits[0].components["bm25_norm"] == pytest.approx(0.5)
    assert hits[0].components["cos_norm"] == pytest.approx(1.0)


def test_keyword_weight_moves_the_order() -> None:
    cands = [Candidate("kw", bm25=5.0, cosine=0.2), Candidate("dense", bm25=1.0, cosine=0.8)]
    assert keys(rank("q", cands, config=PLAIN.with_(keyword_weight=0.9))) == ["kw", "dense"]
    assert keys(rank("q", cands, config=PLAIN.with_(keyword_weight=0.1))) == ["dense", "kw"]


def test_bm25_normalisations() -> None:
    cands = [Candidate("a", bm25=6.0), Candidate("b", bm25=2.0), Candidate("c", bm25=4.0)]
    by = {h.key: h.components["bm25_norm"] for h in rank("one two", cands, config=PLAIN)}
    assert by == pytest.approx({"a": 1.0, "b": 1 / 3, "c": 2 / 3})
    by = {
        h.key: h.components["bm25_norm"]
        for h in rank("x", cands, config=PLAIN.with_(bm25_norm="minmax"))
    }
    assert by == pytest.approx({"a": 1.0, "b": 0.0, "c": 0.5})  # b is the minimum
    # length-aware: bm25 / (bm25 + k * n_terms), two query terms ("one", "two"), k = 1
    cfg = PLAIN.with_(bm25_norm="length")
    by = {h.key: h.components["bm25_norm"] for h in rank("one two", cands, config=cfg)}
    assert by == pytest.approx({"a": 6 / 8, "b": 2 / 4, "c": 4 / 6})


def test_query_adaptive_weight_follows_the_sharper_side() -> None:
    # keyword side: one clear winner (kw 1.0, the rest 0); dense side: flat (all about equal)
    cands = [
        Candidate("kw", bm25=9.0, cosine=0.50),
        Candidate("d", bm25=0.0, cosine=0.52),
        Candidate("e", bm25=0.0, cosine=0.51),
    ]
    fixed = PLAIN.with_(keyword_weight=0.2)
    assert keys(rank("q", cands, config=fixed))[0] == "d"  # 0.8 * 1.0 beats 0.2 * 1.0
    # only kw has BM25: its top-10 mean is 1.0, conf 0; cosine min-max [0, 1, .5]: conf 0.5
    # so w_query = 0: adaptive moves w down, "d" still first
    assert keys(rank("q", cands, config=fixed.with_(adaptive_weight=1.0)))[0] == "d"
    more = [*cands, Candidate("f", bm25=1.0), Candidate("g", bm25=1.0), Candidate("h", bm25=1.0)]
    # BM25 max-normalised: 1, 1/9 x3 -> mean 1/3, conf 2/3; cosine conf 0.5 -> w_query = 4/7
    hits = rank("q", more, config=fixed.with_(adaptive_weight=1.0))
    assert hits[0].key == "kw"
    assert hits[0].score == pytest.approx(4 / 7 * 1.0 + 3 / 7 * 0.0)


def test_defaults_are_the_measured_ranking() -> None:
    assert (
        RankingConfig(
            keyword_weight=0.55, bm25_norm="minmax", entity_weight=0.1, context_mode="session"
        )
        == DEFAULT_CONFIG
    )
    assert DEFAULT_CONFIG.context_weight == 0.5
    assert DEFAULT_CONFIG.session_weight == 0.0
    assert DEFAULT_CONFIG.recency_weight == DEFAULT_CONFIG.importance_weight == 0.0


def test_semantic_gate_drops_a_weak_dense_side() -> None:
    cands = [Candidate("kw", bm25=3.0, cosine=0.10), Candidate("dense", bm25=1.0, cosine=0.2)]
    # without the gate: kw 0.5*1 + 0.5*0 = 0.5; dense 0.5/3 + 0.5 = 0.667
    assert keys(rank("q", cands, config=PLAIN)) == ["dense", "kw"]
    # best cosine 0.2 < gate 0.3: keyword only
    assert keys(rank("q", cands, config=PLAIN.with_(semantic_gate=0.3))) == ["kw", "dense"]


def test_context_spreads_within_the_session_only() -> None:
    cands = [
        Candidate("s1:1", bm25=4.0, metadata={"session": "s1"}),
        Candidate("s1:2", metadata={"session": "s1"}),
        Candidate("s2:1", metadata={"session": "s2"}),
        Candidate("x", bm25=1.0),
    ]
    near = {"s1:1": ["s1:2", "s2:1"]}
    cfg = PLAIN.with_(context_mode="session", context_weight=0.5)
    hits = rank("q", cands, neighbors=near, config=cfg)
    # own: s1:1 0.5 * 1.0, x 0.5 * 0.25; s1:2 gets 0.5 * 0.5; s2:1 is another session: nothing
    assert keys(hits) == ["s1:1", "s1:2", "x"]
    assert hits[1].components["context"] == pytest.approx(0.25)
    assert hits[1].score == pytest.approx(0.25)
    hits = rank("q", cands, neighbors=near, config=cfg.with_(context_mode="always"))
    assert keys(hits) == ["s1:1", "s1:2", "s2:1", "x"]


def test_context_spreads_where_a_session_is_unknown() -> None:
    cands = [Candidate("a", bm25=4.0), Candidate("b"), Candidate("c", metadata={"session": "s"})]
    near = {"a": ["b", "c", "d"]}  # "d" is not a candidate: its session is unknown
    hits = rank("q", cands, neighbors=near, config=PLAIN.with_(context_mode="session"))
    assert keys(hits) == ["a", "b", "c", "d"]  # b, c, d: 0.25 each, ties by key
    assert [h.score for h in hits[1:]] == pytest.approx([0.25, 0.25, 0.25])


def test_neighbours_may_be_a_callable() -> None:
    cands = [
        Candidate("a", bm25=2.0, metadata={"session": "s"}),
        Candidate("b", metadata={"session": "s"}),
    ]
    asked: list[list[str]] = []

    def lookup(ks: list[str]) -> dict[str, list[str]]:
        asked.append(list(ks))
        return {"a": ["b"]}

    hits = rank("q", cands, neighbors=lookup, config=PLAIN.with_(context_mode="session"))
    assert keys(hits) == ["a", "b"]
    assert asked == [["a"]]  # only the scored candidates are looked up


def test_session_max_pool_lifts_the_best_session() -> None:
    cands = [
        Candidate("a1", bm25=10.0, metadata={"session": "A"}),
        Candidate("b1", bm25=6.0, metadata={"session": "B"}),
        Candidate("a2", bm25=5.0, metadata={"session": "A"}),
    ]
    # own (w = 0.5): a1 0.5, b1 0.3, a2 0.25; g = 0.5: a2 = 0.5*0.25 + 0.5*0.5 = 0.375 passes b1 = 0.3
    assert keys(rank("q", cands, config=PLAIN)) == ["a1", "b1", "a2"]
    hits = rank("q", cands, config=PLAIN.with_(session_weight=0.5))
    assert keys(hits) == ["a1", "a2", "b1"]
    assert hits[1].components["session"] == pytest.approx(0.5)
    assert hits[1].score == pytest.approx(0.375)


def test_entity_overlap_boost() -> None:
    assert query_entities("What did Melanie paint in 2022 with Caroline?") == {
        "melani",
        "2022",
        "carolin",
    }
    assert query_entities("Where is it?") == set()
    cands = [
        Candidate("other", text="she paints a lot", bm25=2.0),
        Candidate("named", text="Melanie paints at night", bm25=1.8),
    ]
    assert keys(rank("when does Melanie paint", cands, config=PLAIN)) == ["other", "named"]
    cfg = PLAIN.with_(entity_weight=0.2)  # named: 0.5*0.9 + 0.2 > other: 0.5
    hits = rank("when does Melanie paint", cands, config=cfg)
    assert keys(hits) == ["named", "other"]
    assert hits[0].components["entity"] == pytest.approx(0.2)


def test_recency_and_importance() -> None:
    day = 86400.0
    cands = [
        Candidate("old", bm25=1.0, created_at=0.0),
        Candidate("new", bm25=0.95, created_at=30 * day, metadata={"importance": 0.0}),
    ]
    assert keys(rank("q", cands, config=PLAIN)) == ["old", "new"]
    cfg = PLAIN.with_(recency_weight=0.1, recency_half_life=30 * day)
    hits = rank("q", cands, config=cfg, now=30 * day)  # old: 0.5 + 0.05, new: 0.475 + 0.1
    assert keys(hits) == ["new", "old"]
    assert hits[1].components["recency"] == pytest.approx(0.05)
    imp = [Candidate("a", bm25=1.0), Candidate("b", bm25=0.9, importance=1.0)]
    assert keys(rank("q", imp, config=PLAIN.with_(importance_weight=0.1))) == ["b", "a"]


def test_dedup_drops_near_duplicates() -> None:
    cands = [
        Candidate("a", text="I moved to Berlin last year", bm25=3.0),
        Candidate("b", text="i moved to berlin last year!", bm25=2.9),
        Candidate("c", text="my cat is called Tom", bm25=1.0),
    ]
    assert keys(rank("q", cands, config=PLAIN.with_(dedup_threshold=0.9))) == ["a", "c"]
    assert keys(rank("q", cands, config=PLAIN)) == ["a", "b", "c"]


def test_limit_ties_and_empty() -> None:
    cands = [Candidate("b", bm25=1.0), Candidate("a", bm25=1.0), Candidate("c", bm25=0.5)]
    assert keys(rank("q", cands, config=PLAIN)) == ["a", "b", "c"]
    assert keys(rank("q", cands, config=PLAIN, limit=1)) == ["a"]
    assert rank("q", [], config=PLAIN) == []
    assert rank("q", cands, limit=0) == []


def test_group_of_reads_the_session_fields() -> None:
    assert group_of(Candidate("k", metadata={"session_id": 7})) == "7"
    assert group_of(Candidate("k")) is None


@pytest.mark.parametrize(
    ("options", "bad"),
    [
        ({"keyword_weight": 1.5}, "1.5"),
        ({"session_weight": -0.1}, "-0.1"),
        ({"context_weight": -1}, "-1"),
        ({"bm25_norm": "nope"}, "nope"),
        ({"cos_norm": "x"}, "x"),
        ({"context_mode": "y"}, "y"),
        ({"recency_half_life": 0}, "0"),
        ({"keyword_weight": float("nan")}, "nan"),
        ({"dedup_threshold": 2.0}, "2.0"),
    ],
)
def test_bad_config_names_the_value(options: dict, bad: str) -> None:
    with pytest.raises(InvalidArgumentError, match=bad):
        RankingConfig(**options)


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="-1"):
        rank("q", [Candidate("a", bm25=1.0)], limit=-1)
    with pytest.raises(InvalidArgumentError, match="candidates"):
        rank("q", [("a", 1.0)])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="query"):
        rank(3, [])  # type: ignore[arg-type]


def test_ablations_are_valid_configs() -> None:
    for options in ABLATIONS.values():
        DEFAULT_CONFIG.with_(**options)


@pytest.mark.parametrize(
    ("value", "tags"),
    [({"a": ["Ana", 3]}, ["t"]), ("Ana paints", []), ("Ana paints", ["art"]), ("", []), (7, [])],
    ids=["dict-tags", "str", "str-tags", "empty-str", "int"],
)
def test_the_fast_candidate_of_a_stored_memory_is_the_constructors(value: Any, tags: list[str]) -> None:
    import dataclasses

    from agentmem_plugin.entry import MemoryEntry
    from agentmem_plugin.ranking import _stored_candidate
    from agentmem_plugin.search import document_text

    entry = MemoryEntry("k", value, tags=tags, metadata={"session": "s1"})
    fast = _stored_candidate("k", entry, 2.5, None)
    slow = Candidate(
        "k",
        text=document_text("", entry.value, entry.tags),
        bm25=2.5,
        cosine=None,
        created_at=entry.created_at,
        metadata=entry.metadata,
    )
    assert fast == slow and vars(fast) == vars(slow)
    assert set(vars(fast)) == {
        f.name for f in dataclasses.fields(Candidate)
    }  # a new field: add it there
