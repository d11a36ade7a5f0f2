"""Storage settings that reopen a MemoryManager: what the memories serialize instead of a live manager.

A LlamaIndex memory travels as data (``to_dict``/``from_dict``, pickle, a workflow ``Context``'s state), so the
memories of this package keep, as a plain dict, the settings their manager was opened from (``connection``) and
reconnect from them when rebuilt. Managers opened that way are shared within a process (one per settings, so a
``FunctionAgent`` reusing its ``Context`` over many turns does not open a database per turn) and closed when the
interpreter exits.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
from collections.abc import Mapping

from agentmem_plugin.embeddings import DEFAULT_MODEL_NAME
from agentmem_plugin.errors import InvalidArgumentError, SerializationError
from agentmem_plugin.manager import MemoryManager

__all__ = [
    "CONNECTION_KEYS",
    "check_connection",
    "connect",
    "connection_of",
    "open_manager",
    "unserializable",
]

logger = logging.getLogger(__name__)

CONNECTION_KEYS: tuple[str, ...] = (
    "storage_path",
    "namespace",
    "embedder",
    "short_term",
    "long_term",
    "semantic",
)
"""The settings a ``connection`` dict may hold: ``MemoryManager`` arguments (``embedder`` only ``"default"``)."""

_OPEN: dict[str, MemoryManager] = {}
_OPEN_LOCK = threading.Lock()


def check_connection(connection: object) -> dict[str, str] | None:
    """Return a copy of a ``connection`` dict without its None values, after checking it; None stays None.

    Raises:
        InvalidArgumentError: not a dict, an unknown key, a value that is not a str, an ``embedder`` other than
            ``"default"``, or settings that name no durable storage (no ``storage_path`` and no ``long_term``).

    """
    if connection is None:
        return None
    if not isinstance(connection, Mapping):
        raise InvalidArgumentError(
            f"connection must be a dict of MemoryManager settings, got {connection!r:.80}"
        )
    unknown = sorted(str(k) for k in connection if k not in CONNECTION_KEYS)
    if unknown:
        raise InvalidArgumentError(
            f"unknown connection settings {unknown}; use {', '.join(CONNECTION_KEYS)}"
        )
    out: dict[str, str] = {}
    for key, value in connection.items():
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise InvalidArgumentError(
                f"connection[{key!r}] must be a non-empty str or None, got {value!r:.80}"
            )
        out[str(key)] = value
    if out.get("embedder", "default") != "default":
        raise InvalidArgumentError(
            f"connection['embedder'] can only be 'default' (the offline MiniLM) or None, got {out['embedder']!r}"
        )
    if "storage_path" not in out and "long_term" not in out:
        raise InvalidArgumentError(
            f"connection {out!r} names no durable storage: give storage_path (a directory) or a long_term URL"
        )
    return out


def connection_of(manager: MemoryManager) -> dict[str, str] | None:
    """Return the settings that reopen *manager*'s storage, when they can be read off it; else None.

    That is a manager over a ``storage_path`` directory (no servers), without an embedder or with the default
    one. A manager on servers (its URLs are not readable) or in memory gives None.
    """
    if manager.storage_path is None or manager.tiers.shared:
        return None
    embedder = manager.long_term.embedder
    if embedder is not None and getattr(embedder, "name", None) != DEFAULT_MODEL_NAME:
        return None
    out = {"storage_path": str(manager.storage_path)}
    if manager.namespace:
        out["namespace"] = manager.namespace
    if embedder is not None:
        out["embedder"] = "default"
    return out


def open_manager(settings: Mapping[str, str | None]) -> MemoryManager:
    """Open a new MemoryManager from settings (the keys of :data:`CONNECTION_KEYS`, unchecked here)."""
    return MemoryManager(
        storage_path=settings.get("storage_path"),
        namespace=settings.get("namespace"),
        embedder=settings.get("embedder"),
        short_term=settings.get("short_term"),
        long_term=settings.get("long_term"),
        semantic=settings.get("semantic"),
    )


def connect(connection: Mapping[str, str]) -> MemoryManager:
    """Return the process's manager for *connection* (checked settings), opening it the first time.

    Raises:
        InvalidArgumentError: bad settings. StorageError and others: the storage cannot be opened.

    """
    settings = check_connection(connection)
    assert settings is not None
    token = json.dumps(settings, sort_keys=True)
    with _OPEN_LOCK:
        manager = _OPEN.get(token)
        if manager is None:
            manager = open_manager(settings)
            _OPEN[token] = manager
            logger.debug(
                "reconnected to %s",
                {k: v for k, v in settings.items() if k in ("storage_path", "namespace")},
            )
        return manager


def unserializable(owner: str) -> SerializationError:
    """Return the error raised when a memory over a manager it cannot reopen is serialized."""
    return SerializationError(
        f"{owner} cannot be serialized: its manager is in memory or on servers whose settings it does not know, "
        "so a copy could not reconnect to the same messages. Build it with from_defaults(storage_path=...) "
        "(or long_term=/short_term= URLs), or pass connection={'storage_path': ..., ...} with the manager"
    )


@atexit.register
def _close_all() -> None:
    with _OPEN_LOCK:
        managers = list(_OPEN.values())
        _OPEN.clear()
    for manager in managers:
        try:
            manager.close()
        except Exception:  # closing at exit: report, never raise
            logger.exception("closing a reconnected MemoryManager failed")
