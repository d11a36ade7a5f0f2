"""The public surface: __all__ is pinned, and the README's example runs as written."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.memory import BaseMemory
from llama_index.core.memory.memory import BaseMemoryBlock

import agentmem_llamaindex

README = Path(__file__).resolve().parents[1] / "README.md"


def test_exported_members() -> None:
    assert agentmem_llamaindex.__all__ == [
        "AgentMemChatMemory",
        "AgentMemMemoryBlock",
        "AgentMemRetriever",
    ]
    assert issubclass(agentmem_llamaindex.AgentMemChatMemory, BaseMemory)
    assert issubclass(agentmem_llamaindex.AgentMemMemoryBlock, BaseMemoryBlock)
    assert issubclass(agentmem_llamaindex.AgentMemRetriever, BaseRetriever)


@pytest.mark.parametrize(
    "module",
    [
        "agentmem_llamaindex",
        "agentmem_llamaindex.chat_memory",
        "agentmem_llamaindex.memory_block",
        "agentmem_llamaindex.retriever",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module), raise_on_error=False)
    assert result.attempted > 0
    assert result.failed == 0


def test_readme_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    match = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)
    assert match is not None, "README.md has no ```python block"
    monkeypatch.chdir(tmp_path)

    exec(compile(match.group(1), str(README), "exec"), {"__name__": "readme_example"})

    out = capsys.readouterr().out
    assert "diet -> Alice is vegetarian and allergic to peanuts." in out
    assert (
        "['Hi! Please remember that I live in Lisbon.', 'text text text text text text text text']"
        in out
    )
    assert "<agentmem_memories>\n- Alice is vegetarian and allergic to peanuts." in out
    assert (tmp_path / "agentmem-data" / "memory.sqlite3").is_file()  # it wrote where it said
