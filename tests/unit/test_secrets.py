"""No message, log line, repr or stats output carries a secret, whatever the path it came in by.

One password and one archive key are passed through every route a secret can take into the package (config
fields, misspelt config fields, backend URLs of every scheme, S3 archive URLs, redact_url itself); each test
asserts that neither appears in the error's str and repr, its traceback (causes included), the log, or stats.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from agentmem_plugin.errors import AgentMemError, InvalidArgumentError
from agentmem_plugin.manager import MemoryManager
from agentmem_plugin.tiers.archive import ArchiveTier, S3Store
from agentmem_plugin.tiers.urls import redact_url

PASSWORD = "hunter2-S3cr3t-pw"
KEY = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def leaks(text: str) -> list[str]:
    """The secrets (or any 8-character run of the key) found in *text*."""
    found = [PASSWORD] if PASSWORD in text else []
    found += [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in text][:1]
    return found


def everything_about(exc: BaseException) -> str:
    """str, repr and the whole formatted traceback (with causes and contexts) of *exc*."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


@pytest.fixture
def log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    yield caplog
    assert leaks(caplog.text) == [], caplog.text


# -- configuration -------------------------------------------------------------------------------------------

pytest.importorskip("pydantic_settings")

CONFIGS: dict[str, dict[str, Any]] = {
    "misspelt archive_key": {"archive_kee": KEY},
    "misspelt archive key, other casing": {"ARCHIVE_KEY ": KEY},
    "archive_key of a wrong type": {"archive_key": [KEY]},
    "misspelt long_term URL": {"longterm": f"postgresql://app:{PASSWORD}@db:5432/mem"},
    "semantic URL with user info": {"semantic": f"ftp://app:{PASSWORD}@chroma:8000"},
    "short_term URL of a wrong type": {"short_term": {"url": f"redis://:{PASSWORD}@cache:6379/0"}},
    "archive URL of a wrong type": {"archive": [f"s3://AKIAX:{PASSWORD}@bucket/p"]},
    "a bad limit beside a password": {
        "long_term": f"postgresql://app:{PASSWORD}@db:5432/mem",
        "archive_key": KEY,
        "short_term_limit": 0,
    },
    "a secret in a nested unknown field": {"backends": {"password": PASSWORD, "key": KEY}},
}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_config_errors_name_the_field_but_never_echo_a_secret(
    config: dict[str, Any], log: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(InvalidArgumentError, match="invalid MemoryManager config") as info:
        MemoryManager.from_config(config)
    text = everything_about(info.value)
    assert leaks(text) == [], text
    for field in config:
        if field != "long_term" and field != "archive_key":  # only the bad fields need naming
            assert field.strip() in str(info.value)


def test_config_errors_still_show_harmless_values() -> None:
    with pytest.raises(InvalidArgumentError, match=r"short_term_limit.*got 'ten'"):
        MemoryManager.from_config({"short_term_limit": "ten"})
    with pytest.raises(InvalidArgumentError, match=r"semantic.*got 'ftp://app:\*\*\*@chroma:8000'"):
        MemoryManager.from_config({"semantic": f"ftp://app:{PASSWORD}@chroma:8000"})


def test_a_config_file_with_a_misspelt_key_does_not_echo_it(tmp_path: Any) -> None:
    path = tmp_path / "agentmem.yaml"
    path.write_text(f"archive-key: {KEY}\nlong_term: postgresql://app:{PASSWORD}@db/mem\n")
    with pytest.raises(InvalidArgumentError, match="archive-key") as info:
        MemoryManager.from_config(path)
    assert leaks(everything_about(info.value)) == []


# -- redact_url: the one redaction ---------------------------------------------------------------------------

URLS = [
    f"postgresql://app:{PASSWORD}@db:5432/mem",
    f"postgres://app:{PASSWORD}@db/mem?sslmode=require",
    f"redis://:{PASSWORD}@cache:6379/0",
    f"rediss://default:{PASSWORD}@cache:6380",
    f"redis://cache:6379/0?password={PASSWORD}",
    f"redis://cache:6379/0?db=1&password={PASSWORD}&x=1",
    f"host=db password={PASSWORD} dbname=mem",
    f"host=db password='{PASSWORD} with space' dbname=mem",
    f"s3://AKIAEXAMPLE:{PASSWORD}@bucket/prefix",
    f"sqlite://app:{PASSWORD}@/var/lib/mem.db",
    f"http://app:{PASSWORD}@chroma:8000",
    f"https://token:{PASSWORD}@chroma.example.com",
    f"postgresql://app:pa/ss{PASSWORD}@db:5432/mem",  # a "/" in the password
    f"postgresql://app:pa?{PASSWORD}@db:5432/mem",  # a "?" in the password
    f"postgresql://app:{PASSWORD}#x@db:5432/mem",  # a "#" in the password
    f"postgresql://app:{PASSWORD}@db:5432/mem and again postgresql://bob:{PASSWORD}@db2/x",
    f"https://chroma:8000/?token={PASSWORD}",
    f"https://chroma:8000/?api_key={PASSWORD}",
    f"s3://bucket/p?aws_secret_access_key={PASSWORD}",
    f"postgresql://db/mem?sslpassword={PASSWORD}",
    f"PASSWORD={PASSWORD}",
    f"postgresql://app:{PASSWORD.replace('-', '%2D')}@db/mem",
]


@pytest.mark.parametrize("url", URLS)
def test_redact_url_removes_every_password(url: str) -> None:
    redacted = redact_url(url)
    assert PASSWORD not in redacted and PASSWORD.replace("-", "%2D") not in redacted
    assert "***" in redacted


def test_redact_url_keeps_what_is_not_secret() -> None:
    assert redact_url("postgresql://app:pw@db:5432/mem") == "postgresql://app:***@db:5432/mem"
    assert redact_url("redis://cache:6379/0") == "redis://cache:6379/0"
    assert redact_url("s3://bucket/agent-memory/2024@home") == "s3://bucket/agent-memory/2024@home"
    assert redact_url("/var/lib/store") == "/var/lib/store"
    assert redact_url("postgresql://app@db/mem") == "postgresql://app@db/mem"


# -- backends by URL -----------------------------------------------------------------------------------------

BAD_BACKENDS: dict[str, Any] = {
    "s3 archive with credentials": {"archive": f"s3://AKIAEXAMPLE:{PASSWORD}@bucket/prefix"},
    "s3 archive with credentials and no bucket": {"archive": f"s3://AKIAEXAMPLE:{PASSWORD}@/p"},
    "sqlite URL with credentials": {"long_term": f"sqlite://app:{PASSWORD}@"},
    "unknown scheme with credentials": {"long_term": f"mysql://app:{PASSWORD}@db/mem"},
    "archive of an unknown scheme": {"archive": f"ftp://app:{PASSWORD}@host/x"},
    "redis that is not there": {
        "short_term": f"redis://:{PASSWORD}@127.0.0.1:1/0",
        "long_term": "postgresql://127.0.0.1:1/mem",
    },
    "postgres that is not there": {"long_term": f"postgresql://app:{PASSWORD}@127.0.0.1:1/mem"},
    "chroma that is not there": {"semantic": f"http://app:{PASSWORD}@127.0.0.1:1"},
}


@pytest.mark.parametrize("kwargs", BAD_BACKENDS.values(), ids=list(BAD_BACKENDS))
def test_backend_errors_never_carry_a_password(
    kwargs: dict[str, Any], log: pytest.LogCaptureFixture
) -> None:
    if "short_term" in kwargs:
        pytest.importorskip("redis")
    if str(kwargs.get("long_term", "")).startswith("postgresql"):
        pytest.importorskip("psycopg")
    if "semantic" in kwargs:
        pytest.importorskip("chromadb")
        kwargs = {**kwargs, "long_term": "postgresql://127.0.0.1:1/x"}
    with pytest.raises(AgentMemError) as info:
        MemoryManager(**kwargs, archive_key=KEY)
    text = everything_about(info.value)
    assert leaks(text) == [], text


def test_an_s3_store_never_shows_credentials_given_in_its_bucket() -> None:
    with pytest.raises(InvalidArgumentError, match=r"s3://AKIAEXAMPLE:\*\*\*@bucket/p/") as info:
        S3Store(f"AKIAEXAMPLE:{PASSWORD}@bucket", "p/", client=object())
    assert leaks(everything_about(info.value)) == []


def test_stats_and_reprs_of_an_encrypted_s3_archive_carry_no_secret() -> None:
    moto = pytest.importorskip("moto")
    import boto3

    with moto.mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="bucket")
        tier = ArchiveTier(store=S3Store("bucket", "p/", client=client), key=KEY)
        from agentmem_plugin.entry import MemoryEntry

        tier.put_many([MemoryEntry("k", "v")])
        shown = "\n".join([repr(tier), str(tier.stats()), tier.where, repr(tier.store)])
        assert leaks(shown) == [], shown
        with MemoryManager(archive=tier, archive_key=KEY) as mm:
            assert leaks(str(mm.get_stats()) + repr(mm)) == []
