"""Backends chosen by URL: the manager's ``short_term=``, ``long_term=``, ``semantic=`` and ``archive=`` strings.

=====================================  ==========================================================================
URL                                    backend
=====================================  ==========================================================================
``memory://``                          the embedded default (buffer for short-term, in-memory SQLite otherwise)
``sqlite:///abs/path.db``              :class:`~agentmem_plugin.tiers.sqlite.SqliteTier` in that file
``redis://host:6379/0``                :class:`~agentmem_plugin.tiers.redis.RedisTier` (``rediss://`` for TLS)
``postgresql://user@host:5432/db``     :class:`~agentmem_plugin.tiers.postgres.PostgresTier` (``postgres://`` too)
``http://host:8000``                   a Chroma server for the semantic index (``https://`` too)
``s3://bucket/prefix``                 an :class:`~agentmem_plugin.tiers.archive.ArchiveTier` in S3
``file:///abs/dir`` or a plain path    an archive directory
=====================================  ==========================================================================

Passwords in URLs never reach logs or error messages: :func:`redact_url` replaces them with ``***``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from agentmem_plugin.entry import Clock
from agentmem_plugin.errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    MissingDependencyError,
)
from agentmem_plugin.tiers.base import EvictionCallback, Tier

__all__ = [
    "archive_leaf",
    "is_durable_url",
    "is_server_url",
    "namespace_of_leaf",
    "open_archive",
    "open_chroma_client",
    "open_tier",
    "redact_url",
]

TierFactory = Callable[..., Tier]

_TIER_SCHEMES = ("memory", "sqlite", "redis", "rediss", "postgresql", "postgres")


_PASSWORD_KV = re.compile(
    r"(?<![A-Za-z0-9])((?:[A-Za-z0-9_-]*(?:password|passwd|pwd|secret|token|api_?key|api-key|access_?key|"
    r"credential|auth)[A-Za-z0-9_-]*|pass|key)\s*=\s*)"
    r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s&#;,'\"]+)",
    re.IGNORECASE,
)
# A URL anywhere in the text, up to whitespace or a quote; its user info runs to the *last* "@" in it, so a
# password holding "@", "/", "?" or "#" is still covered (redis-py reads a password containing "@" that way).
_USERINFO = re.compile(r"(?<![A-Za-z0-9+.-])([a-z][a-z0-9+.-]*://)([^\s'\"<>]*)@", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Return *url* with every password replaced by ``***`` (safe to log or to put in an error message).

    Covers the user-info part of every URL in the text (``scheme://user:secret@host``, also when the password
    holds ``@``, ``/``, ``?`` or ``#``), query parameters and libpq ``key=value`` settings naming a secret
    (``password``, ``sslpassword``, ``secret``, ``token``, ``api_key``, ``access_key``, ``aws_secret_access_key``,
    ``auth...``, ``key``, ...). The one redaction used by every backend and by config errors. A URL without a
    password (``scheme://user@host``) keeps its user name.

    Example:
        >>> redact_url("postgresql://app:s3cret@db:5432/mem")
        'postgresql://app:***@db:5432/mem'
        >>> redact_url("redis://cache:6379/0?password=s3cret")
        'redis://cache:6379/0?password=***'
        >>> redact_url("host=db password=s3cret dbname=mem")
        'host=db password=*** dbname=mem'

    """
    text = _PASSWORD_KV.sub(r"\1***", str(url))

    def userinfo(match: re.Match[str]) -> str:
        info = match.group(2)
        if ":" not in info:
            return match.group(0)
        return f"{match.group(1)}{info.split(':', 1)[0]}:***@"

    return _USERINFO.sub(userinfo, text)


def _scheme_of(url: object) -> str:
    return url.split("://", 1)[0].lower() if isinstance(url, str) and "://" in url else ""


def is_server_url(url: object) -> bool:
    """Return True for a tier URL naming a server shared by processes (Redis, PostgreSQL)."""
    return _scheme_of(url) in ("redis", "rediss", "postgresql", "postgres")


def is_durable_url(url: object) -> bool:
    """Return True for a tier URL whose data outlives the process (a server or a SQLite file)."""
    return is_server_url(url) or _scheme_of(url) == "sqlite"


def archive_leaf(namespace: str) -> str:
    """Return the directory (or S3 sub-prefix) name of *namespace*'s archive: reversible, never colliding.

    The default namespace is ``_default``; any other is ``ns-`` plus its percent-encoding (``/`` -> ``%2F``).

    Example:
        >>> archive_leaf(""), archive_leaf("user/u1"), archive_leaf("user__u1")
        ('_default', 'ns-user%2Fu1', 'ns-user__u1')

    """
    return "_default" if namespace == "" else "ns-" + quote(namespace, safe="")


def namespace_of_leaf(name: str) -> str | None:
    """Invert :func:`archive_leaf`; None for a name it never produces."""
    if name == "_default":
        return ""
    if name.startswith("ns-") and len(name) > 3:
        return unquote(name[3:])
    return None


def _scheme(url: str, what: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise InvalidArgumentError(
            f"{what} must be a URL such as {allowed[0]}://..., got {redact_url(str(url))!r}"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme not in allowed:
        raise InvalidArgumentError(
            f"{what} URL scheme must be one of {', '.join(allowed)}; got {redact_url(url)!r}"
        )
    return scheme


def open_tier(
    url: str,
    *,
    role: str,
    namespace: str = "",
    capacity: int | None = None,
    clock: Clock | None = None,
    on_evict: EvictionCallback | None = None,
    share: Tier | None = None,
) -> Tier | None:
    """Open the tier a URL names, for *role* ``"short_term"`` or ``"long_term"`` (also its table name).

    Returns None for ``memory://`` (the caller builds its embedded default). *share*: a tier of the same backend
    whose client (Redis) or connection pool (PostgreSQL) this one borrows instead of opening its own.

    Raises:
        InvalidArgumentError: an unknown scheme or a malformed URL (the message carries no password).
        MissingDependencyError: the backend's extra (``redis``, ``postgres``) is not installed.
        BackendUnavailableError: the server cannot be reached.

    """
    scheme = _scheme(url, role, _TIER_SCHEMES)
    if scheme == "memory":
        return None
    if scheme == "sqlite":
        from agentmem_plugin.tiers.sqlite import SqliteTier

        path = unquote(urlsplit(url).path)
        if not path or path == "/":
            raise InvalidArgumentError(
                f"sqlite URL needs a file path (sqlite:///abs/path.db), got {url!r}"
            )
        return SqliteTier(path, table=role, namespace=namespace, capacity=capacity, clock=clock,
                          on_evict=on_evict)  # fmt: skip
    if scheme in ("redis", "rediss"):
        from agentmem_plugin.tiers.redis import RedisTier

        client = getattr(share, "_client", None) if isinstance(share, RedisTier) else None
        return RedisTier(url, namespace=namespace, capacity=capacity, clock=clock, on_evict=on_evict,
                         prefix=f"agentmem:{role}", client=client)  # fmt: skip
    from agentmem_plugin.tiers.postgres import PostgresTier

    pool = getattr(share, "_pool", None) if isinstance(share, PostgresTier) else None
    return PostgresTier(url, table=role, namespace=namespace, capacity=capacity, clock=clock,
                        on_evict=on_evict, pool=pool)  # fmt: skip


def open_chroma_client(url: str) -> Any:
    """Return a chromadb ``HttpClient`` for a Chroma server URL (``http://host:8000``, ``https://...``)."""
    scheme = _scheme(url, "semantic", ("http", "https"))
    parts = urlsplit(url)
    if not parts.hostname:
        raise InvalidArgumentError(f"semantic URL needs a host, got {redact_url(url)!r}")
    from agentmem_plugin.tiers.chroma import make_client

    port = parts.port or (443 if scheme == "https" else 8000)
    try:
        return make_client(host=parts.hostname, port=port, ssl=scheme == "https")
    except MissingDependencyError:
        raise
    except Exception as exc:  # chromadb raises ValueError("Could not connect ...") and HTTP errors
        raise BackendUnavailableError(
            f"the Chroma server at {redact_url(url)!r} cannot be reached: {redact_url(str(exc))}"
        ) from None


def open_archive(
    url: str,
    *,
    namespace: str = "",
    key: str | bytes | None = None,
    encrypt: bool | None = None,
    clock: Clock | None = None,
) -> Tier:
    """Open an archive at ``s3://bucket/prefix``, ``file:///dir`` or a plain directory path.

    Each namespace gets its own sub-prefix (sub-directory), so namespaces never share archived entries.
    """
    from agentmem_plugin.tiers.archive import ArchiveTier, S3Store

    leaf = archive_leaf(namespace)
    if isinstance(url, str) and url.lower().startswith("s3://"):
        parts = urlsplit(url)
        if not parts.netloc:
            raise InvalidArgumentError(
                f"archive URL needs a bucket (s3://bucket/prefix), got {url!r}"
            )
        prefix = "/".join(p for p in (parts.path.strip("/"), leaf) if p) + "/"
        return ArchiveTier(
            store=S3Store(parts.netloc, prefix), key=key, encrypt=encrypt, clock=clock
        )
    if isinstance(url, str) and url.lower().startswith("file://"):
        url = unquote(urlsplit(url).path)
    elif isinstance(url, str) and "://" in url:
        raise InvalidArgumentError(
            f"archive must be s3://bucket/prefix, file:///dir or a directory path; got {redact_url(url)!r}"
        )
    from pathlib import Path

    return ArchiveTier(Path(url) / leaf, key=key, encrypt=encrypt, clock=clock)
