"""BM25 in SearchIndex, checked against the textbook formula on a corpus small enough to check by hand.

The reference below is written from Robertson & Sparck Jones / Okapi BM25 as Lucene states it, not from
``agentmem_plugin/search.py``::

    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))
    score(d, q) = sum over distinct t in q of  idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * |d| / avgdl))

Every word of the corpus is its own Porter stem and no word is a stop word, so the terms of each document
are plain to see (the tokenizer has its own tests). The scores are also compared with ``bm25s``'s "lucene"
variant (a test dependency), an implementation that shares no code with either.
"""

from __future__ import annotations

import math
from collections import Counter

import pytest

from agentmem_plugin.search import SearchIndex, tokenize

CORPUS: dict[str, str] = {
    "d1": "cat",
    "d2": "cat dog dog",
    "d3": "dog fish fish fish bird",
    "d4": "bird",
}
"""N = 4, lengths 1, 3, 5, 1 (avgdl = 2.5); df: cat 2, dog 2, fish 1, bird 2."""


def reference_scores(
    corpus: dict[str, str], query: str, *, k1: float = 1.2, b: float = 0.75
) -> dict[str, float]:
    """Okapi BM25 (Lucene idf) of every document that holds a query term, from the formula alone."""
    docs = {key: Counter(text.split()) for key, text in corpus.items()}
    n = len(docs)
    avgdl = sum(sum(terms.values()) for terms in docs.values()) / n
    scores: dict[str, float] = {}
    for term in set(query.split()):
        df = sum(1 for terms in docs.values() if term in terms)
        if df == 0:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for key, terms in docs.items():
            tf = terms[term]
            if tf == 0:
                continue
            length = sum(terms.values())
            part = idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avgdl))
            scores[key] = scores.get(key, 0.0) + part
    return scores


def index_of(corpus: dict[str, str], **params: float) -> SearchIndex:
    idx = SearchIndex(**params)
    for key, text in corpus.items():
        idx.add_entry(key, text)
    return idx


def test_corpus_words_are_their_own_terms() -> None:
    # the premise of the hand computation: the tokenizer leaves these words as they are
    for text in CORPUS.values():
        assert tokenize(text) == text.split()


def test_hand_computed_idf_and_scores() -> None:
    # Computed by hand: N=4, avgdl=10/4=2.5, k1=1.2, b=0.75.
    # idf(fish) = ln(1 + 3.5/1.5) = ln(10/3); d3 has tf=3, |d3|=5: norm = 1.2*(0.25 + 0.75*5/2.5) = 2.1
    # score = ln(10/3) * 3 * 2.2 / (3 + 2.1) = ln(10/3) * 6.6/5.1
    fish = dict(index_of(CORPUS).search("fish"))
    assert fish == {"d3": pytest.approx(math.log(10 / 3) * 6.6 / 5.1, rel=1e-12)}
    # idf(cat) = ln(1 + 2.5/2.5) = ln 2; d1: |d|=1, norm = 1.2*(0.25 + 0.3) = 0.66 -> ln2 * 2.2/1.66
    #                                       d2: |d|=3, norm = 1.2*(0.25 + 0.9) = 1.38 -> ln2 * 2.2/2.38
    cat = dict(index_of(CORPUS).search("cat"))
    assert cat == {
        "d1": pytest.approx(math.log(2) * 2.2 / 1.66, rel=1e-12),
        "d2": pytest.approx(math.log(2) * 2.2 / 2.38, rel=1e-12),
    }


@pytest.mark.parametrize(
    "query", ["cat", "dog", "fish", "bird", "cat dog", "dog fish bird", "cat cat"]
)
@pytest.mark.parametrize(
    ("k1", "b"), [(1.2, 0.75), (0.5, 0.3), (2.0, 1.0), (1.5, 0.0), (0.0, 0.75)]
)
def test_scores_match_the_reference(query: str, k1: float, b: float) -> None:
    got = dict(index_of(CORPUS, k1=k1, b=b).search(query, top_k=10))
    want = reference_scores(CORPUS, query, k1=k1, b=b)
    assert got.keys() == want.keys()
    for key, score in want.items():
        assert got[key] == pytest.approx(score, rel=1e-9, abs=1e-12), key


def test_matches_bm25s_lucene_variant() -> None:
    import bm25s

    keys = list(CORPUS)
    retriever = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    retriever.index([CORPUS[k].split() for k in keys], show_progress=False)
    idx = index_of(CORPUS)
    for query in ("cat", "dog", "fish", "bird", "dog fish bird"):
        theirs = retriever.get_scores(query.split())
        ours = dict(idx.search(query))
        for key, score in zip(keys, theirs):
            # bm25s follows Lucene >= 8, which drops the constant (k1 + 1) factor (ranking-neutral)
            want = float(score) * (1.2 + 1)
            assert ours.get(key, 0.0) == pytest.approx(want, rel=1e-5, abs=1e-6), (query, key)


def test_length_normalisation_puts_the_shorter_document_first() -> None:
    # Same tf of the query term, different lengths: with b > 0 the shorter document scores higher. The keys
    # are chosen so that the tie-break by key would put the longer one first if lengths were ignored.
    corpus = {"a-long": "cat fish bird tree", "z-short": "cat", "m-other": "dog"}
    hits = index_of(corpus).search("cat")
    assert [k for k, _ in hits] == ["z-short", "a-long"]
    assert hits[0][1] > hits[1][1]
    # with b = 0 length does not count: a tie, broken by key
    flat = index_of(corpus, b=0.0).search("cat")
    assert [k for k, _ in flat] == ["a-long", "z-short"]
    assert flat[0][1] == pytest.approx(flat[1][1])


def test_average_length_is_the_corpus_average() -> None:
    # A document exactly as long as the average is scored as if b were 0 (its length factor is 1):
    # lengths 1, 2, 3 -> avgdl 2; the query term occurs once in the document of length 2.
    corpus = {"x": "dog", "y": "cat dog", "z": "dog fish bird"}
    idx = index_of(corpus)
    idf = math.log(1 + (3 - 1 + 0.5) / (1 + 0.5))
    assert dict(idx.search("cat")) == {"y": pytest.approx(idf * 2.2 / (1 + 1.2), rel=1e-12)}
    # removing a document changes N, df and avgdl together: {x, y} -> avgdl 1.5, |y| = 2
    idx.remove_entry("z")
    idf = math.log(1 + (2 - 1 + 0.5) / (1 + 0.5))
    norm = 1.2 * (0.25 + 0.75 * 2 / 1.5)
    assert dict(idx.search("cat")) == {"y": pytest.approx(idf * 2.2 / (1 + norm), rel=1e-12)}


def test_term_frequency_saturates_at_k1_plus_one_times_idf() -> None:
    # With b = 0 a term's contribution is idf * tf * (k1+1) / (tf + k1): increasing in tf, each extra
    # occurrence worth less than the one before, bounded by idf * (k1 + 1).
    corpus = {f"t{tf}": " ".join(["cat"] * tf) for tf in (1, 2, 3, 10, 100)}
    corpus["other"] = "dog"
    n, df = len(corpus), 5
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    scores = dict(index_of(corpus, b=0.0).search("cat"))
    for tf in (1, 2, 3, 10, 100):
        assert scores[f"t{tf}"] == pytest.approx(idf * tf * 2.2 / (tf + 1.2), rel=1e-12)
    ordered = [scores[f"t{tf}"] for tf in (1, 2, 3)]
    assert ordered[0] < ordered[1] < ordered[2]
    assert ordered[1] - ordered[0] > ordered[2] - ordered[1]
    assert scores["t100"] < idf * 2.2
    # k1 = 0: term frequency does not count at all (binary independence model)
    binary = dict(index_of(corpus, k1=0.0, b=0.0).search("cat"))
    assert len(set(round(s, 12) for s in binary.values())) == 1


def test_idf_is_never_negative_and_rarer_is_worth_more() -> None:
    # A term in most documents still adds a positive amount (the "1 +" inside the log); a rarer term of the
    # same tf and document length is worth more.
    corpus = {"a": "cat dog", "b": "cat fish", "c": "cat bird", "d": "cat tree", "e": "dog tree"}
    idx = index_of(corpus)
    common = dict(idx.search("cat"))
    assert set(common) == {"a", "b", "c", "d"}
    assert all(score > 0 for score in common.values())
    df_cat, df_fish = 4, 1
    expect_cat = math.log(1 + (5 - df_cat + 0.5) / (df_cat + 0.5))
    expect_fish = math.log(1 + (5 - df_fish + 0.5) / (df_fish + 0.5))
    # every document has length 2 = avgdl, so a score is idf * 2.2 / (1 + 1.2) = idf
    assert common["a"] == pytest.approx(expect_cat, rel=1e-12)
    assert dict(idx.search("fish")) == {"b": pytest.approx(expect_fish, rel=1e-12)}


def test_expected_order_on_a_mixed_query() -> None:
    # Query "dog fish bird" over CORPUS, derived from the formula (k1=1.2, b=0.75, avgdl=2.5):
    #   d3 holds all three terms (tf 1, 3, 1) and ranks first despite being the longest;
    #   d4 ("bird", length 1) beats d2 ("cat dog dog", length 3): both terms have df=2, and
    #   1 / (1 + 0.66) = 0.602 > 2 / (2 + 1.38) = 0.592 (two occurrences do not make up for the length).
    hits = index_of(CORPUS).search("dog fish bird")
    assert [k for k, _ in hits] == ["d3", "d4", "d2"]
    # a repeated query word counts once
    assert index_of(CORPUS).search("dog dog fish fish bird") == hits


def test_replacing_a_document_keeps_the_statistics_exact() -> None:
    idx = index_of(CORPUS)
    idx.add_entry("d3", "cat")  # d3 replaced: lengths 1, 3, 1, 1; df(cat)=3
    changed = dict(CORPUS, d3="cat")
    for query in ("cat", "dog", "fish", "bird"):
        want = reference_scores(changed, query)
        got = dict(idx.search(query))
        assert got.keys() == want.keys()
        for key, score in want.items():
            assert got[key] == pytest.approx(score, rel=1e-12)
    idx.rebuild()
    assert dict(idx.search("cat")) == pytest.approx(reference_scores(changed, "cat"), rel=1e-12)
