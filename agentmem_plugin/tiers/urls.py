"""Backend URLs: telling them apart, naming archive folders, and keeping their passwords out of every message.

The manager's ``short_term=``, ``long_term=``, ``semantic=`` and ``archive=`` strings are opened by
:mod:`agentmem_plugin.tiers.factory`; this module only reads URLs (the backends import it for redaction, so it
imports no backend).

Passwords in URLs never reach logs or error messages: :func:`redact_url` replaces them with ``***``.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from agentmem_plugin.errors import InvalidArgumentError

__all__ = [
    "archive_leaf",
    "check_scheme",
    "is_durable_url",
    "is_server_url",
    "namespace_of_leaf",
    "redact_url",
]


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


def check_scheme(url: object, what: str, allowed: tuple[str, ...]) -> str:
    """Return *url*'s scheme (lower case) if it is one of *allowed*; raise otherwise (the message is redacted).

    Raises:
        InvalidArgumentError: not a URL, or another scheme.

    """
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
