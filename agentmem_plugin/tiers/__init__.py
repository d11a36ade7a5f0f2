"""Storage tiers: one module per backend, all honouring :mod:`agentmem_plugin.tiers.base`.

Backends with heavy dependencies are imported from their own modules, never from here.
"""

from agentmem_plugin.tiers.base import EvictionCallback, Tier, TierStats
from agentmem_plugin.tiers.buffer import BufferTier

__all__ = ["BufferTier", "EvictionCallback", "Tier", "TierStats"]
