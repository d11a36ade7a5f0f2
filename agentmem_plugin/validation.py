"""One checker per kind of argument, used by the core and every integration.

The same bad input gets the same typed error everywhere (a :class:`~agentmem_plugin.errors.InvalidKeyError` for a
key, an :class:`~agentmem_plugin.errors.InvalidArgumentError` for everything else), naming the bad value. Each
checker returns the value in the form the library works with (a namespace as ``"a/b"``, a ttl as ``float``), so
callers validate and normalize in one step.

Example:
    >>> validate_namespace(("user", "alice"))
    'user/alice'
    >>> validate_namespace("a//b")
    Traceback (most recent call last):
    ...
    agentmem_plugin.errors.InvalidArgumentError: namespace 'a//b' has an empty part; give non-empty parts joined by '/', such as 'user/alice'

"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentmem_plugin.errors import InvalidArgumentError, InvalidKeyError

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_PRIORITY",
    "MEMORY_TIERS",
    "SEARCH_MODES",
    "validate_bool",
    "validate_capacity",
    "validate_filter",
    "validate_fraction",
    "validate_key",
    "validate_keys",
    "validate_limit",
    "validate_memory_type",
    "validate_memory_types",
    "validate_metadata",
    "validate_mode",
    "validate_name",
    "validate_names",
    "validate_namespace",
    "validate_non_negative_int",
    "validate_options",
    "validate_priority",
    "validate_seconds",
    "validate_tags",
    "validate_text",
    "validate_ttl",
]

MAX_KEY_LENGTH = 1024
"""Longest key accepted, in characters."""

MAX_PRIORITY = 2**63 - 1
"""Priorities are 64-bit signed integers on every backend (``-MAX_PRIORITY - 1`` to ``MAX_PRIORITY``)."""

MEMORY_TIERS: tuple[str, ...] = ("short_term", "long_term", "external")
"""The tiers of a :class:`~agentmem_plugin.manager.MemoryManager`, searched and read in this order."""

SEARCH_MODES: tuple[str, ...] = ("hybrid", "keyword", "semantic")
"""How :meth:`~agentmem_plugin.memory.Memory.search` ranks: fused, BM25 only, embeddings only."""


def _encodable(text: str) -> bool:
    """Return True when *text* has no lone surrogate (it can be stored as UTF-8 by every backend)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_text(value: object, *, what: str) -> str:
    """Return *value* as a plain ``str`` that every backend can store (UTF-8, no NUL); raise otherwise.

    Raises:
        InvalidArgumentError: not a str, or it holds a NUL character or a lone surrogate.

    """
    if type(value) is not str:
        if not isinstance(value, str):
            raise InvalidArgumentError(
                f"{what} must be a str, got {type(value).__name__}: {value!r:.80}"
            )
        value = str.__str__(value)
    if "\x00" in value or not _encodable(value):
        raise InvalidArgumentError(
            f"{what} must be valid UTF-8 text without NUL characters, got {value!r:.80}"
        )
    return value


def validate_key(key: object) -> str:
    """Return *key* if it is a valid memory key, else raise :class:`InvalidKeyError`.

    A valid key is a non-empty ``str`` of at most :data:`MAX_KEY_LENGTH` characters, with no NUL character and
    no lone surrogate (so every backend stores it).

    Example:
        >>> validate_key("user:42")
        'user:42'

    """
    if type(key) is not str:
        if isinstance(key, str):  # a str subclass: accept its plain value
            key = str.__str__(key)
        else:
            raise InvalidKeyError(f"key must be a str, got {type(key).__name__}: {key!r:.80}")
    if not key:
        raise InvalidKeyError("key must be a non-empty str, got ''")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidKeyError(
            f"key is {len(key)} characters long; the limit is {MAX_KEY_LENGTH}: {key[:40]!r}..."
        )
    if "\x00" in key:
        raise InvalidKeyError(f"key must not contain NUL characters: {key!r:.80}")
    if not _encodable(key):
        raise InvalidKeyError(
            f"key must be valid UTF-8 text (it has a lone surrogate): {key!r:.80}"
        )
    return key


def validate_keys(keys: object) -> list[str]:
    """Return *keys* (a sequence of keys, not a single str) as a list of checked keys.

    Raises:
        InvalidArgumentError: *keys* is a str/bytes or not iterable. InvalidKeyError: a bad key.

    """
    if isinstance(keys, (str, bytes)) or not isinstance(keys, Iterable):
        raise InvalidArgumentError(
            f"keys must be a list of str, not {type(keys).__name__}: {keys!r:.80}"
        )
    return [validate_key(k) for k in keys]


def validate_capacity(capacity: object, *, what: str = "capacity") -> int | None:
    """Return *capacity* if it is a positive int or None (unbounded); raise otherwise.

    Raises:
        InvalidArgumentError: *capacity* is zero, negative, or not an int.

    """
    if capacity is None:
        return None
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
        raise InvalidArgumentError(f"{what} must be a positive int or None, got {capacity!r}")
    return capacity


def validate_limit(limit: object, *, what: str = "limit") -> int:
    """Return *limit* if it is a positive 64-bit int (a number of results or entries); raise otherwise."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 < limit <= MAX_PRIORITY:
        raise InvalidArgumentError(
            f"{what} must be a positive int, got {limit!r:.80} (at most 2**63 - 1)"
        )
    return limit


def validate_memory_types(memory_types: object) -> list[str]:
    """Return *memory_types* (a list of tier names, not a single str; None: all of :data:`MEMORY_TIERS`).

    Raises:
        InvalidArgumentError: a str, a non-iterable, or an item that is not a tier name.

    """
    if memory_types is None:
        return list(MEMORY_TIERS)
    if isinstance(memory_types, (str, bytes)) or not isinstance(memory_types, Iterable):
        raise InvalidArgumentError(
            f"memory_types must be a list of tier names, got {memory_types!r:.80}"
        )
    return [validate_memory_type(name) for name in memory_types]


def validate_options(
    options: object, accepted: Iterable[str], *, what: str = "config"
) -> dict[str, Any]:
    """Return *options* (keyword arguments given as a dict) if every key is one of *accepted*; raise otherwise.

    Raises:
        InvalidArgumentError: not a mapping, or a key that is not an accepted argument (a misspelling such as
            ``capacty`` names the accepted ones).

    """
    if not isinstance(options, Mapping):
        raise InvalidArgumentError(f"{what} must be a dict of arguments, got {options!r:.80}")
    known = set(accepted)
    unknown = [k for k in options if not isinstance(k, str) or k not in known]
    if unknown:
        raise InvalidArgumentError(
            f"{what} has unknown arguments {unknown!r:.120}; accepted: {', '.join(sorted(known))}"
        )
    return dict(options)


def validate_name(value: object, *, what: str) -> str:
    """Return *value* if it is a non-empty str naming something (a memory, an agent); raise otherwise."""
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{what} must be a non-empty str, got {value!r:.80}")
    return validate_text(value, what=what)


def validate_names(values: object, *, what: str) -> list[str]:
    """Return *values* (None, or an iterable of names: not a single str) as a list of checked names."""
    if values is None:
        return []
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InvalidArgumentError(f"{what} must be a list of str, got {values!r:.80}")
    return [validate_name(v, what=what) for v in values]


def validate_non_negative_int(value: object, *, what: str) -> int:
    """Return *value* if it is an int >= 0; raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgumentError(f"{what} must be an int >= 0, got {value!r}")
    return value


def validate_bool(value: object, *, what: str) -> bool:
    """Return *value* if it is a bool; raise otherwise (no truthy strings or ints)."""
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"{what} must be True or False, got {value!r}")
    return value


def validate_ttl(ttl: object) -> float | None:
    """Return *ttl* in seconds as a float (or None for "never expires"); raise for anything else.

    Raises:
        InvalidArgumentError: *ttl* is not a positive finite number.

    """
    if ttl is None:
        return None
    return validate_seconds(ttl, what="ttl")


def validate_seconds(value: object, *, what: str) -> float:
    """Return *value* as a positive finite number of seconds; raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"{what} must be a positive number of seconds, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise InvalidArgumentError(f"{what} must be a positive number of seconds, got {value!r}")
    return number


def validate_fraction(value: object, *, what: str, low: float = 0.0, high: float = 1.0) -> float:
    """Return *value* as a float in ``[low, high]`` (finite); raise otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentError(f"{what} must be a number in [{low}, {high}], got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidArgumentError(f"{what} must be a number in [{low}, {high}], got {value!r}")
    return number


def validate_priority(priority: object, *, what: str = "priority") -> int:
    """Return *priority* if it is a 64-bit ``int`` (higher means kept longer); raise otherwise."""
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise InvalidArgumentError(f"{what} must be an int, got {priority!r:.80}")
    if not -MAX_PRIORITY - 1 <= priority <= MAX_PRIORITY:
        raise InvalidArgumentError(f"{what} must fit in 64 bits, got {priority!r:.80}")
    return priority


def validate_tags(tags: object) -> tuple[str, ...]:
    """Return *tags* as a tuple of unique non-empty strings in first-seen order; raise otherwise."""
    if tags is None:
        return ()
    if isinstance(tags, (str, bytes)) or not isinstance(tags, Iterable):
        raise InvalidArgumentError(f"tags must be a list of str, got {tags!r:.80}")
    seen: dict[str, None] = {}
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise InvalidArgumentError(f"each tag must be a non-empty str, got {tag!r:.80}")
        seen[validate_text(tag, what="a tag")] = None
    return tuple(seen)


def validate_metadata(metadata: object) -> dict[str, Any]:
    """Return a shallow copy of *metadata* if it is a mapping with ``str`` keys; raise otherwise.

    Whether the values can be encoded is checked by the codec when the entry is stored.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidArgumentError(f"metadata must be a dict with str keys, got {metadata!r:.80}")
    for k in metadata:
        validate_text(k, what="a metadata key")
    return dict(metadata)


def validate_namespace(namespace: object) -> str:
    """Return *namespace* as the library writes it: parts joined by ``/`` (``""`` is the default namespace).

    Accepts None or ``""`` (the default namespace), a str such as ``"user/alice"``, or a sequence of parts
    such as ``("user", "alice")``. Every part is non-empty text without ``/``.

    Raises:
        InvalidArgumentError: an empty part (``"a//b"``, ``"a/"``, ``"/a"``), a part with ``/`` or a NUL, a part
            that is not a str, or a namespace that is neither a str nor a sequence of str.

    """
    if namespace is None:
        return ""
    if isinstance(namespace, str):
        text = validate_text(namespace, what="namespace")
        if text and any(not part for part in text.split("/")):
            raise InvalidArgumentError(
                f"namespace {text!r} has an empty part; give non-empty parts joined by '/', such as 'user/alice'"
            )
        return text
    if isinstance(namespace, bytes) or not isinstance(namespace, Sequence):
        raise InvalidArgumentError(
            f"namespace must be a str such as 'user/alice' or a tuple of str, got {namespace!r:.80} "
            f"({type(namespace).__name__})"
        )
    parts = list(namespace)
    for part in parts:
        if not isinstance(part, str) or not part or "/" in part:
            raise InvalidArgumentError(
                f"namespace parts must be non-empty str without '/', got {namespace!r:.80} (the part {part!r:.80})"
            )
        validate_text(part, what="a namespace part")
    return "/".join(parts)


def validate_memory_type(memory_type: object, allowed: Sequence[str] = MEMORY_TIERS) -> str:
    """Return *memory_type* if it is one of *allowed*; raise otherwise."""
    if not isinstance(memory_type, str) or memory_type not in allowed:
        raise InvalidArgumentError(
            f"memory_type must be one of {', '.join(allowed)}; got {memory_type!r:.80}"
        )
    return memory_type


def validate_mode(mode: object) -> str | None:
    """Return *mode* (None: the memory's default) if it is one of :data:`SEARCH_MODES`; raise otherwise."""
    if mode is None:
        return None
    if not isinstance(mode, str) or mode not in SEARCH_MODES:
        raise InvalidArgumentError(
            f"mode must be one of {', '.join(SEARCH_MODES)}; got {mode!r:.80}"
        )
    return mode


def validate_filter(filter: object) -> dict[str, Any] | None:
    """Return a search *filter* as a dict: ``{"tags": [...]}`` (all required) and/or metadata fields to match.

    Raises:
        InvalidArgumentError: not a mapping, a non-str field, or ``tags`` that is not a list of str.

    """
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise InvalidArgumentError(
            f"filter must be a dict, got {type(filter).__name__}: {filter!r:.80}"
        )
    out: dict[str, Any] = {}
    for field, wanted in filter.items():
        validate_text(field, what="a filter field")
        out[field] = list(validate_tags(wanted)) if field == "tags" else wanted
    return out
