"""Several processes on one store, and kill -9 in the middle of writing: nothing acknowledged is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from agentmem_plugin import Memory

WRITER = textwrap.dedent(
    """
    import sys
    from agentmem_plugin import Memory
    path, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    memory = Memory(capacity=None, persistence=True, storage_path=path, embedder=None)
    i = 0
    while count < 0 or i < count:
        key = f"{prefix}-{i}"
        memory.store(key, {"i": i, "prefix": prefix, "pad": "x" * (i % 300)}, tags=[prefix])
        if i % 10 == 0:
            memory.store_many({f"{key}-b{j}": j for j in range(5)})
        sys.stdout.write(key + "\\n")
        sys.stdout.flush()
        i += 1
    memory.close()
    """
)


def spawn(path, prefix: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), prefix, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_kill_9_never_loses_an_acknowledged_store(tmp_path):
    rng = random.Random(20261124)
    acknowledged: list[str] = []
    for run in range(4):
        proc = spawn(tmp_path, f"run{run}", -1)
        assert proc.stdout is not None
        # Wait until the writer is well under way, then kill it at a random moment.
        first = proc.stdout.readline()
        assert first, proc.stderr.read() if proc.stderr else ""
        acknowledged.append(first.strip())
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        # Only complete lines were acknowledged: a key printed without its newline may be torn.
        lines = out.split("\n")
        acknowledged.extend(line for line in lines[:-1] if line)
        assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) > 20
    # Read back without an embedder: the writers stored without one, and the question is durability (with
    # the default embedder the open would first embed every stored entry with the model, ~20 s of this test).
    with Memory(capacity=None, persistence=True, storage_path=tmp_path, embedder=None) as memory:
        values = memory.retrieve_many(acknowledged)
        missing = [k for k, v in zip(acknowledged, values) if v is None]
        assert missing == []
        for key, value in zip(acknowledged, values):
            prefix, i = key.rsplit("-", 1)
            assert value == {"i": int(i), "prefix": prefix, "pad": "x" * (int(i) % 300)}


@pytest.mark.slow
def test_two_processes_write_one_store_at_once(tmp_path):
    procs = [spawn(tmp_path, "alpha", 300), spawn(tmp_path, "beta", 300)]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results):
        assert proc.returncode == 0, err
        assert "locked" not in err
        assert len(out.split()) == 300
    with Memory(capacity=None, persistence=True, storage_path=tmp_path, embedder=None) as memory:
        assert len(memory) == 2 * (300 + 30 * 5)
        assert {h["key"].split("-")[0] for h in memory.search("alpha beta", limit=1000)} == {
            "alpha",
            "beta",
        }
