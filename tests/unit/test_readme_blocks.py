"""Every fenced ``python`` block of README.md and docs/**/*.md runs as written, offline.

The blocks of one page run in order in one fresh process of their own (a later block may use what an earlier one
defined), in an empty temporary directory, with the real offline embedder where a block asks for it. A block that
needs an external server is marked on the line before it with ``<!-- docs-test: skip <reason> -->``; each such
block is reported as a skipped test with its reason, so the count shows in the test summary.

Each page's process is forked from one template interpreter that has only imported the heavy third-party
libraries the pages load (sentence-transformers, with torch and transformers, and chromadb): importing them is
most of a page's time (about 7 s CPU of 9), and every page paid it again. Nothing else is shared: the template
has created no object of this project, loaded no model and started no thread (checked before each fork; with a
second thread, or without ``os.fork``, the page runs in a fresh interpreter started for it, as before).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

_BLOCK = re.compile(
    r"(?:^<!-- docs-test: skip (?P<skip>.+?) -->\n)?^```python\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)

# Runs the blocks in one namespace; names the failing block on stderr and exits 1. Run as a whole program (with the
# blocks as a JSON list on stdin) or, in a process forked from the template below, as ``_run(blocks, namespace)``.
_RUN = """
def _run(blocks, namespace):
    import sys, traceback
    for number, code in blocks:
        try:
            exec(compile(code, f"<block {number}>", "exec"), namespace)
        except BaseException:
            sys.stderr.write(f"@@ block {number} failed:\\n{code}\\n{traceback.format_exc()}")
            sys.exit(1)
"""
_RUNNER = _RUN + "\nimport json, sys\n_run(json.load(sys.stdin), {'__name__': '__main__'})\n"

# The template: imports the heavy libraries (each optional), then forks a process per request (a JSON line on
# stdin: the blocks, the directory to run them in, the files for their stdout and stderr) and answers on stdout
# with the child's pid, then its exit status. It forks only while it has one thread (a thread's locks held at
# the fork would stay held in the child); otherwise it answers {"forked": false} and the page runs as before.
_TEMPLATE = (
    _RUN
    + """
import json, os, sys
for heavy in ("sentence_transformers", "chromadb"):
    try:
        __import__(heavy)
    except ImportError:
        pass
answers = os.fdopen(os.dup(1), "w", buffering=1)
def answer(**message):
    answers.write(json.dumps(message) + "\\n")
def single_threaded():
    try:
        return hasattr(os, "fork") and len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False
answer(ready=True)
for line in sys.stdin:
    request = json.loads(line)
    if not single_threaded():
        answer(forked=False)
        continue
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        answers.close()
        os.chdir(request["cwd"])
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        for fd, name in ((1, "stdout"), (2, "stderr")):
            os.dup2(os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), fd)
        namespace = {"__name__": "__main__"}
        try:
            _run(request["blocks"], namespace)
            code = 0
        except SystemExit:  # _run's: a block failed
            code = 1
        # What the interpreter does on exit, in its order: join the non-daemon threads, run the atexit
        # handlers, flush; then the blocks' objects go (their finalizers run). Tearing down every module,
        # the template's heavy ones included, would only cost time (1.8 s CPU a page in a forked child).
        import atexit, threading
        threading._shutdown()
        atexit._run_exitfuncs()
        namespace.clear()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    answer(forked=True, pid=pid)
    answer(returncode=os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
os._exit(0)  # the template's own module teardown would take as long as a page
"""
)


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


_ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
_TIMEOUT = 600  # seconds a page may take


class _Template:
    """The template interpreter of this module's pages (see the module docstring)."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._stderr = (work / "template.stderr").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _TEMPLATE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            cwd=work,
            env=_ENV,
            text=True,
        )
        self.ready = self._answer() == {"ready": True}

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        if not select.select([self.proc.stdout], [], [], _TIMEOUT)[0]:
            self.close()
            raise AssertionError(f"no answer from the page template in {_TIMEOUT} s")
        line = self.proc.stdout.readline()
        stderr = (self.work / "template.stderr").read_text(errors="replace")
        assert line, f"the page template exited {self.proc.poll()}: {stderr[-6000:]}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, blocks: list[tuple[int, str]], cwd: Path, name: str) -> tuple[int, str] | None:
        """Run *blocks* in a process forked from the template; None when it cannot fork."""
        assert self.proc.stdin is not None
        stderr = self.work / f"{name}.stderr"
        request = {"blocks": blocks, "cwd": str(cwd), "stdout": str(self.work / f"{name}.stdout")}
        self.proc.stdin.write(json.dumps({**request, "stderr": str(stderr)}) + "\n")
        self.proc.stdin.flush()
        forked = self._answer()
        if not forked["forked"]:
            return None
        try:
            returncode = int(self._answer()["returncode"])
        except AssertionError:
            with contextlib.suppress(OSError):
                os.kill(forked["pid"], signal.SIGKILL)
            raise
        return returncode, stderr.read_text(errors="replace")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Template | None]:
    """The template interpreter the pages fork from (None where processes cannot be forked)."""
    if not hasattr(os, "fork"):
        yield None
        return
    started = _Template(tmp_path_factory.mktemp("page-template"))
    try:
        yield started if started.ready else None
    finally:
        started.close()


def _run_fresh(blocks: list[tuple[int, str]], cwd: Path) -> tuple[int, str]:
    """Run *blocks* in a fresh interpreter started for them."""
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(blocks),
        cwd=cwd,
        env=_ENV,
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        check=False,
    )
    return done.returncode, done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE, ids=_label)
def test_page_blocks_run(
    page: Path, tmp_path: Path, request: pytest.FixtureRequest, template: _Template | None
) -> None:
    if _label(page) in NOT_YET_RUNNABLE:
        request.applymarker(pytest.mark.xfail(reason=NOT_YET_RUNNABLE[_label(page)], strict=True))
    blocks = [(n, code) for n, code, skip in _blocks(page) if skip is None]
    name = re.sub(r"\W", "-", _label(page))
    done = None if template is None else template.run(blocks, tmp_path, name)
    returncode, stderr = _run_fresh(blocks, tmp_path) if done is None else done
    assert returncode == 0, f"{_label(page)}: {stderr[-6000:]}"


def test_a_forked_page_runs_in_its_own_process_and_directory(
    tmp_path: Path, template: _Template | None
) -> None:
    if template is None:
        pytest.skip("no page template here (os.fork is missing)")
    blocks = [
        (1, "import os, sys\nassert 'agentmem_plugin' not in sys.modules\nmarker = os.getpid()\n"),
        (2, f"assert os.getcwd() == {str(tmp_path)!r} and marker == os.getpid()\n"),
        (3, "open('made-here', 'w').close()\nimport agentmem_plugin\n"),
    ]
    first = template.run(blocks, tmp_path, "own-process")
    if first is None:
        pytest.skip("the template has a second thread: the pages run in fresh interpreters")
    assert first == (0, "")
    assert [p.name for p in tmp_path.iterdir()] == ["made-here"]
    again = [
        (1, "import sys\nassert 'agentmem_plugin' not in sys.modules and 'marker' not in dir()\n")
    ]
    assert template.run(again, tmp_path, "own-process-again") == (0, "")
    failing = template.run([(1, "x = 1"), (2, "raise ValueError('boom')")], tmp_path, "fails")
    assert failing is not None and failing[0] == 1
    assert "@@ block 2 failed" in failing[1] and "ValueError: boom" in failing[1]


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
