"""Hybrid search gives exactly what it gave before it was made faster (issue 16 item 2).

The speed work on the search path (BM25 pruning, the ranking's entity overlap, neighbour and candidate
fetches; then the keyword postings in blocks and the neighbours read with their rows) must not change a single
hit, order or score. ``data/hybrid_golden.json`` holds what the code before that work returned on a fixed corpus
for ``Memory.search`` (hybrid, explained), the SQLite tier's keyword search at the hybrid depth, and
``MemoryManager.search`` (hybrid, over short- and long-term). It was first written by commit 0d9bd1f; since the
clock is frozen during the searches (see :class:`Clock`) it is written by c224ce4, the last commit before the
blocks, whose results were 0d9bd1f's (this test, at that commit)::

    git worktree add /tmp/wt-before c224ce4
    PYTHONPATH=/tmp/wt-before .venv/bin/python tests/integration/test_hybrid_golden.py --write

Meaning does not matter, so the embedder is a FAKE one (hashed bag of words, as in test_search_ranking.py);
one memory in 13 is embedded (see :func:`embedded`); the corpus is synthetic: sessions of turns with names, numbers, tags, possessives and a few non-ASCII words.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GOLDEN = Path(__file__).parent / "data" / "hybrid_golden.json"

NAMES = ["Maria", "Caroline", "Melanie", "John", "Zoë", "Ana", "Oscar", "Li", "S", "Mia"]
WORDS = [
    "the",
    "a",
    "went",
    "hiking",
    "mountain",
    "invoice",
    "printer",
    "arrived",
    "please",
    "pay",
    "before",
    "friday",
    "morning",
    "weekend",
    "painting",
    "support",
    "group",
    "yesterday",
    "powerful",
    "adoption",
    "agency",
    "running",
    "marathon",
    "beach",
    "camping",
    "guitar",
    "lessons",
    "kids",
    "school",
    "library",
    "book",
    "club",
    "recipe",
    "cooking",
    "dinner",
    "garden",
    "flowers",
    "roses",
    "sunset",
    "photography",
    "camera",
    "trip",
    "paris",
    "café",
    "naïve",
    "relational",
    "conditional",
    "happily",
    "studies",
    "studying",
    "sensibility",
    "generalization",
    "fishing",
    "dogs",
    "cat",
    "puppy",
    "birthday",
    "party",
    "museum",
    "concert",
    "piano",
    "violin",
    "ocean",
    "swimming",
    "pottery",
    "class",
    "workshop",
    "volunteering",
    "shelter",
    "research",
    "career",
    "counseling",
    "transgender",
    "pride",
    "parade",
    "sister",
    "brother",
    "mother",
    "hospital",
    "nurse",
    "teacher",
    "job",
    "interview",
    "promotion",
    "office",
    "meeting",
    "project",
    "deadline",
    "coffee",
    "tea",
]


class FakeBagOfWordsEmbedder:
    """A FAKE embedder: each lower-cased word is one hashed dimension (cosine = word overlap)."""

    name = "fake-bag-of-words-golden"
    dim = 64

    def _vector(self, text: str) -> list[float]:
        v = [0.0] * self.dim
        for word in text.lower().split():
            v[int(hashlib.sha256(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        norm = math.sqrt(sum(x * x for x in v))
        if norm == 0:
            v[0] = 1.0
            return v
        return [x / norm for x in v]

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)


class Clock:
    """A clock that ticks one second per call (created_at differ, deterministically) until it is frozen.

    It is frozen before the searches: a search reads the time for recency and expiry, and how many times it
    reads it is no part of what it returns.
    """

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.frozen = False

    def __call__(self) -> float:
        if not self.frozen:
            self.now += 1.0
        return self.now


def corpus() -> list[tuple[str, Any, dict[str, Any], list[str]]]:
    """``(key, value, metadata, tags)`` of 1,200 turns in 40 sessions (some without a session)."""
    rng = random.Random(16)
    out = []
    for i in range(1200):
        session = i // 30
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 14))]
        if rng.random() < 0.5:
            words.insert(rng.randrange(len(words) + 1), rng.choice(NAMES))
        if rng.random() < 0.2:
            words.append(f"{rng.choice(NAMES)}'s")
        if rng.random() < 0.3:
            words.append(str(rng.choice([2019, 2022, 2023, 7, 12, 100, 3])))
        text = f"{rng.choice(NAMES)}: " + " ".join(words)
        value: Any = (
            text if rng.random() < 0.8 else {"text": text, "n": i, "note": rng.choice(WORDS)}
        )
        metadata = {"session": f"s{session}"} if session % 7 else {}
        tags = [rng.choice(WORDS)] if rng.random() < 0.15 else []
        out.append((f"k{i:04d}", value, metadata, tags))
    return out


def queries() -> list[tuple[str, dict[str, Any]]]:
    """Search texts (names, numbers, possessives, non-ASCII, a lone capital) and the boosts each one uses."""
    rng = random.Random(2)
    out: list[tuple[str, dict[str, Any]]] = [
        ("What did Maria do on the mountain in 2022?", {}),
        ("When did Caroline go to the support group?", {}),
        ("What kind of painting does Melanie like?", {}),
        ("Did Zoë visit the café in Paris?", {}),
        ("Where is Ana's guitar?", {}),
        ("Did S go fishing with Li?", {}),
        ("relational conditional sensibility generalization", {}),
        ("What happened on 7 and 12?", {}),
        ("Mia Oscar John birthday party", {"recency_weight": 0.1}),
        ("coffee meeting deadline", {"importance_weight": 0.2}),
    ]
    for _ in range(20):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
        words.insert(rng.randrange(len(words) + 1), rng.choice(NAMES))
        out.append(("What " + " ".join(words) + "?", {}))
    return out


def embedded(entry: Any) -> str | None:
    """The text a memory is embedded by: one in 13 only, so the index holds fewer vectors than the hybrid
    depth (100) and every dense query returns all of them (an approximate index's order among near-ties would
    otherwise vary from run to run); the keyword side still ranks all 1,200."""
    return str(entry.value) if int(entry.key[1:]) % 13 == 0 else None


def _float(x: Any) -> Any:
    return x if x is None else float(x)


def run() -> dict[str, Any]:
    """Every result the golden file holds, computed by the code on the path."""
    from agentmem_plugin import Memory, MemoryManager
    from agentmem_plugin.entry import MemoryEntry

    items = corpus()
    memory_clock, manager_clock = Clock(), Clock()
    out: dict[str, Any] = {"memory": [], "keyword": [], "manager": []}
    with tempfile.TemporaryDirectory() as tmp:
        memory = Memory(
            capacity=None,
            persistence=True,
            storage_path=Path(tmp) / "memory",
            embedder=FakeBagOfWordsEmbedder(),
            embed_text=embedded,
            clock=memory_clock,
        )
        manager = MemoryManager(
            short_term_limit=150,
            long_term_limit=None,
            storage_path=Path(tmp) / "manager",
            embedder=FakeBagOfWordsEmbedder(),
            embed_text=embedded,
            clock=manager_clock,
            enable_logging=False,
        )
        try:

            def entries(part: list[Any], clock: Clock) -> list[MemoryEntry]:
                return [
                    MemoryEntry(k, v, metadata=m or None, tags=t or None, clock=clock)
                    for k, v, m, t in part
                ]

            for start in range(
                0, len(items), 100
            ):  # batches: distinct created_at, insertion order kept
                memory.store_many(entries(items[start : start + 100], memory_clock))
            manager.store_many(entries(items[:1000], manager_clock), memory_type="long_term")
            for key, value, metadata, tags in items[
                1000:
            ]:  # the last 200 through short-term (50 overflow)
                manager.store(key, value, metadata=metadata or None, tags=tags or None)
            memory.delete("k0100")  # a hole in the insertion order: neighbours step over it
            manager.delete("k0100")
            memory_clock.frozen = manager_clock.frozen = True
            for query, boosts in queries():
                hits = memory.search(query, limit=10, mode="hybrid", explain=True, **boosts)
                out["memory"].append(
                    [
                        [h["key"], h["score"], {k: _float(v) for k, v in h["explain"].items()}]
                        for h in hits
                    ]
                )
                found = memory.tier.keyword_search(query, 100)
                out["keyword"].append([[e.key, s] for e, s in found])
                hits = manager.search(query, limit=10, mode="hybrid", explain=True, **boosts)
                out["manager"].append(
                    [
                        [
                            h["key"],
                            h["score"],
                            h["tier"],
                            {k: _float(v) for k, v in h["explain"].items()},
                        ]
                        for h in hits
                    ]
                )
        finally:
            memory.close()
            manager.close()
    return out


def _float32_close(want: Any, got: Any) -> Any:
    """*want* with every float replaced by ``pytest.approx`` at float32 precision (nested lists and dicts)."""
    import pytest

    if isinstance(want, float):
        return pytest.approx(want, rel=1e-6, abs=1e-7)
    if isinstance(want, list):
        return [_float32_close(w, g) for w, g in zip(want, got, strict=False)] + want[len(got) :]
    if isinstance(want, dict):
        return {
            k: _float32_close(v, got.get(k) if isinstance(got, dict) else None)
            for k, v in want.items()
        }
    return want


def test_hybrid_search_returns_what_it_returned_before_the_speed_work() -> None:
    """Keys, order, tiers and every keyword score exactly; scores that involve a cosine to float32 precision
    (a small namespace's vectors are ranked by an exact float32 scan of the shared vector table since issue 16
    item 3, not by Chroma's distance kernel: the two differ in the last bits of a float32)."""
    golden = json.loads(GOLDEN.read_text())
    now = json.loads(json.dumps(run()))  # the same float -> text -> float round trip as the file's
    for part in ("keyword", "memory", "manager"):
        for i, (want, got) in enumerate(zip(golden[part], now[part], strict=True)):
            where = f"{part}, query {i} ({queries()[i][0]!r})"
            if part == "keyword":
                assert got == want, where
            else:
                assert [h[0] for h in got] == [h[0] for h in want], (
                    where
                )  # the same hits in the same order
                assert got == _float32_close(want, got), where


def test_the_golden_corpus_exercises_what_the_ranking_does() -> None:
    golden = json.loads(GOLDEN.read_text())
    explained = [parts for hits in golden["memory"] for _, _, parts in hits]
    assert any(p.get("entity") for p in explained)  # entity overlap found
    assert any(p.get("context") for p in explained)  # contiguity lifted someone
    assert any(p["bm25"] is None for p in explained) and any(p["cosine"] is None for p in explained)
    assert any(p.get("recency") for p in explained) and any("importance" in p for p in explained)
    assert {tier for hits in golden["manager"] for _, _, tier, _ in hits} >= {
        "short_term",
        "long_term",
    }
    assert all(
        len(hits) == 100 for hits in golden["keyword"][:6]
    )  # the depth the hybrid side reads


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(run(), separators=(",", ":")) + "\n")
    else:
        print(json.dumps(run())[:2000])
