"""Backends chosen by URL (agentmem_plugin.tiers.factory) and the manager's short_term/long_term/archive URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentmem_plugin import MemoryManager
from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.tiers.archive import ArchiveTier
from agentmem_plugin.tiers.factory import open_archive, open_chroma_client, open_tier
from agentmem_plugin.tiers.sqlite import SqliteTier
from agentmem_plugin.tiers.urls import archive_leaf, namespace_of_leaf, redact_url


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("postgresql://app:s3cret@db:5432/mem", "postgresql://app:***@db:5432/mem"),
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("postgresql://app@db/mem", "postgresql://app@db/mem"),
        ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
        ("redis://u:s3cret@[::1]:6379/0", "redis://u:***@[::1]:6379/0"),
        ("redis://app:pa@s3cret-TAIL@127.0.0.1:6399/0", "redis://app:***@127.0.0.1:6399/0"),
        (
            "postgresql://db/x?password=s3cret&sslmode=off",
            "postgresql://db/x?password=***&sslmode=off",
        ),
        ("host=db password='s3 cret' dbname=x", "host=db password=*** dbname=x"),
    ],
)
def test_redact_url_hides_passwords(url: str, safe: str) -> None:
    assert redact_url(url) == safe


@pytest.mark.parametrize(
    "url", ["mysql://u:s3cret@h/db", "no-scheme", "ftp://u:s3cret@x", "http://u:s3cret@h"]
)
def test_unknown_tier_urls_are_refused_without_leaking_the_password(url: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        open_tier(url, role="long_term")
    assert "s3cret" not in str(info.value)
    assert "long_term" in str(info.value)


def test_memory_url_means_the_embedded_default() -> None:
    assert open_tier("memory://", role="short_term") is None


def test_sqlite_url_opens_a_file_tier(tmp_path: Path) -> None:
    tier = open_tier(f"sqlite://{tmp_path}/m.db", role="long_term", namespace="ns")
    assert isinstance(tier, SqliteTier)
    assert tier.path == tmp_path / "m.db"
    assert tier.table == "long_term"
    assert tier.namespace == "ns"
    tier.close()
    with pytest.raises(InvalidArgumentError, match="file path"):
        open_tier("sqlite://", role="long_term")


def test_archive_urls(tmp_path: Path) -> None:
    tier = open_archive(f"file://{tmp_path}/arch", namespace="user/a")
    assert isinstance(tier, ArchiveTier)
    tier.close()
    assert (tmp_path / "arch" / "ns-user%2Fa").is_dir()
    tier = open_archive(str(tmp_path / "plain"))
    tier.close()
    assert (tmp_path / "plain" / "_default").is_dir()
    with pytest.raises(InvalidArgumentError, match="archive"):
        open_archive("ftp://u:s3cret@host/x")
    with pytest.raises(InvalidArgumentError, match="bucket"):
        open_archive("s3:///nobucket")


def test_chroma_url_is_checked() -> None:
    with pytest.raises(InvalidArgumentError, match="semantic"):
        open_chroma_client("redis://127.0.0.1:6379")
    with pytest.raises(InvalidArgumentError, match="host"):
        open_chroma_client("http://:8000")


def test_manager_with_sqlite_long_term_url_and_archive_dir(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/long.db"
    with MemoryManager(short_term_limit=2, long_term_limit=3, long_term=url,
                       archive=str(tmp_path / "arch")) as mm:
        for i in range(8):
            mm.store(f"k{i}", f"value {i}", priority=i)
        assert mm.short_tier.count() == 2
        assert mm.long_tier.count() == 3
        assert mm.external_tier.count() == 3
        assert mm.retrieve("k0") == "value 0"  # restored from the archive
    # the long-term file and the archive directory outlive the (in-memory) short-term buffer
    with MemoryManager(long_term=url, archive=str(tmp_path / "arch")) as mm:
        kept = set(mm.keys())
        assert {"k0"} <= kept
        assert len(kept) == 6  # 8 stored, the 2 in the short-term buffer are gone with the process


def test_manager_views_reopen_url_backends_per_namespace(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/long.db"
    with MemoryManager(long_term=url) as mm:
        mm.with_namespace("a").store("k", "A", memory_type="long_term")
        mm.with_namespace("b").store("k", "B", memory_type="long_term")
        assert mm.namespaces() == ["a", "b"]
        assert mm.with_namespace("a").retrieve("k") == "A"
        assert mm.with_namespace("b").retrieve("k") == "B"


@pytest.mark.parametrize("ns", ["", "user/u1", "user__u1", "_default", "ns-x", "a%2Fb", "ü/x y"])
def test_archive_leaf_is_reversible(ns: str) -> None:
    assert namespace_of_leaf(archive_leaf(ns)) == ns
    assert "/" not in archive_leaf(ns)


def test_archive_namespaces_never_share_a_directory(tmp_path: Path) -> None:
    with MemoryManager(storage_path=tmp_path) as mm:
        for ns in ("user/u1", "user__u1", "_default"):
            mm.with_namespace(ns).store("k", ns, memory_type="external")
        mm.store("k", "root", memory_type="external")
        assert [
            mm.with_namespace(ns).retrieve("k") for ns in ("user/u1", "user__u1", "_default")
        ] == ["user/u1", "user__u1", "_default"]
        assert mm.retrieve("k") == "root"


def test_namespaces_include_those_only_the_archive_holds(tmp_path: Path) -> None:
    with MemoryManager(storage_path=tmp_path) as mm:
        mm.with_namespace("cold/one").store("k", "v", memory_type="external")
        mm.with_namespace("warm").store("k", "v")
    with MemoryManager(storage_path=tmp_path) as mm:
        assert mm.namespaces() == ["cold/one", "warm"]
        assert mm.namespaces("cold") == ["cold/one"]


def test_from_config_takes_backend_urls_and_keeps_passwords_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentmem_plugin.config import load_manager_config

    url = f"sqlite://{tmp_path}/long.db"
    monkeypatch.setenv("AGENTMEM_LONG_TERM", url)
    monkeypatch.setenv("AGENTMEM_ARCHIVE", str(tmp_path / "arch"))
    with MemoryManager.from_config({"short_term_limit": 3}) as mm:
        assert isinstance(mm.long_tier, SqliteTier)
        assert mm.long_tier.path == tmp_path / "long.db"
        mm.store("k", "v", memory_type="external")
    assert (tmp_path / "arch" / "_default").is_dir()
    config = load_manager_config({"short_term": "redis://:s3cret@127.0.0.1:6379/0"})
    assert "s3cret" not in repr(config)
    assert config.manager_kwargs()["short_term"] == "redis://:s3cret@127.0.0.1:6379/0"
    with pytest.raises(InvalidArgumentError, match="semantic"):
        load_manager_config({"semantic": "redis://nope"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {
            "short_term": "redis://:s3cret@127.0.0.1:1/0",
            "long_term": "postgresql://127.0.0.1:5432/test",
        },
        {"long_term": "postgresql://app:s3cret@127.0.0.1:1/test"},
        {"semantic": "http://127.0.0.1:1", "embedder": "fake"},
    ],
    ids=["redis", "postgres", "chroma"],
)
def test_unreachable_servers_raise_backend_unavailable_without_credentials(
    kwargs: dict[str, str], fake_embedder: object
) -> None:
    from agentmem_plugin.errors import BackendUnavailableError

    if kwargs.get("embedder") == "fake":
        kwargs = {**kwargs, "embedder": fake_embedder}  # type: ignore[dict-item]
    with pytest.raises(BackendUnavailableError) as info:
        MemoryManager(**kwargs).store("k", "v", memory_type="long_term")  # type: ignore[arg-type]
    assert "s3cret" not in str(info.value)
    assert "s3cret" not in repr(info.value.__cause__)


def test_durable_long_term_without_an_archive_never_archives_into_a_temporary_dir(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: overflow went to a per-process temporary archive and vanished at exit (found at 4 processes)."""
    url = f"sqlite://{tmp_path}/long.db"
    with MemoryManager(short_term_limit=2, long_term_limit=3, long_term=url) as mm:
        for i in range(10):
            mm.store(f"k{i}", i, memory_type="long_term")
        assert mm.external_tier.count() == 0
    assert "long_term_limit (3) is not enforced" in caplog.text
    with MemoryManager(long_term=url) as mm:
        assert sorted(mm.keys()) == sorted(f"k{i}" for i in range(10))


def test_configurations_that_would_lose_or_hide_data_are_refused(tmp_path: Path) -> None:
    with pytest.raises(
        InvalidArgumentError, match="long_term="
    ):  # shared short-term, private long-term
        MemoryManager(short_term="redis://127.0.0.1:1/0")
    with pytest.raises(
        InvalidArgumentError, match="semantic="
    ):  # per-process index over a shared store
        MemoryManager(long_term="postgresql://127.0.0.1:1/test", embedder="default")
    url = f"sqlite://{tmp_path}/long.db"
    with MemoryManager(long_term=url) as mm:  # durable long-term, temporary archive
        with pytest.raises(InvalidArgumentError, match="archive"):
            mm.store("k", "v", memory_type="external")
        assert mm.keys() == []
    with MemoryManager(long_term=url, archive=str(tmp_path / "arch")) as mm:
        mm.store("k", "v", memory_type="external")
        assert mm.tier_of("k") == "external"
