"""The `agentmem` command: every subcommand and its error paths, on real stores in tmp_path.

Most tests drive the typer app in-process (typer's CliRunner); a few run the command as a real subprocess,
through ``python -m agentmem_plugin`` and the installed console script. Only two tests load the embedding model.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from agentmem_plugin.cli import (
    EXIT_DEPENDENCY,
    EXIT_INTERNAL,
    EXIT_NOT_FOUND,
    EXIT_STORE,
    EXIT_USAGE,
    app,
    main,
    run_demo,
)
from agentmem_plugin.manager import MemoryManager
from agentmem_plugin.tiers.archive import generate_key

TIERS = ("short_term", "long_term", "external")
NAMESPACES = ("", "user/alice")
Snapshot = dict[tuple[str, str, str], dict[str, Any]]


def build_store(path: Path, **kwargs: Any) -> None:
    """A store with entries in every tier of two namespaces, with ttl, priority, tags and metadata."""
    with MemoryManager(storage_path=path, **kwargs) as mm:
        mm.store("user_preferences", {"language": "english", "timezone": "UTC-8"}, "long_term",
                 priority=5, metadata={"source": "onboarding"}, tags=["user", "preferences"])
        mm.store("current_task", "summarize the quarterly report", ttl=3600, tags=["task"])
        mm.store("old_project", {"name": "apollo", "status": "done"}, "external", priority=-1,
                 metadata={"year": 2019})
        mm.store("greeting", "héllo wörld ✓ [bold]not markup[/bold]", "long_term")
        alice = mm.with_namespace(("user", "alice"))
        alice.store("color", "blue", "long_term", tags=["pref"])
        alice.store("draft", "a draft about the roadmap", ttl=600, priority=2)
        alice.store("ancient", "archived alice note", "external")


def snapshot(path: Path, namespaces: tuple[str, ...] = NAMESPACES) -> Snapshot:
    """Every live entry of *path* by (namespace, tier, key), read without counting reads."""
    out: Snapshot = {}
    with MemoryManager(storage_path=path) as mm:
        for ns in namespaces:
            view = mm.with_namespace(ns)
            for name, tier in zip(TIERS, (view.short_tier, view.long_tier, view.external_tier)):
                for entry in tier.scan():
                    fields = entry.to_dict()
                    del fields["version"]  # an import is a new write of each key: a new version
                    out[(ns, name, entry.key)] = fields
    return out


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    build_store(path)
    return path


def run(*args: Any, input: str | None = None, env: dict[str, str] | None = None) -> Any:
    """Invoke the app in-process; unexpected exceptions propagate (they would fail the test)."""
    return CliRunner().invoke(
        app, [str(a) for a in args], input=input, env=env, catch_exceptions=False
    )


# -- demo (what `make demo` runs) --------------------------------------------------------------------------------


def test_demo_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    came_back = run_demo(tmp_path, semantic=False)
    out = capsys.readouterr().out
    assert "session_token" not in came_back  # its 5 s TTL expired before the reopen
    assert came_back["user_preferences"]["language"] == "english"
    assert {"current_task", "successful_strategies", "note_0", "note_1", "note_2"} <= set(came_back)
    assert "after reopening the store:" in out and "user_preferences" in out
    top_two = "\n".join(out.split("search('data processing strategies'):")[1].splitlines()[4:6])
    assert "successful_strategies" in top_two and "current_task" in top_two  # the two that hold those words


def test_demo_semantic_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], real_embedder: Any
) -> None:
    assert main(["demo", "--path", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "hybrid search (keyword + meaning)" in out
    assert out.rsplit("key", 1)[1].splitlines()[2].startswith("user_preferences")


def test_demo_command_without_path_uses_a_temporary_store() -> None:
    result = run("demo", "--no-semantic")
    assert result.exit_code == 0, result.stderr
    storage = result.stdout.splitlines()[0].removeprefix("storage: ")
    assert "after reopening the store:" in result.stdout
    assert not Path(storage).exists()  # the temporary directory is removed afterwards


# -- one key -----------------------------------------------------------------------------------------------------


def test_put_then_get_inspect_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "new-store"
    result = run("put", path, "prefs", '{"language": "english", "n": [1, 2]}', "--json-value",
                 "--ttl", "3600", "--priority", "4", "--tag", "user", "-t", "prefs",
                 "--metadata", '{"source": "cli"}', "--tier", "long_term", "--namespace", "user/bob")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert "stored 'prefs' in long_term in namespace 'user/bob'" in result.stderr

    got = run("get", path, "prefs", "-n", "user/bob")
    assert got.exit_code == 0
    assert orjson.loads(got.stdout) == {"language": "english", "n": [1, 2]}
    assert run("get", path, "prefs").exit_code == EXIT_NOT_FOUND  # other namespace

    inspected = run("inspect", path, "prefs", "-n", "user/bob", "--json")
    assert inspected.exit_code == 0
    full = orjson.loads(inspected.stdout)
    assert full["namespace"] == "user/bob" and full["tier"] == "long_term"
    assert (full["priority"], full["tags"], full["metadata"], full["ttl"]) == (
        4, ["user", "prefs"], {"source": "cli"}, 3600.0,
    )
    assert full["expires_at"] == pytest.approx(full["created_at"] + 3600)
    assert full["access_count"] == 0

    table = run("inspect", path, "prefs", "-n", "user/bob").stdout
    for text in (
        "long_term",
        "user, prefs",
        '"source":"cli"',
        "3600 s",
        "in 60 min",
        "access count",
    ):
        assert text in table

    deleted = run("delete", path, "prefs", "-n", "user/bob")
    assert deleted.exit_code == 0 and "deleted 'prefs'" in deleted.stderr
    gone = run("get", path, "prefs", "-n", "user/bob")
    assert gone.exit_code == EXIT_NOT_FOUND
    assert "no live memory under key 'prefs' in namespace 'user/bob'" in gone.stderr
    again = run("delete", path, "prefs", "-n", "user/bob")
    assert again.exit_code == EXIT_NOT_FOUND and "no live memory" in again.stderr


def test_get_prints_a_str_as_it_is_and_json_on_request(store: Path) -> None:
    assert run("get", store, "current_task").stdout == "summarize the quarterly report\n"
    assert (
        run("get", store, "current_task", "--json").stdout == '"summarize the quarterly report"\n'
    )
    assert orjson.loads(run("get", store, "old_project").stdout) == {
        "name": "apollo",
        "status": "done",
    }


def test_get_and_inspect_only_look(store: Path) -> None:
    assert run("get", store, "user_preferences").exit_code == 0
    assert run("inspect", store, "old_project").exit_code == 0
    with MemoryManager(storage_path=store) as mm:
        assert mm.tier_of("user_preferences") == "long_term"  # not promoted by the read
        assert mm.tier_of("old_project") == "external"  # not restored from the archive
        entry = mm.long_tier.get("user_preferences", touch=False)
        assert entry is not None and entry.access_count == 0


def test_inspect_shows_user_text_literally(store: Path) -> None:
    out = run("inspect", store, "greeting").stdout
    assert "[bold]not markup[/bold]" in out and "héllo wörld ✓" in out


def test_put_moves_a_key_to_another_tier(store: Path) -> None:
    assert run("put", store, "current_task", "archived now", "--tier", "external").exit_code == 0
    shot = snapshot(store)
    assert ("", "external", "current_task") in shot
    assert ("", "short_term", "current_task") not in shot


def test_group_limits_apply_while_the_store_is_open(tmp_path: Path) -> None:
    path = tmp_path / "s"
    for i in range(3):
        assert run("--short-term-limit", "2", "put", path, f"k{i}", f"v{i}").exit_code == 0
    stats = orjson.loads(run("--short-term-limit", "2", "stats", path, "--json").stdout)
    assert stats["short_term"]["size"] == 2 and stats["short_term"]["limit"] == 2
    assert stats["long_term"]["size"] == 1 and stats["long_term"]["limit"] is None
    # Without limits the command never moves entries between tiers for capacity.
    for i in range(3, 6):
        assert run("put", path, f"k{i}", f"v{i}").exit_code == 0
    assert orjson.loads(run("stats", path, "--json").stdout)["short_term"]["size"] == 5


# -- stats and search --------------------------------------------------------------------------------------------


def test_stats_table_and_json(store: Path) -> None:
    result = run("stats", store)
    assert result.exit_code == 0
    out = result.stdout
    for text in ("short_term", "long_term", "external", "user/alice", "(default)",
                 "none (compressed and checksummed only)", "namespaces"):
        assert text in out
    data = orjson.loads(run("stats", store, "--json").stdout)
    assert data["short_term"]["size"] == 1 and data["long_term"]["size"] == 2
    assert data["external"]["size"] == 1
    assert data["archive_encrypted"] is False
    index = {"model": "all-MiniLM-L6-v2", "dim": 384}  # the store was built semantic by default
    assert data["namespaces"] == {
        "": {"short_term": 1, "long_term": 2, "external": 1, "semantic_index": index},
        "user/alice": {"short_term": 1, "long_term": 1, "external": 1, "semantic_index": index},
    }
    alice = orjson.loads(run("stats", store, "--json", "-n", "user/alice").stdout)
    assert alice["namespace"] == "user/alice" and alice["long_term"]["size"] == 1


def test_stats_of_an_archive_only_namespace(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with MemoryManager(storage_path=path) as mm:
        mm.with_namespace("cold").store("k", "v", "external")
    data = orjson.loads(run("stats", path, "--json").stdout)
    assert data["namespaces"]["cold"]["external"] == 1


def test_encrypted_archive_needs_its_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTMEM_ARCHIVE_KEY", raising=False)
    key = generate_key()
    path = tmp_path / "s"
    build_store(path, archive_key=key)
    locked = run("stats", path)
    assert locked.exit_code == EXIT_STORE
    assert "is encrypted: pass its key (or set AGENTMEM_ARCHIVE_KEY)" in locked.stderr
    opened = run("stats", path, "--json", env={"AGENTMEM_ARCHIVE_KEY": key})
    assert opened.exit_code == 0
    assert orjson.loads(opened.stdout)["archive_encrypted"] is True
    assert "AES-256-GCM" in run("stats", path, env={"AGENTMEM_ARCHIVE_KEY": key}).stdout


def test_search_keyword_across_tiers(store: Path) -> None:
    result = run("search", store, "quarterly report", "--mode", "keyword")
    assert result.exit_code == 0
    assert "current_task" in result.stdout and "short_term" in result.stdout
    hits = orjson.loads(run("search", store, "apollo", "--mode", "keyword", "--json").stdout)
    assert [(h["key"], h["tier"]) for h in hits] == [("old_project", "external")]
    assert hits[0]["value"] == {"name": "apollo", "status": "done"}
    english = orjson.loads(run("search", store, "english", "--mode", "keyword", "--json").stdout)
    assert english[0]["key"] == "user_preferences" and english[0]["tags"] == ["user", "preferences"]


def test_search_namespace_limit_and_no_match(store: Path) -> None:
    alice = orjson.loads(
        run("search", store, "roadmap", "--mode", "keyword", "--json", "-n", "user/alice").stdout
    )
    assert [h["key"] for h in alice] == ["draft"]
    assert orjson.loads(run("search", store, "roadmap", "--mode", "keyword", "--json").stdout) == []
    both = orjson.loads(run("search", store, "alice note blue", "--mode", "keyword", "--json",
                            "-n", "user/alice", "--limit", "1").stdout)
    assert len(both) == 1
    none = run("search", store, "zeppelin", "--mode", "keyword")
    assert none.exit_code == 0 and none.stdout == ""
    assert "no match for 'zeppelin'" in none.stderr


def test_keyword_commands_never_import_the_model(store: Path) -> None:
    """get/put/stats/search --mode keyword stay fast: no torch, no chromadb (checked in a fresh interpreter)."""
    script = textwrap.dedent(f"""
        import sys
        from agentmem_plugin.cli import main
        codes = [main(["put", {str(store)!r}, "k", "v"]), main(["get", {str(store)!r}, "k"]),
                 main(["stats", {str(store)!r}]), main(["search", {str(store)!r}, "v", "--mode", "keyword"])]
        heavy = sorted(m for m in ("torch", "chromadb", "sentence_transformers") if m in sys.modules)
        print("RESULT", codes, heavy)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "RESULT [0, 0, 0, 0] []" in proc.stdout


def test_semantic_search_and_reindex(tmp_path: Path, real_embedder: Any) -> None:
    """One real-model test: reindex builds the index; semantic and (default) hybrid search find by meaning."""
    path = tmp_path / "s"
    facts = {
        "user_preferences": "the user speaks english and prefers formal replies",
        "pet": "the user has a dog called Rex",
        "trip": "flight to Lisbon booked for May",
    }
    for key, text in facts.items():
        assert run("put", path, key, text, "--tier", "long_term").exit_code == 0
    reindexed = run("reindex", path)
    assert reindexed.exit_code == 0, reindexed.stderr
    assert "reindexed 3 entries in 1 namespace" in reindexed.stderr
    index = orjson.loads(run("stats", path, "--json").stdout)["namespaces"][""]["semantic_index"]
    assert index == {"model": "all-MiniLM-L6-v2", "dim": 384}
    semantic = orjson.loads(run("search", path, "which language does the user use?", "--mode", "semantic",
                                "--json").stdout)
    assert (
        semantic[0]["key"] == "user_preferences"
    )  # no word in common but "user": found by meaning
    assert semantic[0]["similarity"] > semantic[1]["similarity"]
    hybrid = run("search", path, "what animal does the user own?", "--limit", "1")
    assert hybrid.exit_code == 0
    assert "hybrid search" in hybrid.stdout and "pet" in hybrid.stdout
    explained = run("search", path, "what animal does the user own?", "--explain", "--json")
    for h in orjson.loads(explained.stdout):
        assert {"bm25", "cosine", "fused"} <= set(h["explain"])
        assert h["explain"]["cosine"] == h["similarity"]
    table = run("search", path, "what animal does the user own?", "--explain", env={"COLUMNS": "160"}).stdout
    assert "cosine" in table and "fused" in table and "bm25" in table


def test_search_explain_and_boosts(store: Path) -> None:
    table = run("search", store, "quarterly report", "--mode", "keyword", "--explain")
    assert table.exit_code == 0
    assert "bm25" in table.stdout and "cosine" not in table.stdout  # only the terms some hit carries
    assert "bm25" not in run("search", store, "quarterly report", "--mode", "keyword").stdout
    hits = orjson.loads(run("search", store, "quarterly report", "--mode", "keyword", "--explain",
                            "--recency-weight", "0.5", "--json").stdout)
    assert hits and all("recency" in h["explain"] for h in hits)
    refused = run("search", store, "quarterly report", "--mode", "keyword", "--recency-weight", "-1")
    assert refused.exit_code == 2 and "recency-weight" in refused.stderr


def test_semantic_mode_without_the_extra(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        sys.modules, "chromadb", None
    )  # as if the semantic extra were not installed
    explicit = run("search", store, "english", "--mode", "semantic")
    assert explicit.exit_code == EXIT_DEPENDENCY
    assert "agentmem-plugin[semantic]" in explicit.stderr
    assert run("reindex", store).exit_code == EXIT_DEPENDENCY
    default = run("search", store, "english", "--json")  # the default mode falls back to keyword
    assert default.exit_code == 0
    assert "searching by keyword" in default.stderr
    assert orjson.loads(default.stdout)[0]["key"] == "user_preferences"


# -- export / import ---------------------------------------------------------------------------------------------


def test_export_import_round_trip_equals_the_original(store: Path, tmp_path: Path) -> None:
    original = snapshot(store)
    assert len(original) == 7
    exported = tmp_path / "dump.jsonl"
    result = run("export", store, exported)
    assert result.exit_code == 0 and result.stdout == ""
    assert "exported 7 entries from 2 namespaces" in result.stderr
    lines = [orjson.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    assert {(row["namespace"], row["tier"], row["key"]) for row in lines} == set(original)
    assert {
        "key",
        "value",
        "tier",
        "ttl",
        "expires_at",
        "priority",
        "tags",
        "metadata",
        "namespace",
    } <= set(lines[0])

    fresh = tmp_path / "fresh"
    imported = run("import", fresh, exported)
    assert imported.exit_code == 0, imported.stderr
    assert "imported 7 entries" in imported.stderr
    assert (
        snapshot(fresh) == original
    )  # values, tags, ttl/expiry, priority, metadata, tiers, namespaces


def test_export_to_stdout_and_import_from_stdin(store: Path, tmp_path: Path) -> None:
    out = run("export", store, "-")
    assert out.exit_code == 0
    assert all(
        orjson.loads(line) for line in out.stdout.splitlines()
    )  # stdout holds JSON lines only
    assert len(out.stdout.splitlines()) == 7
    fresh = tmp_path / "fresh"
    assert run("import", fresh, "-", input=out.stdout).exit_code == 0
    assert snapshot(fresh) == snapshot(store)


def test_import_merges_and_applies_defaults(store: Path, tmp_path: Path) -> None:
    now = time.time()
    lines = [
        {"key": "plain", "value": [1, 2, 3]},  # default namespace, long_term
        {
            "key": "expiring",
            "value": "soon",
            "ttl": 60,
            "tags": ["t"],
            "namespace": "team/x",
            "tier": "short_term",
        },
        {"key": "expired", "value": "too late", "created_at": now - 100, "expires_at": now - 10},
        {"key": "current_task", "value": "replaced", "tier": "long_term"},
        {"key": "twice", "value": "first", "tier": "short_term"},
        {"key": "twice", "value": "second", "tier": "external"},
        {"key": "twice2", "value": "first", "tier": "external"},
        {"key": "twice2", "value": "second", "tier": "short_term"},
    ]
    file = tmp_path / "in.jsonl"
    file.write_text("\n".join(orjson.dumps(x).decode() for x in lines) + "\n\n", encoding="utf-8")
    result = run("import", store, file)
    assert result.exit_code == 0, result.stderr
    assert "imported 5 entries" in result.stderr and "skipped 1 already expired" in result.stderr
    shot = snapshot(store, (*NAMESPACES, "team/x"))
    assert shot[("", "long_term", "plain")]["value"] == [1, 2, 3]
    assert shot[("team/x", "short_term", "expiring")]["ttl"] == 60
    assert shot[("", "long_term", "current_task")]["value"] == "replaced"
    assert ("", "short_term", "current_task") not in shot  # a key lives in one tier
    assert not any(key == "expired" for _, _, key in shot)
    twice = {
        (tier, shot[(ns, tier, key)]["value"]) for ns, tier, key in shot if key.startswith("twice")
    }
    assert twice == {("external", "second"), ("short_term", "second")}  # the last line wins
    assert shot[("", "external", "old_project")]  # the rest of the store is untouched


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"key": "b", "value": ', "not valid JSON"),
        ('["key", "value"]', "expected a JSON object, got list"),
        ('{"key": "", "value": 1}', "key must be a non-empty str"),
        ('{"value": 1}', "needs at least 'key' and 'value'"),
        ('{"key": "b", "value": 1, "colour": "red"}', "unknown MemoryEntry fields: ['colour']"),
        ('{"key": "b", "value": 1, "tier": "middle"}', "tier must be one of"),
        ('{"key": "b", "value": 1, "namespace": "a//b"}', "has an empty part"),
        ('{"key": "b", "value": 1, "ttl": -5}', "ttl must be a positive number"),
        ('{"key": "b", "value": 1, "created_at": "yesterday"}', "created_at must be a number"),
        ('{"key": "b", "value": 1, "tags": "x"}', "tags must be a list of str"),
    ],
)
def test_import_reports_the_bad_line_and_writes_nothing(
    store: Path, tmp_path: Path, bad_line: str, message: str
) -> None:
    before = snapshot(store)
    file = tmp_path / "in.jsonl"
    file.write_text(
        f'{{"key": "a", "value": 1}}\n\n{bad_line}\n{{"key": "c", "value": 3}}\n', encoding="utf-8"
    )
    result = run("import", store, file)
    assert result.exit_code == EXIT_USAGE
    assert f"{file}, line 3: " in result.stderr and message in result.stderr
    assert snapshot(store) == before
    fresh = tmp_path / "fresh"
    assert run("import", fresh, file).exit_code == EXIT_USAGE
    assert not fresh.exists()  # no store is created for a bad file


def test_import_and_export_file_errors(store: Path, tmp_path: Path) -> None:
    missing = run("import", store, tmp_path / "nope.jsonl")
    assert missing.exit_code == EXIT_USAGE and "cannot read" in missing.stderr
    unwritable = run("export", store, tmp_path / "no-such-dir" / "out.jsonl")
    assert unwritable.exit_code == EXIT_USAGE and "cannot write" in unwritable.stderr


# -- backup / restore --------------------------------------------------------------------------------------------


def test_backup_and_restore(store: Path, tmp_path: Path) -> None:
    original = snapshot(store)
    dest = tmp_path / "backups" / "b1"
    result = run("backup", store, dest)
    assert result.exit_code == 0, result.stderr
    assert "backed up 7 entries" in result.stderr
    assert (dest / "agentmem-store.json").is_file()

    fresh = tmp_path / "fresh"
    assert run("restore", fresh, dest).exit_code == 0
    assert snapshot(fresh) == original

    run("delete", store, "user_preferences")
    run("put", store, "intruder", "x", "-n", "other")
    refused = run("restore", store, dest)
    assert refused.exit_code == EXIT_USAGE and "add --force" in refused.stderr
    forced = run("restore", store, dest, "--force")
    assert forced.exit_code == 0 and "restored 7 entries" in forced.stderr
    assert snapshot(store, (*NAMESPACES, "other")) == original  # "other" was emptied

    again = run("backup", store, dest)  # a previous backup at DEST is replaced
    assert again.exit_code == 0
    assert sorted(p.name for p in dest.parent.iterdir()) == ["b1"]  # no staging left behind


def test_restore_refuses_a_damaged_backup(store: Path, tmp_path: Path) -> None:
    dest = tmp_path / "b"
    assert run("backup", store, dest).exit_code == 0
    target = tmp_path / "target"
    build_store(target)
    run("put", target, "extra", "kept")
    before = snapshot(target)
    blob = dest / "part-0001" / "entries.jsonl.zst"
    blob.write_bytes(blob.read_bytes()[:-3] + b"xyz")
    result = run("restore", target, dest, "--force")
    assert result.exit_code == EXIT_STORE
    assert "fails its checksum" in result.stderr
    assert snapshot(target) == before
    assert run("restore", target, tmp_path / "nothing").exit_code == EXIT_STORE


def test_restore_a_named_memory_backup(tmp_path: Path) -> None:
    """A MemoryManager.backup_memory() directory restores into long-term of the default namespace."""
    with MemoryManager() as mm:
        memory = mm.create_memory("notes", {"capacity": 10})
        memory.store("n1", "first note", tags=["a"])
        mm.backup_memory("notes", tmp_path / "notes-backup")
    result = run("restore", tmp_path / "s", tmp_path / "notes-backup")
    assert result.exit_code == 0, result.stderr
    shot = snapshot(tmp_path / "s", ("",))
    assert shot[("", "long_term", "n1")]["tags"] == ["a"]


def test_backup_will_not_overwrite_another_directory(store: Path, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete", encoding="utf-8")
    result = run("backup", store, precious)
    assert result.exit_code == EXIT_USAGE and "not an agentmem store backup" in result.stderr
    assert (precious / "thesis.txt").read_text(encoding="utf-8") == "do not delete"


# -- maintenance -------------------------------------------------------------------------------------------------


def test_consolidate_moves_short_term_into_long_term(store: Path) -> None:
    result = run("consolidate", store)
    assert result.exit_code == 0
    assert "user/alice" in result.stdout and "moved" in result.stdout
    shot = snapshot(store)
    assert not [k for k in shot if k[1] == "short_term"]
    assert ("", "long_term", "current_task") in shot and (
        "user/alice",
        "long_term",
        "draft",
    ) in shot
    only = run("consolidate", store, "-n", "user/alice")
    assert only.exit_code == 0 and "(default)" not in only.stdout


def test_cleanup_removes_expired_rows(tmp_path: Path) -> None:
    path = tmp_path / "s"
    past = time.time() - 1000
    with MemoryManager(storage_path=path, clock=lambda: past) as mm:  # written 1000 s ago
        mm.store("stale", "gone", ttl=10)
        mm.store("stale_long", "gone", "long_term", ttl=10)
        mm.with_namespace("ns").store("stale_ns", "gone", ttl=10)
        mm.store("fresh", "kept", ttl=10_000)
    result = run("cleanup", path)
    assert result.exit_code == 0
    assert "removed 3 expired entries (default namespace: 2, ns: 1)" in result.stderr
    with sqlite3.connect(path / "memory.sqlite3") as db:
        rows = db.execute(
            "SELECT key FROM short_term UNION ALL SELECT key FROM long_term"
        ).fetchall()
    db.close()
    assert rows == [("fresh",)]


# -- errors ------------------------------------------------------------------------------------------------------

READ_COMMANDS = [
    ["stats"], ["get", "k"], ["inspect", "k"], ["delete", "k"], ["search", "q", "--mode", "keyword"],
    ["export", "-"], ["backup", "BACKUP"], ["consolidate"], ["cleanup"], ["reindex"],
]


def _args(command: list[str], path: Path, tmp_path: Path) -> list[str]:
    return [
        command[0],
        str(path),
        *[str(tmp_path / "bk") if a == "BACKUP" else a for a in command[1:]],
    ]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=lambda c: c[0])
def test_read_commands_never_create_a_store(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "missing"
    result = run(*_args(command, missing, tmp_path))
    assert result.exit_code == EXIT_STORE
    assert f"no store at {str(missing)!r}: the path does not exist" in result.stderr
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run(*_args(command, empty, tmp_path))
    assert result.exit_code == EXIT_STORE and "holds no memory.sqlite3" in result.stderr
    assert list(empty.iterdir()) == []


def test_corrupt_store_is_reported_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "s"
    path.mkdir()
    garbage = b"this is not a database at all" * 10
    (path / "memory.sqlite3").write_bytes(garbage)
    for args in (
        ["stats", path],
        ["get", path, "k"],
        ["put", path, "k", "v"],
        ["export", path, "-"],
    ):
        result = run(*args)
        assert result.exit_code == EXIT_STORE
        assert "is not a SQLite database" in result.stderr
    assert (path / "memory.sqlite3").read_bytes() == garbage
    assert sorted(p.name for p in path.iterdir()) == ["memory.sqlite3"]


def test_path_that_is_a_file_or_a_foreign_directory(store: Path, tmp_path: Path) -> None:
    db_file = run("stats", store / "memory.sqlite3")
    assert db_file.exit_code == EXIT_STORE and "give the directory that holds it" in db_file.stderr
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine", encoding="utf-8")
    refused = run("put", foreign, "k", "v")
    assert (
        refused.exit_code == EXIT_STORE
        and "a new store needs a new or empty directory" in refused.stderr
    )
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["put", "STORE", "", "v"], "key must be a non-empty str, got ''"),
        (["put", "STORE", "k" * 1025, "v"], "key is 1025 characters long; the limit is 1024"),
        (["get", "STORE", ""], "key must be a non-empty str"),
        (["inspect", "STORE", "x" * 2000], "the limit is 1024"),
        (["put", "STORE", "k", "{not json", "--json-value"], "VALUE is not valid JSON"),
        (["put", "STORE", "k", "NaN", "--json-value"], "VALUE is not valid JSON"),
        (["put", "STORE", "k", "v", "--metadata", "[1]"], "--metadata must be a JSON object"),
        (["put", "STORE", "k", "v", "--metadata", "{oops"], "--metadata is not valid JSON"),
        (["put", "STORE", "k", "v", "--ttl", "0"], "ttl must be a positive number of seconds"),
        (["put", "STORE", "k", "v", "-t", ""], "each tag must be a non-empty str"),
        (["put", "STORE", "k", "v", "-n", "a//b"], "namespace 'a//b' has an empty part"),
        (["get", "STORE", "k", "-n", "/x"], "has an empty part"),
        (["put", "STORE", "k", "v", "--tier", "middle"], "Invalid value for '--tier'"),
        (["search", "STORE", "q", "--limit", "0"], "Invalid value for '--limit'"),
        (["search", "STORE", "q", "--mode", "fuzzy"], "Invalid value for '--mode'"),
        (["frobnicate"], "No such command"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(
    store: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    before = snapshot(store)
    result = run(*[str(store) if a == "STORE" else a for a in args])
    assert result.exit_code == EXIT_USAGE
    assert message in result.stderr
    assert result.stdout == ""
    assert snapshot(store) == before
    if args[0] == "put":  # the same bad input against a new path creates no store
        fresh = tmp_path / "fresh"
        assert run(*[str(fresh) if a == "STORE" else a for a in args]).exit_code == EXIT_USAGE
        assert not fresh.exists()


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (
            PermissionError("permission denied: archive"),
            EXIT_STORE,
            "PermissionError: permission denied",
        ),
        (
            RuntimeError("boom"),
            EXIT_INTERNAL,
            "internal error: RuntimeError: boom (run with --verbose",
        ),
    ],
)
def test_unexpected_failures_are_not_reported_as_not_found(
    store: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, code: int, message: str
) -> None:
    def fail(self: MemoryManager) -> None:
        raise error

    monkeypatch.setattr(MemoryManager, "get_stats", fail)
    result = run("stats", store)
    assert result.exit_code == code and message in result.stderr
    assert "Traceback" not in result.stderr
    assert "Traceback" in run("-v", "stats", store).stderr


def test_verbose_logs_to_stderr_and_restores_logging(store: Path) -> None:
    package = logging.getLogger("agentmem_plugin")
    level, handlers = package.level, list(package.handlers)
    loud = run("-v", "get", store, "current_task")
    assert loud.exit_code == 0
    assert "DEBUG agentmem_plugin.cli: opening the store at" in loud.stderr
    assert loud.stdout == "summarize the quarterly report\n"
    quiet = run("get", store, "current_task")
    assert "DEBUG" not in quiet.stderr
    assert (package.level, package.handlers) == (level, handlers)


def test_version_and_help() -> None:
    version = run("--version")
    assert version.exit_code == 0 and version.stdout.startswith("agentmem ")
    assert "inspect" in run("--help").stdout
    assert main(["--help"]) == 0
    assert main(["get"]) == EXIT_USAGE


# -- real processes ----------------------------------------------------------------------------------------------


def test_module_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "agentmem_plugin", "demo", "--no-semantic", "--path", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "after reopening the store:" in proc.stdout


def test_module_exit_codes_in_a_subprocess(tmp_path: Path) -> None:
    path = tmp_path / "s"

    def agentmem(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "agentmem_plugin", *args],
                              capture_output=True, text=True, timeout=120)

    assert agentmem("put", str(path), "k", '{"a": 1}', "--json-value").returncode == 0
    got = agentmem("get", str(path), "k")
    assert (got.returncode, got.stdout) == (0, '{"a":1}\n')
    missing = agentmem("get", str(path), "nope")
    assert (
        missing.returncode == EXIT_NOT_FOUND and "no live memory under key 'nope'" in missing.stderr
    )
    no_store = agentmem("stats", str(tmp_path / "elsewhere"))
    assert no_store.returncode == EXIT_STORE and "the path does not exist" in no_store.stderr
    assert agentmem("put", str(path)).returncode == EXIT_USAGE


def test_console_script_pipes_export_into_import(store: Path, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "agentmem"
    assert script.is_file(), "the agentmem console script is installed with the package"
    fresh = tmp_path / "fresh"
    exporter = subprocess.Popen([str(script), "export", str(store), "-"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    importer = subprocess.run([str(script), "import", str(fresh), "-"], stdin=exporter.stdout,
                              capture_output=True, text=True, timeout=120)
    assert exporter.stdout is not None
    exporter.stdout.close()
    assert exporter.wait(timeout=120) == 0
    assert exporter.stderr is not None
    assert b"exported 7 entries" in exporter.stderr.read()
    exporter.stderr.close()
    assert importer.returncode == 0, importer.stderr
    assert snapshot(fresh) == snapshot(store)


def test_backups_of_an_encrypted_store_are_encrypted_with_its_key(tmp_path: Path) -> None:
    from agentmem_plugin.tiers.archive import generate_key

    key = generate_key()
    env = {"AGENTMEM_ARCHIVE_KEY": key}
    store = tmp_path / "store"
    assert run("put", store, "diet", "english breakfast, no peanuts", env=env).exit_code == 0
    assert (
        run("put", store, "cold", "archived english note", "--tier", "external", env=env).exit_code
        == 0
    )
    dest = tmp_path / "sealed"
    assert run("backup", store, dest, env=env).exit_code == 0
    parts = [p for p in dest.iterdir() if p.is_dir()]
    assert parts
    for part in parts:
        assert orjson.loads((part / "manifest.json").read_bytes())["encryption"] == "AES-256-GCM"
        blob = (part / "entries.jsonl.zst").read_bytes()
        assert b"english" not in blob and not blob.startswith(b"\x28\xb5\x2f\xfd")  # not plain zstd
    no_key = run("restore", tmp_path / "a", dest)
    assert no_key.exit_code == EXIT_STORE and "encrypted" in no_key.stderr
    wrong = run("restore", tmp_path / "b", dest, env={"AGENTMEM_ARCHIVE_KEY": generate_key()})
    assert wrong.exit_code == EXIT_STORE and "wrong key" in wrong.stderr
    fresh = tmp_path / "c"
    assert run("restore", fresh, dest, env=env).exit_code == 0
    for key_, text in (
        ("diet", "english breakfast, no peanuts"),
        ("cold", "archived english note"),
    ):
        got = run("get", fresh, key_, env=env)
        assert got.exit_code == 0 and text in got.stdout
