"""The MCP server: agentmem's memory as tools and resources, on the official ``mcp`` SDK (FastMCP).

Tools (arguments typed, so the client's model sees a JSON schema; results are compact JSON text):

==================  ==========================================================================================
``remember``        store a fact (content, optional key, tags, ttl, importance) in long-term memory
``search_memories`` the memories relevant to a query, by meaning and keywords (query, k, mode, tags)
``recall``          one memory by key
``forget``          delete a memory by key
``list_memories``   the most recently stored memories
==================  ==========================================================================================

Resources: ``agentmem://memory/{key}`` (a memory by key, the key percent-encoded) and ``agentmem://stats`` (the
store's statistics, and whether the embedding model is loaded yet).

A bad argument comes back as an MCP tool error (``isError``) whose text is the typed error's name and message
(``InvalidArgumentError: ttl must be ...``); an unexpected exception in one call is logged and returned the same
way, and the server goes on serving.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import unquote

import anyio.to_thread
from agentmem_plugin.errors import AgentMemError
from mcp.server.fastmcp import FastMCP
from mcp.server.fastmcp.exceptions import ResourceError, ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from agentmem_mcp.service import MAX_K, MemoryService

__all__ = ["SERVER_NAME", "TOOL_NAMES", "create_server"]

logger = logging.getLogger("agentmem_mcp")

SERVER_NAME = "agentmem"
TOOL_NAMES: tuple[str, ...] = ("remember", "search_memories", "recall", "forget", "list_memories")

INSTRUCTIONS = (
    "Long-term memory that persists across conversations. Use `remember` for facts worth keeping (preferences, "
    "decisions, names), `search_memories` before answering anything that may depend on what you were told "
    "earlier (it matches meaning, not only words), `recall`/`forget` with a key from a search."
)

T = TypeVar("T")

Key = Annotated[
    str, Field(min_length=1, description="The memory's key, as returned by remember or a search.")
]


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a service call in a worker thread; turn any exception into a ToolError naming its type."""
    try:
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))
    except AgentMemError as exc:
        raise ToolError(f"{type(exc).__name__}: {exc}") from exc
    # A bug or a backend failure: this call fails, the server keeps serving.
    except Exception as exc:
        logger.exception("agentmem tool call failed")
        raise ToolError(f"internal error ({type(exc).__name__}): {exc}") from exc


def create_server(
    service: MemoryService,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING",
) -> FastMCP:
    """Return a FastMCP server whose tools and resources act on *service*.

    Args:
        service: The memory the tools act on (its manager opens on the first call).
        host: The address streamable HTTP binds (only used with that transport); on a loopback address the
            SDK's DNS-rebinding protection is on.
        port: Its port.
        log_level: The server's log level (logs go to stderr, never to the stdio protocol stream).

    Example:
        >>> server = create_server(MemoryService(None, embedder=None))
        >>> server.name
        'agentmem'

    """
    mcp = FastMCP(SERVER_NAME, instructions=INSTRUCTIONS, host=host, port=port, log_level=log_level)
    writes = ToolAnnotations(readOnlyHint=False, destructiveHint=False, idempotentHint=True)
    reads = ToolAnnotations(readOnlyHint=True)

    @mcp.tool(annotations=writes, structured_output=False)
    async def remember(
        content: Annotated[
            str, Field(min_length=1, description="The fact to remember, as a sentence.")
        ],
        key: Annotated[
            str | None,
            Field(
                description="A short stable key (e.g. 'diet'); storing under an existing key replaces it. "
                "Omitted: derived from the content."
            ),
        ] = None,
        tags: Annotated[
            list[str] | None, Field(description="Labels to filter searches by.")
        ] = None,
        ttl: Annotated[
            float | None, Field(gt=0, description="Seconds until it is forgotten; omitted: kept.")
        ] = None,
        importance: Annotated[
            float | None, Field(ge=0, le=1, description="0-1: how much it matters (default 0.5).")
        ] = None,
    ) -> str:
        """Remember a fact for later conversations. Returns {"key", "status": "created"|"updated"}."""
        return _dumps(
            await _call(
                service.remember, content, key=key, tags=tags, ttl=ttl, importance=importance
            )
        )

    @mcp.tool(annotations=reads, structured_output=False)
    async def search_memories(
        query: Annotated[str, Field(min_length=1, description="What to look for, in any words.")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="Most memories to return.")] = 5,
        mode: Annotated[
            Literal["hybrid", "keyword", "semantic"] | None,
            Field(
                description="hybrid (default): meaning and keywords; keyword; semantic: meaning only."
            ),
        ] = None,
        tags: Annotated[
            list[str] | None, Field(description="Only memories with all of these tags.")
        ] = None,
    ) -> str:
        """Search memories by meaning and keywords. Returns [{"key", "content", "score"}], best first."""
        return _dumps(await _call(service.search, query, k=k, mode=mode, tags=tags))

    @mcp.tool(annotations=reads, structured_output=False)
    async def recall(key: Key) -> str:
        """Return the memory stored under a key: {"key", "content", "tags", "created", ...}."""
        return _dumps(await _call(service.recall, key))

    @mcp.tool(
        annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True),
        structured_output=False,
    )
    async def forget(key: Key) -> str:
        """Delete the memory stored under a key. Returns {"key", "status": "forgotten"|"not_found"}."""
        return _dumps(await _call(service.forget, key))

    @mcp.tool(annotations=reads, structured_output=False)
    async def list_memories(
        limit: Annotated[int, Field(ge=1, le=MAX_K, description="How many.")] = 10,
    ) -> str:
        """List the most recently stored memories, newest first."""
        return _dumps(await _call(service.recent, limit=limit))

    @mcp.resource(
        "agentmem://memory/{key}",
        name="memory",
        description="A memory by key (percent-encode the key).",
        mime_type="application/json",
    )
    async def memory_resource(key: str) -> str:
        try:
            return _dumps(await _call(service.recall, unquote(key)))
        except ToolError as exc:
            raise ResourceError(str(exc)) from exc

    @mcp.resource(
        "agentmem://stats",
        name="stats",
        description="The store's statistics: tiers, counts, namespace, and whether the model is loaded.",
        mime_type="application/json",
    )
    async def stats_resource() -> str:
        try:
            return _dumps(await _call(service.stats))
        except ToolError as exc:
            raise ResourceError(str(exc)) from exc

    return mcp
