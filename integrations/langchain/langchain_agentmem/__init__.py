"""LangChain bindings for agentmem-plugin: a retriever, a vector store, a key-value store and a chat message history."""

__all__: list[str] = []
