"""The package surface and the README example (executed verbatim)."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

import pytest

import agentmem_langgraph

README = Path(__file__).resolve().parents[1] / "README.md"


def test_exported_members() -> None:
    assert agentmem_langgraph.__all__ == [
        "DISTANCE_TYPES",
        "AgentMemStore",
        "AsyncAgentMemStore",
        "DistanceType",
        "SearchMode",
        "item_embed_text",
    ]
    for name in agentmem_langgraph.__all__:
        assert getattr(agentmem_langgraph, name) is not None


def test_readme_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], minilm: str
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert blocks, "README.md has no python example"
    monkeypatch.chdir(tmp_path)
    module = types.ModuleType("readme_example")  # a real module: dataclasses look their module up
    monkeypatch.setitem(sys.modules, module.__name__, module)
    # dont_inherit: no __future__ flags from this file leak into the example.
    code = compile(blocks[0], str(README), "exec", dont_inherit=True)
    exec(code, module.__dict__)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "How about a Thai green curry with tofu?"
    text, score = out[1].rsplit(" ", 1)
    assert text == "I'm vegetarian and love Thai food"
    assert float(score) > 0
    assert (tmp_path / "memories" / "memory.sqlite3").is_file()
