"""LlamaIndex bindings for agentmem-plugin: a memory block, a chat memory and a retriever.

* :class:`AgentMemMemoryBlock` — a ``BaseMemoryBlock`` for ``llama_index.core.memory.Memory``: recalls the
  memories relevant to the latest user message and stores the messages Memory flushes.
* :class:`AgentMemChatMemory` — a ``BaseMemory`` (chat history) kept per session in a ``MemoryManager``.
* :class:`AgentMemRetriever` — a ``BaseRetriever`` over ``MemoryManager.search``.

Example:
    >>> from agentmem_plugin import MemoryManager
    >>> from agentmem_llamaindex import AgentMemRetriever
    >>> mm = MemoryManager()
    >>> mm.store("city", "The user lives in Lisbon", memory_type="long_term")
    >>> [n.node.text for n in AgentMemRetriever(mm).retrieve("Lisbon")]
    ['The user lives in Lisbon']

"""

from agentmem_llamaindex.chat_memory import AgentMemChatMemory
from agentmem_llamaindex.memory_block import AgentMemMemoryBlock
from agentmem_llamaindex.retriever import AgentMemRetriever

__all__ = ["AgentMemChatMemory", "AgentMemMemoryBlock", "AgentMemRetriever"]
