"""Backups of one memory and of a whole store: checksummed, zstd-compressed JSON lines, staged then swapped in.

A *backup* (of a named memory, :func:`write_backup`, what ``MemoryManager.backup_memory`` writes)::

    BACKUP_DIR/
      manifest.json        {"format": "agentmem-backup", "version": 1, "name": ..., "count": N,
                            "created_at": ..., "entries_file": "entries.jsonl.zst", "sha256": ...}
      entries.jsonl.zst    one MemoryEntry.to_dict() per line (zstd); with a key, sealed with AES-256-GCM:
                           nonce (12 bytes) | ciphertext, the manifest's name as associated data

A *store backup* (every namespace and tier of a ``MemoryManager(storage_path=...)`` directory,
:func:`backup_store`, what ``agentmem backup`` writes) holds one backup per namespace and tier::

    STORE_BACKUP_DIR/
      agentmem-store.json  {"format": "agentmem-store-backup", "version": 1, "source": ..., "count": N,
                            "parts": [{"namespace": "", "tier": "long_term", "dir": "part-0000", "count": n}]}
      part-0000/ ...       a backup as above, one per namespace and tier that holds entries

Safety, for every function here:

* **Nothing we did not write is removed.** A target that exists, is not empty and is not one of our backups
  (checked by its manifest, and holding nothing else) is refused with
  :class:`~agentmem_plugin.errors.InvalidArgumentError`; so is a target inside the store it backs up.
* **All or nothing.** A backup, and a restored store, is built completely in a staging directory beside its
  target, then swapped in with one atomic exchange of the two directories (``renameat2(RENAME_EXCHANGE)`` on
  Linux, ``renamex_np(RENAME_SWAP)`` on macOS; elsewhere two renames, and an interrupted swap is put back by the
  next call). A process killed at any moment (even ``kill -9``) leaves the old backup or store, or the new one,
  never a mix; a staging directory it left behind is removed by the next backup or restore there.
* **Verified before use.** :func:`read_backup` checks the format, version, checksum, count and every entry before
  returning anything; every path it reads stays inside the backup (a manifest naming ``../x`` or an absolute
  path is refused); decompression is streamed and bounded (:data:`MAX_BACKUP_SIZE` in all, 256 MiB per entry),
  so a small crafted file cannot exhaust memory.

Several backups or restores beside one another are serialized by an exclusive lock on their parent directory.
A restore replaces a store that no other process should have open: it is an offline operation.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import logging
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import zstandard

from agentmem_plugin.codec import MAX_DECOMPRESSED_SIZE, encode_json
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import (
    AgentMemError,
    IntegrityError,
    InvalidArgumentError,
    StorageError,
    StoreCorruptError,
)
from agentmem_plugin.validation import validate_namespace

if TYPE_CHECKING:
    from agentmem_plugin.manager import MemoryManager

__all__ = [
    "BACKUP_FORMAT",
    "BACKUP_VERSION",
    "MAX_BACKUP_SIZE",
    "STORE_BACKUP_FORMAT",
    "STORE_BACKUP_VERSION",
    "RestoreResult",
    "StoreBackupPart",
    "backup_store",
    "read_backup",
    "read_store_backup",
    "restore_store",
    "write_backup",
]

logger = logging.getLogger(__name__)

BACKUP_FORMAT = "agentmem-backup"
"""The ``format`` field of a backup's ``manifest.json``."""
BACKUP_VERSION = 1
"""The backup format version this package writes and reads."""
STORE_BACKUP_FORMAT = "agentmem-store-backup"
"""The ``format`` field of a store backup's ``agentmem-store.json``."""
STORE_BACKUP_VERSION = 1
"""The store backup format version this package writes and reads."""
MAX_BACKUP_SIZE = 4 * 1024**3
"""The most bytes the entries of one backup (or of all parts of a store backup) may decompress to: 4 GiB.

Pass ``max_size=`` to the readers for a larger one. Each entry (line) is also capped at 256 MiB
(:data:`agentmem_plugin.codec.MAX_DECOMPRESSED_SIZE`), and a backup holding more lines than its manifest's count
is refused as soon as the extra line arrives."""

_ENTRIES = "entries.jsonl.zst"
_MANIFEST = "manifest.json"
_STORE_MANIFEST = "agentmem-store.json"
_MAX_MANIFEST_SIZE = 16 * 1024 * 1024
_PART = re.compile(r"part-[0-9]{4,9}")
_TIERS = ("short_term", "long_term", "external")
_DATABASE = "memory.sqlite3"
# Files of a store that a restore replaces (the database and its journals, the archive) or drops because they
# derive from the replaced contents (the semantic index and its embedding cache, rebuilt on open). Anything
# else in the store directory is copied into the restored store.
_STORE_OWN = re.compile(
    r"(memory\.sqlite3|embeddings\.sqlite3)(-wal|-shm|-journal)?|archive|chroma"
)
_UNBOUNDED = 2**62
_CHUNK = 1024 * 1024
_MAX_LINE = MAX_DECOMPRESSED_SIZE + _CHUNK  # one entry: a value of up to 256 MiB, and its fields
_WRITE_BATCH = 500


class StoreBackupPart(NamedTuple):
    """The verified entries of one namespace and tier of a store backup (see :func:`read_store_backup`)."""

    namespace: str
    """The namespace, parts joined by ``/``; ``""`` is the default namespace."""
    tier: str
    """``"short_term"``, ``"long_term"`` or ``"external"``."""
    entries: list[MemoryEntry]
    """The entries, as they were backed up (expired ones included)."""


@dataclass(frozen=True)
class RestoreResult:
    """What :func:`restore_store` did."""

    restored: int
    """Entries written to the restored store."""
    skipped: int
    """Entries of the backup left out because they had expired."""
    replaced: int
    """Live entries the replaced store held (0 for a new store)."""


# -- paths -----------------------------------------------------------------------------------------------------


def _inside(root: Path, name: object, what: str) -> Path:
    """Return ``root / name`` for a plain file name that stays inside *root*; raise IntegrityError otherwise."""
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or os.path.isabs(name)
    ):
        raise IntegrityError(
            f"{what} of backup {str(root)!r} names {name!r}: only a file name inside the backup is allowed"
        )
    path = root / name
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise IntegrityError(
            f"{what} of backup {str(root)!r} names {name!r}, which leads outside the backup"
        )
    return path


def _read_manifest(root: Path, name: str, *, required: bool = True) -> Any:
    """Read and parse the JSON manifest *name* inside *root* (bounded in size); None when absent and optional."""
    path = _inside(root, name, "the manifest")
    try:
        size = path.stat().st_size
        if size > _MAX_MANIFEST_SIZE:
            raise IntegrityError(
                f"the manifest {str(path)!r} is {size} bytes: not a backup manifest"
            )
        return orjson.loads(path.read_bytes())
    except FileNotFoundError as exc:
        if not required:
            return None
        raise IntegrityError(f"{str(root)!r} has no backup manifest ({name})") from exc
    except (OSError, orjson.JSONDecodeError) as exc:
        raise IntegrityError(f"{str(root)!r} has no readable backup manifest: {exc}") from exc


def _is_backup(path: Path) -> bool:
    """Tell whether *path* is a directory holding one of our backups and nothing else."""
    try:
        manifest = _read_manifest(path, _MANIFEST)
        if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
            return False
        entries = manifest.get("entries_file", _ENTRIES)
        return {p.name for p in path.iterdir()} <= {_MANIFEST, str(entries)}
    except (AgentMemError, OSError):
        return False


def _is_store_backup(path: Path) -> bool:
    """Tell whether *path* is a directory holding one of our store backups and nothing else."""
    try:
        manifest = _read_manifest(path, _STORE_MANIFEST)
        if not isinstance(manifest, dict) or manifest.get("format") != STORE_BACKUP_FORMAT:
            return False
        for child in path.iterdir():
            if child.name == _STORE_MANIFEST:
                continue
            if not (_PART.fullmatch(child.name) and child.is_dir() and not child.is_symlink()):
                return False
            if not _is_backup(child):
                return False
        return True
    except (AgentMemError, OSError):
        return False


def _check_target(target: Path, *, ours: Any, kind: str) -> None:
    """Refuse a target that is a file or a symlink, or a non-empty directory that is not one of our *kind*."""
    if target.is_symlink():
        raise InvalidArgumentError(
            f"{str(target)!r} is a symbolic link; give a new or empty directory for the {kind}"
        )
    if not target.exists():
        return
    if not target.is_dir():
        raise InvalidArgumentError(
            f"{str(target)!r} exists and is not a directory: it is not an agentmem {kind}; choose a new path"
        )
    try:
        names = sorted(p.name for p in target.iterdir())
    except OSError as exc:
        raise StorageError(f"cannot read the directory {str(target)!r}: {exc}") from exc
    if names and not ours(target):
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise InvalidArgumentError(
            f"{str(target)!r} exists and is not an agentmem {kind} (it holds {shown}); nothing was changed: "
            "choose a new or empty directory"
        )


def _nested(a: Path, b: Path) -> bool:
    """Tell whether one of the two paths is inside the other (or they are the same), links resolved."""
    ra, rb = os.path.realpath(a), os.path.realpath(b)
    return os.path.commonpath([ra, rb]) in (ra, rb)


# -- staging and the atomic swap -------------------------------------------------------------------------------

_STAGING_SUFFIX = ".agentmem-tmp"
_OLD_SUFFIX = ".agentmem-old"


def _staging_name(target: Path, suffix: str = _STAGING_SUFFIX) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}{suffix}")


def _leftovers(target: Path, suffix: str) -> list[Path]:
    pattern = re.compile(rf"\.{re.escape(target.name)}\.[0-9a-f]{{8}}{re.escape(suffix)}")
    try:
        return sorted(p for p in target.parent.iterdir() if pattern.fullmatch(p.name))
    except OSError:
        return []


@contextlib.contextmanager
def _locked_beside(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on *target*'s parent directory (created when missing); tidy up leftovers first.

    Under the lock no other backup or restore beside *target* runs, so staging directories left by a killed
    one can be removed, and a swap interrupted between its two renames (platforms without an atomic exchange)
    is undone.
    """
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(parent, os.O_RDONLY)
    except OSError as exc:
        raise StorageError(f"cannot use the directory {str(parent)!r}: {exc}") from exc
    try:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        olds = _leftovers(target, _OLD_SUFFIX)
        if olds and not target.exists() and not target.is_symlink():
            logger.warning("putting back %s, left aside by an interrupted swap", olds[-1])
            os.rename(olds[-1], target)
        elif olds:
            logger.warning(
                "%s hold(s) what an interrupted swap replaced; remove them by hand", olds
            )
        for leftover in _leftovers(target, _STAGING_SUFFIX):
            logger.info("removing %s, left by an interrupted backup or restore", leftover)
            shutil.rmtree(leftover, ignore_errors=True)
        yield
    finally:
        os.close(fd)  # releases the lock


def _libc_exchange() -> Any:
    """Return a function exchanging two paths atomically, or None when this platform has none."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name, use_errno=True)
    except OSError:  # pragma: no cover - no C library to load
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        func = libc.renameat2
        func.argtypes = [
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_uint,
        ]
        at_fdcwd, rename_exchange = -100, 2
        return lambda a, b: func(at_fdcwd, a, at_fdcwd, b, rename_exchange)
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):  # pragma: no cover - macOS
        func = libc.renamex_np
        func.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        rename_swap = 2
        return lambda a, b: func(a, b, rename_swap)
    return None  # pragma: no cover - other platforms


_EXCHANGE: Any = _libc_exchange()


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange the directories *a* and *b*; False when the platform or file system cannot."""
    import errno

    if _EXCHANGE is None:
        return False  # pragma: no cover - other platforms
    if _EXCHANGE(os.fsencode(a), os.fsencode(b)) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False  # pragma: no cover - a file system without exchange
    raise OSError(err, os.strerror(err), str(b))


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _swap_in(staging: Path, target: Path) -> None:
    """Put the complete directory *staging* in the place of *target*, atomically; remove what it replaced.

    Raises:
        OSError: the swap failed (*target* is as it was; *staging* is left for the caller to remove).

    """
    _fsync_dir(staging)
    if target.exists() and any(target.iterdir()):
        if _exchange(staging, target):
            _fsync_dir(target.parent)
            shutil.rmtree(staging, ignore_errors=True)  # now the replaced contents
            return
        old = _staging_name(target, _OLD_SUFFIX)  # pragma: no cover - no atomic exchange here
        os.rename(target, old)  # pragma: no cover
        os.rename(staging, target)  # pragma: no cover
        _fsync_dir(target.parent)  # pragma: no cover
        shutil.rmtree(old, ignore_errors=True)  # pragma: no cover
        return  # pragma: no cover
    os.replace(staging, target)  # no target, or an empty directory: one rename
    _fsync_dir(target.parent)


# -- one backup --------------------------------------------------------------------------------------------------


def _aead(key: str | bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from agentmem_plugin.tiers.archive import parse_key

    return AESGCM(parse_key(key))


def _aad(name: str) -> bytes:
    return f"{BACKUP_FORMAT}:v{BACKUP_VERSION}:{name}".encode()


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _write_backup_files(
    folder: Path, entries: Iterable[MemoryEntry], *, name: str, key: str | bytes | None
) -> dict[str, Any]:
    """Write a backup's two files into the new directory *folder*; return its manifest."""
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
    folder.mkdir()
    (folder / _ENTRIES).write_bytes(blob)
    (folder / _MANIFEST).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    for file in (_ENTRIES, _MANIFEST):
        _fsync_file(folder / file)
    return manifest


def write_backup(
    path: str | PathLike[str],
    entries: Iterable[MemoryEntry],
    *,
    name: str = "",
    key: str | bytes | None = None,
) -> dict[str, Any]:
    """Write *entries* as a backup directory at *path*; return the manifest.

    The backup is written into a staging directory beside *path* and swapped in atomically: a crash leaves the
    previous backup at *path* or the new one. Only a new or empty directory, or one of our own backups, is
    replaced.

    Args:
        path: The backup directory (its parent is created when missing).
        entries: What to back up.
        name: A label kept in the manifest (and bound to the ciphertext when encrypted).
        key: A 256-bit key (as for the archive: 64 hex digits, urlsafe base64 or 32 bytes): the entries are then
            encrypted with AES-256-GCM; the manifest (name, count, time) stays readable. Back up an encrypted
            archive with its key, or its contents land on disk in the clear.

    Raises:
        InvalidArgumentError: *path* exists and is a file, a symbolic link, or a non-empty directory that is not
            one of our backups (nothing is changed); a malformed key.
        SerializationError: an entry cannot be encoded (nothing was written).
        StorageError: the backup could not be written (a previous backup at *path* is intact).

    Example:
        >>> import tempfile, os
        >>> folder = os.path.join(tempfile.mkdtemp(), "notes-backup")
        >>> write_backup(folder, [MemoryEntry("a", 1)], name="notes")["count"]
        1

    """
    target = Path(path)
    _check_target(target, ours=_is_backup, kind="backup")
    entries = list(entries)
    with _locked_beside(target):
        _check_target(
            target, ours=_is_backup, kind="backup"
        )  # again, now that nobody else writes here
        staging = _staging_name(target)
        try:
            manifest = _write_backup_files(staging, entries, name=name, key=key)
            _swap_in(staging, target)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise StorageError(f"could not write the backup {str(target)!r}: {exc}") from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return manifest


def _stream_lines(blob: bytes, *, limit: int, count: int, where: str) -> Iterator[bytes]:
    """Yield the lines of the zstd frame *blob*, inflating at most *limit* bytes and *count* lines in all."""
    try:
        declared = zstandard.frame_content_size(blob)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"backup {where} is not a zstandard frame: {exc}") from exc
    if declared > limit:
        raise IntegrityError(
            f"backup {where} declares {declared} bytes of entries, more than the limit of {limit} bytes"
        )
    produced, lines, partial = 0, 0, bytearray()
    try:
        with zstandard.ZstdDecompressor().stream_reader(blob) as reader:
            while chunk := reader.read(_CHUNK):
                produced += len(chunk)
                if produced > limit:
                    raise IntegrityError(
                        f"backup {where} decompresses to more than {limit} bytes (the limit); refused"
                    )
                start = 0
                while (end := chunk.find(b"\n", start)) >= 0:
                    lines += 1
                    if lines > count:
                        raise IntegrityError(
                            f"backup {where} holds more entries than its manifest says ({count})"
                        )
                    if partial:
                        partial += chunk[start:end]
                        yield bytes(partial)
                        partial.clear()
                    else:
                        yield chunk[start:end]
                    start = end + 1
                partial += chunk[start:]
                if len(partial) > _MAX_LINE:
                    raise IntegrityError(
                        f"backup {where} holds an entry larger than {_MAX_LINE} bytes; refused"
                    )
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"backup {where} holds a corrupt zstandard frame: {exc}") from exc
    if partial:
        yield bytes(
            partial
        )  # a last line without its newline: decoded (and counted) like the others


def _read_one(
    path: str | PathLike[str], *, key: str | bytes | None, max_size: int
) -> tuple[dict[str, Any], list[MemoryEntry], int]:
    """Read and verify one backup; return its manifest, entries and how many bytes they inflated to."""
    source = Path(path)
    where = repr(str(source))
    if not source.is_dir():
        raise IntegrityError(f"no backup at {where}: not a directory")
    manifest = _read_manifest(source, _MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise IntegrityError(f"{where} is not an agentmem backup")
    if manifest.get("version") != BACKUP_VERSION:
        raise IntegrityError(
            f"{where} is backup version {manifest.get('version')!r}; this version reads {BACKUP_VERSION}"
        )
    count = manifest.get("count")
    if type(count) is not int or count < 0:
        raise IntegrityError(f"the manifest of backup {where} has a bad count: {count!r}")
    file = _inside(source, manifest.get("entries_file"), "the entries_file")
    try:
        blob = file.read_bytes()
    except OSError as exc:
        raise IntegrityError(f"the entries of backup {where} cannot be read: {exc}") from exc
    if hashlib.sha256(blob).hexdigest() != manifest.get("sha256"):
        raise IntegrityError(f"backup {where} fails its checksum (damaged or truncated)")
    if manifest.get("encryption") is not None:
        if key is None:
            raise IntegrityError(
                f"backup {where} is encrypted ({manifest['encryption']}): pass its key "
                "(the archive key, e.g. $AGENTMEM_ARCHIVE_KEY)"
            )
        from cryptography.exceptions import InvalidTag

        try:
            blob = _aead(key).decrypt(blob[:12], blob[12:], _aad(str(manifest.get("name", ""))))
        except (InvalidTag, ValueError):
            raise IntegrityError(
                f"backup {where} does not open with this key (wrong key)"
            ) from None
    entries: list[MemoryEntry] = []
    size = 0
    try:
        for line in _stream_lines(blob, limit=max_size, count=count, where=where):
            size += len(line) + 1
            if line:
                entries.append(MemoryEntry.from_dict(orjson.loads(line)))
    except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
        raise IntegrityError(f"backup {where} holds an invalid entry: {exc}") from exc
    except AgentMemError as exc:
        if isinstance(exc, IntegrityError):
            raise
        raise IntegrityError(f"backup {where} holds an invalid entry: {exc}") from exc
    if len(entries) != count:
        raise IntegrityError(
            f"backup {where} holds {len(entries)} entries; its manifest says {count}"
        )
    return manifest, entries, size


def _check_max_size(max_size: object) -> int:
    if type(max_size) is not int or max_size <= 0:
        raise InvalidArgumentError(f"max_size must be a positive int (bytes), got {max_size!r}")
    return max_size


def read_backup(
    path: str | PathLike[str],
    *,
    key: str | bytes | None = None,
    max_size: int = MAX_BACKUP_SIZE,
) -> tuple[dict[str, Any], list[MemoryEntry]]:
    """Read and fully verify the backup at *path*; return its manifest and entries.

    Args:
        path: The backup directory.
        key: The key an encrypted backup was written with (ignored for a plain one).
        max_size: The most bytes the entries may decompress to (default :data:`MAX_BACKUP_SIZE`).

    Raises:
        IntegrityError: not a backup, an unknown version, a manifest naming a path outside the backup, a checksum
            or count mismatch, an invalid entry, entries inflating beyond *max_size* (or one beyond 256 MiB),
            an encrypted backup without its key, or the wrong key.
        InvalidArgumentError: *max_size* is not a positive int.

    Example:
        >>> import tempfile, os
        >>> folder = os.path.join(tempfile.mkdtemp(), "b")
        >>> _ = write_backup(folder, [MemoryEntry("a", 1)])
        >>> [e.key for e in read_backup(folder)[1]]
        ['a']

    """
    manifest, entries, _ = _read_one(path, key=key, max_size=_check_max_size(max_size))
    return manifest, entries


# -- a whole store -----------------------------------------------------------------------------------------------


def _namespace(value: object, where: str) -> str:
    """Return the namespace a manifest names, checked by the shared check (a bad one: a damaged backup)."""
    if not isinstance(value, str):
        raise IntegrityError(f"the manifest of {where} names a bad namespace: {value!r}")
    try:
        return validate_namespace(value)
    except InvalidArgumentError:
        raise IntegrityError(f"the manifest of {where} names a bad namespace: {value!r}") from None


def read_store_backup(
    path: str | PathLike[str],
    *,
    key: str | bytes | None = None,
    max_size: int = MAX_BACKUP_SIZE,
) -> list[StoreBackupPart]:
    """Read and fully verify a store backup (or a single :func:`write_backup` backup); return its parts.

    A single backup (``MemoryManager.backup_memory``) reads as one part: long-term of the default namespace.

    Args:
        path: The backup directory.
        key: The key it was encrypted with (``$AGENTMEM_ARCHIVE_KEY`` for ``agentmem backup``).
        max_size: The most bytes all parts' entries may decompress to together (default
            :data:`MAX_BACKUP_SIZE`).

    Raises:
        IntegrityError: not a backup, a damaged manifest or part, a part or file outside the backup, a count
            mismatch, or anything :func:`read_backup` refuses.
        InvalidArgumentError: *max_size* is not a positive int.

    Example:
        >>> import tempfile, os
        >>> folder = os.path.join(tempfile.mkdtemp(), "b")
        >>> _ = write_backup(folder, [MemoryEntry("a", 1)])
        >>> [(p.namespace, p.tier, len(p.entries)) for p in read_store_backup(folder)]
        [('', 'long_term', 1)]

    """
    limit = _check_max_size(max_size)
    source = Path(path)
    where = repr(str(source))
    if not source.is_dir():
        raise IntegrityError(f"no backup at {where}: not a directory")
    manifest = _read_manifest(source, _STORE_MANIFEST, required=False)
    if manifest is None:
        _, entries, _ = _read_one(source, key=key, max_size=limit)
        return [StoreBackupPart("", "long_term", entries)]
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_BACKUP_FORMAT:
        raise IntegrityError(f"{where} is not an agentmem store backup")
    if manifest.get("version") != STORE_BACKUP_VERSION:
        raise IntegrityError(
            f"{where} is store backup version {manifest.get('version')!r}; "
            f"this version reads {STORE_BACKUP_VERSION}"
        )
    listed = manifest.get("parts")
    if not isinstance(listed, list):
        raise IntegrityError(f"the manifest of backup {where} is damaged: no list of parts")
    parts: list[StoreBackupPart] = []
    seen: set[str] = set()
    for part in listed:
        if not isinstance(part, dict):
            raise IntegrityError(f"the manifest of backup {where} names a bad part: {part!r:.200}")
        folder = part.get("dir")
        tier = part.get("tier")
        if tier not in _TIERS or folder in seen:
            raise IntegrityError(f"the manifest of backup {where} names a bad part: {part!r:.200}")
        directory = _inside(source, folder, "a part")
        seen.add(str(folder))
        _, entries, size = _read_one(directory, key=key, max_size=limit)
        limit -= size
        if limit <= 0:
            raise IntegrityError(
                f"backup {where} decompresses to more than {max_size} bytes (the limit); refused"
            )
        if len(entries) != part.get("count"):
            raise IntegrityError(
                f"part {folder!r} of {where} holds {len(entries)} entries; the manifest says {part.get('count')!r}"
            )
        parts.append(StoreBackupPart(_namespace(part.get("namespace"), where), str(tier), entries))
    return parts


def _open_store(path: Path, archive_key: str | bytes | None) -> MemoryManager:
    from agentmem_plugin.manager import MemoryManager

    return MemoryManager(
        short_term_limit=_UNBOUNDED,
        long_term_limit=_UNBOUNDED,
        storage_path=path,
        archive_key=archive_key,
        enable_logging=False,
        embedder=None,  # entries only: a manager opened with an embedder rebuilds the index
    )


def _tiers_of(view: MemoryManager) -> list[tuple[str, Any]]:
    return [
        ("short_term", view.short_tier),
        ("long_term", view.long_tier),
        ("external", view.external_tier),
    ]


def _require_store(path: Path) -> None:
    if not (path / _DATABASE).is_file():
        raise StorageError(f"no store at {str(path)!r}: it holds no {_DATABASE}")


def backup_store(
    storage_path: str | PathLike[str],
    target: str | PathLike[str],
    *,
    key: str | bytes | None = None,
    archive_key: str | bytes | None = None,
) -> dict[str, Any]:
    """Back up every namespace and tier of the store at *storage_path* into the directory *target*.

    The backup is complete and verified-readable before it replaces anything: it is written into a staging
    directory beside *target* and swapped in atomically, so a crash (even ``kill -9``) leaves the previous
    backup at *target* or the new one. The semantic index is not backed up (it derives from long-term memory
    and is rebuilt on open).

    Args:
        storage_path: A ``MemoryManager(storage_path=...)`` directory.
        target: The backup directory: new, empty, or one of our store backups (replaced).
        key: Encrypt every part with this 256-bit key (AES-256-GCM); :func:`restore_store` then needs it.
        archive_key: The key of the store's encrypted archive (default ``$AGENTMEM_ARCHIVE_KEY``).

    Returns:
        The manifest written to ``agentmem-store.json`` (``count`` entries in ``parts``).

    Raises:
        InvalidArgumentError: *target* exists and is a file, a symbolic link or a directory that is not one of
            our store backups, or it is inside the store (or the store inside it); nothing is changed.
        StorageError: no store at *storage_path*, or the backup could not be written (a previous backup is
            intact).

    Example:
        >>> import tempfile, os
        >>> from agentmem_plugin.manager import MemoryManager
        >>> root = tempfile.mkdtemp()
        >>> with MemoryManager(storage_path=os.path.join(root, "store")) as mm:
        ...     mm.store("diet", "vegetarian", memory_type="long_term")
        >>> backup_store(os.path.join(root, "store"), os.path.join(root, "backup"))["count"]
        1

    """
    source, dest = Path(storage_path), Path(target)
    _require_store(source)
    if _nested(source, dest):
        raise InvalidArgumentError(
            f"the backup {str(dest)!r} would be inside the store {str(source)!r} (or hold it); "
            "choose a directory outside the store"
        )
    _check_target(dest, ours=_is_store_backup, kind="store backup")
    with _locked_beside(dest):
        _check_target(dest, ours=_is_store_backup, kind="store backup")
        staging = _staging_name(dest)
        try:
            staging.mkdir()
            parts: list[dict[str, Any]] = []
            with _open_store(source, archive_key) as manager:
                for ns in manager.namespaces():
                    for tier_name, tier in _tiers_of(manager.with_namespace(ns)):
                        entries = tier.scan()
                        if not entries:
                            continue
                        folder = f"part-{len(parts):04d}"
                        _write_backup_files(
                            staging / folder,
                            entries,
                            name=f"{ns or '(default)'}:{tier_name}",
                            key=key,
                        )
                        parts.append(
                            {
                                "namespace": ns,
                                "tier": tier_name,
                                "dir": folder,
                                "count": len(entries),
                            }
                        )
            manifest = {
                "format": STORE_BACKUP_FORMAT,
                "version": STORE_BACKUP_VERSION,
                "source": os.path.realpath(source),
                "created_at": time.time(),
                "count": sum(p["count"] for p in parts),
                "parts": parts,
            }
            (staging / _STORE_MANIFEST).write_bytes(
                orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
            )
            _fsync_file(staging / _STORE_MANIFEST)
            _swap_in(staging, dest)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, AgentMemError):
                raise
            raise StorageError(f"could not write the backup {str(dest)!r}: {exc}") from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    logger.info(
        "backed up %d entries (%d parts) of %s to %s", manifest["count"], len(parts), source, dest
    )
    return manifest


def _store_state(path: Path) -> str:
    """Return ``"new"`` (missing or empty) or ``"store"``; raise for a path that is not a store."""
    if path.is_symlink() and not path.exists():
        raise InvalidArgumentError(f"{str(path)!r} is a dangling symbolic link, not a store")
    if not path.exists():
        return "new"
    if not path.is_dir():
        raise StoreCorruptError(
            f"{str(path)!r} is a file, not a store directory; it was left untouched"
        )
    if (path / _DATABASE).is_file():
        return "store"
    if any(path.iterdir()):
        raise StoreCorruptError(
            f"{str(path)!r} is a directory with other files and no {_DATABASE}: not a store; it was left "
            "untouched (a restore needs a store, or a new or empty directory)"
        )
    return "new"


def restore_store(
    backup: str | PathLike[str],
    storage_path: str | PathLike[str],
    *,
    key: str | bytes | None = None,
    archive_key: str | bytes | None = None,
    force: bool = False,
) -> RestoreResult:
    """Replace the store at *storage_path* by the contents of *backup*, all at once; create it when missing.

    The backup is verified completely first (:func:`read_store_backup`). The new store (every namespace,
    short-term, long-term and archive) is then built in a staging directory beside *storage_path* and swapped
    in atomically, so a crash at any moment (even ``kill -9``) leaves the old store or the restored one, and
    either opens. The replaced store's semantic index goes with it; a manager opened with an embedder rebuilds
    the index from the restored long-term memory. Files in the store directory that are not part of a store
    are carried over. Expired entries are not restored. No other process should have the store open.

    Args:
        backup: A directory written by :func:`backup_store`, or by :func:`write_backup`
            (``MemoryManager.backup_memory``), whose entries go to long-term of the default namespace.
        storage_path: The store directory (a symbolic link is followed).
        key: The key the backup was encrypted with.
        archive_key: The archive key of the restored store (default ``$AGENTMEM_ARCHIVE_KEY``; None and no
            variable: a plain archive); also opens the store being replaced.
        force: Replace a store that holds entries; without it such a store is refused.

    Raises:
        IntegrityError: the backup is damaged, foreign, or encrypted and *key* is missing or wrong.
        InvalidArgumentError: the store holds entries and *force* is False, or the backup is inside the store
            (or the store inside the backup); nothing is changed.
        StoreCorruptError: *storage_path* is a file, or a directory that is not a store (left untouched).
        StorageError: the store could not be written (the old one is intact).

    Example:
        >>> import tempfile, os
        >>> from agentmem_plugin.manager import MemoryManager
        >>> root = tempfile.mkdtemp()
        >>> with MemoryManager(storage_path=os.path.join(root, "store")) as mm:
        ...     mm.store("diet", "vegetarian", memory_type="long_term")
        >>> _ = backup_store(os.path.join(root, "store"), os.path.join(root, "backup"))
        >>> restore_store(os.path.join(root, "backup"), os.path.join(root, "copy")).restored
        1

    """
    if not isinstance(force, bool):
        raise InvalidArgumentError(f"force must be a bool, got {force!r}")
    source = Path(backup)
    target = Path(os.path.realpath(storage_path))
    if _nested(source, target):
        raise InvalidArgumentError(
            f"the backup {str(source)!r} is inside the store {str(target)!r} (or holds it): a restore would "
            "replace its own source; move the backup out first"
        )
    parts = read_store_backup(source, key=key)
    _store_state(target)
    with _locked_beside(target):
        state = _store_state(target)
        held = 0
        if state == "store":
            with _open_store(target, archive_key) as current:
                held = sum(
                    tier.count()
                    for ns in current.namespaces()
                    for _, tier in _tiers_of(current.with_namespace(ns))
                )
            if held and not force:
                raise InvalidArgumentError(
                    f"the store at {str(target)!r} holds {held} entries; restore replaces them all: "
                    "add --force (force=True)"
                )
        staging = _staging_name(target)
        try:
            restored, skipped = _build_store(staging, parts, archive_key)
            if state == "store":
                _carry_over(target, staging)
            _swap_in(staging, target)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, AgentMemError):
                raise
            raise StorageError(f"could not restore into {str(target)!r}: {exc}") from exc
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _forget_index_client(target)
    logger.info("restored %d entries from %s into %s (replaced %d)", restored, source, target, held)
    return RestoreResult(restored=restored, skipped=skipped, replaced=held)


def _forget_index_client(store: Path) -> None:
    """Forget this process's Chroma client of the replaced store's index (it would write the swapped-out files)."""
    from agentmem_plugin.tiers.chroma import forget_client

    forget_client(store / "chroma")


def _build_store(
    staging: Path, parts: list[StoreBackupPart], archive_key: str | bytes | None
) -> tuple[int, int]:
    """Write *parts* into a new store at *staging*; return (restored, skipped as expired)."""
    staging.mkdir()
    restored = skipped = 0
    with _open_store(staging, archive_key) as manager:
        now = manager.clock()
        for part in parts:
            live = [e for e in part.entries if not e.is_expired(now)]
            skipped += len(part.entries) - len(live)
            view = manager.with_namespace(part.namespace) if part.namespace else manager
            for start in range(0, len(live), _WRITE_BATCH):
                batch = live[start : start + _WRITE_BATCH]
                view.store_many(batch, memory_type=part.tier)
                restored += len(batch)
    return restored, skipped


def _carry_over(store: Path, staging: Path) -> None:
    """Copy what the user keeps in the store directory (anything not part of a store) into *staging*."""
    for child in store.iterdir():
        if _STORE_OWN.fullmatch(child.name) or (staging / child.name).exists():
            continue
        logger.info("carrying %s over into the restored store", child)
        if child.is_dir() and not child.is_symlink():
            shutil.copytree(child, staging / child.name, symlinks=True)
        else:
            shutil.copy2(child, staging / child.name, follow_symlinks=False)
