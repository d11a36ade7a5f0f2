"""agentmem_plugin: multi-tier memory for LLM agents.

Importing this package is cheap: it never imports torch, chromadb or any agent framework; backends that need
them import them when first used.

Example:
    >>> from agentmem_plugin import Memory
    >>> memory = Memory(capacity=100)
    >>> memory.store("user_preferences", {"language": "english"}, tags=["user"])
    >>> memory.retrieve("user_preferences")
    {'language': 'english'}

"""

from agentmem_plugin.adapters import (
    AgentMemory,
    HierarchicalMemory,
    MemoryFederation,
    SharedMemory,
    WorkingMemory,
)
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import (
    AccessDeniedError,
    AgentMemError,
    BackendUnavailableError,
    EmbeddingError,
    IndexInUseError,
    IntegrityError,
    InvalidArgumentError,
    InvalidKeyError,
    KeyNotFoundError,
    MissingDependencyError,
    ReadOnlyStoreError,
    SchemaVersionError,
    SerializationError,
    StorageError,
    StoreCorruptError,
)
from agentmem_plugin.manager import MemoryManager
from agentmem_plugin.memory import Memory
from agentmem_plugin.policies import (
    ConsolidationPolicy,
    ImportanceConsolidationPolicy,
    LRUEvictionPolicy,
    TTLEvictionPolicy,
)
from agentmem_plugin.search import SearchIndex
from agentmem_plugin.tiers.archive import ArchiveTier
from agentmem_plugin.tiers.base import Tier
from agentmem_plugin.tiers.buffer import BufferTier
from agentmem_plugin.tiers.jsonfile import JsonFileTier
from agentmem_plugin.tiers.sqlite import SqliteTier
from agentmem_plugin.validation import MAX_KEY_LENGTH
from agentmem_plugin.variants import (
    CompressedMemory,
    DatabaseMemory,
    DebuggableMemory,
    OptimizedMemory,
    PersistentMemory,
    ResilientMemory,
    SemanticMemory,
)

__version__ = "0.1.0"

__all__ = [
    "MAX_KEY_LENGTH",
    "AccessDeniedError",
    "AgentMemError",
    "AgentMemory",
    "ArchiveTier",
    "BackendUnavailableError",
    "BufferTier",
    "CompressedMemory",
    "ConsolidationPolicy",
    "DatabaseMemory",
    "DebuggableMemory",
    "EmbeddingError",
    "HierarchicalMemory",
    "ImportanceConsolidationPolicy",
    "IndexInUseError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "JsonFileTier",
    "KeyNotFoundError",
    "LRUEvictionPolicy",
    "Memory",
    "MemoryEntry",
    "MemoryFederation",
    "MemoryManager",
    "MissingDependencyError",
    "OptimizedMemory",
    "PersistentMemory",
    "ReadOnlyStoreError",
    "ResilientMemory",
    "SchemaVersionError",
    "SearchIndex",
    "SemanticMemory",
    "SerializationError",
    "SharedMemory",
    "SqliteTier",
    "StorageError",
    "StoreCorruptError",
    "TTLEvictionPolicy",
    "Tier",
    "WorkingMemory",
    "__version__",
]
