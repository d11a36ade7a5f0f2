"""`agentmem list` (filters, paging, --json) and the help display of every command (typer's CliRunner)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from agentmem_plugin.cli import EXIT_STORE, EXIT_USAGE, app
from agentmem_plugin.manager import MemoryManager


def run(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    with MemoryManager(storage_path=path) as mm:
        mm.store("task:1", "write the report", ttl=3600, tags=["task"])
        mm.store("task:2", "review the report", tags=["task", "urgent"], priority=3)
        mm.store("pref:lang", {"language": "english"}, "long_term", tags=["user"])
        mm.store("pref:tz", "UTC-8", "long_term", tags=["user", "urgent"])
        mm.store("old", "archived note", "external")
        mm.with_namespace("user/alice").store("color", "blue", "long_term", tags=["user"])
    return path


def listed(*args: Any) -> list[dict[str, Any]]:
    result = run("list", *args, "--json")
    assert result.exit_code == 0, result.output
    rows: list[dict[str, Any]] = orjson.loads(result.stdout)
    return rows


def test_list_shows_every_tier_in_order_keys_sorted(store: Path) -> None:
    rows = listed(store)
    assert [(r["tier"], r["key"]) for r in rows] == [
        ("short_term", "task:1"),
        ("short_term", "task:2"),
        ("long_term", "pref:lang"),
        ("long_term", "pref:tz"),
        ("external", "old"),
    ]
    assert rows[2]["value"] == {"language": "english"}
    assert rows[0]["ttl"] == 3600 and rows[0]["expires_at"] is not None
    assert {r["namespace"] for r in rows} == {""}


def test_list_filters(store: Path) -> None:
    assert [r["key"] for r in listed(store, "--tier", "long_term")] == ["pref:lang", "pref:tz"]
    assert [r["key"] for r in listed(store, "--tag", "urgent")] == ["task:2", "pref:tz"]
    assert [r["key"] for r in listed(store, "-t", "urgent", "-t", "task")] == ["task:2"]
    assert [r["key"] for r in listed(store, "--prefix", "pref:")] == ["pref:lang", "pref:tz"]
    assert listed(store, "--prefix", "pref:", "--tier", "short_term") == []
    alice = listed(store, "--namespace", "user/alice")
    assert [(r["namespace"], r["key"], r["value"]) for r in alice] == [
        ("user/alice", "color", "blue")
    ]


def test_list_pages(store: Path) -> None:
    everything = [r["key"] for r in listed(store)]
    pages = [
        [r["key"] for r in listed(store, "--limit", 2, "--offset", offset)]
        for offset in (0, 2, 4, 6)
    ]
    assert pages == [everything[0:2], everything[2:4], everything[4:5], []]
    assert [r["key"] for r in listed(store, "-k", 1, "--offset", 1, "--tag", "user")] == ["pref:tz"]


def test_list_table(store: Path) -> None:
    result = run("list", store, "--limit", 2, "--offset", 1)
    assert result.exit_code == 0
    assert "entries 2-3 of 5" in result.stdout
    assert "task:2" in result.stdout and "pref:lang" in result.stdout
    assert "task:1" not in result.stdout and "old" not in result.stdout


def test_list_without_matches_says_so_on_stderr(store: Path) -> None:
    result = run("list", store, "--prefix", "nothing")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "no entries match" in result.stderr


def test_list_reads_without_counting(store: Path) -> None:
    listed(store)
    with MemoryManager(storage_path=store) as mm:
        entry = mm.short_tier.get("task:1", touch=False)
    assert entry is not None and entry.access_count == 0


def test_list_refuses_bad_input(store: Path, tmp_path: Path) -> None:
    assert run("list", tmp_path / "none").exit_code == EXIT_STORE
    assert run("list", store, "--limit", 0).exit_code == EXIT_USAGE
    assert run("list", store, "--offset", -1).exit_code == EXIT_USAGE
    assert run("list", store, "--tier", "nope").exit_code == EXIT_USAGE
    assert run("list", store, "--namespace", "a//b").exit_code == EXIT_USAGE


COMMANDS = ["stats", "search", "get", "inspect", "put", "delete", "list", "export", "import",
            "backup", "restore", "consolidate", "reindex", "cleanup", "demo"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_shows_no_type_on_flags_and_no_rest_markup(command: str | None) -> None:
    result = run(*([command] if command else []), "--help")
    assert result.exit_code == 0
    text = result.stdout
    assert "Usage: " in text
    assert "<bool>" not in text
    assert "``" not in text
    assert re.search(r":(mod|class|func|meth|data|attr|exc):`", text) is None


def test_backup_help_is_plain_text() -> None:
    text = run("backup", "--help").stdout
    assert "agentmem-store.json" in text and "agentmem_plugin.backup" in text


def test_option_values_are_named() -> None:
    text = run("put", "--help").stdout
    for shown in (
        "--ttl SECONDS",
        "--priority N",
        "-t, --tag TAG",
        "--metadata JSON",
        "-n, --namespace NS",
    ):
        assert shown in text
    assert "--json-value  " in text  # a flag: no value after it
    listing = run("list", "--help").stdout
    for shown in ("--prefix TEXT", "-k, --limit N", "--offset N", "--json  "):
        assert shown in listing
