"""The external tier: an archive of entries, compressed, checksummed, and encrypted when given a key.

Each entry is one file in a directory, named by the SHA-256 of its key (keys never appear in file names)::

    blob = MAGIC (4) | version (1) | flags (1) | body
    plain:      body = sha256(payload) (32) | payload
    encrypted:  body = nonce (12) | AESGCM(key, nonce, payload, associated_data=header + entry key)
    payload = zstd(JSON of MemoryEntry.to_dict())

* **Integrity.** A plain blob carries a SHA-256 of its payload; an encrypted one the AEAD tag, which also binds
  the blob to its entry key (a blob copied under another key's name fails). A tampered or truncated blob raises
  :class:`~agentmem_plugin.errors.IntegrityError`; garbage is never returned.
* **Encryption.** AES-256-GCM (``cryptography``) whenever a key is supplied, as an argument or in the
  environment variable ``AGENTMEM_ARCHIVE_KEY`` (32 bytes, given as 64 hex digits or urlsafe base64).
  ``encrypt=True`` without a key is an error, never silent plaintext. The archive records whether it is
  encrypted (``archive.json``) plus a key check: an encrypted archive opened without its key or with a wrong key
  is refused, and so is a plain archive opened with a key (no mixing).
* Writes are atomic (temporary file, fsync, rename). Reads that count an access rewrite the blob: archives are
  cold storage, read rarely.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Protocol

import orjson
import zstandard

from agentmem_plugin.codec import decompress, encode_json
from agentmem_plugin.entry import Clock, MemoryEntry
from agentmem_plugin.errors import (
    IntegrityError,
    InvalidArgumentError,
    MissingDependencyError,
    StorageError,
    StoreCorruptError,
)
from agentmem_plugin.search import SearchIndex, document_text
from agentmem_plugin.tiers.base import EvictionCallback, Tier, neighbors_in, storage_errors
from agentmem_plugin.validation import validate_capacity

__all__ = [
    "ARCHIVE_KEY_ENV",
    "ArchiveTier",
    "BlobStore",
    "DirectoryStore",
    "S3Store",
    "generate_key",
    "parse_key",
]

logger = logging.getLogger(__name__)

ARCHIVE_KEY_ENV = "AGENTMEM_ARCHIVE_KEY"
_MAGIC = b"AMAR"
_VERSION = 1
_FLAG_ENCRYPTED = 1
_HEADER = 6
_MANIFEST = "archive.json"
_INDEX = "keys.index"
_DECODED_ENTRIES = 4096
"""Decoded entries an archive keeps in memory (the most recently read)."""
_KEYCHECK = b"agentmem archive key check"


def generate_key() -> str:
    """Return a new random archive key as 64 hex digits (keep it safe: without it the archive is unreadable)."""
    return secrets.token_hex(32)


def parse_key(key: str | bytes) -> bytes:
    """Return the 32 raw bytes of *key* (raw bytes, 64 hex digits, or urlsafe base64 of 32 bytes).

    Raises:
        InvalidArgumentError: *key* is not a 256-bit key in one of those forms.

    """
    if isinstance(key, bytes) and len(key) == 32:
        return key
    if not isinstance(key, (str, bytes)):
        raise InvalidArgumentError(
            f"an archive key must be a str or bytes (64 hex digits or urlsafe base64 of 32 bytes), "
            f"got a {type(key).__name__}"
        )
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    text = text.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 32:
        return raw
    raise InvalidArgumentError(
        "an archive key must be 32 bytes: 64 hex digits or urlsafe base64 (make one with generate_key())"
    )


class BlobStore(Protocol):
    """Where an archive keeps its blobs: a flat namespace of names to bytes."""

    def put(self, name: str, data: bytes) -> None:
        """Store *data* under *name* atomically (a reader sees the old bytes or the new ones)."""
        ...

    def get(self, name: str) -> bytes | None:
        """Return the bytes under *name*, or None."""
        ...

    def delete(self, name: str) -> None:
        """Remove *name* (no error when absent)."""
        ...

    def describe(self) -> str:
        """Say where the blobs are, for messages."""
        ...


class DirectoryStore:
    """Blobs as files in a local directory (created when missing); writes are temp file + fsync + rename."""

    def __init__(self, path: str | PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot create the archive directory {str(self.path)!r}: {exc}"
            ) from exc

    def put(self, name: str, data: bytes) -> None:
        """Write *data* to the file *name* atomically."""
        target = self.path / name
        tmp = target.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StorageError(f"could not write {str(target)!r}: {exc}") from exc

    def get(self, name: str) -> bytes | None:
        """Read the file *name*, or None."""
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(f"could not read {str(self.path / name)!r}: {exc}") from exc

    def delete(self, name: str) -> None:
        """Remove the file *name*."""
        (self.path / name).unlink(missing_ok=True)

    def describe(self) -> str:
        """Return the directory."""
        return str(self.path)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the directory's exclusive lock (``flock`` on ``.lock``): one writer at a time, across processes."""
        with open(self.path / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def stamp(self, name: str) -> tuple[int, int, int] | None:
        """Return what identifies the current content of the file *name* (inode, size, mtime), or None."""
        try:
            st = os.stat(self.path / name)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)


class S3Store:
    """Blobs as objects in an S3 bucket (or any S3-compatible server), through boto3.

    Args:
        bucket: The bucket (it must exist).
        prefix: Key prefix for this archive, e.g. ``"agentmem/user-u1/"``.
        client: A boto3 S3 client; default ``boto3.client("s3", endpoint_url=endpoint_url)``.
        endpoint_url: For S3-compatible servers (MinIO, moto, ...).

    Credentials never go in the bucket or URL (``s3://key:secret@bucket`` is refused): boto3 finds them by its
    usual chain (environment, shared config, instance role). Messages and :meth:`describe` show the bucket and
    prefix only, through :func:`~agentmem_plugin.tiers.urls.redact_url`.

    Raises:
        InvalidArgumentError: *bucket* is not a bucket name (empty, or holding ``@``, ``/`` or whitespace, as
            credentials in a URL would); the message shows it redacted.
        MissingDependencyError: boto3 is not installed (``pip install "agentmem-plugin[s3]"``).

    """

    def __init__(
        self, bucket: str, prefix: str = "", *, client: Any = None, endpoint_url: str | None = None
    ) -> None:
        from agentmem_plugin.tiers.urls import redact_url

        if (
            not isinstance(bucket, str)
            or not bucket
            or any(c in bucket for c in "@/")
            or any(c.isspace() for c in bucket)
            or not isinstance(prefix, str)
        ):
            raise InvalidArgumentError(
                f"S3 bucket must be a bucket name, got {redact_url(f's3://{bucket}/{prefix}')!r}; credentials "
                "never go in the URL: boto3 finds them in the environment, its shared config or an instance role"
            )
        if client is None:
            try:
                import boto3
            except ImportError as exc:
                raise MissingDependencyError(
                    'S3 archives need boto3: pip install "agentmem-plugin[s3]"'
                ) from exc
            client = boto3.client("s3", endpoint_url=endpoint_url)
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def _errors(self, what: str, name: str) -> Any:
        from agentmem_plugin.tiers.urls import redact_url

        return storage_errors(
            "S3",
            redact_url(f"{what} s3://{self.bucket}/{self.prefix}{name}"),
            ("botocore", "boto3"),
        )

    def put(self, name: str, data: bytes) -> None:
        """Upload *data* (a PUT is atomic in S3)."""
        with self._errors("writing", name):
            self.client.put_object(Bucket=self.bucket, Key=self.prefix + name, Body=data)

    def get(self, name: str) -> bytes | None:
        """Download *name*, or None when there is no such object."""
        with self._errors("reading", name):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + name)
            except self.client.exceptions.NoSuchKey:
                return None
            return bytes(response["Body"].read())

    def delete(self, name: str) -> None:
        """Delete *name*."""
        with self._errors("deleting", name):
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + name)

    def describe(self) -> str:
        """Return the bucket and prefix (redacted)."""
        from agentmem_plugin.tiers.urls import redact_url

        return redact_url(f"s3://{self.bucket}/{self.prefix}")


class ArchiveTier(Tier):
    """Cold storage for entries: one compressed, checksummed (and, with a key, encrypted) file per entry.

    Args:
        path: The archive directory (created when missing); None makes a temporary directory that is removed
            when the tier is closed.
        store: Where blobs go instead of a directory, e.g. ``S3Store(bucket, prefix)``.
        key: A 256-bit key (see :func:`parse_key`); default: ``$AGENTMEM_ARCHIVE_KEY`` if set.
        encrypt: True requires a key (an error otherwise); False refuses one; None (default) encrypts exactly
            when a key is available.
        capacity: Maximum live entries (None: unbounded).
        clock: Source of the current time.
        on_evict: Called with entries evicted for capacity before they are deleted.

    Raises:
        InvalidArgumentError: ``encrypt=True`` without a key, or a malformed key.
        StoreCorruptError: the directory holds an archive encrypted with another key, an encrypted archive and
            no key, or a plain archive and a key.

    """

    name = "archive"
    persistent = True

    def __init__(
        self,
        path: str | PathLike[str] | None = None,
        *,
        store: BlobStore | None = None,
        key: str | bytes | None = None,
        encrypt: bool | None = None,
        capacity: int | None = None,
        clock: Clock | None = None,
        on_evict: EvictionCallback | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.capacity = validate_capacity(capacity)
        self.on_evict = on_evict
        if key is None:
            key = os.environ.get(ARCHIVE_KEY_ENV) or None
        if encrypt is True and key is None:
            raise InvalidArgumentError(
                f"encrypt=True needs a key: pass key=... or set {ARCHIVE_KEY_ENV} (make one with generate_key())"
            )
        if encrypt is False:
            key = None
        self._aead: Any = None
        if key is not None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead = AESGCM(parse_key(key))
        self.encrypted = self._aead is not None
        self._cleanup: weakref.finalize[Any, Any] | None = None
        if store is None:
            if path is None:
                path = tempfile.mkdtemp(prefix="agentmem-archive-")
                # Removed on close(), or when the tier is garbage-collected, or at interpreter exit.
                self._cleanup = weakref.finalize(self, shutil.rmtree, path, ignore_errors=True)
            store = DirectoryStore(path)
        self.store: BlobStore = store
        self.where = store.describe()
        # A directory is shared by the processes of one storage_path: writers take its lock and every reader
        # notices another process's index. Other stores (S3) have one writer at a time.
        self._dir = store if isinstance(store, DirectoryStore) else None
        self._keys: list[str] | None = None
        self._stamp: object = None
        self._dir_locked = False
        # The change feed of a semantic index over the archive: kept in memory, started by set_index_meta.
        self._index_meta: tuple[str, int] | None = None
        self._changes: dict[str, int] | None = None
        self._change_seq = 0
        # Keyword search: BM25 over the archived text, built in memory on the first search (never written to
        # disk: the archive stays sealed at rest), kept in step with this process's writes and rebuilt when
        # another process rewrote the key index.
        self._words: SearchIndex | None = None
        # The last entries read, decoded (in process memory only), each with its blob file's identity: a search
        # that meets the same archived memories again skips the read, decryption and decompression of their
        # blobs, and a blob changed on disk since is read (and verified) again.
        self._decoded: OrderedDict[str, tuple[object, MemoryEntry]] = OrderedDict()
        self._check_manifest()

    # -- format ------------------------------------------------------------------------------------------------

    def _check_manifest(self) -> None:
        raw = self.store.get(_MANIFEST)
        manifest = f"{self.where}/{_MANIFEST}"
        if raw is None:
            data: dict[str, Any] = {
                "format": "agentmem-archive",
                "version": _VERSION,
                "encrypted": self.encrypted,
            }
            if self.encrypted:
                nonce = secrets.token_bytes(12)
                data["key_check"] = (
                    nonce + self._aead.encrypt(nonce, _KEYCHECK, b"key-check")
                ).hex()
            self.store.put(_MANIFEST, encode_json(data))
            return
        try:
            data = orjson.loads(raw)
            recorded = bool(data["encrypted"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise StoreCorruptError(f"{manifest!r} is not an archive manifest: {exc}") from exc
        if recorded and not self.encrypted:
            raise StoreCorruptError(
                f"the archive at {self.where!r} is encrypted: pass its key (or set {ARCHIVE_KEY_ENV})"
            )
        if not recorded and self.encrypted:
            raise StoreCorruptError(
                f"the archive at {self.where!r} is not encrypted; open it without a key (encrypt=False)"
            )
        if recorded:
            from cryptography.exceptions import InvalidTag

            blob = bytes.fromhex(str(data.get("key_check", "")))
            try:
                ok = self._aead.decrypt(blob[:12], blob[12:], b"key-check") == _KEYCHECK
            except (InvalidTag, ValueError):
                ok = False
            if not ok:
                raise StoreCorruptError(f"wrong key for the encrypted archive at {self.where!r}")

    @staticmethod
    def _name(key: str) -> str:
        return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest() + ".amar"

    def _seal(self, data: bytes, aad: bytes) -> bytes:
        payload = zstandard.ZstdCompressor(level=3).compress(data)
        if self._aead is None:
            return _MAGIC + bytes([_VERSION, 0]) + hashlib.sha256(payload).digest() + payload
        header = _MAGIC + bytes([_VERSION, _FLAG_ENCRYPTED])
        nonce = secrets.token_bytes(12)
        sealed: bytes = self._aead.encrypt(nonce, payload, header + aad)
        return header + nonce + sealed

    def _unseal(self, blob: bytes, aad: bytes, what: str) -> bytes:
        if len(blob) < _HEADER or blob[:4] != _MAGIC or blob[4] != _VERSION:
            raise IntegrityError(f"{what} is not an archive blob (truncated or foreign)")
        header, body = blob[:_HEADER], blob[_HEADER:]
        if bool(blob[5] & _FLAG_ENCRYPTED) != self.encrypted:
            raise IntegrityError(f"{what} does not match the archive's encryption setting")
        if self.encrypted:
            from cryptography.exceptions import InvalidTag

            try:
                payload = self._aead.decrypt(body[:12], body[12:], header + aad)
            except (InvalidTag, ValueError) as exc:
                raise IntegrityError(
                    f"{what} failed authentication (tampered or truncated)"
                ) from exc
        else:
            digest, payload = body[:32], body[32:]
            if len(digest) != 32 or hashlib.sha256(payload).digest() != digest:
                raise IntegrityError(f"{what} fails its checksum (tampered or truncated)")
        return decompress(
            payload, what=what
        )  # bounded: a crafted frame cannot inflate past the cap

    # -- entries and the key index ---------------------------------------------------------------------------

    def _read(self, key: str) -> MemoryEntry | None:
        cached = self._decoded.get(key)
        stamp = None if self._dir is None else self._dir.stamp(self._name(key))
        if cached is not None and (self._dir is None or cached[0] == stamp):
            self._decoded.move_to_end(key)
            return cached[1].copy()
        entry = self._read_blob(key)
        if entry is not None:
            self._remember(entry, stamp)
        return entry

    def _remember(self, entry: MemoryEntry, stamp: object) -> None:
        self._decoded[entry.key] = (stamp, entry.copy())
        self._decoded.move_to_end(entry.key)
        while len(self._decoded) > _DECODED_ENTRIES:
            self._decoded.popitem(last=False)

    def _delete_blob(self, key: str) -> None:
        self._decoded.pop(key, None)
        self.store.delete(self._name(key))

    def _read_blob(self, key: str) -> MemoryEntry | None:
        blob = self.store.get(self._name(key))
        if blob is None:
            return None
        data = self._unseal(
            blob, b"entry:" + key.encode("utf-8", "surrogatepass"), f"the archived entry {key!r}"
        )
        try:
            entry = MemoryEntry.from_dict(orjson.loads(data))
        except (orjson.JSONDecodeError, InvalidArgumentError, TypeError, ValueError) as exc:
            raise IntegrityError(f"the archived entry {key!r} does not decode: {exc}") from exc
        if entry.key != key:
            raise IntegrityError(f"the blob of key {key!r} holds key {entry.key!r}")
        return entry

    def _write_entry(self, entry: MemoryEntry) -> None:
        self._decoded.pop(entry.key, None)
        data = encode_json(entry.to_dict(), what=f"entry {entry.key!r}")
        self.store.put(
            self._name(entry.key),
            self._seal(data, b"entry:" + entry.key.encode("utf-8", "surrogatepass")),
        )

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold this tier's lock and, for a directory, the directory's: read-modify-writes of the index are serial.

        Reentrant: a thread already inside (``compute`` calling ``put_many``) does not lock again.
        """
        with self._lock:
            if self._dir is None or self._dir_locked:
                yield
                return
            with self._dir.lock():
                self._dir_locked = True
                try:
                    yield
                finally:
                    self._dir_locked = False

    def _index(self) -> list[str]:
        """Return the archived keys: kept in memory, read again whenever another process rewrote the index."""
        before = self._keys
        if self._dir is not None:
            stamp = self._dir.stamp(_INDEX)
            if stamp != self._stamp:
                self._keys, self._stamp = None, stamp
                self._words = None
                self._decoded.clear()
        if self._keys is None:
            raw = self.store.get(_INDEX)
            keys = (
                []
                if raw is None
                else orjson.loads(self._unseal(raw, b"index", "the archive's key index"))
            )
            if not isinstance(keys, list):
                raise IntegrityError("the archive's key index is not a list")
            self._keys = [str(k) for k in keys]
            if (
                before is not None
            ):  # another process archived or removed keys: the feed reports them
                self._changed(set(before).symmetric_difference(self._keys))
        return list(self._keys)

    def archived_keys(self) -> list[str]:
        """Return every key the archive holds (expired ones too) without opening a single blob."""
        with self._lock:
            return self._index()

    def _changed(self, keys: Iterable[str]) -> None:
        """Record *keys* in the change feed (once a semantic index started it)."""
        if self._changes is None:
            return
        for key in keys:
            self._change_seq += 1
            self._changes[key] = self._change_seq

    def _save_index(self, keys: list[str]) -> None:
        if self._keys is not None:
            dropped = set(self._keys).difference(keys)
            if self._words is not None:
                for key in dropped:
                    self._words.remove_entry(key)
            if self._changes is not None:
                self._changed(dropped.union(set(keys).difference(self._keys)))
        self.store.put(_INDEX, self._seal(encode_json(keys), b"index"))
        self._keys = list(keys)
        self._stamp = None if self._dir is None else self._dir.stamp(_INDEX)

    def change_token(self) -> object:
        """Return the key index file's identity for a directory archive (another process rewrites it on each change)."""
        return None if self._dir is None else self._dir.stamp(_INDEX)

    def _live(self, now: float) -> dict[str, MemoryEntry]:
        out: dict[str, MemoryEntry] = {}
        for key in self._index():
            entry = self._read(key)
            if entry is not None and not entry.is_expired(now):
                out[key] = entry
        return out

    # -- primitives --------------------------------------------------------------------------------------------

    def put_many(self, entries: Sequence[MemoryEntry]) -> None:
        """Archive *entries* (atomically per entry; the key index is written last)."""
        batch = self._normalized_batch(entries)
        with self._exclusive():
            self._write_batch(batch)

    def _write_batch(self, batch: Mapping[str, MemoryEntry]) -> None:
        """Write *batch* (normalized, unique keys), evicting for capacity; the caller holds ``_exclusive``."""
        now = self.clock()
        keys = self._index()
        victims: list[MemoryEntry] = []
        if self.capacity is not None:
            live = self._live(now)
            expired = [k for k in keys if k not in live]
            victims = self._capacity_victims(live, batch)
            for key in expired:
                self._delete_blob(key)
            self.stats_counters.expirations += len(expired)
            keys = [k for k in keys if k not in set(expired)]
        gone = {v.key for v in victims}
        for entry in batch.values():
            if entry.key not in gone:
                self._write_entry(entry)
                if self._words is not None:
                    self._words.add_entry(
                        entry.key, document_text(entry.key, entry.value, entry.tags)
                    )
        self._changed(batch)  # rewritten in place: their text may have changed
        for key in gone:
            self._delete_blob(key)
        known = set(keys)
        keys += [k for k in batch if k not in known and k not in gone]
        self._save_index([k for k in keys if k not in gone])
        self.stats_counters.writes += len(batch)
        self.stats_counters.evictions += len(victims)

    def get_many(self, keys: Sequence[str], *, touch: bool = True) -> list[MemoryEntry | None]:
        """Return the live entry for each key; a counted read rewrites the blob with the new access fields."""
        out: list[MemoryEntry | None] = []
        with self._exclusive() if touch else self._lock:
            now = self.clock()
            known = set(self._index())  # keys not archived cost no blob read (an S3 GET)
            for key in keys:
                entry = self._read(key) if key in known else None
                if entry is None or entry.is_expired(now):
                    if touch:
                        self.stats_counters.misses += 1
                    out.append(None)
                    continue
                if touch:
                    entry.update_access(now)
                    self._write_entry(entry)
                    self.stats_counters.hits += 1
                out.append(entry)
        return out

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete *keys*; return how many live entries were removed."""
        with self._exclusive():
            now = self.clock()
            removed = 0
            gone = set()
            known = set(self._index())
            for key in keys:
                entry = self._read(key) if key in known else None
                if entry is None:
                    continue
                self._delete_blob(key)
                gone.add(key)
                removed += not entry.is_expired(now)
            if gone:
                self._save_index([k for k in self._index() if k not in gone])
            self.stats_counters.deletes += removed
            return removed

    def scan(self) -> list[MemoryEntry]:
        """Return every live entry (each blob is verified)."""
        with self._lock:
            return list(self._live(self.clock()).values())

    def keyword_search(self, query: str, limit: int = 10) -> list[tuple[MemoryEntry, float]]:
        """BM25 over the archived entries: an in-memory index (built by one scan), then the hits' blobs read."""
        with self._lock:
            now = self.clock()
            self._index()  # forget the word index when another process rewrote the archive
            if self._words is None:
                words = SearchIndex()
                for key, entry in self._live(now).items():
                    words.add_entry(key, document_text(key, entry.value, entry.tags))
                self._words = words
            fetch = limit
            while True:
                ranked = self._words.search(query, fetch)
                held = self._held([k for k, _ in ranked], now)
                hits = [(held[k], score) for k, score in ranked if k in held]
                if len(hits) >= limit or len(ranked) < fetch:
                    return hits[:limit]
                fetch *= 4

    def neighbors(self, keys: Sequence[str], radius: int) -> dict[str, list[str]]:
        """Return the keys archived up to *radius* places before and after each key (from the key index alone).

        The order is the key index's: the order in which keys were first archived. Only the blobs of *keys*
        are opened (an absent or expired key gets no entry); a neighbour's is not, so a neighbour may be an
        entry that expired since (a search skips it).
        """
        with self._lock:
            order = self._index()
            live = self._held(keys, self.clock())
        return neighbors_in(order, [k for k in keys if k in live], radius)

    def compute(
        self, key: str, fn: Callable[[MemoryEntry | None], MemoryEntry | None]
    ) -> MemoryEntry | None:
        """Read-modify-write of *key* (atomic across the processes sharing a directory archive)."""
        with self._exclusive():
            return self._compute_by_parts(key, fn)

    def _held(self, keys: Sequence[str], now: float) -> dict[str, MemoryEntry]:
        known = set(self._index())
        found = {k: self._read(k) for k in dict.fromkeys(keys) if k in known}
        return {k: e for k, e in found.items() if e is not None and not e.is_expired(now)}

    def put_if_newer(self, entries: Sequence[MemoryEntry]) -> list[MemoryEntry]:
        """Archive each entry unless its key holds that version or a newer one (the index is written once)."""
        batch = self._normalized_batch(entries)
        with self._exclusive():
            held = self._held(list(batch), self.clock())
            fresh = {k: e for k, e in batch.items() if k not in held or held[k].version < e.version}
            if fresh:
                self._write_batch(fresh)
            return list(fresh.values())

    def delete_if(self, versions: Mapping[str, int], *, older: bool = False) -> list[str]:
        """Remove each key only if it holds the version given (``older``: a lower one)."""
        with self._exclusive():
            held = self._held(list(versions), self.clock())
            doomed = [
                k
                for k, v in versions.items()
                if k in held and (held[k].version < v if older else held[k].version == v)
            ]
            for key in doomed:
                self._delete_blob(key)
            if doomed:
                gone = set(doomed)
                self._save_index([k for k in self._index() if k not in gone])
            self.stats_counters.deletes += len(doomed)
            return doomed

    def versions(self, keys: Sequence[str]) -> dict[str, int]:
        """Return the version of each live archived key (keys not in the index cost no blob read)."""
        with self._lock:
            return {k: e.version for k, e in self._held(keys, self.clock()).items()}

    def cleanup(self) -> list[str]:
        """Delete expired entries; return their keys."""
        with self._exclusive():
            now = self.clock()
            keys = self._index()
            expired = []
            for key in keys:
                entry = self._read(key)
                if entry is None or entry.is_expired(now):
                    self._delete_blob(key)
                    if entry is not None:
                        expired.append(key)
            if expired:
                self._save_index([k for k in keys if k not in set(expired)])
            self.stats_counters.expirations += len(expired)
            return expired

    def count(self) -> int:
        """Return the number of live entries."""
        return len(self.scan())

    def clear(self) -> None:
        """Delete every archived entry."""
        with self._exclusive():
            for key in self._index():
                self._delete_blob(key)
            self._save_index([])

    # -- change feed (in memory: keys another process adds or removes show up when its key index is read) --------

    def index_meta(self) -> tuple[str, int] | None:
        """Return the (model, dimension) recorded by :meth:`set_index_meta` in this process, or None."""
        return self._index_meta

    def set_index_meta(self, model: str, dim: int) -> None:
        """Record the semantic index's model and start recording changed keys."""
        with self._lock:
            self._index_meta = (model, dim)
            if self._changes is None:
                self._changes = {}
                if self._keys is None:
                    self._index()  # the baseline against which another process's changes are seen

    def changes(self, limit: int) -> list[tuple[int, str]]:
        """Return up to *limit* changed keys not yet acknowledged, oldest first."""
        with self._lock:
            if self._dir is not None:
                self._index()  # notice another process's archive moves
            if not self._changes:
                return []
            out = sorted((seq, key) for key, seq in self._changes.items())
            return out[:limit]

    def ack_changes(self, changes: Sequence[tuple[int, str]]) -> None:
        """Forget acknowledged changes (a key changed again since keeps its newer change)."""
        with self._lock:
            if self._changes is None:
                return
            for seq, key in changes:
                if self._changes.get(key) == seq:
                    del self._changes[key]

    def stats(self) -> dict[str, Any]:
        """Counters plus where the archive is and whether it is encrypted."""
        return {
            **super().stats(),
            "path": self.where,
            "encrypted": self.encrypted,
            "encryption": "AES-256-GCM"
            if self.encrypted
            else "none (compressed and checksummed only)",
        }

    def close(self) -> None:
        """Remove the directory when it was a temporary one."""
        if self._cleanup is not None:
            self._cleanup()
