"""`AgentMemStore` (JSON values) and `AgentMemByteStore` (bytes): LangChain key-value stores over a MemoryManager."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator, Iterator, Sequence
from os import PathLike
from typing import Any, Generic, TypeVar

from agentmem_plugin import MemoryManager
from agentmem_plugin.errors import IntegrityError, SerializationError
from langchain_core.runnables.config import run_in_executor
from langchain_core.stores import BaseStore

from langchain_agentmem._common import (
    Namespace,
    check_keys,
    check_memory_type,
    open_manager,
)

__all__ = ["AgentMemByteStore", "AgentMemStore"]

V = TypeVar("V")

_BYTES_FIELD = "base64"
"""A byte value is stored as the JSON value ``{"base64": "<standard base64 of the bytes>"}``."""


class _ManagerStore(BaseStore[str, V], Generic[V]):
    """The shared body of the two stores: batches over a MemoryManager; subclasses encode and decode values."""

    def __init__(
        self,
        *,
        manager: MemoryManager | None = None,
        storage_path: str | PathLike[str] | None = None,
        namespace: Namespace | None = None,
        memory_type: str = "long_term",
    ) -> None:
        self.memory_type = check_memory_type(memory_type)
        self._manager, self._owns_manager = open_manager(
            manager=manager,
            storage_path=storage_path,
            namespace=namespace,
            owner=type(self).__name__,
        )

    @property
    def manager(self) -> MemoryManager:
        """The MemoryManager (namespace view) holding the values."""
        return self._manager

    def _encode(self, key: str, value: V) -> Any:
        raise NotImplementedError

    def _decode(self, key: str, stored: Any) -> V:
        raise NotImplementedError

    def mget(self, keys: Sequence[str]) -> list[V | None]:
        """Return the value of each key, None where it is missing (or expired), in the order given.

        Raises:
            InvalidKeyError: a key that is not a non-empty str of at most 1024 characters.

        """
        checked = check_keys(keys)
        # one batch read per tier: no promotion (a read is not a write), no per-process cache (fresh across processes)
        entries = self._manager.get_many(checked)
        return [
            None if e is None else self._decode(k, e.value)
            for k, e in zip(checked, entries, strict=True)
        ]

    def mset(self, key_value_pairs: Sequence[tuple[str, V]]) -> None:
        """Set every pair in one batch (one transaction); a later pair for the same key wins.

        Raises:
            InvalidKeyError, SerializationError: a bad key or value; nothing was stored.

        """
        pairs = list(key_value_pairs)
        keys = check_keys([key for key, _ in pairs])
        items = [
            (key, self._encode(key, value)) for key, (_, value) in zip(keys, pairs, strict=True)
        ]
        if items:
            self._manager.store_many(items, self.memory_type)

    def mdelete(self, keys: Sequence[str]) -> None:
        """Delete *keys* (missing ones are ignored)."""
        for key in check_keys(keys):
            self._manager.delete(key)

    def _keys(self, prefix: str | None) -> list[str]:
        return sorted(k for k in self._manager.keys() if prefix is None or k.startswith(prefix))

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        """Yield the keys of this store's namespace (every tier), sorted, optionally only those starting with *prefix*."""
        yield from self._keys(prefix)

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        """Async :meth:`yield_keys`: the key listing runs in a worker thread, once."""
        for key in await run_in_executor(None, self._keys, prefix):
            yield key

    def close(self) -> None:
        """Close the manager if this store created it (a manager passed in is left open)."""
        if self._owns_manager:
            self._manager.close()

    def __enter__(self) -> _ManagerStore[V]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AgentMemStore(_ManagerStore[Any]):
    """A LangChain ``BaseStore[str, Any]`` of JSON values kept in a MemoryManager.

    Values must be JSON-serializable and come back as JSON does (tuples as lists). Each store sees only the
    keys of its namespace. ``amget``/``amset``/``amdelete`` are LangChain's defaults (the sync method in a worker
    thread); ``ayield_keys`` lists the keys in a worker thread once.

    Args:
        manager: Use this MemoryManager (or its namespace view) instead of creating one; not closed by
            :meth:`close`. A manager with an embedder embeds long-term values: prefer one without.
        storage_path: Directory of a persistent store (a new manager, no embedder); None keeps it in memory.
        namespace: Keep the keys in this namespace (``"cache/llm"`` or ``("cache", "llm")``).
        memory_type: The tier values are written to (``"long_term"`` by default: durable, never dropped for
            capacity; ``"short_term"`` and ``"external"`` also work, reads find a key in any tier).

    Raises:
        InvalidArgumentError: a bad namespace or memory_type, both manager and storage_path, or a manager
            that is not a MemoryManager.

    Example:
        >>> store = AgentMemStore(namespace="settings")
        >>> store.mset([("theme", {"dark": True}), ("lang", "en")])
        >>> store.mget(["theme", "missing"])
        [{'dark': True}, None]
        >>> sorted(store.yield_keys(prefix="th"))
        ['theme']
        >>> store.close()

    """

    def _encode(self, key: str, value: Any) -> Any:
        # The manager checks that the value is JSON (its SerializationError names the key).
        return value

    def _decode(self, key: str, stored: Any) -> Any:
        return stored


class AgentMemByteStore(_ManagerStore[bytes]):
    r"""A LangChain ``ByteStore`` (``BaseStore[str, bytes]``) kept in a MemoryManager.

    Bytes are stored as the JSON value ``{"base64": "..."}``, so any bytes round-trip exactly (no text decoding
    involved). Useful, for example, as the cache of ``CacheBackedEmbeddings``. Each store sees only the keys of
    its namespace; give it its own namespace so that no other writer puts non-byte values there.

    Args:
        manager: Use this MemoryManager (or its namespace view) instead of creating one; not closed by
            :meth:`close`. A manager with an embedder would embed the base64 text: prefer one without.
        storage_path: Directory of a persistent store (a new manager, no embedder); None keeps it in memory.
        namespace: Keep the keys in this namespace.
        memory_type: The tier values are written to (default ``"long_term"``).

    Raises:
        InvalidArgumentError: as :class:`AgentMemStore`.

    Example:
        >>> store = AgentMemByteStore(namespace="blobs")
        >>> store.mset([("k", b"\x00\xffbinary")])
        >>> store.mget(["k"])
        [b'\x00\xffbinary']
        >>> store.close()

    """

    def _encode(self, key: str, value: bytes) -> Any:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise SerializationError(
                f"{type(self).__name__} stores bytes; the value of key {key!r} is a {type(value).__name__}"
            )
        return {_BYTES_FIELD: base64.b64encode(bytes(value)).decode("ascii")}

    def _decode(self, key: str, stored: Any) -> bytes:
        text = stored.get(_BYTES_FIELD) if isinstance(stored, dict) and len(stored) == 1 else None
        if not isinstance(text, str):
            raise IntegrityError(
                f"key {key!r} does not hold a value written by {type(self).__name__} "
                f"(expected {{'{_BYTES_FIELD}': '...'}}, got {stored!r:.60})"
            )
        try:
            return base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise IntegrityError(f"key {key!r} holds invalid base64: {exc}") from exc
