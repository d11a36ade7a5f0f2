"""The walk-through behind ``make demo`` and ``agentmem demo``: store, retrieve, search, expire, reopen.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     came_back = run_demo(tmp, semantic=False, echo=lambda line: None)
    >>> came_back["user_preferences"]["language"]
    'english'

"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from agentmem_plugin.errors import MissingDependencyError
from agentmem_plugin.memory import Memory

__all__ = ["run_demo"]


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")


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


def run_demo(
    storage_path: str | PathLike[str],
    *,
    semantic: bool = True,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the demo against *storage_path*; show what happens and return what came back after reopening.

    Args:
        storage_path: The store directory to use (its contents are cleared first).
        semantic: Also reopen the store with the offline MiniLM embedder and search it by meaning.
        echo: Where each line of the walk-through goes (default: standard output).

    Returns:
        Every key and value found after reopening the store.

    """
    say = echo or _stdout
    storage_path = Path(storage_path)
    clock = _DemoClock()
    say(f"storage: {storage_path}")
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
        say(f"stored {len(memory)} memories")
        say(f"retrieve('user_preferences') -> {memory.retrieve('user_preferences')}")
        hits = memory.search("data processing strategies", limit=3)
        say("search('data processing strategies'):")
        say(_table([(h["key"], f"{h['score']:.3f}") for h in hits], ("key", "score")))
        clock.now += 10
        say(
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
        say("after reopening the store:")
        say(_table(rows, ("key", "value", "tags", "ttl left", "reads")))
        result = {e.key: e.value for e in reopened.tier.scan()}
    if semantic:
        _semantic_demo(storage_path, clock, say)
    return result


def _semantic_demo(storage_path: Path, clock: _DemoClock, say: Callable[[str], None]) -> None:
    """Reopen the same store with the offline MiniLM embedder and search it by meaning."""
    try:
        memory = Memory(
            capacity=1000,
            memory_type="long_term",
            persistence=True,
            storage_path=storage_path,
            clock=clock,
            embedder="default",
        )
    except MissingDependencyError as exc:
        say(f"(semantic search skipped: {exc})")
        return
    with memory:
        query = "which language and time zone is the user in?"
        rows = [
            (
                h["key"],
                f"{h['score']:.3f}",
                "-" if h["similarity"] is None else f"{h['similarity']:.3f}",
            )
            for h in memory.search(query, limit=3)
        ]
        say(f"reopened with embedder='default': hybrid search (keyword + meaning) for {query!r}")
        say(_table(rows, ("key", "score", "cosine")))
