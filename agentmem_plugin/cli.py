"""The ``agentmem`` command (also ``python -m agentmem_plugin``).

Subcommands:
    demo    store, retrieve, search and expire memories, persist them, reopen the store, print a table.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentmem_plugin.errors import MissingDependencyError
from agentmem_plugin.memory import Memory

__all__ = ["main", "run_demo"]


class _DemoClock:
    """A clock the demo can move forward, so expiry is shown without sleeping."""

    def __init__(self) -> None:
        import time

        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def _table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "-+-".join("-" * w for w in widths)
    out = [line, " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    out.append(line)
    return "\n".join(out)


def run_demo(storage_path: Path, *, semantic: bool = True) -> dict[str, Any]:
    """Run the demo against *storage_path*; print what happens and return what came back after reopening."""
    clock = _DemoClock()
    print(f"storage: {storage_path}")
    with Memory(
        capacity=1000,
        memory_type="long_term",
        persistence=True,
        storage_path=storage_path,
        clock=clock,
    ) as memory:
        memory.clear()
        memory.store(
            "user_preferences",
            {"language": "english", "timezone": "UTC-8", "style": "formal"},
            tags=["user", "preferences"],
            priority=5,
        )
        memory.store(
            "successful_strategies",
            {
                "data_processing": ["parallel_approach", "batch_size_100"],
                "user_interaction": ["clarify_ambiguity", "provide_examples"],
            },
            tags=["learning", "strategies"],
        )
        memory.store("current_task", "data_processing", ttl=60, tags=["task"])
        memory.store("session_token", "abc123", ttl=5)
        memory.store_many(
            {f"note_{i}": f"meeting note {i}: discussed the quarterly roadmap" for i in range(3)}
        )
        print(f"stored {len(memory)} memories")
        print(f"retrieve('user_preferences') -> {memory.retrieve('user_preferences')}")
        hits = memory.search("data processing strategies", limit=3)
        print("search('data processing strategies'):")
        print(_table([(h["key"], f"{h['score']:.3f}") for h in hits], ("key", "score")))
        clock.now += 10
        print(
            f"10 s later: session_token -> {memory.retrieve('session_token')} (ttl 5 s, expired); "
            f"cleanup removed {memory.cleanup()}"
        )
    with Memory(
        capacity=1000,
        memory_type="long_term",
        persistence=True,
        storage_path=storage_path,
        clock=clock,
    ) as reopened:
        rows = []
        for entry in sorted(reopened.tier.scan(), key=lambda e: e.key):
            ttl_left = "-" if entry.expires_at is None else f"{entry.expires_at - clock.now:.0f}s"
            rows.append(
                (
                    entry.key,
                    f"{entry.value!s:.48}",
                    ",".join(entry.tags),
                    ttl_left,
                    str(entry.access_count),
                )
            )
        print("after reopening the store:")
        print(_table(rows, ("key", "value", "tags", "ttl left", "reads")))
        result = {e.key: e.value for e in reopened.tier.scan()}
    if semantic:
        _semantic_demo(storage_path, clock)
    return result


def _semantic_demo(storage_path: Path, clock: _DemoClock) -> None:
    """Reopen the same store with the offline MiniLM embedder and search it by meaning."""
    try:
        memory = Memory(capacity=1000, memory_type="long_term", persistence=True, storage_path=storage_path,
                        clock=clock, embedder="default")  # fmt: skip
    except MissingDependencyError as exc:
        print(f"(semantic search skipped: {exc})")
        return
    with memory:
        query = "which language and time zone is the user in?"
        rows = [(h["key"], f"{h['score']:.3f}", "-" if h["similarity"] is None else f"{h['similarity']:.3f}")
                for h in memory.search(query, limit=3)]  # fmt: skip
        print(f"reopened with embedder='default': hybrid search (keyword + meaning) for {query!r}")
        print(_table(rows, ("key", "score", "cosine")))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentmem`` command; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="agentmem", description="Multi-tier memory for LLM agents."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="store, search, expire, persist and reopen a small memory")
    demo.add_argument("--no-semantic", action="store_true", help="skip the semantic search step")
    demo.add_argument(
        "--path",
        type=Path,
        default=None,
        help="directory for the store (default: a temporary directory)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if args.command == "demo":
        if args.path is not None:
            run_demo(args.path, semantic=not args.no_semantic)
        else:
            with tempfile.TemporaryDirectory(prefix="agentmem-demo-") as tmp:
                run_demo(Path(tmp), semantic=not args.no_semantic)
    return 0
