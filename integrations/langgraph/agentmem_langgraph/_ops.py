"""Pure helpers of :class:`~agentmem_langgraph.store.AgentMemStore`: op validation, filters, namespace codec.

Nothing here touches storage. :func:`check_ops` validates a whole batch before the store changes anything, so a bad
op anywhere in a batch raises and nothing is written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentmem_plugin.codec import normalize
from agentmem_plugin.errors import InvalidArgumentError
from agentmem_plugin.validation import validate_key
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    SearchOp,
    validate_op_namespace,
)

__all__ = [
    "FILTER_OPERATORS",
    "check_ops",
    "decode_namespace",
    "encode_namespace",
    "matches_condition",
    "matches_filter",
    "ttl_seconds",
]

FILTER_OPERATORS: frozenset[str] = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
"""The comparison operators a search filter accepts (those of LangGraph's ``InMemoryStore``)."""

# -- namespaces -------------------------------------------------------------------------------------------------

_ESCAPED = re.compile(r"%(25|2F)")


def _escape(label: str) -> str:
    return label.replace("%", "%25").replace("/", "%2F")


def _unescape(label: str) -> str:
    return _ESCAPED.sub(lambda m: "%" if m.group(1) == "25" else "/", label)


def encode_namespace(namespace: Sequence[str]) -> str:
    """Return the agentmem namespace (relative to the store's manager) of a LangGraph namespace tuple.

    agentmem joins namespace parts with ``/`` and refuses ``/`` inside a part; LangGraph allows it. Labels are
    escaped reversibly: ``%`` becomes ``%25`` and ``/`` becomes ``%2F``.

    Example:
        >>> encode_namespace(("users", "a/b"))
        'users/a%2Fb'

    """
    return "/".join(_escape(label) for label in namespace)


def decode_namespace(name: str) -> tuple[str, ...] | None:
    """Return the LangGraph namespace tuple of agentmem namespace *name*; None for the manager's own (``""``).

    Example:
        >>> decode_namespace("users/a%2Fb")
        ('users', 'a/b')

    """
    if not name:
        return None
    return tuple(_unescape(label) for label in name.split("/"))


# -- validation -------------------------------------------------------------------------------------------------


def _check_count(value: object, what: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{what} must be an int >= {minimum}, got {value!r}")
    return value


def _check_index(index: object, key: str) -> None:
    if index is None or index is False:
        return
    if isinstance(index, (str, bytes)) or not isinstance(index, Sequence):
        raise InvalidArgumentError(
            f"index of key {key!r} must be None, False or a list of field paths, got {index!r}"
        )
    for path in index:
        if not isinstance(path, str) or not path:
            raise InvalidArgumentError(
                f"index of key {key!r} must list non-empty field paths (str), got {path!r}"
            )


def ttl_seconds(ttl: object, *, what: str = "ttl") -> float | None:
    """Return a LangGraph TTL in minutes as agentmem seconds (None: never expires).

    Raises:
        InvalidArgumentError: *ttl* is not None or a positive finite number of minutes.

    """
    if ttl is None:
        return None
    if (
        isinstance(ttl, bool)
        or not isinstance(ttl, (int, float))
        or not math.isfinite(ttl)
        or ttl <= 0
    ):
        raise InvalidArgumentError(
            f"{what} must be a positive number of minutes or None, got {ttl!r}"
        )
    return float(ttl) * 60.0


def _check_filter(flt: object, where: str) -> None:
    if flt is None:
        return
    if not isinstance(flt, Mapping):
        raise InvalidArgumentError(f"{where} must be a dict, got {flt!r:.80}")
    for field, wanted in flt.items():
        if not isinstance(field, str):
            raise InvalidArgumentError(f"{where} keys must be str, got {field!r}")
        if isinstance(wanted, Mapping):
            operators = [k for k in wanted if isinstance(k, str) and k.startswith("$")]
            unknown = [k for k in operators if k not in FILTER_OPERATORS]
            if unknown:
                raise InvalidArgumentError(
                    f"unsupported filter operator {unknown[0]!r} on field {field!r}; "
                    f"use one of {', '.join(sorted(FILTER_OPERATORS))}"
                )
            if not operators:
                _check_filter(wanted, f"{where}[{field!r}]")


def _check_put(op: PutOp) -> None:
    if not op.namespace:
        raise InvalidNamespaceError("Namespace cannot be empty.")
    key = validate_key(op.key)
    if op.value is not None:
        if not isinstance(op.value, Mapping):
            raise InvalidArgumentError(
                f"value of key {key!r} must be a dict (or None to delete), got {type(op.value).__name__}"
            )
        for field in op.value:
            if not isinstance(field, str):
                raise InvalidArgumentError(
                    f"value of key {key!r} must have str keys, got {field!r}"
                )
        normalize(dict(op.value), what=f"value of key {key!r}")  # SerializationError: not JSON
    _check_index(op.index, key)
    ttl_seconds(op.ttl, what=f"ttl of key {key!r}")


def _check_list(op: ListNamespacesOp) -> None:
    for condition in op.match_conditions or ():
        if not isinstance(condition, MatchCondition) and not (
            isinstance(condition, tuple) and len(condition) == 2
        ):
            raise InvalidArgumentError(
                f"match condition must be a MatchCondition, got {condition!r}"
            )
        match_type, path = condition
        if match_type not in ("prefix", "suffix"):
            raise InvalidArgumentError(
                f"match_type must be 'prefix' or 'suffix', got {match_type!r}"
            )
        if isinstance(path, str) or not isinstance(path, Sequence):
            raise InvalidNamespaceError(
                f"match condition path must be a tuple of labels, got {path!r}"
            )
    if op.max_depth is not None:
        _check_count(op.max_depth, "max_depth", minimum=1)
    _check_count(op.limit, "limit")
    _check_count(op.offset, "offset")


def check_ops(ops: Iterable[Any]) -> list[Op]:
    """Validate every op of a batch; return them as a list (list namespaces turned into tuples).

    Raises:
        InvalidNamespaceError: a namespace label that is empty, not a str, or contains ``.``; a put to ``()``.
        InvalidArgumentError: an unknown op, a bad key, value, index, ttl, filter, limit, offset or max_depth.
        SerializationError: a value that cannot be stored as JSON.

    """
    checked: list[Op] = []
    for op in ops:
        if not isinstance(op, (GetOp, PutOp, SearchOp, ListNamespacesOp)):
            raise InvalidArgumentError(
                f"unknown operation {op!r:.80}: batch() takes GetOp, PutOp, SearchOp and ListNamespacesOp"
            )
        namespace = (
            op.namespace_prefix if isinstance(op, SearchOp) else getattr(op, "namespace", ())
        )
        if isinstance(namespace, list):  # accepted as a tuple, like LangGraph's SQL stores do
            namespace = tuple(namespace)
            if isinstance(op, SearchOp):
                op = op._replace(namespace_prefix=namespace)
            elif isinstance(op, (GetOp, PutOp)):
                op = op._replace(namespace=namespace)
        if not isinstance(namespace, tuple):
            raise InvalidNamespaceError(
                f"a namespace must be a tuple (or list) of str, got {namespace!r}"
            )
        validate_op_namespace(op)
        if isinstance(op, PutOp):
            _check_put(op)
        elif isinstance(op, GetOp):
            validate_key(op.key)
        elif isinstance(op, SearchOp):
            _check_filter(op.filter, "filter")
            _check_count(op.limit, "limit")
            _check_count(op.offset, "offset")
            if op.query is not None and not isinstance(op.query, str):
                raise InvalidArgumentError(f"query must be a str or None, got {op.query!r:.80}")
        else:
            _check_list(op)
        checked.append(op)
    return checked


# -- matching ---------------------------------------------------------------------------------------------------


def matches_condition(
    condition: MatchCondition | tuple[str, Sequence[str]], namespace: tuple[str, ...]
) -> bool:
    """Return True when *namespace* matches a prefix/suffix condition (``"*"`` matches any one label)."""
    match_type, path = condition
    if len(namespace) < len(path):
        return False
    pairs = (
        zip(namespace, path, strict=False)
        if match_type == "prefix"
        else zip(reversed(namespace), reversed(path), strict=False)
    )
    return all(want == "*" or have == want for have, want in pairs)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ordered(value: Any, operand: Any, operator: str) -> bool:
    if _is_number(value) and _is_number(operand):
        a, b = float(value), float(operand)
    elif isinstance(value, str) and isinstance(operand, str):
        a, b = value, operand  # type: ignore[assignment]
    else:
        return False  # a missing field or values of different kinds never match an ordering
    if operator == "$gt":
        return a > b
    if operator == "$gte":
        return a >= b
    if operator == "$lt":
        return a < b
    return a <= b


def _compare(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, Mapping):
        if any(isinstance(k, str) and k.startswith("$") for k in wanted):
            for operator, operand in wanted.items():
                if operator == "$eq":
                    ok = value == operand
                elif operator == "$ne":
                    ok = value != operand
                else:
                    ok = _ordered(value, operand, operator)
                if not ok:
                    return False
            return True
        if not isinstance(value, Mapping):
            return False
        return all(_compare(value.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(value, (list, tuple))
            and len(value) == len(wanted)
            and all(_compare(v, w) for v, w in zip(value, wanted, strict=True))
        )
    return bool(value == wanted)


def matches_filter(value: Mapping[str, Any], flt: Mapping[str, Any] | None) -> bool:
    """Return True when an item's *value* satisfies a search filter (LangGraph ``InMemoryStore`` semantics).

    A plain value must be equal (dicts compare field by field, lists element by element); ``{"$op": x}``
    applies the operators of :data:`FILTER_OPERATORS`. Ordering operators compare numbers with numbers and strings
    with strings; a missing field matches only ``$ne``.

    Example:
        >>> matches_filter({"score": 4.5, "color": "red"}, {"score": {"$gt": 4}, "color": "red"})
        True

    """
    if not flt:
        return True
    return all(_compare(value.get(field), wanted) for field, wanted in flt.items())
