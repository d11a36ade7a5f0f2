"""Backups: a directory holding a manifest and the entries as JSON lines, checksummed and zstd-compressed.

::

    BACKUP_DIR/
      manifest.json        {"format": "agentmem-backup", "version": 1, "name": ..., "count": N,
                            "created_at": ..., "entries_file": "entries.jsonl.zst", "sha256": ...}
      entries.jsonl.zst    one MemoryEntry.to_dict() per line (zstd); with a key, sealed with AES-256-GCM:
                           nonce (12 bytes) | ciphertext, the manifest's name as associated data

A backup is written into a temporary directory beside the target and renamed into place, so a crash leaves the
previous backup or the new one. :func:`read_backup` verifies the format, version, checksum, count and every
entry before returning anything, so a restore can refuse a damaged backup before it changes a memory.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from os import PathLike
from pathlib import Path
from typing import Any

import orjson
import zstandard

from agentmem_plugin.codec import encode_json
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import AgentMemError, IntegrityError, StorageError

__all__ = ["BACKUP_FORMAT", "BACKUP_VERSION", "read_backup", "write_backup"]

BACKUP_FORMAT = "agentmem-backup"
BACKUP_VERSION = 1
_ENTRIES = "entries.jsonl.zst"
_MANIFEST = "manifest.json"


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _aead(key: str | bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from agentmem_plugin.tiers.archive import parse_key

    return AESGCM(parse_key(key))


def _aad(name: str) -> bytes:
    return f"{BACKUP_FORMAT}:v{BACKUP_VERSION}:{name}".encode()


def write_backup(
    path: str | PathLike[str], entries: Iterable[MemoryEntry], *, name: str = "",
    key: str | bytes | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Write *entries* as a backup directory at *path* (replacing one that is there); return the manifest.

    Args:
        path: The backup directory.
        entries: What to back up.
        name: A label kept in the manifest (and bound to the ciphertext when encrypted).
        key: A 256-bit key (as for the archive: 64 hex digits, urlsafe base64 or 32 bytes): the entries are then
            encrypted with AES-256-GCM; the manifest (name, count, time) stays readable. Back up an encrypted
            archive with its key, or its contents land on disk in the clear.

    Raises:
        InvalidArgumentError: a malformed key.
        SerializationError: an entry cannot be encoded (nothing was written).
        StorageError: the backup could not be written (a previous backup at *path* is intact).

    """
    target = Path(path)
    lines = b"".join(encode_json(e.to_dict(), what=f"entry {e.key!r}") + b"\n" for e in entries)
    count = lines.count(b"\n")
    blob = zstandard.ZstdCompressor(level=3).compress(lines)
    if key is not None:
        nonce = secrets.token_bytes(12)
        blob = nonce + _aead(key).encrypt(nonce, blob, _aad(name))
    manifest = {
        "format": BACKUP_FORMAT,
        "version": BACKUP_VERSION,
        "name": name,
        "count": count,
        "created_at": time.time(),
        "entries_file": _ENTRIES,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "encryption": None if key is None else "AES-256-GCM",
    }
    staging = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    old = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
    try:
        staging.mkdir(parents=True)
        (staging / _ENTRIES).write_bytes(blob)
        (staging / _MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
        for file in (_ENTRIES, _MANIFEST):
            _fsync_file(staging / file)
        if target.exists():
            os.replace(target, old)
        os.replace(staging, target)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise StorageError(f"could not write the backup {str(target)!r}: {exc}") from exc
    return manifest


def read_backup(
    path: str | PathLike[str], *, key: str | bytes | None = None
) -> tuple[dict[str, Any], list[MemoryEntry]]:
    """Read and fully verify the backup at *path*; return its manifest and entries.

    Args:
        path: The backup directory.
        key: The key an encrypted backup was written with (ignored for a plain one).

    Raises:
        IntegrityError: not a backup, an unknown version, a checksum or count mismatch, an invalid entry, an
            encrypted backup without its key, or the wrong key.

    """
    source = Path(path)
    try:
        manifest = orjson.loads((source / _MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise IntegrityError(f"{str(source)!r} has no readable backup manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise IntegrityError(f"{str(source)!r} is not an agentmem backup")
    if manifest.get("version") != BACKUP_VERSION:
        raise IntegrityError(
            f"{str(source)!r} is backup version {manifest.get('version')!r}; this version reads {BACKUP_VERSION}"
        )
    try:
        blob = (source / str(manifest["entries_file"])).read_bytes()
    except (OSError, KeyError) as exc:
        raise IntegrityError(
            f"the entries of backup {str(source)!r} cannot be read: {exc}"
        ) from exc
    if hashlib.sha256(blob).hexdigest() != manifest.get("sha256"):
        raise IntegrityError(f"backup {str(source)!r} fails its checksum (damaged or truncated)")
    if manifest.get("encryption") is not None:
        if key is None:
            raise IntegrityError(
                f"backup {str(source)!r} is encrypted ({manifest['encryption']}): pass its key "
                "(the archive key, e.g. $AGENTMEM_ARCHIVE_KEY)"
            )
        from cryptography.exceptions import InvalidTag

        try:
            blob = _aead(key).decrypt(blob[:12], blob[12:], _aad(str(manifest.get("name", ""))))
        except InvalidTag:
            raise IntegrityError(
                f"backup {str(source)!r} does not open with this key (wrong key)"
            ) from None
    try:
        lines = zstandard.ZstdDecompressor().decompress(blob, max_output_size=1 << 34).splitlines()
        entries = [MemoryEntry.from_dict(orjson.loads(line)) for line in lines if line]
    except (zstandard.ZstdError, orjson.JSONDecodeError, AgentMemError, TypeError) as exc:
        raise IntegrityError(f"backup {str(source)!r} holds an invalid entry: {exc}") from exc
    if len(entries) != manifest.get("count"):
        raise IntegrityError(
            f"backup {str(source)!r} holds {len(entries)} entries; its manifest says {manifest.get('count')}"
        )
    return manifest, entries
