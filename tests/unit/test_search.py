from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentmem_plugin.search import STOP_WORDS, SearchIndex, document_text, tokenize


def test_tokenize_lowercases_stems_and_drops_stop_words() -> None:
    assert tokenize("The Processing of DATA") == ["process", "data"]
    assert tokenize("processing processed processes") == ["process"] * 3
    assert tokenize("Optimizing the data-processing strategies") == [
        "optim",
        "data",
        "process",
        "strategi",
    ]


def test_tokenize_only_stop_words() -> None:
    assert tokenize("the and of what is") == []
    assert tokenize("") == []
    assert tokenize("   ...!!! ") == []
    assert {"the", "what", "and"} <= STOP_WORDS


def test_tokenize_splits_on_underscore_like_fts5() -> None:
    # search.py promises the tokens of SQLite FTS5 "porter unicode61", where "_" is a separator.
    assert tokenize("invoice_2024") == ["invoic", "2024"]
    assert tokenize("snake_case_words") == ["snake", "case", "word"]


def test_tokenize_unicode_and_numbers() -> None:
    # diacritics are folded, as FTS5's unicode61 tokenizer does, so both tiers match "cafe" to "café"
    assert tokenize("café 42") == ["cafe", "42"]


def test_document_text_flattens() -> None:
    value = {
        "user": {"name": "ada", "langs": ["en", "fr"]},
        "age": 36,
        "score": 1.5,
        "ok": True,
        "n": None,
    }
    text = document_text("profile", value, ["person", "vip"])
    words = text.split()
    assert words[0] == "profile"
    for w in ("user", "name", "ada", "langs", "en", "fr", "age", "36", "score", "1.5", "ok", "n"):
        assert w in words
    assert words[-2:] == ["person", "vip"]
    assert "True" not in words
    assert "None" not in words


def test_document_text_plain_values() -> None:
    assert document_text("k", "hello world") == "k hello world"
    assert document_text("k", 7) == "k 7"
    assert document_text("k", [("a", "b")]) == "k a b"
    assert (
        document_text("prefs", {"language": "english"}, ["user"]) == "prefs language english user"
    )


def test_index_add_replace_remove() -> None:
    idx = SearchIndex()
    idx.add_entry("a", "parallel data processing")
    idx.add_entry("b", "user prefers formal language")
    assert len(idx) == 2
    assert "a" in idx
    assert [k for k, _ in idx.search("processing")] == ["a"]
    idx.add_entry("a", "formal greetings")  # replace
    assert len(idx) == 2
    assert idx.search("processing") == []
    assert {k for k, _ in idx.search("formal")} == {"a", "b"}
    idx.remove_entry("b")
    idx.remove_entry("b")  # no error
    assert "b" not in idx
    assert [k for k, _ in idx.search("formal")] == ["a"]
    idx.clear()
    assert len(idx) == 0
    assert idx.search("formal") == []


def test_scores_positive_best_first() -> None:
    idx = SearchIndex()
    for i in range(5):
        idx.add_entry(f"d{i}", "apple " * (i + 1) + "filler " * (5 - i))
    hits = idx.search("apple")
    scores = [s for _, s in hits]
    assert all(s > 0 for s in scores)
    assert scores == sorted(scores, reverse=True)


def test_rare_term_outranks_common_term() -> None:
    idx = SearchIndex()
    idx.add_entry("rare", "zebra common")
    for i in range(6):
        idx.add_entry(f"c{i}", "common words here")
    idx.add_entry("common_only", "common stuff")
    hits = idx.search("zebra common")
    assert hits[0][0] == "rare"
    assert hits[0][1] > hits[1][1]


def test_more_occurrences_rank_higher_at_same_length() -> None:
    idx = SearchIndex()
    idx.add_entry("one", "apple banana cherry grape")
    idx.add_entry("three", "apple apple apple grape")
    idx.add_entry("none", "melon banana cherry grape")
    hits = idx.search("apple")
    assert [k for k, _ in hits] == ["three", "one"]
    assert hits[0][1] > hits[1][1]


def test_empty_or_stop_word_queries() -> None:
    idx = SearchIndex()
    idx.add_entry("a", "the quick brown fox")
    assert idx.search("") == []
    assert idx.search("the and of") == []
    assert idx.search("unrelated") == []
    assert SearchIndex().search("fox") == []


def test_top_k() -> None:
    idx = SearchIndex()
    for i in range(20):
        idx.add_entry(f"k{i:02d}", "shared term " + "pad " * i)
    assert len(idx.search("shared", top_k=5)) == 5
    assert len(idx.search("shared")) == 10
    assert len(idx.search("shared", top_k=100)) == 20
    assert idx.search("shared", top_k=0) == []
    # ties broken by key, shortest docs first
    assert [k for k, _ in idx.search("shared", top_k=3)] == ["k00", "k01", "k02"]


def _docs() -> list[tuple[str, str]]:
    return [
        ("a", "parallel data processing pipelines"),
        ("b", "user prefers formal language in emails"),
        ("c", "data cleaning before processing data"),
        ("d", "formal data model"),
    ]


QUERIES = ["data", "formal language", "processing pipelines", "emails data", "model user"]


def _rankings(idx: SearchIndex) -> list[list[tuple[str, float]]]:
    return [idx.search(q, top_k=50) for q in QUERIES]


def _assert_same(a: list[list[tuple[str, float]]], b: list[list[tuple[str, float]]]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        assert [k for k, _ in ra] == [k for k, _ in rb]
        for (_, sa), (_, sb) in zip(ra, rb, strict=True):
            assert sa == pytest.approx(sb, abs=1e-9)


def test_rebuild_without_documents_matches_fresh() -> None:
    fresh = SearchIndex()
    for k, t in _docs():
        fresh.add_entry(k, t)
    idx = SearchIndex()
    idx.add_entry("gone", "data data data formal")
    for k, t in _docs():
        idx.add_entry(k, t)
    idx.add_entry("a", "something else")
    idx.add_entry("a", _docs()[0][1])
    idx.remove_entry("gone")
    idx.rebuild()
    assert len(idx) == 4
    _assert_same(_rankings(idx), _rankings(fresh))


def test_rebuild_with_documents_replaces_everything() -> None:
    fresh = SearchIndex()
    for k, t in _docs():
        fresh.add_entry(k, t)
    idx = SearchIndex()
    idx.add_entry("old", "data formal language processing")
    idx.rebuild(_docs())
    assert "old" not in idx
    _assert_same(_rankings(idx), _rankings(fresh))


_WORDS = ["data", "process", "formal", "languag", "apple", "zebra", "the", "model", "user", "email"]
_TEXT = st.lists(st.sampled_from(_WORDS), min_size=0, max_size=8).map(" ".join)
_KEYS = st.sampled_from([f"k{i}" for i in range(8)])
_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("add"), _KEYS, _TEXT), st.tuples(st.just("remove"), _KEYS, st.just(""))
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(
    _OPS,
    st.lists(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=3).map(" ".join), max_size=4),
)
def test_incremental_index_matches_fresh_build(
    ops: list[tuple[str, str, str]], queries: list[str]
) -> None:
    idx = SearchIndex()
    docs: dict[str, str] = {}
    for op, key, text in ops:
        if op == "add":
            idx.add_entry(key, text)
            docs[key] = text
        else:
            idx.remove_entry(key)
            docs.pop(key, None)
    fresh = SearchIndex()
    for key, text in docs.items():
        fresh.add_entry(key, text)
    assert len(idx) == len(fresh)
    for q in [*queries, " ".join(_WORDS)]:
        _assert_same([idx.search(q, top_k=20)], [fresh.search(q, top_k=20)])
    idx.rebuild()
    for q in queries:
        _assert_same([idx.search(q, top_k=20)], [fresh.search(q, top_k=20)])
