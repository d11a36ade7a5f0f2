"""The archive tier: encryption, integrity, keys, and S3 through a real moto server on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentmem_plugin import (
    IntegrityError,
    InvalidArgumentError,
    MemoryEntry,
    MemoryManager,
    StoreCorruptError,
)
from agentmem_plugin.tiers.archive import (
    ARCHIVE_KEY_ENV,
    ArchiveTier,
    S3Store,
    generate_key,
    parse_key,
)

KEY = generate_key()


def blobs(path: Path) -> list[Path]:
    return sorted(path.glob("*.amar"))


def test_plain_archive_is_compressed_and_checksummed(tmp_path, clock):
    tier = ArchiveTier(tmp_path, clock=clock)
    tier.put(MemoryEntry("k", {"text": "hello " * 500}, clock=clock))
    (blob,) = blobs(tmp_path)
    assert blob.stat().st_size < 1000  # 3 KB of JSON compressed
    assert (
        tier.stats()["encrypted"] is False and "not" in tier.stats()["encryption"]
    ) or "none" in tier.stats()["encryption"]
    data = bytearray(blob.read_bytes())
    data[-5] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="checksum"):
        tier.get("k")


def test_encrypted_archive_hides_values_and_detects_tampering(tmp_path, clock):
    tier = ArchiveTier(tmp_path, key=KEY, clock=clock)
    tier.put(MemoryEntry("diary", "the secret rendezvous is at noon", clock=clock))
    tier.put(MemoryEntry("other", "something else", clock=clock))
    assert all(b"rendezvous" not in p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert tier.get("diary").value == "the secret rendezvous is at noon"  # type: ignore[union-attr]
    first, second = blobs(tmp_path)
    # a blob moved under another key's name fails authentication (the key is bound in)
    first_bytes = first.read_bytes()
    first.write_bytes(second.read_bytes())
    with pytest.raises(IntegrityError):
        tier.get_many(["diary", "other"])
    first.write_bytes(first_bytes[: len(first_bytes) // 2])  # truncated
    with pytest.raises(IntegrityError):
        tier.get_many(["diary", "other"])


def test_keys_are_checked_at_open(tmp_path, monkeypatch):
    ArchiveTier(tmp_path / "enc", key=KEY).put(MemoryEntry("k", 1))
    with pytest.raises(StoreCorruptError, match="encrypted"):
        ArchiveTier(tmp_path / "enc")
    with pytest.raises(StoreCorruptError, match="wrong key"):
        ArchiveTier(tmp_path / "enc", key=generate_key())
    ArchiveTier(tmp_path / "plain").put(MemoryEntry("k", 1))
    with pytest.raises(StoreCorruptError, match="not encrypted"):
        ArchiveTier(tmp_path / "plain", key=KEY)
    monkeypatch.setenv(ARCHIVE_KEY_ENV, KEY)  # the environment supplies the key
    assert ArchiveTier(tmp_path / "enc").get("k").value == 1  # type: ignore[union-attr]
    assert ArchiveTier(tmp_path / "plain", encrypt=False).get("k").value == 1  # type: ignore[union-attr]


def test_encrypt_true_without_a_key_is_refused(monkeypatch):
    monkeypatch.delenv(ARCHIVE_KEY_ENV, raising=False)
    with pytest.raises(InvalidArgumentError, match="needs a key"):
        ArchiveTier(encrypt=True)


@pytest.mark.parametrize("bad", ["short", "zz" * 32, b"\x00" * 31, ""])
def test_malformed_keys(bad):
    with pytest.raises(InvalidArgumentError, match="32 bytes"):
        parse_key(bad)


def test_key_forms():
    raw = os.urandom(32)
    import base64

    assert (
        parse_key(raw.hex())
        == raw
        == parse_key(raw)
        == parse_key(base64.urlsafe_b64encode(raw).decode())
    )


def test_temporary_archive_is_removed_on_close():
    tier = ArchiveTier()
    where = Path(tier.where)
    tier.put(MemoryEntry("k", 1))
    assert where.exists()
    tier.close()
    assert not where.exists()


# -- S3 through moto's server ------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint():
    moto_server = Path(sys.executable).parent / "moto_server"
    if not moto_server.exists():
        pytest.fail("moto_server is not installed (the test group installs moto[server])")
    port = _free_port()
    proc = subprocess.Popen([str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto_server did not start")
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def s3_client(s3_endpoint, monkeypatch):
    import boto3

    for name, value in (
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    bucket = f"agentmem-{os.urandom(4).hex()}"
    client.create_bucket(Bucket=bucket)
    yield client, bucket
    client.close()


def test_s3_archive_roundtrip_encrypted(s3_client, clock):
    client, bucket = s3_client
    tier = ArchiveTier(store=S3Store(bucket, "user-u1/", client=client), key=KEY, clock=clock)
    tier.put_many(
        [MemoryEntry(f"k{i}", {"i": i, "text": "secret stuff"}, clock=clock) for i in range(5)]
    )
    assert sorted(tier.keys()) == [f"k{i}" for i in range(5)]
    assert tier.get("k3").value == {"i": 3, "text": "secret stuff"}  # type: ignore[union-attr]
    objects = client.list_objects_v2(Bucket=bucket, Prefix="user-u1/")["Contents"]
    assert len(objects) == 7  # 5 entries, the manifest and the key index
    body = client.get_object(Bucket=bucket, Key=objects[0]["Key"])["Body"].read()
    assert b"secret" not in body
    assert tier.delete("k3") and tier.get("k3") is None
    reopened = ArchiveTier(store=S3Store(bucket, "user-u1/", client=client), key=KEY, clock=clock)
    assert sorted(reopened.keys()) == ["k0", "k1", "k2", "k4"]
    with pytest.raises(StoreCorruptError):
        ArchiveTier(store=S3Store(bucket, "user-u1/", client=client), clock=clock)


def test_manager_archives_to_s3(s3_client, tmp_path):
    client, bucket = s3_client
    archive = ArchiveTier(store=S3Store(bucket, "mm/", client=client))
    with MemoryManager(
        short_term_limit=2, long_term_limit=2, storage_path=tmp_path, archive=archive
    ) as mm:
        mm.store_many({f"k{i}": i for i in range(6)})
        assert len(mm.keys("external")) == 2
        assert [mm.retrieve(f"k{i}") for i in range(6)] == list(range(6))
