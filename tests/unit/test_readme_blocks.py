"""Every fenced ``python`` block of README.md and docs/**/*.md runs as written, offline.

The blocks of one page run in order in one fresh interpreter (a later block may use what an earlier one
defined), in an empty temporary directory, with the real offline embedder where a block asks for it. A block that
needs an external server is marked on the line before it with ``<!-- docs-test: skip <reason> -->``; each such
block is reported as a skipped test with its reason, so the count shows in the test summary.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_BLOCK = re.compile(
    r"(?:^<!-- docs-test: skip (?P<skip>.+?) -->\n)?^```python\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)

# Runs the blocks (a JSON list on stdin) in one namespace; names the failing block on stderr.
_RUNNER = """
import json, sys, traceback
blocks = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
for number, code in blocks:
    try:
        exec(compile(code, f"<block {number}>", "exec"), namespace)
    except BaseException:
        sys.stderr.write(f"@@ block {number} failed:\\n{code}\\n{traceback.format_exc()}")
        sys.exit(1)
"""


def _blocks(page: Path) -> list[tuple[int, str, str | None]]:
    """(number, code, skip reason or None) of each python block of *page*, numbered from 1."""
    text = page.read_text(encoding="utf-8")
    return [(n, m.group("code"), m.group("skip")) for n, m in enumerate(_BLOCK.finditer(text), 1)]


def _label(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


# Pages whose blocks do not run yet, with the reason (their owners fix them; strict: a fixed page fails here
# until its entry is removed).
NOT_YET_RUNNABLE: dict[str, str] = {}

RUNNABLE = [p for p in PAGES if any(skip is None for _, _, skip in _blocks(p))]
SKIPPED = [(p, n, skip) for p in PAGES for n, _, skip in _blocks(p) if skip is not None]


def test_pages_have_blocks() -> None:
    assert ROOT / "README.md" in RUNNABLE
    assert len(RUNNABLE) >= 5


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=_label)
def test_page_blocks_run(page: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if _label(page) in NOT_YET_RUNNABLE:
        request.applymarker(pytest.mark.xfail(reason=NOT_YET_RUNNABLE[_label(page)], strict=True))
    blocks = [(n, code) for n, code, skip in _blocks(page) if skip is None]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(blocks),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"{_label(page)}: {done.stderr[-6000:]}"


@pytest.mark.parametrize(
    ("page", "number", "reason"), SKIPPED, ids=[f"{_label(p)}-{n}" for p, n, _ in SKIPPED]
)
def test_marked_block_is_skipped(page: Path, number: int, reason: str) -> None:
    assert reason.strip(), f"{_label(page)} block {number}: say why it is skipped"
    pytest.skip(f"{_label(page)} block {number}: {reason}")


def test_not_yet_runnable_names_existing_pages() -> None:
    assert sorted(set(NOT_YET_RUNNABLE) - {_label(p) for p in RUNNABLE}) == []


def test_the_block_pattern_sees_skip_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nx = 1\n```\n\n<!-- docs-test: skip needs a server -->\n```python\ny = 2\n```\n"
    )
    assert _blocks(page) == [(1, "x = 1\n", None), (2, "y = 2\n", "needs a server")]
