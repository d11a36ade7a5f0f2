"""`AgentMemory`: the spec's ``MemoryEnabledAgent`` as a component any agent framework can hold.

An agent gets three memories: a :class:`~agentmem_plugin.adapters.working.WorkingMemory` (short-term context +
important long-term context), a long-term :class:`~agentmem_plugin.memory.Memory` and a
:class:`~agentmem_plugin.variants.SemanticMemory`. With a ``storage_path`` everything that persists lives under
``storage_path/<agent name>/`` (``working/``, ``long_term/``, ``semantic/``), so reopening an agent of the same
name gives its memories back; the name must therefore be a safe, identifier-like string.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import re
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

from agentmem_plugin.adapters.working import WorkingMemory
from agentmem_plugin.entry import Clock
from agentmem_plugin.errors import InvalidArgumentError, SerializationError
from agentmem_plugin.memory import Memory
from agentmem_plugin.search import fuse
from agentmem_plugin.twins import async_twin, in_thread
from agentmem_plugin.variants import SemanticMemory

__all__ = ["MEMORY_KINDS", "AgentMemory", "validate_agent_name"]

logger = logging.getLogger(__name__)

_R = TypeVar("_R")

MEMORY_KINDS: tuple[str, ...] = ("working", "long_term", "semantic")
"""Values accepted for ``memory_type``."""

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")

LONG_TERM_KWARGS = frozenset({"ttl", "priority", "metadata", "tags"})
SEMANTIC_KWARGS = LONG_TERM_KWARGS | {"embedding"}


def validate_agent_name(name: object) -> str:
    """Return *name* if it is safe as a directory name: 1-64 of ``[A-Za-z0-9_.-]``, not starting with ``.``/``-``.

    Raises:
        InvalidArgumentError: naming the bad value.

    Example:
        >>> validate_agent_name("MemoryBot")
        'MemoryBot'

    """
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise InvalidArgumentError(
            f"agent name must be 1-64 characters of letters, digits, '_', '.' or '-', not starting with "
            f"'.' or '-'; got {name!r:.80}"
        )
    return name


def _check_kind(memory_type: object, *, allow_none: bool = False) -> str | None:
    if memory_type is None and allow_none:
        return None
    if not isinstance(memory_type, str) or memory_type not in MEMORY_KINDS:
        raise InvalidArgumentError(
            f"unknown memory_type {memory_type!r}; use one of {', '.join(MEMORY_KINDS)}"
        )
    return memory_type


def _check_kwargs(kwargs: dict[str, Any], allowed: frozenset[str], memory_type: str) -> None:
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise InvalidArgumentError(
            f"unexpected option(s) {', '.join(map(repr, unknown))} for memory_type={memory_type!r}; "
            f"allowed: {', '.join(sorted(allowed))}"
        )


def _accepts_context(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    for p in params:
        if p.kind is inspect.Parameter.VAR_KEYWORD:
            return True
        if p.name == "context" and p.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ):
            return True
    return False


class AgentMemory:
    """Working, long-term and semantic memory for one agent, persisted under one directory per agent name.

    Args:
        name: The agent's name; with a storage path it names the agent's directory, so it must be 1-64
            characters of letters, digits, ``_``, ``.`` or ``-`` (not starting with ``.`` or ``-``).
        storage_path: Parent directory; the agent's memories live in ``storage_path/<name>/``. None keeps
            everything in memory.
        embedder: The embedder of the semantic memory and of working long-term search (``"default"`` =
            offline MiniLM, used when None).
        clock: Source of the current time (tests pass a fake clock).

    Attributes:
        working_memory: A :class:`WorkingMemory` (its long-term half persists under ``<name>/working``).
        long_term_memory: A long-term :class:`Memory` (``<name>/long_term``).
        semantic_memory: A :class:`SemanticMemory` (``<name>/semantic``).
        config: The dict stored under ``"agent_config"`` in long-term memory when the agent was opened ({}).
        learned_behaviors: The dict stored under ``"learned_behaviors"`` ({}); saved by
            :meth:`consolidate_memories`.

    Raises:
        InvalidArgumentError: a bad agent name.

    Example:
        >>> with AgentMemory("MemoryBot") as agent:  # doctest: +SKIP
        ...     agent.remember("user_preference", "detailed_explanations", memory_type="long_term")
        ...     agent.remember("current_task", "data_analysis", importance=0.7)
        ...     agent.recall("user_preference"), agent.recall("current_task")
        ('detailed_explanations', 'data_analysis')

    """

    def __init__(
        self,
        name: str,
        *,
        storage_path: str | PathLike[str] | None = None,
        embedder: Any = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = validate_agent_name(name)
        self.root = None if storage_path is None else Path(storage_path) / self.name
        embedder = "default" if embedder is None else embedder
        self._opened: list[Any] = []
        self._seq = itertools.count(1)
        try:
            self.working_memory = WorkingMemory(
                storage_path=None if self.root is None else self.root / "working",
                embedder=embedder,
                clock=clock,
            )
            self._opened.append(self.working_memory)
            self.long_term_memory = Memory(
                capacity=10000,
                memory_type="long_term",
                persistence=self.root is not None,
                storage_path=None if self.root is None else self.root / "long_term",
                clock=clock,
            )
            self._opened.append(self.long_term_memory)
            self.semantic_memory = SemanticMemory(
                embedder=embedder,
                capacity=5000,
                memory_type="long_term",
                persistence=self.root is not None,
                storage_path=None if self.root is None else self.root / "semantic",
                clock=clock,
            )
            self._opened.append(self.semantic_memory)
        except BaseException:
            self.close()
            raise
        self._clock: Clock = self.long_term_memory.tier.clock
        config = self.long_term_memory.retrieve("agent_config")
        self.config: dict[str, Any] = dict(config) if isinstance(config, dict) else {}
        behaviors = self.long_term_memory.retrieve("learned_behaviors")
        self.learned_behaviors: dict[str, Any] = (
            dict(behaviors) if isinstance(behaviors, dict) else {}
        )

    def remember(self, key: str, value: Any, memory_type: str = "working", **kwargs: Any) -> None:
        """Store *value* under *key* in the memory named by *memory_type*.

        Args:
            key: The key.
            value: A JSON-serializable value.
            memory_type: ``"working"`` (routed by ``importance``, default 0.5), ``"long_term"`` or
                ``"semantic"`` (indexed by meaning).
            **kwargs: ``importance`` for working memory; ``ttl``, ``priority``, ``metadata``, ``tags`` for
                long-term and semantic memory (semantic also ``embedding``).

        Raises:
            InvalidArgumentError: an unknown memory_type or option (named), or an importance outside [0, 1].

        Example:
            >>> agent = AgentMemory("bot")  # doctest: +SKIP
            >>> agent.remember("current_task", "data_analysis", importance=0.7)  # doctest: +SKIP

        """
        kind = _check_kind(memory_type)
        assert kind is not None
        if kind == "working":
            _check_kwargs(kwargs, frozenset({"importance"}), kind)
            self.working_memory.store_context(key, value, kwargs.get("importance", 0.5))
        elif kind == "long_term":
            _check_kwargs(kwargs, LONG_TERM_KWARGS, kind)
            self.long_term_memory.store(key, value, **kwargs)
        else:
            _check_kwargs(kwargs, SEMANTIC_KWARGS, kind)
            self.semantic_memory.store_with_embedding(key, value, **kwargs)

    def recall(self, key: str, memory_type: str | None = None) -> Any:
        """Return the value under *key* (None when absent).

        Args:
            key: The key.
            memory_type: Where to look; None looks in working short-term, working long-term, long-term and
                semantic memory, in that order, and returns the first value found (falsy values included).

        Raises:
            InvalidArgumentError: an unknown memory_type (named in the message).

        Example:
            >>> agent.recall("current_task", memory_type="working")  # doctest: +SKIP
            'data_analysis'

        """
        kind = _check_kind(memory_type, allow_none=True)
        wm = self.working_memory
        orders: dict[str | None, list[Memory]] = {
            None: [wm.short_term, wm.long_term, self.long_term_memory, self.semantic_memory],
            "working": [wm.short_term, wm.long_term],
            "long_term": [self.long_term_memory],
            "semantic": [self.semantic_memory],
        }
        for memory in orders[kind]:
            value = memory.retrieve(key)
            if value is not None:
                return value
        return None

    def search_memories(self, query: str, limit: int = 10) -> list[dict[str, Any]]:
        """Search semantic memory (by meaning) and long-term memory (by keyword), merged and ranked.

        Both lists are normalized and fused (:func:`agentmem_plugin.search.fuse`, equal weights); a key found in
        both appears once, with both sources.

        Returns:
            Up to *limit* dicts ``{"key", "value", "score", "sources"}``, best first; ``sources`` lists
            ``"semantic"`` and/or ``"long_term"``.

        Raises:
            InvalidArgumentError: a bad query or limit.

        Example:
            >>> agent.search_memories("user preferences and settings")[0]["key"]  # doctest: +SKIP
            'user_preference'

        """
        semantic = self.semantic_memory.semantic_search(query, limit=limit)
        keyword = self.long_term_memory.search(query, limit=limit)
        values: dict[str, Any] = {}
        sources: dict[str, list[str]] = {}
        for source, hits in (("semantic", semantic), ("long_term", keyword)):
            for hit in hits:
                values.setdefault(hit["key"], hit["value"])
                sources.setdefault(hit["key"], []).append(source)
        ranked = fuse(
            [(h["key"], float(h["score"])) for h in keyword],
            [(h["key"], float(h["similarity"])) for h in semantic],
            keyword_weight=0.5,
        )
        return [
            {"key": key, "value": values[key], "score": score, "sources": sources[key]}
            for key, score in ranked[:limit]
        ]

    def consolidate_memories(self) -> int:
        """Copy important working context (importance > 0.8) into long-term memory; save learned behaviors.

        Copies are tagged ``["consolidated", "important"]`` and keep their importance in metadata; they stay in
        working memory too. ``learned_behaviors`` is stored under ``"learned_behaviors"``.

        Returns:
            The number of working items copied.

        Example:
            >>> agent.consolidate_memories()  # doctest: +SKIP
            0

        """
        copied = 0
        for entry in self.working_memory.long_term.tier.scan():
            importance = entry.metadata.get("importance")
            if isinstance(importance, (int, float)) and importance > 0.8:
                self.long_term_memory.store(
                    entry.key,
                    entry.value,
                    metadata={"importance": importance},
                    tags=["consolidated", "important"],
                )
                copied += 1
        self.long_term_memory.store("learned_behaviors", self.learned_behaviors)
        logger.info(
            "agent %r consolidated %d working items into long-term memory", self.name, copied
        )
        return copied

    def execute_with_memory(self, fn: Callable[..., _R], /, *args: Any, **kwargs: Any) -> _R:
        """Call ``fn(*args, **kwargs)`` with the active context, remember the call, and return its result.

        If *fn* takes a ``context`` argument (or ``**kwargs``) and none was given, it receives
        ``context=working_memory.get_active_context()``. The execution (result, args, kwargs, time) is then
        stored in working memory with importance 0.6 under ``execution_<fn name>_<n>``; a result that cannot be
        stored as JSON is recorded by its ``repr``. If *fn* raises, the error is recorded and re-raised.

        Example:
            >>> agent.execute_with_memory(lambda x, context=(): x * 2, 21)  # doctest: +SKIP
            42

        """
        if "context" not in kwargs and _accepts_context(fn):
            call_kwargs = {**kwargs, "context": self.working_memory.get_active_context()}
        else:
            call_kwargs = kwargs
        name = getattr(fn, "__name__", type(fn).__name__)
        key = f"execution_{name}_{int(self._clock())}_{next(self._seq)}"
        record: dict[str, Any] = {
            "args": repr(args),
            "kwargs": repr(kwargs),
            "timestamp": self._clock(),
        }
        try:
            result = fn(*args, **call_kwargs)
        except Exception as exc:
            self.remember(key, {**record, "error": repr(exc)}, importance=0.6)
            raise
        try:
            self.remember(key, {**record, "result": result}, importance=0.6)
        except SerializationError:
            self.remember(key, {**record, "result": repr(result)}, importance=0.6)
        return result

    def close(self) -> None:
        """Close every memory of this agent (persistent ones release their files)."""
        while self._opened:
            self._opened.pop().close()

    def __enter__(self) -> AgentMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "in memory" if self.root is None else str(self.root)
        return f"AgentMemory(name={self.name!r}, {where})"

    # -- async twins ---------------------------------------------------------------------------------------

    async def aremember(
        self, key: str, value: Any, memory_type: str = "working", **kwargs: Any
    ) -> None:
        """Async :meth:`remember`: runs it in a worker thread, so the event loop never blocks."""
        await in_thread(self.remember, key, value, memory_type, **kwargs)

    arecall = async_twin(recall)
    asearch_memories = async_twin(search_memories)
    aconsolidate_memories = async_twin(consolidate_memories)
