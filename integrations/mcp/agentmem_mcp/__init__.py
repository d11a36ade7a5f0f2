"""An MCP server for agentmem-plugin: memory as tools (remember, search, recall, forget, list) for any MCP client.

Run it with ``agentmem-mcp --storage DIR`` (stdio) or ``--http 127.0.0.1:8765`` (streamable HTTP); or build it in
Python:

Example:
    >>> from agentmem_mcp import MemoryService, create_server
    >>> service = MemoryService(None, embedder=None)   # a directory in real use; None: this process only
    >>> server = create_server(service)
    >>> service.remember("The user's cat is called Miso", key="pet")["status"]
    'created'
    >>> service.close()

"""

from agentmem_mcp.cli import main
from agentmem_mcp.server import create_server
from agentmem_mcp.service import MemoryService

__all__ = ["MemoryService", "create_server", "main"]
