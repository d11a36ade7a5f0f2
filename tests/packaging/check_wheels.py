"""Build every wheel, install each integration into a fresh venv with only its declared dependencies, run its README.

What a user gets from ``pip install <integration wheel> <core wheel>``: no torch, no chromadb, no
sentence-transformers (the ``semantic`` extra is not asked for). In that venv:

* every ``python`` block of the integration's README runs, as written when it needs no model, else as a
  keyword-only variant (the substitutions below; each must apply, so a README edit cannot silently skip it);
* each block that needs the model, run as written, fails with ``MissingDependencyError`` naming the
  ``[semantic]`` extra to install.

Usage: ``python tests/packaging/check_wheels.py [--jobs N] [--keep DIR]`` (``make test`` runs it). pip's cache is
reused, so after the first run nothing is downloaded. Exit status 0 when every check passed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "chromadb", "sentence_transformers", "transformers")

logger = logging.getLogger("check_wheels")

_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass
class Block:
    """What to do with one python block of a README (by its position)."""

    keyword: list[tuple[str, str]] = field(default_factory=list)
    """Substitutions turning a block that needs the model into a keyword-only one (none: run as written)."""
    expect: list[str] = field(default_factory=list)
    """Lines the (keyword) run must print."""
    needs_model: bool = False
    """Run as written, the block must fail naming the semantic extra."""
    skip: str = ""
    """Why the block is not run (an API sketch with placeholders)."""


@dataclass
class Integration:
    """One integration package and the plan for its README's blocks."""

    directory: str
    distribution: str
    module: str
    blocks: list[Block]


INTEGRATIONS = [
    Integration(
        "integrations/langchain",
        "langchain_agentmem",
        "langchain_agentmem",
        [
            Block(
                keyword=[
                    (
                        'storage_path="agent_memory", embedder="default"',
                        'storage_path="agent_memory"',
                    ),
                    ('"which meals can I cook for them?"', '"what is the user allergic to?"'),
                ],
                expect=["The user is vegetarian and allergic to peanuts"],
                needs_model=True,
            ),
            Block(
                needs_model=True
            ),  # the vector store: similarity search is semantic by definition
            Block(expect=["You are Ada.", "4"]),
            Block(),
        ],
    ),
    Integration(
        "integrations/langgraph",
        "langgraph_store_agentmem",
        "agentmem_langgraph",
        [
            Block(
                keyword=[
                    ('index = {"embed": "default", "dims": 384}', "index = None"),
                    ('query="dietary restrictions"', 'query="vegetarian food"'),
                ],
                expect=["How about a Thai green curry with tofu?"],
                needs_model=True,
            ),
            Block(skip="an API sketch (my_memory_manager is a placeholder)"),
        ],
    ),
    Integration(
        "integrations/llamaindex",
        "llama_index_memory_agentmem",
        "agentmem_llamaindex",
        [
            Block(
                keyword=[
                    (
                        'storage_path="agentmem-data", embedder="default"',
                        'storage_path="agentmem-data"',
                    ),
                    ('mode="semantic"', 'mode="keyword"'),
                    ('"What should I avoid cooking for her?"', '"What is Alice allergic to?"'),
                    ('"Any dinner ideas for me?"', '"Any vegetarian dinner ideas for Alice?"'),
                ],
                expect=["diet -> Alice is vegetarian and allergic to peanuts."],
                needs_model=True,
            ),
        ],
    ),
]

# Run as written without the semantic extra, a block that needs the model must end like this.
_MISSING_EXTRA = re.compile(r"MissingDependencyError: .*\[semantic\]")


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run *cmd*; return its stdout, or raise RuntimeError with its output when it fails."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        )
    return done.stdout


def build_wheels(dist: Path) -> dict[str, Path]:
    """Build the core wheel and the three integration wheels into *dist*; return them by distribution."""
    sources = [ROOT, *(ROOT / i.directory for i in INTEGRATIONS)]
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(dist), *map(str, sources)])
    wheels = {w.name.split("-")[0]: w for w in dist.glob("*.whl")}
    wanted = {"agentmem_plugin", *(i.distribution for i in INTEGRATIONS)}
    assert set(wheels) == wanted, f"built {sorted(wheels)}, expected {sorted(wanted)}"
    return wheels


def check(integration: Integration, wheels: dict[str, Path], work: Path) -> list[str]:
    """Install one integration with its core wheel into a fresh venv and run its README there.

    Returns a line per check done; raises AssertionError or RuntimeError on the first failure.
    """
    venv = work / f"venv-{integration.module}"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    # --no-compile: pip byte-compiling every installed file (langchain-core, llama-index-core, ...) was about a
    # third of the check; the blocks compile what they import (their environment lets Python write the .pyc).
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-compile",
         str(wheels["agentmem_plugin"]), str(wheels[integration.distribution])])
    present = run([str(python), "-c", (
        "import importlib.util, sys; "
        "print(','.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))"
    ), *HEAVY]).strip()
    assert present == "", f"{integration.distribution} pulled the semantic stack: {present}"
    done = [f"{integration.distribution}: installed without {', '.join(HEAVY)}"]

    readme = (ROOT / integration.directory / "README.md").read_text(encoding="utf-8")
    blocks = [m.group(1) for m in _BLOCK.finditer(readme)]
    assert len(blocks) == len(integration.blocks), (
        f"{integration.directory}/README.md has {len(blocks)} python blocks; the plan in "
        f"{Path(__file__).name} has {len(integration.blocks)}: update it"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["HF_HUB_OFFLINE"] = "1"
    for number, (source, plan) in enumerate(zip(blocks, integration.blocks), 1):
        label = f"{integration.directory}/README.md block {number}"
        if plan.skip:
            done.append(f"{label}: skipped ({plan.skip})")
            continue
        code = source
        for old, new in plan.keyword:
            assert old in code, f"{label}: {old!r} is gone; update the keyword variant"
            code = code.replace(old, new)
        if plan.needs_model:
            stderr = _run_block(python, source, work / f"{integration.module}-{number}-model", env)
            assert stderr is not None and _MISSING_EXTRA.search(stderr), (
                f"{label} as written should fail naming the semantic extra; it gave:\n{stderr}"
            )
            done.append(f"{label}: without the model, names the semantic extra")
            if not plan.keyword:
                continue
        stdout = _run_block(python, code, work / f"{integration.module}-{number}", env, ok=True)
        missing = [line for line in plan.expect if line not in (stdout or "").splitlines()]
        assert missing == [], f"{label}: missing output lines {missing}; got:\n{stdout}"
        done.append(f"{label}: ran {'keyword-only' if plan.keyword else 'as written'}")
    return done


def _run_block(
    python: Path, code: str, cwd: Path, env: dict[str, str], *, ok: bool = False
) -> str | None:
    """Run *code* in an empty *cwd*; with *ok* return its stdout (it must succeed), else its stderr."""
    cwd.mkdir()
    done = subprocess.run([str(python), "-c", textwrap.dedent(code)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    if ok:
        if done.returncode != 0:
            raise RuntimeError(f"block failed in {cwd}:\n{code}\n{done.stdout}\n{done.stderr}")
        return done.stdout
    return None if done.returncode == 0 else done.stderr


def main(argv: list[str] | None = None) -> int:
    """Build the wheels, check every integration (in parallel), log what was checked; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=len(INTEGRATIONS), help="integrations at once")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it (debugging)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="packaging: %(message)s")
    start = time.monotonic()
    work = args.keep or Path(tempfile.mkdtemp(prefix="agentmem-packaging-"))
    work.mkdir(parents=True, exist_ok=True)
    failed = 0
    try:
        wheels = build_wheels(work / "dist")
        logger.info("built %s", ", ".join(sorted(w.name for w in wheels.values())))
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = {pool.submit(check, i, wheels, work): i for i in INTEGRATIONS}
            for future in concurrent.futures.as_completed(futures):
                try:
                    for line in future.result():
                        logger.info("ok: %s", line)
                except (AssertionError, RuntimeError) as exc:
                    failed += 1
                    logger.error("FAILED %s: %s", futures[future].directory, exc)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    logger.info("%s in %.0f s", "failed" if failed else "passed", time.monotonic() - start)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
