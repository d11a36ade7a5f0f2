"""Policies above storage: working memory, hierarchical promotion, shared memory, federation, agent memory.

Adapters hold no storage code of their own: they are built from :class:`~agentmem_plugin.memory.Memory`,
:class:`~agentmem_plugin.variants.SemanticMemory` and :class:`~agentmem_plugin.manager.MemoryManager`, and
nothing below them imports them.
"""

from agentmem_plugin.adapters.agent import AgentMemory
from agentmem_plugin.adapters.federation import MemoryFederation
from agentmem_plugin.adapters.hierarchical import HierarchicalMemory
from agentmem_plugin.adapters.shared import SharedMemory, SharedMemoryHandle
from agentmem_plugin.adapters.working import WorkingMemory

__all__ = [
    "AgentMemory",
    "HierarchicalMemory",
    "MemoryFederation",
    "SharedMemory",
    "SharedMemoryHandle",
    "WorkingMemory",
]
