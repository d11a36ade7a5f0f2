"""A LangGraph ``BaseStore`` backed by agentmem-plugin: namespaces, TTL, semantic search with LangGraph's scores (hybrid on request), persistent across processes.

Example:
    >>> from agentmem_langgraph import AgentMemStore
    >>> with AgentMemStore() as store:
    ...     store.put(("users", "u1"), "prefs", {"theme": "dark"})
    ...     store.get(("users", "u1"), "prefs").value
    {'theme': 'dark'}

"""

from agentmem_langgraph.store import (
    DISTANCE_TYPES,
    AgentMemStore,
    AsyncAgentMemStore,
    DistanceType,
    SearchMode,
    item_embed_text,
)

__all__ = [
    "DISTANCE_TYPES",
    "AgentMemStore",
    "AsyncAgentMemStore",
    "DistanceType",
    "SearchMode",
    "item_embed_text",
]
