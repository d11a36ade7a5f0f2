"""Every input error of the CLI exits 2 (usage), never 5 (internal), and leaves the store as it was.

Generated bad values (hypothesis) go into each option and argument that takes user text: keys, values, ttl,
priority, limits, tiers, namespaces, tags, metadata, modes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from agentmem_plugin.cli import EXIT_INTERNAL, EXIT_USAGE, app
from agentmem_plugin.manager import MemoryManager

BAD_TEXT = st.one_of(
    st.sampled_from(["", "a//b", "/a", "x\x00y", "caf\udce9", "-5", "nan", "inf", "1e400", "[1,", "{", "2**64"]),
    st.text(max_size=6),
)
BAD_NUMBER = st.sampled_from(["-1", "0", "nan", "inf", "abc", "1e400", str(2**64), "", "1.5.2"])

COMMANDS = {
    "put --ttl": lambda store, bad: ["put", str(store), "k", "v", "--ttl", bad],
    "put --priority": lambda store, bad: ["put", str(store), "k", "v", "--priority", bad],
    "put --metadata": lambda store, bad: ["put", str(store), "k", "v", "--metadata", bad],
    "put --tier": lambda store, bad: ["put", str(store), "k", "v", "--tier", bad],
    "put --namespace": lambda store, bad: ["put", str(store), "k", "v", "--namespace", bad],
    "put --tag": lambda store, bad: ["put", str(store), "k", "v", "--tag", bad],
    "put key": lambda store, bad: ["put", str(store), bad, "v"],
    "get key": lambda store, bad: ["get", str(store), bad],
    "search --limit": lambda store, bad: ["search", str(store), "q", "--limit", bad, "--mode", "keyword"],
    "search --mode": lambda store, bad: ["search", str(store), "q", "--mode", bad],
    "list --limit": lambda store, bad: ["list", str(store), "--limit", bad],
    "list --offset": lambda store, bad: ["list", str(store), "--offset", bad],
    "list --tier": lambda store, bad: ["list", str(store), "--tier", bad],
    "delete --namespace": lambda store, bad: ["delete", str(store), "k", "--namespace", bad],
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-bad") / "store"
    with MemoryManager(storage_path=path) as mm:
        mm.store("k", "kept", tags=["t"])
        mm.store("l", "kept too", memory_type="long_term")
    return path


def _snapshot(path: Path) -> dict[str, object]:
    with MemoryManager(storage_path=path) as mm:
        return {k: e.value for k, e in zip(mm.keys(), mm.get_many(mm.keys()), strict=True) if e is not None}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad=st.one_of(BAD_TEXT, BAD_NUMBER))
def test_bad_input_exits_2_never_5_and_changes_nothing(command: str, bad: str, store: Path) -> None:
    before = _snapshot(store)
    result = CliRunner().invoke(app, COMMANDS[command](store, bad))
    assert result.exit_code != EXIT_INTERNAL, (command, bad, result.stderr)
    if result.exit_code != 0:
        assert result.exit_code in (EXIT_USAGE, 1), (command, bad, result.exit_code, result.stderr)
        if command.startswith("put"):
            assert _snapshot(store) == before
    if command.startswith("put") and result.exit_code == 0:  # a value that is fine after all: undo it
        with MemoryManager(storage_path=store) as mm:
            mm.store("k", "kept", tags=["t"])
