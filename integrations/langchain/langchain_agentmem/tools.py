r"""Memory as LangChain tools an agent calls itself: remember, search, recall, forget and list memories.

:func:`create_memory_tools` returns five ``StructuredTool`` tools over a :class:`~agentmem_plugin.MemoryManager`:

======================  ===================================================================================
``remember``            store a fact (content, optional key, tags, ttl, importance) in long-term memory
``search_memories``     the memories relevant to a query, by meaning and keywords (query, k, mode, tags)
``recall``              one memory by key
``forget``              delete a memory by key
``list_memories``       the most recently stored memories
======================  ===================================================================================

The model sees each tool's arguments as a pydantic schema; results are compact JSON strings. Nothing is raised
through the agent: a bad argument, a missing key or a failing store comes back as the tool's result (a
``ToolMessage`` with ``status="error"`` whose text is the typed error's name and message), so the model can
correct itself.

A namespace may be a template filled at run time from the LangGraph/LangChain config, as LangMem's are:
``namespace=("memories", "{user_id}")`` stores the memories of each call in
``memories/<config["configurable"]["user_id"]>`` (a :meth:`~agentmem_plugin.MemoryManager.with_namespace` view).
"""

from __future__ import annotations

import atexit
import datetime as dt
import hashlib
import heapq
import json
import re
from collections.abc import Callable, Mapping
from os import PathLike
from typing import Any, Literal

from agentmem_plugin import MemoryManager
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import AgentMemError, InvalidArgumentError, KeyNotFoundError
from agentmem_plugin.validation import validate_key, validate_tags, validate_ttl
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field, ValidationError

from langchain_agentmem._common import check_namespace

__all__ = [
    "ForgetInput",
    "ListMemoriesInput",
    "RecallInput",
    "RememberInput",
    "SearchMemoriesInput",
    "create_memory_tools",
]

MAX_K = 50
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_SCAN_BATCH = 500


class RememberInput(BaseModel):
    """Arguments of ``remember``."""

    content: str = Field(min_length=1, description="The fact to remember, as a sentence.")
    key: str | None = Field(
        default=None,
        description="A short stable key (e.g. 'diet'); storing under an existing key replaces it. "
        "Omitted: derived from the content.",
    )
    tags: list[str] | None = Field(default=None, description="Labels to filter searches by.")
    ttl: float | None = Field(
        default=None, gt=0, description="Seconds until it is forgotten; omitted: kept."
    )
    importance: float | None = Field(
        default=None, ge=0, le=1, description="0-1: how much it matters (default 0.5)."
    )


class SearchMemoriesInput(BaseModel):
    """Arguments of ``search_memories``."""

    query: str = Field(min_length=1, description="What to look for, in any words.")
    k: int = Field(default=5, ge=1, le=MAX_K, description="Most memories to return.")
    mode: Literal["hybrid", "keyword", "semantic"] | None = Field(
        default=None,
        description="hybrid (default): meaning and keywords; keyword; semantic: meaning only.",
    )
    tags: list[str] | None = Field(
        default=None, description="Only memories with all of these tags."
    )


class RecallInput(BaseModel):
    """Arguments of ``recall``."""

    key: str = Field(
        min_length=1, description="The memory's key, as returned by remember or a search."
    )


class ForgetInput(BaseModel):
    """Arguments of ``forget``."""

    key: str = Field(min_length=1, description="The key of the memory to delete.")


class ListMemoriesInput(BaseModel):
    """Arguments of ``list_memories``."""

    limit: int = Field(default=10, ge=1, le=MAX_K, description="How many.")


# -- the operations (plain data in and out) ------------------------------------------------------------------


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).isoformat(timespec="seconds")


def _entry_data(entry: MemoryEntry) -> dict[str, Any]:
    data: dict[str, Any] = {"key": entry.key, "content": entry.value}
    if entry.tags:
        data["tags"] = list(entry.tags)
    if "importance" in entry.metadata:
        data["importance"] = entry.metadata["importance"]
    data["created"] = _iso(entry.created_at)
    if entry.expires_at is not None:
        data["expires"] = _iso(entry.expires_at)
    return data


def _remember(
    manager: MemoryManager,
    content: str,
    key: str | None = None,
    tags: list[str] | None = None,
    ttl: float | None = None,
    importance: float | None = None,
) -> dict[str, Any]:
    if not content.strip():
        raise InvalidArgumentError("content must be a non-empty str")
    the_key = (
        "mem-" + hashlib.sha256(content.encode("utf-8")).hexdigest()[:12]
        if key is None
        else validate_key(key)
    )
    existed = manager.exists(the_key)
    manager.store(
        the_key,
        content,
        memory_type="long_term",  # durable and semantically indexed
        ttl=validate_ttl(ttl),
        tags=list(validate_tags(tags)),
        metadata=None if importance is None else {"importance": importance},
    )
    return {"key": the_key, "status": "updated" if existed else "created"}


def _search(
    manager: MemoryManager,
    query: str,
    k: int = 5,
    mode: str | None = None,
    tags: list[str] | None = None,
) -> list[dict[str, Any]]:
    tag_list = list(validate_tags(tags))
    hits = manager.search(query, k, mode=mode, filter={"tags": tag_list} if tag_list else None)
    out = []
    for hit in hits:
        item: dict[str, Any] = {
            "key": hit["key"],
            "content": hit["value"],
            "score": round(float(hit["score"]), 3),
        }
        if hit.get("tags"):
            item["tags"] = list(hit["tags"])
        out.append(item)
    return out


def _recall(manager: MemoryManager, key: str) -> dict[str, Any]:
    # Read where it is: get_entry would promote it to short-term, out of the semantic index.
    entry = manager.get_many([key])[0]
    if entry is None:
        raise KeyNotFoundError(f"no memory under key {key!r}")
    return _entry_data(entry)


def _forget(manager: MemoryManager, key: str) -> dict[str, Any]:
    return {"key": key, "status": "forgotten" if manager.delete(key) else "not_found"}


def _list(manager: MemoryManager, limit: int = 10) -> list[dict[str, Any]]:
    keys = list(dict.fromkeys(manager.keys()))
    newest: list[MemoryEntry] = []
    for start in range(0, len(keys), _SCAN_BATCH):
        batch = [e for e in manager.get_many(keys[start : start + _SCAN_BATCH]) if e is not None]
        newest = heapq.nlargest(limit, [*newest, *batch], key=lambda e: e.created_at)
    return [_entry_data(e) for e in newest]


# -- namespaces filled from the config -----------------------------------------------------------------------


def _fill(template: str | tuple[str, ...], config: RunnableConfig | None) -> str | tuple[str, ...]:
    configurable: Mapping[str, Any] = (config or {}).get("configurable") or {}

    def one(part: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in configurable:
                raise ToolException(
                    f"InvalidArgumentError: the memory namespace {template!r} needs "
                    f"config['configurable'][{name!r}]; pass it when invoking the agent"
                )
            filled = configurable[name]
            if not isinstance(filled, (str, int)) or isinstance(filled, bool) or not str(filled):
                raise ToolException(
                    f"InvalidArgumentError: config['configurable'][{name!r}] must be a non-empty str, got {filled!r:.80}"
                )
            if "/" in str(filled):
                raise ToolException(
                    f"InvalidArgumentError: config['configurable'][{name!r}] must not contain '/', got {filled!r:.80}"
                )
            return str(filled)

        return _PLACEHOLDER.sub(value, part)

    return one(template) if isinstance(template, str) else tuple(one(p) for p in template)


def _validation_message(error: ValidationError) -> str:
    details = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}" for e in error.errors()
    )
    return f"InvalidArgumentError: {details}"


# -- the tools -----------------------------------------------------------------------------------------------


def create_memory_tools(
    manager_or_path: MemoryManager | str | PathLike[str],
    *,
    namespace: str | tuple[str, ...] | None = None,
    embedder: Any = "default",
    long_term_limit: int = 100_000,
) -> list[BaseTool]:
    r"""Return the memory tools ``[remember, search_memories, recall, forget, list_memories]``.

    Args:
        manager_or_path: A :class:`~agentmem_plugin.MemoryManager` (yours to close), or a store's directory: the
            tools then open a manager there with *embedder* (search by meaning), kept open for the process.
        namespace: Where the memories live, below the manager's own namespace: ``"notes"``,
            ``("user", "u1")``, or a template such as ``("memories", "{user_id}")`` whose ``{fields}`` are filled
            from ``config["configurable"]`` at each call (a missing field is a tool error, not a crash).
        embedder: With a path: the manager's embedder (``"default"``: agentmem's offline MiniLM; None: keyword
            search only). Ignored with a manager.
        long_term_limit: With a path: memories kept in long-term memory before the least important move to
            the archive (where search is by keyword only).

    Raises:
        InvalidArgumentError: a malformed namespace, or *manager_or_path* neither a manager nor a path.

    Example:
        >>> from agentmem_plugin import MemoryManager
        >>> mm = MemoryManager()
        >>> remember, search, recall, forget, recent = create_memory_tools(mm, namespace=("memories", "{user_id}"))
        >>> config = {"configurable": {"user_id": "ada"}}
        >>> remember.invoke({"content": "Ada's cat is called Miso", "key": "pet"}, config)
        '{"key":"pet","status":"created"}'
        >>> search.invoke({"query": "Miso", "mode": "keyword"}, config)
        '[{"key":"pet","content":"Ada\'s cat is called Miso","score":1.0}]'
        >>> recall.invoke({"key": "pet"}, {"configurable": {"user_id": "bob"}})
        "KeyNotFoundError: no memory under key 'pet'"
        >>> mm.close()

    """
    template = check_namespace(namespace)
    if template is not None and not isinstance(template, str):
        template = tuple(template)
    if isinstance(manager_or_path, MemoryManager):
        base = manager_or_path
    elif isinstance(manager_or_path, (str, PathLike)):
        base = MemoryManager(
            storage_path=manager_or_path, embedder=embedder, long_term_limit=long_term_limit
        )
        atexit.register(base.close)
    else:
        raise InvalidArgumentError(
            f"create_memory_tools needs a MemoryManager or a directory, got {type(manager_or_path).__name__}"
        )
    fixed = None if template is None or _PLACEHOLDER.search(str(template)) else template

    def manager_for(config: RunnableConfig | None) -> MemoryManager:
        if template is None:
            return base
        return base.with_namespace(fixed if fixed is not None else _fill(template, config))

    def tool(
        name: str, description: str, schema: type[BaseModel], op: Callable[..., Any]
    ) -> BaseTool:
        def run(config: RunnableConfig, **kwargs: Any) -> str:
            try:
                return _dumps(op(manager_for(config), **kwargs))
            except ToolException:
                raise
            except AgentMemError as exc:
                raise ToolException(f"{type(exc).__name__}: {exc}") from exc
            except Exception as exc:  # a failing backend: the model is told, the agent goes on
                raise ToolException(f"internal error ({type(exc).__name__}): {exc}") from exc

        return StructuredTool.from_function(
            func=run,
            name=name,
            description=description,
            args_schema=schema,
            handle_tool_error=True,
            handle_validation_error=_validation_message,
        )

    return [
        tool(
            "remember",
            "Remember a fact for later conversations (preferences, decisions, names). "
            'Returns {"key", "status": "created"|"updated"}.',
            RememberInput,
            _remember,
        ),
        tool(
            "search_memories",
            "Search what you remember, by meaning and keywords, before answering anything that may depend "
            'on earlier conversations. Returns [{"key", "content", "score"}], best first.',
            SearchMemoriesInput,
            _search,
        ),
        tool(
            "recall",
            'Return the memory stored under a key: {"key", "content", "tags", "created", ...}.',
            RecallInput,
            _recall,
        ),
        tool(
            "forget",
            'Delete the memory stored under a key. Returns {"key", "status": "forgotten"|"not_found"}.',
            ForgetInput,
            _forget,
        ),
        tool(
            "list_memories",
            "List the most recently stored memories, newest first.",
            ListMemoriesInput,
            _list,
        ),
    ]
