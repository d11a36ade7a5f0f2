"""A store over a manager that other code also uses: items moved between tiers stay visible to the store."""

from __future__ import annotations

import logging

import pytest
from agentmem_plugin import MemoryManager

from agentmem_langgraph import AgentMemStore


def test_items_promoted_or_archived_by_other_code_stay_visible(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with MemoryManager(long_term_limit=3) as manager:
        with caplog.at_level(logging.WARNING):
            store = AgentMemStore(manager=manager)
        assert "long_term_limit is 3" in caplog.text
        for i in range(5):
            store.put(("docs",), f"k{i}", {"text": f"note {i}"})
        view = manager.with_namespace("docs")
        assert view.tier_of("k0") == "external"  # archived by the manager's limit
        assert view.retrieve("k4") == {
            "text": "note 4"
        }  # other code reads it: promoted to short-term
        assert view.tier_of("k4") == "short_term"
        assert store.get(("docs",), "k0").value == {"text": "note 0"}
        assert store.get(("docs",), "k4").value == {"text": "note 4"}
        assert "k4" in {item.key for item in store.search(("docs",))}
        assert store.list_namespaces() == [("docs",)]
