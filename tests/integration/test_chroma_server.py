"""ChromaTier against a real ``chroma run`` server on 127.0.0.1: the whole tier contract, plus sharing.

One server is started for this module (in a temporary directory, on a free port) and terminated at the end.
The contract tests are the very functions of ``tests/conformance/test_tier_contract.py``, collected again here
with ``make_tier`` building ``ChromaTier(FakeHashEmbedder(), host="127.0.0.1", port=...)``.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conformance import test_tier_contract as contract
from conftest import FakeHashEmbedder

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import StorageError
from agentmem_plugin.tiers.base import Tier
from agentmem_plugin.tiers.chroma import ChromaTier, make_client

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 30.0

# Re-collect every contract test in this module: they take `make_tier` (defined below) and `clock`.
for _name in dir(contract):
    if _name.startswith("test_"):
        globals()[_name] = getattr(contract, _name)
del _name


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _start_server(data: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    chroma = Path(sys.executable).parent / "chroma"
    if not chroma.exists():  # pragma: no cover - the semantic extra installs it
        pytest.fail(f"no chroma executable next to {sys.executable}")
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(chroma), "run", "--path", str(data), "--host", HOST, "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"chroma server exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}"
            )
        try:
            # (chromadb's HttpClient never closes its httpx session, and closing the client lets the session be
            # garbage collected inside some later test, where its "unclosed socket" ResourceWarning becomes an
            # error: clients are left open, as ChromaTier leaves them)
            make_client(host=HOST, port=port).heartbeat()
            return proc, port
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.2)
    _stop(proc)
    pytest.fail(
        f"chroma server did not answer within {STARTUP_TIMEOUT} s ({last!r}): {log.read_text(errors='replace')[-2000:]}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def chroma_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A `chroma run` server on 127.0.0.1 for this module: (process, port)."""
    where = tmp_path_factory.mktemp("chroma-server")
    proc, port = _start_server(where / "data", where / "server.log")
    try:
        yield proc, port
    finally:
        _stop(proc)


@pytest.fixture(params=["chroma-http"])
def make_tier(
    request: pytest.FixtureRequest, chroma_server, tmp_path, clock
) -> Iterator[contract.TierFactory]:
    _, port = chroma_server
    made: list[Tier] = []

    def factory(**kwargs: object) -> Tier:
        kwargs.setdefault("clock", clock)
        tier = contract.build_tier(request.param, tmp_path, len(made), chroma_port=port, **kwargs)
        made.append(tier)
        return tier

    yield factory
    for tier in made:
        tier.close()


# -- beyond the contract: what a server is for ------------------------------------------------------------------


def test_two_clients_share_one_namespace(chroma_server, clock):
    """Two tiers with their own HTTP clients (as two processes would have) see each other's writes."""
    _, port = chroma_server
    namespace = f"shared-{uuid.uuid4().hex}"
    writer = ChromaTier(FakeHashEmbedder(), host=HOST, port=port, namespace=namespace, clock=clock)
    reader = ChromaTier(FakeHashEmbedder(), host=HOST, port=port, namespace=namespace, clock=clock)
    other = ChromaTier(
        FakeHashEmbedder(), host=HOST, port=port, namespace=namespace + "-x", clock=clock
    )
    try:
        assert writer.client is not reader.client
        writer.put(MemoryEntry("k", "written by the first client", tags=["t"], clock=clock))
        got = reader.get("k", touch=False)
        assert got is not None and got.value == "written by the first client" and got.tags == ("t",)
        assert [e.key for e, _ in reader.keyword_search("first client", 5)] == ["k"]
        assert [e.key for e, _ in reader.semantic_search("written by the first client", 1)] == ["k"]
        assert (
            other.get("k") is None and other.count() == 0
        )  # another namespace: another collection
        reader.delete("k")
        assert writer.get("k") is None
    finally:
        for tier in (writer, reader, other):
            tier.close()


def test_server_going_away_is_a_storage_error(tmp_path, clock):
    """Operations on a tier whose server died raise StorageError (not a raw httpx/chromadb exception)."""
    proc, port = _start_server(tmp_path / "data", tmp_path / "server.log")
    try:
        tier = ChromaTier(FakeHashEmbedder(), host=HOST, port=port, clock=clock)
        tier.put(MemoryEntry("k", "v", clock=clock))
        assert tier.get("k") is not None
    finally:
        _stop(proc)
    try:
        with pytest.raises(StorageError, match="chroma failed"):
            tier.get("k")
        with pytest.raises(StorageError, match="chroma failed"):
            tier.put(MemoryEntry("j", "w", clock=clock))
    finally:
        tier.close()


def test_manager_on_servers_only_redis_postgres_and_chroma(chroma_server):
    """Short-term in Redis, long-term in PostgreSQL, the semantic index in the Chroma server, all by URL;
    a second manager (as another process would) searches the same index by meaning without reindexing."""
    from integration.backends import require_postgres, require_redis

    from agentmem_plugin import MemoryManager

    _, port = chroma_server
    urls = {"short_term": require_redis(), "long_term": require_postgres(),
            "semantic": f"http://{HOST}:{port}"}
    namespace = f"servers-{uuid.uuid4().hex[:10]}"
    first_embedder, second_embedder = FakeHashEmbedder(), FakeHashEmbedder()
    first = MemoryManager(namespace=namespace, embedder=first_embedder, short_term_limit=2, **urls)
    second = None
    try:
        for key, text in [("a", "alpha text"), ("b", "beta text"), ("c", "gamma text"), ("d", "delta text")]:
            first.store(key, text, memory_type="long_term")
        hits = first.search("gamma text", mode="semantic", memory_types=["long_term"], limit=1)
        assert [h["key"] for h in hits] == ["c"]
        second = MemoryManager(namespace=namespace, embedder=second_embedder, **urls)
        hits = second.search("delta text", mode="semantic", memory_types=["long_term"], limit=1)
        assert [h["key"] for h in hits] == ["d"]
        assert second_embedder.embedded == []  # the vectors came from the server, nothing was re-embedded
    finally:
        first.clear_all()
        first.close()
        if second is not None:
            second.close()
