"""The `agentmem demo` command: it stores, searches, expires, persists, reopens and prints what came back."""

from __future__ import annotations

import subprocess
import sys

from agentmem_plugin.cli import main, run_demo


def test_demo_round_trip(tmp_path, capsys):
    came_back = run_demo(tmp_path, semantic=False)
    out = capsys.readouterr().out
    assert "session_token" not in came_back  # its 5 s TTL expired before the reopen
    assert came_back["user_preferences"]["language"] == "english"
    assert {"current_task", "successful_strategies", "note_0", "note_1", "note_2"} <= set(came_back)
    assert "after reopening the store:" in out and "user_preferences" in out
    assert (
        "successful_strategies"
        in out.split("search('data processing strategies'):")[1].splitlines()[4]
    )


def test_demo_semantic_step(tmp_path, capsys, real_embedder):
    assert main(["demo", "--path", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "hybrid search (keyword + meaning)" in out
    assert out.rsplit("key", 1)[1].splitlines()[2].startswith("user_preferences")


def test_module_entry_point(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "agentmem_plugin", "demo", "--no-semantic", "--path", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "after reopening the store:" in proc.stdout
