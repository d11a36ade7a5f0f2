"""LlamaIndex bindings for agentmem-plugin: a memory block, a chat memory and a retriever."""

__all__: list[str] = []
