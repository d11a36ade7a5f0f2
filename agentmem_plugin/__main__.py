"""``python -m agentmem_plugin``: the ``agentmem`` command."""

from agentmem_plugin.cli import main

raise SystemExit(main())
