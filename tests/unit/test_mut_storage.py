"""Behaviours of the storage tiers that surviving mutants showed untested (docs/testing.md, "Mutation score").

* ``tiers.sqlite``: the keyword index's pruned (MaxScore) search against BM25 computed here from the formula,
  a search with more hits than one batch of ids, ``neighbors``.
* ``tiers.buffer``: a key deleted while it had a TTL and stored again without one never expires.
* ``tiers.archive``: what an S3 failure and a wrong key type tell the caller.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import IntegrityError, InvalidArgumentError, StorageError
from agentmem_plugin.search import document_text, tokenize
from agentmem_plugin.tiers.archive import ArchiveTier, S3Store, parse_key
from agentmem_plugin.tiers.buffer import BufferTier
from agentmem_plugin.tiers.sqlite import SqliteTier

# -- tiers.sqlite: keyword search ------------------------------------------------------------------------------


def bm25(docs: dict[str, str], query: str, k1: float = 1.2, b: float = 0.75) -> dict[str, float]:
    """Okapi BM25 of every document matching *query*, from the formula (idf = ln(1 + (N - df + 0.5) / (df + 0.5)))."""
    terms = {key: Counter(tokenize(text)) for key, text in docs.items()}
    terms = {key: t for key, t in terms.items() if t}  # a document without a term is not counted
    n = len(terms)
    avg = sum(sum(t.values()) for t in terms.values()) / n
    scores: dict[str, float] = {}
    for q in dict.fromkeys(tokenize(query)):
        df = sum(q in t for t in terms.values())
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for key, t in terms.items():
            if q in t:
                dl = sum(t.values())
                tf = t[q]
                scores[key] = scores.get(key, 0.0) + idf * tf * (k1 + 1) / (
                    tf + k1 * (1 - b + b * dl / avg)
                )
    return scores


def top(scores: dict[str, float], limit: int) -> list[str]:
    return sorted(scores, key=lambda k: -scores[k])[:limit]


@pytest.mark.parametrize("limit", [1, 2])
def test_sqlite_search_reads_each_posting_of_the_query_terms_once_a_block_at_a_time_and_scores_exactly(
    tmp_path: Path, limit: int
) -> None:
    # Two documents hold the rare word, sixty-one the common one: 63 postings, one block per term.
    values = {f"c{i:02d}": "common" for i in range(60)}
    values["short"] = "rare"
    values["long"] = "rare common filler words here"
    tier = SqliteTier(tmp_path / "kw.db")
    try:
        tier.put_many([MemoryEntry(k, v) for k, v in values.items()])
        expected = bm25({k: document_text(k, v) for k, v in values.items()}, "rare common")
        hits = tier.keyword_search("rare common", limit=limit)
        assert (tier._kw.rows_examined, tier._kw.blocks_read) == (63, 2)
        assert [e.key for e, _ in hits] == top(expected, limit)
        for entry, score in hits:
            assert score == pytest.approx(expected[entry.key], rel=1e-9)  # "long" includes "common"
    finally:
        tier.close()


def test_sqlite_search_returns_more_hits_than_one_batch_of_ids(tmp_path: Path) -> None:
    tier = SqliteTier(tmp_path / "many.db")
    try:
        tier.put_many([MemoryEntry(f"k{i}", "needle") for i in range(1001)])
        hits = tier.keyword_search("needle", limit=2000)
        assert len(hits) == 1001
        assert {e.key for e, _ in hits} == {f"k{i}" for i in range(1001)}
    finally:
        tier.close()


def test_sqlite_neighbors_are_the_live_keys_inserted_around_each_key(clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tier = SqliteTier(tmp_path / "n.db", clock=clock)
    try:
        tier.put_many([MemoryEntry(k, k, clock=clock) for k in "abc"])
        tier.put(MemoryEntry("d", "d", ttl=5, clock=clock))
        tier.put_many([MemoryEntry(k, k, clock=clock) for k in "ef"])
        assert tier.neighbors(["c", "missing"], 1) == {"c": ["b", "d"]}
        assert tier.neighbors(["a"], 2) == {"a": ["b", "c"]}
        clock.advance(5)  # d expired: it is no one's neighbour any more
        assert tier.neighbors(["c", "e"], 1) == {"c": ["b", "e"], "e": ["c", "f"]}
    finally:
        tier.close()


def test_sqlite_stats_name_the_file_and_count_its_wal_and_shm(tmp_path: Path) -> None:
    path = tmp_path / "stats.db"
    tier = SqliteTier(path)
    try:
        tier.put_many([MemoryEntry(f"k{i}", "x" * 100) for i in range(50)])
        stats = tier.stats()
        files = [Path(f"{path}{suffix}") for suffix in ("", "-wal", "-shm")]
        # WAL mode: the database is three files while it is open
        assert all(f.exists() for f in files)
        assert stats["path"] == str(path)
        assert stats["bytes_on_disk"] == sum(f.stat().st_size for f in files)
    finally:
        tier.close()
    memory = SqliteTier(None)
    try:
        assert memory.stats()["path"] is None and memory.stats()["bytes_on_disk"] == 0
    finally:
        memory.close()


@pytest.mark.parametrize("in_memory", [True, False])
def test_sqlite_tier_is_usable_from_another_thread(tmp_path: Path, in_memory: bool) -> None:
    tier = SqliteTier(None if in_memory else tmp_path / "threads.db")
    tier.put(MemoryEntry("k", "from the main thread"))
    seen: list[object] = []

    def other_thread() -> None:
        try:
            tier.put(MemoryEntry("j", "from another thread"))
            seen.append(tier.get("k").value)  # type: ignore[union-attr]
        except Exception as exc:
            seen.append(exc)

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    try:
        assert seen == ["from the main thread"]
        assert tier.get("j").value == "from another thread"  # type: ignore[union-attr]
    finally:
        tier.close()


def test_a_file_that_is_not_sqlite_is_refused_by_name(tmp_path: Path) -> None:
    from agentmem_plugin.errors import StoreCorruptError

    path = tmp_path / "notes.txt"
    path.write_text("just some notes, not a database")
    with pytest.raises(StoreCorruptError, match=re.escape(repr(str(path)))):
        SqliteTier(path)
    assert path.read_text() == "just some notes, not a database"  # left untouched


# -- tiers.buffer -------------------------------------------------------------------------------------------------


def test_buffer_key_stored_again_without_ttl_after_a_delete_never_expires(clock) -> None:  # type: ignore[no-untyped-def]
    tier = BufferTier(10, clock=clock)
    tier.put(MemoryEntry("k", "old", ttl=10, clock=clock))
    assert tier.delete("k")
    tier.put(MemoryEntry("k", "new", clock=clock))
    clock.advance(20)  # past the deleted entry's expiry
    assert tier.cleanup() == []
    assert tier.get("k").value == "new"  # type: ignore[union-attr]
    assert tier.stats()["expirations"] == 0


def test_buffer_key_overwritten_without_ttl_never_expires(clock) -> None:  # type: ignore[no-untyped-def]
    tier = BufferTier(10, clock=clock)
    tier.put(MemoryEntry("k", "old", ttl=10, clock=clock))
    tier.put(MemoryEntry("k", "new", clock=clock))  # replaces it: the old expiry goes with it
    clock.advance(20)
    assert tier.cleanup() == []
    assert tier.get("k").value == "new"  # type: ignore[union-attr]


def test_buffer_full_of_an_expired_entry_drops_it_first_then_evicts_for_the_rest(clock) -> None:  # type: ignore[no-untyped-def]
    evicted: list[str] = []
    tier = BufferTier(3, clock=clock, on_evict=lambda es: evicted.extend(e.key for e in es))
    tier.put(MemoryEntry("a", "a", ttl=5, clock=clock))
    tier.put_many([MemoryEntry(k, k, clock=clock) for k in "bc"])
    clock.advance(5)  # a expired: one of the two newcomers takes its place, the other evicts b
    tier.put_many([MemoryEntry(k, k, clock=clock) for k in "de"])
    assert evicted == ["b"]
    assert sorted(tier.keys()) == ["c", "d", "e"]


def test_buffer_counts_one_expiration_per_expired_entry_met(clock) -> None:  # type: ignore[no-untyped-def]
    tier = BufferTier(10, clock=clock)
    tier.put_many([MemoryEntry(k, k, ttl=5, clock=clock) for k in "ab"])
    tier.put(MemoryEntry("c", "c", clock=clock))
    clock.advance(5)
    assert list(tier.versions(["a", "c"])) == ["c"]
    assert tier.delete_if({"b": 0}) == []
    assert tier.stats()["expirations"] == 2


# -- tiers.archive ------------------------------------------------------------------------------------------------


class ClientError(Exception):
    """What boto3 raises (it is defined in ``botocore.exceptions``)."""


ClientError.__module__ = "botocore.exceptions"


class FailingS3Client:
    """An S3 client whose every call fails as boto3 does when the server refuses it."""

    class exceptions:  # boto3 clients name it so
        class NoSuchKey(Exception):
            pass

    def _fail(self, **kwargs: Any) -> None:
        raise ClientError(f"AccessDenied on {kwargs['Key']}")

    put_object = get_object = delete_object = _fail


@pytest.mark.parametrize(
    ("call", "doing"),
    [
        (lambda s: s.put("blob", b"x"), "writing"),
        (lambda s: s.get("blob"), "reading"),
        (lambda s: s.delete("blob"), "deleting"),
    ],
)
def test_s3_failures_become_storage_errors_naming_the_object(call: Any, doing: str) -> None:
    store = S3Store("bucket", "user-u1/", client=FailingS3Client())
    with pytest.raises(StorageError) as caught:
        call(store)
    message = str(caught.value)
    assert message.startswith(f"S3 failed while {doing} s3://bucket/user-u1/blob")
    assert "AccessDenied" in message
    assert isinstance(caught.value.__cause__, ClientError)


def test_s3_errors_of_other_libraries_pass_through() -> None:
    class Broken:
        class exceptions:
            class NoSuchKey(Exception):
                pass

        def get_object(self, **kwargs: Any) -> None:
            raise KeyError("a bug of ours, not a storage failure")

    with pytest.raises(KeyError):
        S3Store("bucket", client=Broken()).get("blob")


def test_parse_key_of_a_wrong_type_names_the_type() -> None:
    with pytest.raises(InvalidArgumentError, match="got a int"):
        parse_key(12345)  # type: ignore[arg-type]


def test_archive_counts_every_eviction_for_capacity(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    archive = ArchiveTier(tmp_path / "a", capacity=1, clock=clock)
    for key in "abc":
        archive.put(MemoryEntry(key, key, clock=clock))
    assert archive.keys() == ["c"]
    assert archive.stats()["evictions"] == 2


def test_archive_delete_if_older_removes_only_lower_versions(tmp_path: Path) -> None:
    archive = ArchiveTier(tmp_path / "a")
    archive.put_many([MemoryEntry("old", 1, version=3), MemoryEntry("same", 2, version=5)])
    assert archive.delete_if({"old": 4, "same": 5}, older=True) == ["old"]
    assert archive.versions(["old", "same"]) == {"same": 5}
    assert archive.archived_keys() == ["same"]


def test_archive_search_sees_what_another_process_archived_since(tmp_path: Path) -> None:
    mine, theirs = ArchiveTier(tmp_path / "a"), ArchiveTier(tmp_path / "a")
    mine.put(MemoryEntry("first", "apple pie"))
    assert [e.key for e, _ in mine.keyword_search("apple")] == ["first"]
    theirs.put(MemoryEntry("second", "apple tart"))  # rewrites the key index mine has read
    assert sorted(e.key for e, _ in mine.keyword_search("apple")) == ["first", "second"]


def test_archive_directory_is_created_with_its_parents(tmp_path: Path) -> None:
    archive = ArchiveTier(tmp_path / "deep" / "er" / "archive")
    archive.put(MemoryEntry("k", 1))
    assert ArchiveTier(tmp_path / "deep" / "er" / "archive").get("k").value == 1  # type: ignore[union-attr]


def test_archive_directory_that_cannot_be_created_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StorageError, match="cannot create the archive directory"):
        ArchiveTier(tmp_path / "file" / "archive")


def test_closing_a_temporary_archive_whose_directory_is_gone_is_quiet() -> None:
    archive = ArchiveTier()
    shutil.rmtree(archive.where)
    archive.close()


def test_archive_versions_and_writes_ignore_an_expired_entry(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    archive = ArchiveTier(tmp_path / "a", clock=clock)
    archive.put(MemoryEntry("k", "newer but expiring", ttl=5, version=9, clock=clock))
    clock.advance(5)
    assert archive.versions(["k"]) == {}
    assert archive.delete_if({"k": 9}) == []  # nothing live to remove
    written = archive.put_if_newer([MemoryEntry("k", "older but live", version=3, clock=clock)])
    assert [e.key for e in written] == ["k"]
    assert archive.get("k").value == "older but live"  # type: ignore[union-attr]


def test_archive_change_feed_after_set_index_meta(tmp_path: Path) -> None:
    archive = ArchiveTier(tmp_path / "a")
    assert archive.index_meta() is None
    archive.set_index_meta("model-x", 3)
    assert archive.index_meta() == ("model-x", 3)
    archive.put_many([MemoryEntry("a", 1), MemoryEntry("b", 2)])
    changes = archive.changes(10)  # one change per key; the order within one write is not promised
    assert sorted(key for _, key in changes) == ["a", "b"]
    archive.ack_changes(changes[:1])
    assert [key for _, key in archive.changes(10)] == [changes[1][1]]


def test_archive_full_of_an_expired_entry_drops_it_instead_of_a_live_one(
    tmp_path: Path, clock
) -> None:  # type: ignore[no-untyped-def]
    clock.advance(
        3e9
    )  # a "now" far from the wall clock's: expiry must be judged by the tier's clock
    archive = ArchiveTier(tmp_path / "a", capacity=2, clock=clock)
    archive.put(MemoryEntry("keep", 1, clock=clock))
    archive.put(MemoryEntry("expiring", 2, ttl=100, clock=clock))
    clock.advance(100)
    archive.put(MemoryEntry("new", 3, clock=clock))
    assert sorted(archive.keys()) == ["keep", "new"]
    assert archive.stats()["evictions"] == 0


def test_sqlite_get_many_counts_each_read(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    tier = SqliteTier(tmp_path / "reads.db", clock=clock)
    try:
        tier.put(MemoryEntry("k", "v", clock=clock))
        first, second = tier.get_many(["k", "k"])
        assert (first.access_count, second.access_count) == (1, 2)  # type: ignore[union-attr]
        assert tier.stats()["hits"] == 2
        assert tier.get("k", touch=False).access_count == 2  # type: ignore[union-attr]
    finally:
        tier.close()


def test_archive_neighbors_judge_expiry_by_the_tier_clock(tmp_path: Path, clock) -> None:  # type: ignore[no-untyped-def]
    # the tier's clock is far behind the wall clock: "d" is live on it until it moves 5 s on
    archive = ArchiveTier(tmp_path / "a", clock=clock)
    archive.put_many([MemoryEntry(k, k, ttl=5 if k == "d" else None, clock=clock) for k in "abcde"])
    assert archive.neighbors(["d"], 1) == {"d": ["c", "e"]}
    clock.advance(5)
    assert archive.neighbors(["d"], 1) == {}


def test_sqlite_namespaces_lists_those_holding_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "ns.db"
    tiers = [
        SqliteTier(path, namespace=ns) for ns in ("user/bob", "user/alice", "users/x", "empty")
    ]
    try:
        for tier in tiers[:3]:
            tier.put(MemoryEntry("k", tier.namespace))
        tiers[3].put(MemoryEntry("gone", 1))
        tiers[3].delete("gone")
        assert tiers[0].namespaces() == ["user/alice", "user/bob", "users/x"]
        assert tiers[3].namespaces("user") == ["user/alice", "user/bob"]
        assert tiers[1].namespaces("user/bob") == ["user/bob"]
        assert tiers[1].namespaces("nobody") == []
    finally:
        for tier in tiers:
            tier.close()


def test_an_archive_directory_says_what_it_is(tmp_path: Path) -> None:
    # archive.json: the format's name and version (what a later reader checks first) and whether it is encrypted
    ArchiveTier(tmp_path / "a").put(MemoryEntry("k", 1))
    manifest = json.loads((tmp_path / "a" / "archive.json").read_text())
    assert manifest == {"format": "agentmem-archive", "version": 1, "encrypted": False}


def test_a_tampered_key_index_is_an_integrity_error_naming_it(tmp_path: Path) -> None:
    ArchiveTier(tmp_path / "a").put(MemoryEntry("k", 1))
    index = tmp_path / "a" / "keys.index"
    raw = bytearray(index.read_bytes())
    raw[-1] ^= 0xFF  # one byte of the payload changed: its checksum no longer matches
    index.write_bytes(bytes(raw))
    with pytest.raises(
        IntegrityError,
        match=r"^the archive's key index fails its checksum \(tampered or truncated\)$",
    ):
        ArchiveTier(tmp_path / "a").keys()


def test_a_store_locked_by_another_connection_is_not_reported_read_only(tmp_path: Path) -> None:
    import sqlite3

    from agentmem_plugin.errors import ReadOnlyStoreError, StoreCorruptError

    path = tmp_path / "locked.db"
    first = SqliteTier(path)
    first.put(MemoryEntry("k", "kept"))
    first.close()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute(
        "PRAGMA journal_mode=DELETE"
    )  # a rollback journal: an exclusive lock blocks readers too
    other.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="database is locked") as info:
            SqliteTier(path, busy_timeout=0.1)
        assert not isinstance(
            info.value, ReadOnlyStoreError
        )  # the file can be written, once the lock goes
        assert not isinstance(
            info.value, StoreCorruptError
        )  # and it is a valid store: busy, not corrupt
        assert "busy" in str(info.value)
        assert str(path) in str(info.value)
    finally:
        other.execute("ROLLBACK")
        other.close()
    tier = SqliteTier(path)
    try:
        assert tier.get("k").value == "kept"  # type: ignore[union-attr]
    finally:
        tier.close()
