"""``python -m agentmem_mcp``: the ``agentmem-mcp`` command."""

import sys

from agentmem_mcp.cli import main

sys.exit(main())
