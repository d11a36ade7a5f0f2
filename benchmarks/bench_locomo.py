"""Retrieval quality on LoCoMo (development half): recall@1/5/10 and MRR per category, with latencies.

Run: ``.venv/bin/python benchmarks/bench_locomo.py [--mode hybrid|keyword|semantic] [--sweep]``, or
``.venv/bin/python benchmarks/bench_locomo.py --references [--limit N] [--ablation] [--embedder fp32|onnx|onnx-int8]``
for the table beside its references (see below).

Each conversation goes into a fresh persistent ``Memory`` (one memory per turn: key = dia_id, value =
``"[<session date>] Speaker: text"``); every question is asked through ``search(question, limit=10)``.
Recall@k is the share of a question's evidence turns found in the top k, averaged over questions; MRR uses the
rank of the first evidence turn. Categories: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop,
5 adversarial (reported apart). The data is read from ``../shared/data/locomo/`` and never copied.

``--references`` works as ``bench_lme.py`` does: each conversation goes into a fresh ``Memory(embedder=...)``
(metadata = the turn's session, ``created_at`` = the session's date), candidates are gathered through the public
API (the tier's ``keyword_search`` and semantic index, 100 deep each, and ``Memory.search`` as shipped) and cached
on disk (JSON) with the embeddings; then BM25, dense MiniLM, min-max fusion (``search.fuse``, w=0.5), RRF,
"Memory.search as shipped", the ranking before issue 18 (``search.hybrid_ranking``, contiguity across sessions)
and :func:`agentmem_plugin.ranking.rank` are scored on the same candidates, per category. ``--limit N`` takes a
stratified sample of N questions (categories in proportion).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from agentmem_plugin import Memory, MemoryManager

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo" / "locomo_dev.json"
KS = (1, 5, 10)
_EVIDENCE = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)")


def parse_evidence(items: list[str]) -> list[str]:
    """Normalize evidence ids; tolerate ``"D8:6; D9:17"`` and ``"D:11:26"``."""
    out: list[str] = []
    for item in items:
        out += [f"D{a}:{b}" for a, b in _EVIDENCE.findall(str(item))]
    return list(dict.fromkeys(out))


def turns_of(conversation: dict[str, Any]) -> list[tuple[str, str]]:
    """Return ``(dia_id, "[date] Speaker: text")`` for every turn, in order."""
    out = []
    sessions = sorted(
        (int(k.split("_")[1]), v)
        for k, v in conversation.items()
        if re.fullmatch(r"session_\d+", k)
    )
    for number, turns in sessions:
        date = conversation.get(f"session_{number}_date_time", "")
        for turn in turns:
            text = turn["text"]
            if turn.get("blip_caption"):
                text += f" [shares a photo: {turn['blip_caption']}]"
            out.append((turn["dia_id"], f"[{date}] {turn['speaker']}: {text}"))
    return out


class Scores:
    def __init__(self) -> None:
        self.recall: dict[int, list[float]] = {k: [] for k in KS}
        self.rr: list[float] = []

    def add(self, ranked: list[str], evidence: list[str]) -> None:
        for k in KS:
            top = set(ranked[:k])
            self.recall[k].append(sum(e in top for e in evidence) / len(evidence))
        rank = next((i for i, key in enumerate(ranked, 1) if key in evidence), None)
        self.rr.append(0.0 if rank is None else 1.0 / rank)

    def row(self, label: str) -> str:
        n = len(self.rr)
        r = {k: statistics.fmean(v) if v else 0.0 for k, v in self.recall.items()}
        mrr = statistics.fmean(self.rr) if self.rr else 0.0
        return f"  {label:<52} n={n:<4} R@1 {r[1]:.3f}  R@5 {r[5]:.3f}  R@10 {r[10]:.3f}  MRR {mrr:.3f}"


Config = tuple[str, str, float, float]  # label, mode, keyword_weight, context_weight


def open_store(path: Path, embedder: str | None, manager: bool) -> Any:
    """A fresh persistent Memory, or a MemoryManager holding the turns in long-term memory."""
    if manager:
        return MemoryManager(long_term_limit=1_000_000, storage_path=path, embedder=embedder)
    return Memory(capacity=None, persistence=True, storage_path=path, embedder=embedder)


def run(
    configs: list[Config], limit: int = 10, *, manager: bool = False
) -> dict[str, dict[str, Scores]]:
    data = orjson.loads(DATA.read_bytes())
    results: dict[str, dict[str, Scores]] = {c[0]: defaultdict(Scores) for c in configs}
    needs_embedder = any(mode != "keyword" for _, mode, _, _ in configs)
    ingest_s = 0.0
    n_turns = 0
    latencies: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="agentmem-locomo-") as tmp:
        for i, sample in enumerate(data):
            turns = turns_of(sample["conversation"])
            memory = open_store(
                Path(tmp) / f"conv{i}", "default" if needs_embedder else None, manager
            )
            tuned = memory.long_term if manager else memory  # where keyword/context weights live
            t0 = time.perf_counter()
            if manager:
                memory.store_many(turns, memory_type="long_term")
            else:
                memory.store_many(turns)
            ingest_s += time.perf_counter() - t0
            n_turns += len(turns)
            for qa in sample["qa"]:
                evidence = parse_evidence(qa.get("evidence", []))
                if not evidence:
                    continue
                cat = int(qa["category"])
                for label, mode, keyword_weight, context_weight in configs:
                    tuned.keyword_weight = keyword_weight
                    tuned.context_weight = context_weight
                    t0 = time.perf_counter()
                    hits = memory.search(qa["question"], limit=limit, mode=mode)
                    latencies[label].append(time.perf_counter() - t0)
                    ranked = [h["key"] for h in hits]
                    results[label][f"cat {cat}"].add(ranked, evidence)
                    if cat in (1, 2, 3, 4):
                        results[label]["cats 1-4"].add(ranked, evidence)
            memory.close()
    print(
        f"ingest: {n_turns} turns in {ingest_s:.1f} s = {n_turns / ingest_s:.0f} turns/s (embedding included)"
    )
    for label, values in latencies.items():
        q = statistics.quantiles(values, n=100)
        print(
            f"query latency [{label}]: p50 {q[49] * 1000:.1f} ms  p95 {q[94] * 1000:.1f} ms over {len(values)}"
        )
    return results


def main() -> None:
    from agentmem_plugin.memory import DEFAULT_CONTEXT_WEIGHT, DEFAULT_KEYWORD_WEIGHT

    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", default="hybrid", choices=["hybrid", "keyword", "semantic"])
    parser.add_argument(
        "--ablation", action="store_true", help="keyword, semantic, fusion, fusion + context"
    )
    parser.add_argument("--sweep", action="store_true", help="try several keyword weights (hybrid)")
    parser.add_argument(
        "--manager", action="store_true", help="search through MemoryManager (long-term)"
    )
    parser.add_argument(
        "--weight", type=float, default=DEFAULT_KEYWORD_WEIGHT, help="keyword weight (hybrid)"
    )
    parser.add_argument(
        "--context", type=float, default=DEFAULT_CONTEXT_WEIGHT, help="context weight (hybrid)"
    )
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"LoCoMo data not found at {DATA}")
    if args.ablation:
        configs: list[Config] = [
            ("BM25 (FTS5)", "keyword", args.weight, 0.0),
            ("dense MiniLM", "semantic", args.weight, 0.0),
            ("fusion", "hybrid", args.weight, 0.0),
            ("fusion + context", "hybrid", args.weight, args.context),
        ]
    elif args.sweep:
        configs = [(f"hybrid w={w}", "hybrid", w, args.context) for w in (0.4, 0.5, 0.6, 0.7, 0.8)]
    else:
        configs = [(args.mode, args.mode, args.weight, args.context)]
    results = run(configs, manager=args.manager)
    if args.manager:
        print(
            "through MemoryManager(storage_path=..., long_term_limit=1_000_000), memory_type='long_term'"
        )
    for label, by_cat in results.items():
        print(
            f"\n{label}"
            + (
                f" (keyword_weight={args.weight}, context_weight={args.context})"
                if label == "hybrid"
                else ""
            )
        )
        for cat in ["cats 1-4", "cat 1", "cat 2", "cat 3", "cat 4", "cat 5"]:
            if cat in by_cat:
                print(by_cat[cat].row(cat))
    print(
        "\nreferences on this half (cats 1-4): BM25 R@10 0.633; dense MiniLM ~0.50; plain RRF ~0.62. Target 0.72."
    )


# -- references and ranking.py on gathered candidates (shared with bench_lme) ------------------------------------

_DATE_FORMATS = ("%I:%M %p on %d %B, %Y", "%I:%M %p on %d %b, %Y")


def parse_date(text: str) -> float | None:
    """``"1:56 pm on 8 May, 2023"`` as a UTC timestamp (None when it does not parse)."""
    from datetime import datetime, timezone

    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            continue
    return None


class Question:
    """One LoCoMo question with what ``bench_lme``'s rankers need (``query``, ``date``, ``qtype``)."""

    def __init__(self, conv: int, qa: dict[str, Any], date: float | None) -> None:
        self.qid = f"conv{conv}:{qa['question']}"
        self.conv = conv
        self.query = str(qa["question"])
        self.qtype = f"cat {int(qa['category'])}"
        self.evidence = parse_evidence(qa.get("evidence", []))
        self.date = date


def conversation_entries(conversation: dict[str, Any]) -> list[Any]:
    """Every turn as a ``MemoryEntry``: value ``"[date] Speaker: text"``, its session, the session's date."""
    from agentmem_plugin.entry import MemoryEntry

    out = []
    for number, (dia_id, text) in enumerate(turns_of(conversation)):
        session = dia_id.split(":")[0]
        date = parse_date(conversation.get(f"session_{session[1:]}_date_time", "")) or 0.0
        out.append(
            MemoryEntry(dia_id, text, metadata={"session": session}, created_at=date + number)
        )
    return out


def load_questions() -> tuple[list[Any], list[Question]]:
    """The conversations and their questions with evidence (categories 1-5)."""
    data = orjson.loads(DATA.read_bytes())
    questions = []
    for i, sample in enumerate(data):
        entries = conversation_entries(sample["conversation"])
        last = max((e.created_at for e in entries), default=None)
        for qa in sample["qa"]:
            q = Question(i, qa, last)
            if q.evidence:
                questions.append(q)
    return data, questions


def candidates_for(
    data: list[Any], questions: list[Question], embedder_kind: str, *, refresh: bool = False
) -> dict[str, Any]:
    """Candidates of every question, from the on-disk cache or gathered (one Memory per conversation)."""
    import bench_lme

    path = bench_lme.cache_path("locomo", embedder_kind)
    cached: dict[str, Any] = {} if refresh else bench_lme.load_candidates(path)
    todo = [q for q in questions if q.qid not in cached]
    if todo:
        with tempfile.TemporaryDirectory(prefix="agentmem-locomo-") as tmp:
            for conv in sorted({q.conv for q in todo}):
                memory = bench_lme.open_memory(
                    Path(tmp) / f"conv{conv}", bench_lme.make_embedder(embedder_kind)
                )
                memory.store_many(conversation_entries(data[conv]["conversation"]))
                for q in todo:
                    if q.conv == conv:
                        cached[q.qid] = bench_lme.gather(memory, q.query)
                memory.close()
                print(f"  gathered conversation {conv}", file=sys.stderr)
        bench_lme.save_candidates(path, cached)
    return cached


def references_main(args: argparse.Namespace) -> None:
    """The table: references, Memory.search as shipped, the ranking before issue 18 and ranking.py (with --ablation its rows) on the same candidates."""
    import bench_lme

    data, questions = load_questions()
    questions = bench_lme.stratified(questions, args.limit, lambda q: q.qtype)
    print(f"LoCoMo dev: {len(questions)} questions, embedder {args.embedder}")
    cands = candidates_for(data, questions, args.embedder, refresh=args.refresh)
    today = [cands[q.qid].today_s for q in questions]
    if len(today) > 1:
        print(f"Memory.search latency: p50 {statistics.median(today) * 1000:.1f} ms")
    rankers = bench_lme.references()
    try:
        rankers["ranking.py (default)"] = bench_lme.ranking_ranker()
        if args.ablation:
            rankers.update(bench_lme.ablations())
    except ImportError as exc:
        print(f"(ranking.py rows skipped: {exc})")
    results: dict[str, dict[str, Scores]] = {label: defaultdict(Scores) for label in rankers}
    for q in questions:
        c = cands[q.qid]
        for label, ranker in rankers.items():
            ranked = ranker(q, c)
            results[label][q.qtype].add(ranked, q.evidence)
            if q.qtype != "cat 5":
                results[label]["cats 1-4"].add(ranked, q.evidence)
    base_label = "ranking.py (default)" if "ranking.py (default)" in rankers else None
    for cat in ["cats 1-4", "cat 1", "cat 2", "cat 3", "cat 4", "cat 5"]:
        print(f"\n[{cat}]")
        base = results[base_label][cat] if base_label else None
        for label, by_cat in results.items():
            if cat in by_cat:
                row = by_cat[cat].row(label)
                if base is not None and label != base_label:
                    delta = statistics.fmean(by_cat[cat].recall[10]) - statistics.fmean(
                        base.recall[10]
                    )
                    row += f"  (R@10 {delta:+.3f})"
                print(row)


if __name__ == "__main__":
    if "--references" in sys.argv:
        parser = argparse.ArgumentParser()
        parser.add_argument("--references", action="store_true")
        parser.add_argument(
            "--limit", type=int, default=None, help="stratified sample of N questions"
        )
        parser.add_argument(
            "--ablation", action="store_true", help="add the ranking.py ablation rows"
        )
        parser.add_argument("--embedder", default="fp32", choices=["fp32", "onnx", "onnx-int8"])
        parser.add_argument("--refresh", action="store_true", help="gather candidates again")
        references_main(parser.parse_args())
    else:
        main()
