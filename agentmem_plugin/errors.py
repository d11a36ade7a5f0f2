"""The one error tree of agentmem_plugin.

Every exception the package raises on purpose derives from :class:`AgentMemError`, and each subclass also
inherits the builtin a caller would naturally catch, so ``except KeyError`` and ``except AgentMemError`` both
work::

    AgentMemError
    ├── InvalidKeyError            (ValueError)   key is not a non-empty str of at most MAX_KEY_LENGTH chars
    ├── InvalidArgumentError       (ValueError)   a bad ttl, capacity, priority, memory_type, tag, ...
    ├── KeyNotFoundError           (KeyError)     a key that must exist does not (or has expired)
    ├── SerializationError         (TypeError)    a value that cannot be stored as JSON
    ├── IntegrityError             (ValueError)   stored bytes that fail their checksum or cannot be decoded
    ├── EmbeddingError             (ValueError)   an embedder returned bad vectors, or a store was indexed
    │                                             with another model
    ├── MissingDependencyError     (ImportError)  an optional extra is not installed
    ├── AccessDeniedError          (PermissionError)
    └── StorageError               (OSError)      a backend failed; nothing was changed
        ├── StoreCorruptError                     a file that is not a valid store of ours
        ├── SchemaVersionError                    a store written by a newer version of this package
        ├── ReadOnlyStoreError                    a location that cannot be written
        ├── IndexInUseError                       a local semantic index another process has open
        └── BackendUnavailableError    (ConnectionError) a server (Redis, PostgreSQL, Chroma, S3) cannot be
                                                         reached or went away mid-operation

Messages name the bad value and, where there is one, what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AccessDeniedError",
    "AgentMemError",
    "BackendUnavailableError",
    "EmbeddingError",
    "IndexInUseError",
    "IntegrityError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "KeyNotFoundError",
    "MissingDependencyError",
    "ReadOnlyStoreError",
    "SchemaVersionError",
    "SerializationError",
    "StorageError",
    "StoreCorruptError",
]


class AgentMemError(Exception):
    """Root of every error raised by agentmem_plugin."""


class InvalidKeyError(AgentMemError, ValueError):
    """A key that is not a non-empty ``str`` of at most ``MAX_KEY_LENGTH`` characters without NUL."""


class InvalidArgumentError(AgentMemError, ValueError):
    """An argument outside its documented domain (ttl, capacity, priority, memory_type, tags, ...)."""


class KeyNotFoundError(AgentMemError, KeyError):
    """A key that was required to exist is missing or has expired."""

    def __str__(self) -> str:
        # KeyError.__str__ repr()s its argument; keep the readable message instead.
        return str(self.args[0]) if self.args else ""


class SerializationError(AgentMemError, TypeError):
    """A value (or metadata) that cannot be encoded as JSON."""


class IntegrityError(AgentMemError, ValueError):
    """Stored bytes that fail their integrity check or cannot be decoded."""


class EmbeddingError(AgentMemError, ValueError):
    """Vectors of the wrong shape or with NaN/inf, or a store indexed with a different embedding model."""


class MissingDependencyError(AgentMemError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class AccessDeniedError(AgentMemError, PermissionError):
    """An agent used a memory it has no (or no longer any) access to."""


class StorageError(AgentMemError, OSError):
    """A storage backend failed; the operation was rolled back and nothing changed."""


class StoreCorruptError(StorageError):
    """The path holds a file that is not a valid store (it is left untouched)."""


class SchemaVersionError(StorageError):
    """The store was written by a newer version of agentmem_plugin than this one."""


class ReadOnlyStoreError(StorageError):
    """The store's location cannot be written."""


class IndexInUseError(StorageError):
    """The semantic index beside a store is open in another process (a local Chroma index has one user).

    Share it through a Chroma server (``semantic="http://host:8000"``) to search by meaning from several
    processes; with ``embedder="auto"`` the other processes search by keyword instead (logged).
    """


class BackendUnavailableError(StorageError, ConnectionError):
    """A server-backed tier cannot reach its server; nothing was acknowledged. Messages never carry credentials."""
