"""Fixtures: one streamable-HTTP server process for the module that asks for it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp_helpers import http_server


@pytest.fixture(scope="module")
def http_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of an ``agentmem-mcp --http`` server on a fresh store, shared by the module's tests."""
    where: Path = tmp_path_factory.mktemp("http")
    with http_server(where / "store", where / "server.log") as url:
        yield url
