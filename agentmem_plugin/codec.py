"""Values as JSON through orjson, zstandard for large ones. Nothing else: no pickle anywhere.

A stored value is *self-describing* bytes: plain UTF-8 JSON, or a zstandard frame holding that JSON when it is
larger than the compression threshold. A JSON text can never begin with the zstandard magic number
(``28 b5 2f fd``: ``(`` is not a JSON start byte), so :func:`decode_value` needs no side flag.

What round-trips: ``None``, ``bool``, ``int`` (64-bit), ``float``, ``str``, lists/tuples (returned as lists) and
dicts with ``str`` keys. orjson also accepts dataclasses, ``datetime``/``date``/``time`` (stored as ISO-8601
strings), ``uuid.UUID`` (as strings), enums (as their values) and numpy arrays (as lists): they come back as
those JSON forms, not as the original types.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
import zstandard

from agentmem_plugin.errors import IntegrityError, SerializationError

__all__ = [
    "DEFAULT_COMPRESSION_THRESHOLD",
    "MAX_DECOMPRESSED_SIZE",
    "decode_json",
    "decode_value",
    "decompress",
    "encode_json",
    "encode_value",
    "is_compressed",
    "normalize",
]

DEFAULT_COMPRESSION_THRESHOLD = 4096
"""Encoded values longer than this many bytes are zstd-compressed."""

MAX_DECOMPRESSED_SIZE = 256 * 1024 * 1024
"""Refuse to inflate a blob beyond this many bytes (256 MiB; guards against decompression bombs).

Enforced by :func:`decompress` whatever size a frame declares: python-zstandard's own ``max_output_size`` is
ignored for frames that declare their content size, so nothing here relies on it."""

_CHUNK = 1024 * 1024

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_LEVEL = 3

# zstandard contexts are not thread-safe; one per call is cheap (microseconds) and keeps this module stateless.


def encode_json(value: Any, *, what: str = "value") -> bytes:
    """Encode *value* as compact UTF-8 JSON.

    Args:
        value: The value to encode.
        what: How to name the value in an error message (for example ``"value of key 'k'"``).

    Raises:
        SerializationError: *value* is not JSON-serializable (the message names *what* and the reason).

    """
    try:
        return orjson.dumps(value, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise SerializationError(f"cannot store {what} as JSON: {exc}") from exc


def decode_json(data: bytes | str, *, what: str = "value") -> Any:
    """Decode JSON text; raise :class:`IntegrityError` naming *what* when it is not valid JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise IntegrityError(f"stored {what} is not valid JSON: {exc}") from exc


def normalize(value: Any, *, what: str = "value") -> Any:
    """Return *value* as it will come back from any tier: encoded to JSON and decoded again.

    Used by in-memory tiers so that a value reads back the same from the buffer as from SQLite (tuples become
    lists, datetimes ISO strings), and so that the caller's later mutations do not reach the stored copy.

    Raises:
        SerializationError: *value* is not JSON-serializable.

    """
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str:
        return value
    if kind is int:
        if -(2**63) <= value < 2**64:
            return value
    elif kind is float and math.isfinite(value):
        return value
    return orjson.loads(encode_json(value, what=what))


def encode_value(
    value: Any,
    *,
    compression_threshold: int | None = DEFAULT_COMPRESSION_THRESHOLD,
    what: str = "value",
) -> bytes:
    """Encode *value* as JSON bytes, zstd-compressed when longer than *compression_threshold*.

    Args:
        value: A JSON-serializable value.
        compression_threshold: Size in bytes above which to compress; None never compresses.
        what: How to name the value in an error message.

    Raises:
        SerializationError: *value* is not JSON-serializable.

    Example:
        >>> decode_value(encode_value({"a": [1, 2]}))
        {'a': [1, 2]}

    """
    raw = encode_json(value, what=what)
    if compression_threshold is not None and len(raw) > compression_threshold:
        return zstandard.ZstdCompressor(level=_LEVEL, write_content_size=True).compress(raw)
    return raw


def is_compressed(blob: bytes) -> bool:
    """Return True when *blob* is a zstandard frame produced by :func:`encode_value`."""
    return blob[:4] == _ZSTD_MAGIC


def decompress(
    data: bytes | memoryview, *, limit: int = MAX_DECOMPRESSED_SIZE, what: str = "value"
) -> bytes:
    """Inflate one zstandard frame, refusing to produce more than *limit* bytes.

    A frame that declares a content size above *limit* is refused before anything is inflated; one that
    declares none is first inflated in 1 MiB steps that are counted and dropped, and refused as soon as it
    passes *limit*. So the memory used is bounded by *limit* however small and crafted the input is.

    Args:
        data: A zstandard frame.
        limit: The most bytes the frame may inflate to (a positive int).
        what: How to name the data in an error message.

    Raises:
        IntegrityError: not a valid frame, or it would inflate beyond *limit* (the message names both).
        InvalidArgumentError: *limit* is not a positive int.

    Example:
        >>> decompress(zstandard.ZstdCompressor().compress(b"x" * 100))[:3]
        b'xxx'

    """
    if type(limit) is not int or limit <= 0:
        from agentmem_plugin.errors import InvalidArgumentError

        raise InvalidArgumentError(f"limit must be a positive int (bytes), got {limit!r}")
    raw = bytes(data)
    try:
        declared = zstandard.frame_content_size(raw)
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"stored {what} is a corrupt zstandard frame: {exc}") from exc
    if declared > limit:
        raise IntegrityError(
            f"stored {what} declares {declared} bytes once decompressed, more than the limit of {limit} bytes"
        )
    dctx = zstandard.ZstdDecompressor()
    try:
        # python-zstandard answers b"" for a frame declaring 0 bytes without reading it: read it
        if declared == 0:
            with dctx.stream_reader(raw) as reader:
                if reader.read(1):
                    raise IntegrityError(
                        f"stored {what} is a corrupt zstandard frame: it declares 0 bytes and holds more"
                    )
            return b""
        if declared < 0:  # no declared size: count the output in 1 MiB steps, keeping none of it
            produced = 0
            with dctx.stream_reader(raw) as reader:
                while chunk := reader.read(_CHUNK):
                    produced += len(chunk)
                    if produced > limit:
                        raise IntegrityError(
                            f"stored {what} decompresses to more than {limit} bytes (the limit); refused"
                        )
        # Now known to inflate to at most *limit*; this also refuses a truncated or lying frame.
        return bytes(dctx.decompress(raw, max_output_size=limit))
    except zstandard.ZstdError as exc:
        raise IntegrityError(f"stored {what} is a corrupt zstandard frame: {exc}") from exc


def decode_value(blob: bytes | memoryview, *, what: str = "value") -> Any:
    """Decode bytes made by :func:`encode_value`; a compressed value inflates to at most 256 MiB.

    Raises:
        IntegrityError: The bytes are neither valid JSON nor a valid zstandard frame of JSON, or the frame
            would inflate beyond :data:`MAX_DECOMPRESSED_SIZE`.

    """
    data = bytes(blob)
    if data[:4] == _ZSTD_MAGIC:
        data = decompress(data, what=what)
    return decode_json(data, what=what)
