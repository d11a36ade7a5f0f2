"""Retrieval quality on LongMemEval-S (development half), the official retrieval protocol.

Run: ``.venv/bin/python benchmarks/bench_lme.py [--limit N] [--ablation] [--embedder fp32|onnx|onnx-int8]``

Protocol (LongMemEval ``src/retrieval/``, see ``../shared/data/longmemeval/README.md``): one corpus per question
made of the USER turns of its haystack, id ``<session_id>_<turn number, 1-based over all turns>``; relevant = user
turns with ``has_answer`` in an answer session; ``_abs`` questions (and questions with no relevant user turn) are
skipped. Session level (upstream ``evaluate_retrieval_turn2session``): rank turns, map each to its session, widen
k until k distinct sessions are in; ``recall_all@5`` (every answer session in the top 5) and ``ndcg_any@5/10``
(upstream's nDCG, where every turn of an answer session counts); ``dNDCG@10`` is nDCG over distinct sessions
(each session once), shown because it is what "session nDCG" often means. Turn level: ``recall_all@5/10/50``.

Each question's turns go into a fresh persistent ``Memory(embedder=...)`` (value = the turn's text, metadata =
its session and date, ``created_at`` = the session's date). Candidates are gathered through the public API (the
tier's ``keyword_search`` and its semantic index, 100 deep each, as ``Memory.search`` takes for ``limit <= 20``)
and cached on disk with the embeddings (as JSON, keyed by embedder kind, depth and radius), so reruns and
ablations take seconds. Rows, all from the same candidates except ``Memory.search as shipped``:

* ``BM25`` (the tier's FTS5/BM25 ranking), ``dense MiniLM`` (the semantic index), ``fusion`` (min-max fusion of
  the two, ``search.fuse`` with weight 0.5), ``RRF`` (k=60): the references;
* ``Memory.search as shipped``: ``Memory.search(query, limit=50, mode="hybrid")`` (since issue 18 it ranks with
  :mod:`agentmem_plugin.ranking`; it gathers its own candidates, ``max(5 * limit, 100)`` deep per side);
* ``before issue 18``: the ranking ``Memory.search`` shipped before issue 18 (``search.hybrid_ranking``: min-max
  fusion at keyword weight 0.6, then contiguity 0.5 between neighbours at radius 2, across sessions), recomputed
  on the gathered candidates;
* ``ranking.py``: :func:`agentmem_plugin.ranking.rank` with its defaults, on the same candidates.

``--limit N`` takes a stratified sample (question types in proportion, deterministic) for quick runs; the table
in ``docs/benchmarks.md`` is the full dev half. The data is read from ``../shared/data/longmemeval/`` and never
copied. Embeddings are cached in ``$AGENTMEM_BENCH_CACHE`` (default ``/tmp/agentmem-bench-cache``).
"""

from __future__ import annotations

import argparse
import gzip
import math
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from agentmem_plugin import Memory
from agentmem_plugin.embeddings import CachedEmbedder, Embedder, EmbeddingCache
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.search import fuse, hybrid_ranking

DATA = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "longmemeval"
    / "longmemeval_s_dev.json.gz"
)
CACHE_DIR = Path(os.environ.get("AGENTMEM_BENCH_CACHE", "/tmp/agentmem-bench-cache"))
DEPTH = 100  # candidates per side, as Memory.search (HYBRID_CANDIDATES)
RADIUS = 2  # neighbours looked up per candidate (Memory's DEFAULT_CONTEXT_RADIUS)
TYPES = (
    "single-session-user",
    "single-session-assistant",
    "single-session-preference",
    "multi-session",
    "knowledge-update",
    "temporal-reasoning",
)


# -- embedders ------------------------------------------------------------------------------------------------


def make_embedder(kind: str = "fp32") -> Embedder:
    """The benchmark's embedder behind an on-disk cache outside the repository (one cache file per kind).

    ``fp32``: :class:`SentenceTransformerEmbedder`; ``onnx``: :class:`OnnxEmbedder` (fp32 export);
    ``onnx-int8``: its int8-quantized export. Each kind has its own cache file, so the ONNX rows are measured
    with their own vectors (fp32 ONNX records the same model name as sentence-transformers).
    """
    from agentmem_plugin import embeddings

    inner: Embedder | None = _INNER.get(kind)
    if (
        inner is not None
    ):  # a fresh cache handle per Memory: closing a Memory may close its embedder's cache
        return CachedEmbedder(inner, EmbeddingCache(_CACHE_FILES[kind]))
    if kind == "fp32":
        inner = embeddings.SentenceTransformerEmbedder(batch_size=64)
        cache = CACHE_DIR / "minilm.sqlite"
    elif kind in ("onnx", "onnx-int8"):
        inner = embeddings.OnnxEmbedder(
            batch_size=32, quantize=kind == "onnx-int8", cache_dir=CACHE_DIR / "onnx"
        )
        cache = CACHE_DIR / f"minilm-{kind}.sqlite"
    else:
        raise SystemExit(f"unknown embedder {kind!r}")
    _INNER[kind], _CACHE_FILES[kind] = inner, cache
    return CachedEmbedder(inner, EmbeddingCache(cache))


_INNER: dict[str, Embedder] = {}
_CACHE_FILES: dict[str, Path] = {}


# -- data -----------------------------------------------------------------------------------------------------


def parse_date(text: str) -> float:
    """``"2023/03/27 (Mon) 00:49"`` as a UTC timestamp."""
    return (
        datetime.strptime(text.strip(), "%Y/%m/%d (%a) %H:%M")
        .replace(tzinfo=timezone.utc)
        .timestamp()
    )


@dataclass
class Doc:
    key: str
    text: str
    session: str
    created_at: float


@dataclass
class Question:
    qid: str
    qtype: str
    query: str
    date: float
    docs: list[Doc]
    gold_turns: set[str]
    gold_sessions: set[str]


def load(path: Path = DATA) -> list[Question]:
    """The evaluable questions of the dev half, with their corpora (user turns), in file order."""
    data = orjson.loads(gzip.decompress(path.read_bytes()))
    sessions = data["sessions"]
    out: list[Question] = []
    for q in data["questions"]:
        if q["question_id"].endswith("_abs"):
            continue
        answer_sessions = set(q["answer_session_ids"])
        docs: list[Doc] = []
        gold: set[str] = set()
        for sid, date in zip(q["haystack_session_ids"], q["haystack_dates"], strict=True):
            ts = parse_date(date)
            for number, turn in enumerate(sessions[sid], 1):
                if turn["role"] != "user" or not turn["content"].strip():
                    continue
                key = f"{sid}_{number}"
                docs.append(Doc(key, turn["content"], sid, ts + number))
                if sid in answer_sessions and turn.get("has_answer"):
                    gold.add(key)
        if not gold:
            continue
        out.append(
            Question(
                q["question_id"],
                q["question_type"],
                q["question"],
                parse_date(q["question_date"]),
                docs,
                gold,
                {d.session for d in docs if d.key in gold},
            )
        )
    return out


def stratified(items: Sequence[Any], limit: int | None, kind: Callable[[Any], str]) -> list[Any]:
    """A deterministic sample of *limit* items with every kind in proportion (largest remainders)."""
    if limit is None or limit >= len(items):
        return list(items)
    groups: dict[str, list[Any]] = defaultdict(list)
    for item in items:
        groups[kind(item)].append(item)
    quota = {k: limit * len(v) / len(items) for k, v in groups.items()}
    take = {k: int(q) for k, q in quota.items()}
    for k in sorted(quota, key=lambda k: take[k] - quota[k])[: limit - sum(take.values())]:
        take[k] += 1
    chosen = set()
    for k, members in groups.items():
        step = len(members) / take[k] if take[k] else 0
        chosen |= {id(members[int(i * step)]) for i in range(take[k])}
    return [item for item in items if id(item) in chosen]


# -- candidates through the public API -------------------------------------------------------------------------


@dataclass
class Candidates:
    """What a search gathers for one query, through the public API (cached on disk by the benchmarks)."""

    bm25: list[tuple[str, float]]  # tier.keyword_search, best first
    dense: list[tuple[str, float]]  # semantic index, cosine, best first
    today: list[str]  # Memory.search(mode="hybrid") as shipped
    entries: dict[str, MemoryEntry]  # every candidate and neighbour
    neighbors: dict[str, list[str]]  # tier.neighbors(candidates, RADIUS)
    today_s: float = 0.0  # Memory.search latency
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(
        self, entry_ref: Callable[[MemoryEntry], Any] = MemoryEntry.to_dict
    ) -> dict[str, Any]:
        """The candidates as JSON-friendly data, each entry as *entry_ref* gives it (default: its dict)."""
        return {
            "bm25": self.bm25,
            "dense": self.dense,
            "today": self.today,
            "entries": [entry_ref(e) for e in self.entries.values()],
            "neighbors": self.neighbors,
            "today_s": self.today_s,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(
        cls,
        data: dict[str, Any],
        entry_of: Callable[[Any], MemoryEntry] = MemoryEntry.from_dict,
    ) -> Candidates:
        """The inverse of :meth:`to_dict` (*entry_of* the inverse of its *entry_ref*)."""
        entries = [entry_of(d) for d in data["entries"]]
        return cls(
            [(k, float(s)) for k, s in data["bm25"]],
            [(k, float(s)) for k, s in data["dense"]],
            list(data["today"]),
            {e.key: e for e in entries},
            {k: list(v) for k, v in data["neighbors"].items()},
            float(data["today_s"]),
            dict(data["extra"]),
        )


CACHE_FORMAT = (
    3  # bump when the stored form changes (1 was a pickle; 2 repeated each entry per question)
)


def load_candidates(path: Path) -> dict[str, Candidates]:
    """The candidates cached in *path* by :func:`save_candidates` ({} when absent or of another format)."""
    if not path.exists():
        return {}
    data = orjson.loads(path.read_bytes())
    if data.get("format") != CACHE_FORMAT:
        return {}
    table = [
        MemoryEntry.from_dict(d) for d in data["entries"]
    ]  # shared: the rankers only read them
    return {
        qid: Candidates.from_dict(c, table.__getitem__) for qid, c in data["candidates"].items()
    }


def save_candidates(path: Path, cached: dict[str, Candidates]) -> None:
    """Write *cached* to *path* as JSON: each distinct entry once (``MemoryEntry.to_dict``), referred to by index.

    Written through a temporary file, so an interrupted run leaves the previous cache.
    """
    table: list[dict[str, Any]] = []
    index: dict[bytes, int] = {}

    def ref(entry: MemoryEntry) -> int:
        d = entry.to_dict()
        blob = orjson.dumps(d, option=orjson.OPT_SORT_KEYS)
        if blob not in index:
            index[blob] = len(table)
            table.append(d)
        return index[blob]

    candidates = {q: c.to_dict(ref) for q, c in cached.items()}
    data = {"format": CACHE_FORMAT, "entries": table, "candidates": candidates}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(data))
    tmp.replace(path)


def cache_path(prefix: str, embedder_kind: str) -> Path:
    """The cache file of one benchmark's candidates, by embedder kind, depth and radius."""
    return (
        CACHE_DIR / f"{prefix}-candidates-v{CACHE_FORMAT}-{embedder_kind}-d{DEPTH}-r{RADIUS}.json"
    )


def gather(
    memory: Memory, query: str, *, depth: int = DEPTH, radius: int = RADIUS, limit: int = 50
) -> Candidates:
    """Candidates of *query* from *memory*: BM25 and dense lists, neighbours, and today's hybrid ranking."""
    tier = memory.tier
    semantic = tier.semantic_index()
    assert semantic is not None
    t0 = time.perf_counter()
    today = [h["key"] for h in memory.search(query, limit=limit, mode="hybrid")]
    today_s = time.perf_counter() - t0
    keyword = tier.keyword_search(query, depth)
    dense = semantic.search(query, depth)
    entries = {e.key: e for e, _ in keyword}
    entries.update((e.key, e) for e, _ in dense)
    near = tier.neighbors(list(entries), radius)
    missing = {k for ks in near.values() for k in ks if k not in entries}
    for entry in tier.get_many(sorted(missing), touch=False):
        if entry is not None:
            entries[entry.key] = entry
    return Candidates(
        [(e.key, s) for e, s in keyword],
        [(e.key, s) for e, s in dense],
        today,
        entries,
        near,
        today_s,
    )


def open_memory(path: Path, embedder: Embedder) -> Memory:
    """A fresh persistent, unbounded Memory with a semantic index."""
    return Memory(capacity=None, persistence=True, storage_path=path, embedder=embedder)


def candidates_for(
    questions: list[Question], embedder_kind: str, *, refresh: bool = False
) -> dict[str, Candidates]:
    """Candidates of every question, from the on-disk cache or gathered (one fresh Memory per question)."""
    path = cache_path("lme", embedder_kind)
    cached: dict[str, Candidates] = {} if refresh else load_candidates(path)
    todo = [q for q in questions if q.qid not in cached]
    if todo:
        t_start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="agentmem-lme-") as tmp:
            for i, q in enumerate(todo, 1):
                memory = open_memory(Path(tmp) / q.qid, make_embedder(embedder_kind))
                memory.store_many(
                    [
                        MemoryEntry(
                            d.key,
                            d.text,
                            metadata={"session": d.session},
                            created_at=d.created_at,
                        )
                        for d in q.docs
                    ]
                )
                cached[q.qid] = gather(memory, q.query)
                memory.close()
                if i % 10 == 0 or i == len(todo):
                    elapsed = time.perf_counter() - t_start
                    print(
                        f"  gathered {i}/{len(todo)} questions in {elapsed:.0f} s", file=sys.stderr
                    )
                    save_candidates(path, cached)
    return cached


# -- metrics: LongMemEval's src/retrieval/eval_utils.py, over keys instead of corpus indices -------------------


def dcg(relevances: Sequence[float], k: int) -> float:
    """LongMemEval's DCG: ranks 1 and 2 weigh the same (``rel[0] + sum(rel[i] / log2(i + 1))``, i >= 1)."""
    rel = list(relevances)[:k]
    if not rel:
        return 0.0
    return rel[0] + sum(r / math.log2(i) for i, r in enumerate(rel[1:], 2))


def evaluate_retrieval(
    ranked: Sequence[str], correct: set[str], corpus_ids: Sequence[str], k: int
) -> tuple[float, float, float]:
    """``(recall_any, recall_all, ndcg_any)`` at *k*; *ranked* ranks every corpus position (ids may repeat)."""
    recalled = set(ranked[:k])
    recall_any = float(any(doc in recalled for doc in correct))
    recall_all = float(all(doc in recalled for doc in correct))
    ideal = dcg(sorted((1.0 if doc in correct else 0.0 for doc in corpus_ids), reverse=True), k)
    actual = dcg([1.0 if doc in correct else 0.0 for doc in ranked[:k]], k)
    return recall_any, recall_all, actual / ideal if ideal else 0.0


def evaluate_turn2session(
    ranked: Sequence[str],
    session_of: dict[str, str],
    correct: set[str],
    corpus: Sequence[str],
    k: int,
) -> tuple[float, float, float]:
    """LongMemEval's ``evaluate_retrieval_turn2session``: turns mapped to sessions, k widened to k sessions.

    As upstream, nDCG then counts every turn of an answer session as relevant (the ideal ranking puts all of
    them first), so it rewards ranking an answer session's turns together.
    """
    sessions = [session_of[t] for t in ranked]
    effective_k = k
    while effective_k <= len(corpus) and len(set(sessions[:effective_k])) < k:
        effective_k += 1
    return evaluate_retrieval(sessions, correct, [session_of[t] for t in corpus], effective_k)


class Scores:
    """Per-question metrics, averaged."""

    NAMES = ("sR@5", "sNDCG@5", "sNDCG@10", "dNDCG@10", "tR@5", "tR@10", "tR@50")

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {n: [] for n in self.NAMES}

    def add(self, ranked_turns: Sequence[str], q: Question) -> None:
        """Score one question's ranking (the corpus turns it leaves out are appended in corpus order)."""
        corpus = [d.key for d in q.docs]
        session_of = {d.key: d.session for d in q.docs}
        ranked = list(dict.fromkeys(k for k in ranked_turns if k in session_of))
        seen = set(ranked)
        ranked += [k for k in corpus if k not in seen]
        v = self.values
        v["sR@5"].append(evaluate_turn2session(ranked, session_of, q.gold_sessions, corpus, 5)[1])
        v["sNDCG@5"].append(
            evaluate_turn2session(ranked, session_of, q.gold_sessions, corpus, 5)[2]
        )
        v["sNDCG@10"].append(
            evaluate_turn2session(ranked, session_of, q.gold_sessions, corpus, 10)[2]
        )
        distinct = list(dict.fromkeys(session_of[t] for t in ranked))  # each session once
        v["dNDCG@10"].append(evaluate_retrieval(distinct, q.gold_sessions, distinct, 10)[2])
        for k in (5, 10, 50):
            v[f"tR@{k}"].append(evaluate_retrieval(ranked, q.gold_turns, corpus, k)[1])

    def mean(self, name: str) -> float:
        values = self.values[name]
        return statistics.fmean(values) if values else 0.0

    def __len__(self) -> int:
        return len(self.values["sR@5"])

    def row(self, label: str, base: Scores | None = None) -> str:
        cells = []
        for n in self.NAMES:
            cell = f"{n} {self.mean(n):.3f}"
            if base is not None and n in ("sR@5", "sNDCG@10"):
                cell += f" ({self.mean(n) - base.mean(n):+.3f})"
            cells.append(cell)
        return f"  {label:<52} n={len(self):<4} " + "  ".join(cells)


# -- rankers on gathered candidates ------------------------------------------------------------------------------

Ranker = Callable[[Question, Candidates], list[str]]


def rrf(lists: Sequence[Sequence[tuple[str, float]]], k: int = 60) -> list[str]:
    """Reciprocal-rank fusion of ranked lists."""
    scores: dict[str, float] = defaultdict(float)
    for ranked in lists:
        for rank, (key, _) in enumerate(ranked, 1):
            scores[key] += 1.0 / (k + rank)
    return [key for key, _ in sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))]


SHIPPED = "Memory.search as shipped"
BEFORE_18 = "before issue 18 (fuse + contiguity across sessions)"


def before_issue_18(q: Question, c: Candidates, limit: int = 50) -> list[str]:
    """The hybrid ranking ``Memory.search`` shipped before issue 18, on the gathered candidates.

    ``search.hybrid_ranking`` with the old defaults: keyword weight 0.6, context weight 0.5, radius 2 (neighbours
    across sessions), neighbours of the best ``max(5 * limit, 50)`` fused keys.
    """

    def near(keys: list[str], radius: int) -> dict[str, list[str]]:
        return {k: c.neighbors[k] for k in keys if k in c.neighbors}

    ranked = hybrid_ranking(
        c.bm25,
        c.dense,
        limit=limit,
        keyword_weight=0.6,
        context_weight=0.5,
        context_radius=RADIUS,
        neighbors=near,
        context_candidates=50,
    )
    return [k for k, _ in ranked]


def references() -> dict[str, Ranker]:
    """BM25, dense, min-max fusion, RRF, Memory.search as shipped and the ranking before issue 18."""
    return {
        "BM25 (tier keyword_search)": lambda q, c: [k for k, _ in c.bm25],
        "dense MiniLM (semantic index)": lambda q, c: [k for k, _ in c.dense],
        "fusion (search.fuse, w=0.5)": lambda q, c: [
            k for k, _ in fuse(c.bm25, c.dense, keyword_weight=0.5)
        ],
        "RRF (k=60)": lambda q, c: rrf([c.bm25, c.dense]),
        SHIPPED: lambda q, c: c.today,
        BEFORE_18: before_issue_18,
    }


def ranking_inputs(c: Candidates) -> list[Any]:
    """The candidates as :class:`agentmem_plugin.ranking.Candidate` objects.

    Every gathered entry: those either side found, and their neighbours (found by neither side: no scores).
    """
    from agentmem_plugin.ranking import Candidate

    bm25 = dict(c.bm25)
    cosine = dict(c.dense)
    return [
        Candidate(
            key=key,
            text=str(entry.value),
            bm25=bm25.get(key),
            cosine=cosine.get(key),
            created_at=entry.created_at,
            metadata=entry.metadata,
        )
        for key, entry in c.entries.items()
    ]


def ranking_ranker(**options: Any) -> Ranker:
    """:func:`agentmem_plugin.ranking.rank` with *options* as a ranker of gathered candidates."""
    from agentmem_plugin.ranking import RankingConfig, rank

    config = RankingConfig(**options)

    def run(q: Question, c: Candidates) -> list[str]:
        hits = rank(q.query, ranking_inputs(c), neighbors=c.neighbors, config=config, now=q.date)
        return [h.key for h in hits]

    return run


def ablations() -> dict[str, Ranker]:
    """Each idea of :mod:`agentmem_plugin.ranking` switched on or off against its default."""
    from agentmem_plugin.ranking import ABLATIONS

    return {label: ranking_ranker(**opts) for label, opts in ABLATIONS.items()}


def evaluate(
    questions: list[Question],
    cands: dict[str, Candidates],
    rankers: dict[str, Ranker],
    group: Callable[[Question], str],
) -> dict[str, dict[str, Scores]]:
    """Scores of every ranker, per group and over all questions (``"all"``)."""
    out: dict[str, dict[str, Scores]] = {label: defaultdict(Scores) for label in rankers}
    for q in questions:
        c = cands[q.qid]
        for label, ranker in rankers.items():
            ranked = ranker(q, c)
            out[label]["all"].add(ranked, q)
            out[label][group(q)].add(ranked, q)
    return out


def print_table(
    results: dict[str, dict[str, Scores]], groups: Sequence[str], base_label: str | None
) -> None:
    """One block per group: every ranker's row (with its delta against *base_label*)."""
    for g in groups:
        print(f"\n[{g}]")
        base = results[base_label][g] if base_label else None
        for label, by_group in results.items():
            if g in by_group:
                print(by_group[g].row(label, None if label == base_label else base))


def ingest_bench(n_texts: int, rounds: int) -> None:
    """Embedding and ingest speed beside raw ``SentenceTransformer.encode`` and raw Chroma, in one run.

    Texts: the first *n_texts* distinct user turns of the dev half. Every embedder runs uncached; each figure
    is the best of *rounds* interleaved rounds (the machine is shared). Query p50 over 50 questions.
    """
    import chromadb

    from agentmem_plugin import embeddings
    from agentmem_plugin.ranking import rank

    questions = load()
    texts = list(dict.fromkeys(d.text.strip() for q in questions for d in q.docs))[:n_texts]
    queries = [q.query for q in stratified(questions, 50, lambda q: q.qtype)]
    st = embeddings.SentenceTransformerEmbedder(batch_size=32)
    model = st.model
    onnx_dir = CACHE_DIR / "onnx"
    embedders: dict[str, Embedder] = {
        "SentenceTransformerEmbedder (fp32)": st,
        "OnnxEmbedder (fp32)": embeddings.OnnxEmbedder(batch_size=32, cache_dir=onnx_dir),
        "OnnxEmbedder (int8)": embeddings.OnnxEmbedder(
            batch_size=32, quantize=True, cache_dir=onnx_dir
        ),
    }
    for e in embedders.values():
        e.embed_query("warm up")  # load, export once
    best: dict[str, float] = defaultdict(float)

    def rate(label: str, seconds: float) -> None:
        best[label] = max(best[label], len(texts) / seconds)

    vectors: list[list[float]] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        raw = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        rate("raw SentenceTransformer.encode (fp32)", time.perf_counter() - t0)
        vectors = raw.tolist()
        for label, e in embedders.items():
            t0 = time.perf_counter()
            e.embed_documents(texts)
            rate(f"{label}.embed_documents", time.perf_counter() - t0)
    latencies: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="agentmem-ingest-") as tmp:
        client = chromadb.PersistentClient(path=str(Path(tmp) / "raw-chroma"))
        for r in range(rounds):
            collection = client.create_collection(f"raw{r}", metadata={"hnsw:space": "cosine"})
            t0 = time.perf_counter()
            ids = [str(i) for i in range(len(texts))]
            for start in range(0, len(texts), 256):
                collection.add(
                    ids=ids[start : start + 256],
                    embeddings=vectors[start : start + 256],
                    documents=texts[start : start + 256],
                )
            rate("raw Chroma add (precomputed vectors)", time.perf_counter() - t0)
            for n, (label, e) in enumerate(embedders.items()):
                memory = open_memory(Path(tmp) / f"{r}-{n}", e)
                t0 = time.perf_counter()
                memory.store_many([(f"t{i}", t) for i, t in enumerate(texts)])
                rate(f"Memory.store_many, {label}", time.perf_counter() - t0)
                if r == rounds - 1:
                    for query in queries:
                        t0 = time.perf_counter()
                        memory.search(query, limit=10, mode="hybrid")
                        latencies[f"Memory.search hybrid, {label}"].append(time.perf_counter() - t0)
                        t0 = time.perf_counter()
                        c = gather(memory, query, limit=10)  # also runs Memory.search: subtracted
                        rank(query, ranking_inputs(c), neighbors=c.neighbors, limit=10)
                        latencies[f"gather + ranking.rank, {label}"].append(
                            time.perf_counter() - t0 - c.today_s
                        )
                memory.close()
            if r == rounds - 1:
                for query in queries:
                    t0 = time.perf_counter()
                    collection.query(query_embeddings=[st.embed_query(query)], n_results=10)
                    latencies["raw encode + raw Chroma query"].append(time.perf_counter() - t0)
    base = best["raw SentenceTransformer.encode (fp32)"]
    print(f"\ningest: {len(texts)} LongMemEval user turns, best of {rounds} rounds")
    for label, value in best.items():
        print(f"  {label:<58} {value:8.1f} texts/s  ({value / base:.2f}x raw encode)")
    print(f"query latency over {len(queries)} questions ({len(texts)} memories)")
    for label, values in latencies.items():
        print(f"  {label:<58} p50 {statistics.median(values) * 1000:7.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--ingest", type=int, default=0, metavar="N", help="measure ingest speed on N texts instead"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds of --ingest (best counts)")
    parser.add_argument("--limit", type=int, default=None, help="stratified sample of N questions")
    parser.add_argument("--ablation", action="store_true", help="add the ranking.py ablation rows")
    parser.add_argument("--embedder", default="fp32", choices=["fp32", "onnx", "onnx-int8"])
    parser.add_argument("--refresh", action="store_true", help="gather candidates again")
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"LongMemEval data not found at {DATA}")
    if args.ingest:
        ingest_bench(args.ingest, args.rounds)
        return
    questions = stratified(load(), args.limit, lambda q: q.qtype)
    print(
        f"LongMemEval-S dev: {len(questions)} questions, "
        f"{sum(len(q.docs) for q in questions)} user turns, embedder {args.embedder}"
    )
    cands = candidates_for(questions, args.embedder, refresh=args.refresh)
    today = [cands[q.qid].today_s for q in questions]
    if len(today) > 1:
        print(f"Memory.search latency: p50 {statistics.median(today) * 1000:.1f} ms")
    rankers = references()
    try:
        rankers["ranking.py (default)"] = ranking_ranker()
        if args.ablation:
            rankers.update(ablations())
    except ImportError as exc:
        print(f"(ranking.py rows skipped: {exc})")
    results = evaluate(questions, cands, rankers, lambda q: q.qtype)
    groups = ["all"] + [t for t in TYPES if any(q.qtype == t for q in questions)]
    base = "ranking.py (default)" if "ranking.py (default)" in rankers else None
    print_table(results, groups, base)


if __name__ == "__main__":
    main()
