"""LangChain bindings for agentmem-plugin: a retriever, a vector store, key-value stores, a chat message history and agent tools.

Example:
    >>> from agentmem_plugin import MemoryManager
    >>> from langchain_agentmem import AgentMemRetriever
    >>> mm = MemoryManager()
    >>> mm.store("tz", "The user lives in Lisbon")
    >>> AgentMemRetriever(memory=mm).invoke("Lisbon")[0].page_content
    'The user lives in Lisbon'
    >>> mm.close()

"""

from langchain_agentmem.chat_message_histories import AgentMemChatMessageHistory
from langchain_agentmem.retrievers import AgentMemRetriever
from langchain_agentmem.stores import AgentMemByteStore, AgentMemStore
from langchain_agentmem.tools import create_memory_tools
from langchain_agentmem.vectorstores import AgentMemVectorStore

__all__ = [
    "AgentMemByteStore",
    "AgentMemChatMessageHistory",
    "AgentMemRetriever",
    "AgentMemStore",
    "AgentMemVectorStore",
    "create_memory_tools",
]
