"""Every notebook in notebooks/ runs top to bottom in a real kernel, from a copy with its outputs cleared.

Committed notebooks may carry the outputs of a run (so the repository page shows the plots); the test never
trusts them: it clears every output and execution count first, then executes, then checks what came out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))

nbformat = pytest.importorskip("nbformat")


def test_there_are_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {
        "quickstart.ipynb",
        "langchain_rag.ipynb",
        "langgraph_agent.ipynb",
    }


# Notebooks that draw, and must show at least this many inline images after a fresh run.
PLOTS = {"quickstart.ipynb": 1}


def _cleared(path: Path) -> Any:
    """The notebook at *path* with every output and execution count removed (what the test executes)."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_are_from_a_clean_run_or_absent(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.get("output_type") == "error"
    ]
    assert errors == [], f"{path.name} is committed with an error output"
    if any(n is not None for n in counts):  # with outputs: one top-to-bottom run, in order
        assert counts == list(range(1, len(counts) + 1)), (
            f"{path.name}: rerun it top to bottom before committing"
        )


def test_cleared_copy_has_no_outputs() -> None:
    nb = _cleared(NOTEBOOKS[0])
    assert all(
        c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code"
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path, tmp_path: Path) -> None:
    from nbclient import NotebookClient

    nb = _cleared(path)
    client = NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError with the failing cell's traceback
    errors = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.get("output_type") == "error"
    ]
    assert errors == []
    images = [
        o
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.get("output_type") in ("display_data", "execute_result")
        and "image/png" in o.get("data", {})
    ]
    assert len(images) >= PLOTS.get(path.name, 0), f"{path.name}: its plots did not render inline"
    assert list(tmp_path.iterdir()) == []  # the notebook cleans up after itself
