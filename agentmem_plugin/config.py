"""Typed configuration for :class:`~agentmem_plugin.manager.MemoryManager`.

From a dict, a YAML/TOML file or the environment (``AGENTMEM_*`` variables), validated with pydantic-settings.

Precedence: explicit overrides > the dict or file > ``AGENTMEM_*`` environment variables > defaults. Every
error names the bad field, and never echoes a secret: the value of a secret field (``archive_key``,
``short_term``, ``long_term``) or of an unknown field (perhaps a misspelt secret) is not shown, and any other
value is shown through :func:`~agentmem_plugin.tiers.urls.redact_url`. Needs the ``config`` extra:
``pip install "agentmem-plugin[config]"``.

Example:
    >>> cfg = load_manager_config({"short_term_limit": 50, "namespace": "user/u1"})  # doctest: +SKIP
    >>> cfg.short_term_limit  # doctest: +SKIP
    50

"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from agentmem_plugin.errors import InvalidArgumentError, MissingDependencyError

__all__ = ["load_manager_config", "manager_config_class"]

_CLASS: Any = None
_SECRETS = frozenset({"archive_key", "short_term", "long_term"})
"""Fields whose value is never shown in an error (the key, and URLs that may carry a password)."""


def manager_config_class() -> Any:
    """Return the pydantic-settings model of a manager's configuration (built on first use).

    Fields (environment variable ``AGENTMEM_<FIELD>``): ``short_term_limit`` (int > 0, 100),
    ``long_term_limit`` (int > 0, 1000), ``enable_logging`` (bool, true), ``storage_path`` (directory or none),
    ``embedder`` (``"default"`` or none), ``archive_key`` (secret; also ``AGENTMEM_ARCHIVE_KEY``), ``encrypt``
    (bool or none), ``namespace`` (str, parts joined by ``/``), ``cache_size`` (int >= 0, 256),
    ``consolidation_threshold`` (0 < x <= 1 or none), ``consolidation_interval`` (seconds > 0 or none),
    ``batch_size`` (int > 0, 500), ``view_cache_size`` (int >= 0, 1024: namespace views kept open), and
    backend URLs ``short_term`` / ``long_term`` (secrets: they may hold a password), ``semantic`` (a Chroma
    server, ``http(s)://``) and ``archive`` (``s3://bucket/prefix`` or a directory).
    """
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    try:
        from pydantic import Field, SecretStr
        from pydantic_settings import BaseSettings, SettingsConfigDict
    except ImportError as exc:
        raise MissingDependencyError(
            'MemoryManager.from_config needs pydantic-settings: pip install "agentmem-plugin[config]"'
        ) from exc

    class ManagerConfig(BaseSettings):
        """Validated constructor arguments of a MemoryManager."""

        model_config = SettingsConfigDict(
            env_prefix="AGENTMEM_", extra="forbid", validate_default=True
        )

        short_term_limit: int = Field(100, gt=0)
        long_term_limit: int = Field(1000, gt=0)
        enable_logging: bool = True
        storage_path: Path | None = None
        embedder: str | None = Field(None, pattern="^default$")
        archive_key: SecretStr | None = None
        encrypt: bool | None = None
        namespace: str | None = None
        cache_size: int = Field(256, ge=0)
        consolidation_threshold: float | None = Field(None, gt=0, le=1)
        consolidation_interval: float | None = Field(None, gt=0)
        batch_size: int = Field(500, gt=0)
        view_cache_size: int = Field(1024, ge=0)
        # Backend URLs (see agentmem_plugin.tiers.urls); the two that may carry a password are secrets.
        short_term: SecretStr | None = None
        long_term: SecretStr | None = None
        semantic: str | None = Field(None, pattern="^https?://")
        archive: str | None = None

        def manager_kwargs(self) -> dict[str, Any]:
            """Return the fields as MemoryManager keyword arguments."""
            data = self.model_dump()
            key = data.pop("archive_key")
            data["archive_key"] = None if key is None else key.get_secret_value()
            for name in ("short_term", "long_term"):
                url = data.pop(name)
                if url is not None:
                    data[name] = url.get_secret_value()
            return dict(data)

    _CLASS = ManagerConfig
    return _CLASS


def _read_file(path: Path) -> dict[str, Any]:
    suffix = path.suffix.lower()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read the config file {str(path)!r}: {exc}") from exc
    try:
        if suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(raw) or {}
        elif suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            data = tomllib.loads(raw.decode())
        else:
            raise InvalidArgumentError(
                f"config file {str(path)!r} must end in .yaml, .yml or .toml"
            )
    except InvalidArgumentError:
        raise
    except Exception as exc:
        # The parsers' own errors: say which file, why and where, but not the text there (it may be a secret).
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or _redacted(
            str(exc).splitlines()[0] if str(exc) else ""
        )
        at = "" if mark is None else f" (line {mark.line + 1}, column {mark.column + 1})"
        raise InvalidArgumentError(
            f"config file {str(path)!r} does not parse: {reason}{at}"
        ) from None
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"config file {str(path)!r} must hold a mapping of settings")
    section = data.get("agentmem", data)
    return dict(section.get("manager", section)) if isinstance(section, dict) else {}


def load_manager_config(
    source: Mapping[str, Any] | str | PathLike[str] | None = None, **overrides: Any
) -> Any:
    """Return a validated manager configuration.

    Args:
        source: A dict, a ``.yaml``/``.yml``/``.toml`` file (settings at the top level, or under
            ``[agentmem.manager]`` / ``agentmem: manager:``), or None for the environment only.
        **overrides: Fields that win over everything else.

    Raises:
        InvalidArgumentError: an unknown field or a bad value (the message names the field), or an unreadable
            file.
        MissingDependencyError: pydantic-settings is not installed.

    """
    from pydantic import ValidationError

    cls = manager_config_class()
    if source is None:
        data: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        data = dict(source)
    else:
        data = _read_file(Path(source))
    data.update(overrides)
    if isinstance(data.get("namespace"), (list, tuple)):
        data["namespace"] = "/".join(map(str, data["namespace"]))
    try:
        return cls(**data)
    except ValidationError as exc:
        known = set(cls.model_fields)
        problems = "; ".join(_problem(err, known) for err in exc.errors())
        # Not chained: the pydantic error's own text carries every input value.
        raise InvalidArgumentError(f"invalid MemoryManager config: {problems}") from None
    except Exception as exc:
        # pydantic-settings' SettingsError: an environment value that does not parse.
        if type(exc).__name__ != "SettingsError":
            raise
        raise InvalidArgumentError(
            f"invalid MemoryManager config from the environment: {_redacted(str(exc))}"
        ) from None


def _redacted(text: str) -> str:
    from agentmem_plugin.tiers.urls import redact_url

    return redact_url(text)


def _problem(err: Mapping[str, Any], known: set[str]) -> str:
    """Describe one validation error: the field and the reason, and the value unless it may be a secret."""
    where = ".".join(str(p) for p in err["loc"]) or "config"
    field = str(err["loc"][0]) if err["loc"] else ""
    if err.get("type") == "extra_forbidden" or field not in known:
        shown = "an unknown field (its value is not shown)"
        return f"{where}: {shown}; known fields: {', '.join(sorted(known))}"
    if field in _SECRETS:
        return (
            f"{where}: {_redacted(str(err['msg']))} (the value is not shown: it may hold a secret)"
        )
    value = _redacted(repr(err.get("input")))
    if len(value) > 80:
        value = value[:79] + "…"
    return f"{where}: {_redacted(str(err['msg']))} (got {value})"
