"""The package surface: pinned exports, docstring examples, and the README's code run verbatim."""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

import langchain_agentmem

README = Path(__file__).resolve().parents[1] / "README.md"
PYTHON_BLOCKS = re.findall(
    r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL
)


def test_exports_are_pinned():
    assert langchain_agentmem.__all__ == [
        "AgentMemByteStore",
        "AgentMemChatMessageHistory",
        "AgentMemRetriever",
        "AgentMemStore",
        "AgentMemVectorStore",
        "create_memory_tools",
    ]
    for name in langchain_agentmem.__all__:
        assert getattr(langchain_agentmem, name).__module__.startswith("langchain_agentmem.")


@pytest.mark.parametrize(
    "module",
    [
        "langchain_agentmem",
        "langchain_agentmem.retrievers",
        "langchain_agentmem.vectorstores",
        "langchain_agentmem.stores",
        "langchain_agentmem.chat_message_histories",
    ],
)
def test_docstring_examples_run(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def run_block(code: str, where: Path, monkeypatch, capsys) -> list[str]:
    where.mkdir()
    monkeypatch.chdir(where)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    return capsys.readouterr().out.splitlines()


def test_readme_first_example_runs_verbatim_and_prints_what_the_readme_says(
    tmp_path, monkeypatch, capsys
):
    text = README.read_text(encoding="utf-8")
    expected = (
        re.search(r"Output:\n\n```text\n(.*?)```", text, flags=re.DOTALL).group(1).splitlines()
    )
    assert "AgentMemRetriever" in PYTHON_BLOCKS[0] and "FakeListChatModel" in PYTHON_BLOCKS[0]
    assert run_block(PYTHON_BLOCKS[0], tmp_path / "first", monkeypatch, capsys) == expected
    assert (
        tmp_path / "first" / "agent_memory" / "memory.sqlite3"
    ).exists()  # it really used the disk


def test_readme_other_examples_run(tmp_path, monkeypatch, capsys):
    outputs = [
        run_block(code, tmp_path / f"block{i}", monkeypatch, capsys)
        for i, code in enumerate(PYTHON_BLOCKS[1:])
    ]
    assert outputs == [
        ["password True", "['refund']"],
        ["You are Ada.", "4"],
        ["[{'dark': True}, None] ['theme']", "[b'\\x00\\xff']"],
    ]
