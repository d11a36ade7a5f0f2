"""Retrieval quality on LoCoMo (development half): recall@1/5/10 and MRR per category, with latencies.

Run: ``.venv/bin/python benchmarks/bench_locomo.py [--mode hybrid|keyword|semantic] [--sweep]``

Each conversation goes into a fresh persistent ``Memory`` (one memory per turn: key = dia_id, value =
``"[<session date>] Speaker: text"``); every question is asked through ``search(question, limit=10)``.
Recall@k is the share of a question's evidence turns found in the top k, averaged over questions; MRR uses the
rank of the first evidence turn. Categories: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop,
5 adversarial (reported apart). The data is read from ``../shared/data/locomo/`` and never copied.
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
        return f"  {label:<22} n={n:<4} R@1 {r[1]:.3f}  R@5 {r[5]:.3f}  R@10 {r[10]:.3f}  MRR {mrr:.3f}"


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


if __name__ == "__main__":
    main()
