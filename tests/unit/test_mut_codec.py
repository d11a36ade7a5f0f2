"""Codec behaviours that surviving mutants showed untested (docs/testing.md, "Mutation score")."""

from __future__ import annotations

import orjson
import pytest
import zstandard

from agentmem_plugin.codec import (
    decode_json,
    decode_value,
    decompress,
    encode_json,
    encode_value,
    is_compressed,
    normalize,
)
from agentmem_plugin.errors import IntegrityError, InvalidArgumentError, SerializationError

MiB = 1024 * 1024


def unsized(data: bytes) -> bytes:
    """A zstandard frame of *data* that does not declare its content size."""
    frame = zstandard.ZstdCompressor(write_content_size=False).compress(data)
    assert zstandard.frame_content_size(frame) == -1
    return frame


def test_errors_name_the_value_by_default() -> None:
    # without what=, every message says "value"
    for fn in (encode_json, encode_value, normalize):
        with pytest.raises(SerializationError, match=r"^cannot store value as JSON: "):
            fn({1, 2})
    for fn in (decode_json, decode_value):
        with pytest.raises(IntegrityError, match=r"^stored value is not valid JSON: "):
            fn(b"{not json")
    corrupt = b"\x28\xb5\x2f\xfd" + b"\x00" * 20
    for fn in (decompress, decode_value):
        with pytest.raises(IntegrityError, match=r"^stored value is a corrupt zstandard frame: "):
            fn(corrupt)


def test_errors_name_what_they_were_given() -> None:
    what = "value of key 'k'"
    with pytest.raises(SerializationError, match=r"^cannot store value of key 'k' as JSON: "):
        normalize({1, 2}, what=what)
    with pytest.raises(IntegrityError, match=r"^stored value of key 'k' is not valid JSON: "):
        decode_json(b"[1,", what=what)
    with pytest.raises(IntegrityError, match=r"^stored value of key 'k' is not valid JSON: "):
        decode_value(b"[1,", what=what)
    # a valid frame holding invalid JSON: the JSON step names the value too
    with pytest.raises(IntegrityError, match=r"^stored value of key 'k' is not valid JSON: "):
        decode_value(zstandard.ZstdCompressor().compress(b"[1,"), what=what)
    corrupt = b"\x28\xb5\x2f\xfd" + b"\x00" * 20
    with pytest.raises(IntegrityError, match=r"^stored value of key 'k' is a corrupt zstandard frame: "):
        decode_value(corrupt, what=what)
    with pytest.raises(IntegrityError, match=r"^stored value of key 'k' is a corrupt zstandard frame: "):
        decompress(corrupt, what=what)
    with pytest.raises(
        IntegrityError,
        match=r"^stored value of key 'k' declares 100 bytes once decompressed, more than the limit of 99 bytes$",
    ):
        decompress(zstandard.ZstdCompressor().compress(b"x" * 100), limit=99, what=what)
    with pytest.raises(
        IntegrityError, match=r"^stored value of key 'k' decompresses to more than 99 bytes \(the limit\); refused$"
    ):
        decompress(unsized(b"x" * 100), limit=99, what=what)


def test_numpy_arrays_are_stored_as_lists() -> None:
    np = pytest.importorskip("numpy")
    assert encode_json(np.array([1, 2, 3])) == b"[1,2,3]"
    assert decode_value(encode_value({"v": np.array([0.5, 1.5])})) == {"v": [0.5, 1.5]}
    assert normalize(np.array([[1, 2], [3, 4]])) == [[1, 2], [3, 4]]


def test_normalize_accepts_exactly_the_64_bit_ints() -> None:
    # the same ints as the JSON tiers: signed 64-bit down to -2**63, unsigned up to 2**64 - 1
    for n in (-(2**63), -(2**63) + 1, -127, 0, 127, 128, 2**63, 2**64 - 1):
        assert normalize(n) == n
        assert decode_value(encode_value(n)) == n
    for n in (-(2**63) - 1, -(2**64), 2**64, 2**64 + 1, 2**65):
        with pytest.raises(SerializationError):
            normalize(n)
        with pytest.raises(SerializationError):
            encode_value(n)


def test_a_compressed_value_declares_its_size() -> None:
    # so that a reader can refuse a frame inflating past its limit before inflating anything
    value = "word " * 2000
    blob = encode_value(value)
    assert is_compressed(blob)
    assert zstandard.frame_content_size(blob) == len(encode_json(value))
    assert not is_compressed(encode_json(value))


def test_a_limit_of_one_byte_is_valid_and_the_limit_itself_is_allowed() -> None:
    assert decompress(zstandard.ZstdCompressor().compress(b"x"), limit=1) == b"x"
    assert decompress(unsized(b"x"), limit=1) == b"x"
    data = b"abc" * 100
    assert decompress(zstandard.ZstdCompressor().compress(data), limit=len(data)) == data
    assert decompress(unsized(data), limit=len(data)) == data
    with pytest.raises(InvalidArgumentError, match=r"^limit must be a positive int \(bytes\), got 0$"):
        decompress(unsized(data), limit=0)


def test_an_unsized_frame_is_counted_over_all_its_chunks() -> None:
    # 3 MiB without a declared size against a 2.5 MiB limit: no single 1 MiB chunk passes the limit, their sum does
    limit = 5 * MiB // 2
    with pytest.raises(IntegrityError, match=r"decompresses to more than 2621440 bytes \(the limit\); refused$"):
        decompress(unsized(b"y" * (3 * MiB)), limit=limit)
    data = orjson.dumps(["z" * 1000] * 2500)  # 2.5 MB, over two chunks, under the limit
    assert decompress(unsized(data), limit=limit) == data
    assert decode_value(unsized(data)) == ["z" * 1000] * 2500
