"""A LangGraph BaseStore backed by agentmem-plugin: namespaces, TTL, hybrid semantic search, persistent across processes."""

__all__: list[str] = []
