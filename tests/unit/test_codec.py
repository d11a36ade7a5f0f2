from __future__ import annotations

import math

import orjson
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from agentmem_plugin.codec import (
    DEFAULT_COMPRESSION_THRESHOLD,
    decode_json,
    decode_value,
    encode_json,
    encode_value,
    is_compressed,
    normalize,
)
from agentmem_plugin.errors import IntegrityError, SerializationError

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(), children, max_size=6)
    ),
    max_leaves=30,
)


def _same(a: object, b: object) -> bool:
    """Equality that also tells 0.0 from -0.0 and int from float."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type]
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)  # type: ignore[attr-defined,index]
    return a == b


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_round_trip_json_values(value: object) -> None:
    blob = encode_value(value)
    assert isinstance(blob, bytes)
    assert _same(decode_value(blob), value)
    assert _same(decode_value(memoryview(blob)), value)
    assert _same(normalize(value), value)
    assert _same(decode_json(encode_json(value)), value)


@settings(max_examples=50, deadline=None)
@given(json_values)
def test_round_trip_always_compressed(value: object) -> None:
    blob = encode_value(value, compression_threshold=0)
    assert is_compressed(blob)
    assert _same(decode_value(blob), value)


def test_tuples_become_lists() -> None:
    value = {"t": (1, (2, 3)), "l": [(4,)]}
    expected = {"t": [1, [2, 3]], "l": [[4]]}
    assert decode_value(encode_value(value)) == expected
    assert normalize(value) == expected
    assert normalize((1, 2)) == [1, 2]


def test_large_values_are_compressed_and_round_trip() -> None:
    value = {"text": "lorem ipsum dolor " * 1000, "nums": list(range(500))}
    raw = encode_json(value)
    assert len(raw) > DEFAULT_COMPRESSION_THRESHOLD
    blob = encode_value(value)
    assert is_compressed(blob)
    assert len(blob) < len(raw)
    assert decode_value(blob) == value


def test_small_values_are_not_compressed() -> None:
    value = {"a": [1, 2, 3], "b": "short"}
    blob = encode_value(value)
    assert not is_compressed(blob)
    assert blob == orjson.dumps(value)
    assert decode_value(blob) == value


def test_threshold_boundary() -> None:
    value = "x" * (DEFAULT_COMPRESSION_THRESHOLD - 2)  # quotes make it exactly the threshold
    assert len(encode_json(value)) == DEFAULT_COMPRESSION_THRESHOLD
    assert not is_compressed(encode_value(value))
    value2 = value + "x"
    assert is_compressed(encode_value(value2))
    assert decode_value(encode_value(value2)) == value2


def test_threshold_none_never_compresses() -> None:
    value = "z" * (DEFAULT_COMPRESSION_THRESHOLD * 20)
    blob = encode_value(value, compression_threshold=None)
    assert not is_compressed(blob)
    assert decode_value(blob) == value


@pytest.mark.parametrize(
    "bad",
    [object(), {1, 2}, {1: "int key"}, b"bytes", {"nested": [object()]}],
    ids=["object", "set", "int-key-dict", "bytes", "nested"],
)
def test_non_serializable_raises_serialization_error(bad: object) -> None:
    what = "value of key 'k-42'"
    for fn in (encode_value, encode_json, normalize):
        with pytest.raises(SerializationError) as info:
            fn(bad, what=what)
        assert what in str(info.value)
        assert isinstance(info.value, TypeError)


def test_huge_int_not_serializable() -> None:
    with pytest.raises(SerializationError):
        encode_value(2**70)


def test_corrupt_zstd_frame_is_integrity_error() -> None:
    blob = encode_value("q" * 10_000)
    assert is_compressed(blob)
    corrupt = blob[:4] + b"\x00\xff" * 20
    with pytest.raises(IntegrityError, match="stored value of key 'k'"):
        decode_value(corrupt, what="value of key 'k'")
    with pytest.raises(IntegrityError):
        decode_value(blob[: len(blob) // 2])


def test_zstd_frame_of_invalid_json_is_integrity_error() -> None:
    blob = zstandard.ZstdCompressor().compress(b"{not json")
    assert is_compressed(blob)
    with pytest.raises(IntegrityError):
        decode_value(blob)


@pytest.mark.parametrize("data", [b"{not json", b"\xff\xfe", b"", b"[1,2"])
def test_invalid_json_bytes_is_integrity_error(data: bytes) -> None:
    with pytest.raises(IntegrityError, match="my thing"):
        decode_value(data, what="my thing")
    with pytest.raises(IntegrityError):
        decode_json(data)


def test_normalize_returns_copy_not_alias() -> None:
    original = {"a": [1, 2], "b": {"c": "d"}}
    out = normalize(original)
    assert out == original
    assert out is not original
    assert out["a"] is not original["a"]
    original["a"].append(3)
    original["b"]["c"] = "changed"
    original["new"] = 1
    assert out == {"a": [1, 2], "b": {"c": "d"}}


def test_normalize_scalars_pass_through() -> None:
    for v in (None, True, False, "s", 0, -(2**63), 2**64 - 1, 1.5):
        assert normalize(v) == v
        assert type(normalize(v)) is type(v)


def test_a_frame_declaring_zero_bytes_but_holding_data_is_refused() -> None:
    """python-zstandard returns b"" for a frame whose header says 0 bytes, without reading it: a frame edited
    to declare 0 while it holds 100 bytes read as an empty value instead of a corrupt one."""
    from agentmem_plugin.codec import decompress

    frame = bytearray(zstandard.ZstdCompressor().compress(b"x" * 100))
    assert frame[4] == 0x20  # single segment, a one-byte content size after the descriptor
    frame[5] = 0
    assert zstandard.frame_content_size(bytes(frame)) == 0
    with pytest.raises(IntegrityError, match="corrupt zstandard frame"):
        decompress(bytes(frame))
    assert decompress(zstandard.ZstdCompressor().compress(b"")) == b""  # a truly empty frame is fine
