"""Decompression is bounded everywhere: a small crafted zstd frame cannot inflate past the documented caps.

python-zstandard's one-shot ``decompress(max_output_size=...)`` ignores the cap when the frame declares its
content size, so a ~10 KB frame declaring 300 MiB of zeros used to be inflated in full. These tests craft such
frames (and ones that declare nothing) and check, in a fresh process, the error and the peak memory.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
import zstandard

from agentmem_plugin.codec import (
    MAX_DECOMPRESSED_SIZE,
    decode_value,
    decompress,
    encode_value,
)
from agentmem_plugin.errors import IntegrityError

MiB = 1024 * 1024
BOMB_SIZE = MAX_DECOMPRESSED_SIZE + 44 * MiB  # 300 MiB: just over the cap


def bomb(size: int, *, declare: bool, payload: bytes = b" ") -> bytes:
    """A zstd frame of *size* bytes of *payload* repeated, declaring its content size or not."""
    out = io.BytesIO()
    cctx = zstandard.ZstdCompressor(level=1, write_content_size=declare)
    chunk = payload * (MiB // len(payload))
    with cctx.stream_writer(out, size=size if declare else -1, closefd=False) as writer:
        left = size
        while left:
            part = chunk[: min(left, len(chunk))]
            writer.write(part)
            left -= len(part)
    return out.getvalue()


@pytest.fixture(scope="module")
def declared_bomb() -> bytes:
    blob = bomb(BOMB_SIZE, declare=True)
    assert len(blob) < 64 * 1024 and zstandard.frame_content_size(blob) == BOMB_SIZE
    return blob


def peak_rss_mib(script: str, *args: str) -> tuple[int, str]:
    """Run *script* in a fresh interpreter; return its peak RSS (MiB) and its stdout."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("peak memory is read from /proc (Linux)")
    # VmHWM, not getrusage's ru_maxrss: that one is inherited from the (possibly large) pytest process.
    code = textwrap.dedent(script) + textwrap.dedent(
        """
        from pathlib import Path
        status = Path("/proc/self/status").read_text()
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        print("RSS", int(hwm.split()[1]) // 1024)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    return int(lines[-1].split()[1]), "\n".join(lines[:-1])


def test_a_value_declaring_a_huge_size_is_refused_without_inflating(
    tmp_path: Path, declared_bomb: bytes
) -> None:
    with pytest.raises(IntegrityError, match=r"stored value of key 'k' .*268435456"):
        decode_value(declared_bomb, what="value of key 'k'")
    blob = tmp_path / "bomb.zst"
    blob.write_bytes(declared_bomb)
    rss, out = peak_rss_mib(
        """
        import sys
        from pathlib import Path
        from agentmem_plugin.codec import decode_value
        from agentmem_plugin.errors import IntegrityError
        try:
            decode_value(Path(sys.argv[1]).read_bytes())
        except IntegrityError as exc:
            print("refused", type(exc).__name__)
        """,
        str(blob),
    )
    assert out == "refused IntegrityError"
    assert rss < 150, f"decoding a 19 KB frame took {rss} MiB"


def test_a_frame_without_a_declared_size_is_cut_at_the_cap(tmp_path: Path) -> None:
    blob = bomb(BOMB_SIZE, declare=False)
    assert zstandard.frame_content_size(blob) == -1
    with pytest.raises(IntegrityError, match="more than 268435456 bytes"):
        decompress(blob, what="value")
    with pytest.raises(IntegrityError, match="more than 1048576 bytes"):
        decompress(bomb(2 * MiB, declare=False), limit=MiB)


def test_a_frame_that_lies_about_its_size_is_refused() -> None:
    honest = zstandard.ZstdCompressor(write_content_size=True).compress(b"x" * 10_000)
    # Rewrite the declared content size (the 2-byte field after a single-segment descriptor).
    descriptor = honest[4]
    assert descriptor & 0xC0 == 0x40 and descriptor & 0x20  # FCS field of 2 bytes, single segment
    liar = honest[:5] + (300 - 256).to_bytes(2, "little") + honest[7:]  # declares 300 bytes
    with pytest.raises(IntegrityError):
        decompress(liar)


def test_bounded_decompression_round_trips_what_the_codec_writes() -> None:
    value = {"text": "word " * 5000, "n": list(range(500))}
    blob = encode_value(value)
    assert blob[:4] == b"\x28\xb5\x2f\xfd"
    assert decode_value(blob) == value
    streamed = zstandard.ZstdCompressor(write_content_size=False).compress(orjson.dumps(value))
    assert decode_value(streamed) == value  # no declared size: the streaming path
    assert decompress(streamed, limit=len(orjson.dumps(value))) == orjson.dumps(value)
    with pytest.raises(IntegrityError, match="more than 10 bytes"):
        decompress(streamed, limit=10)


def test_garbage_after_the_magic_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError, match="corrupt zstandard frame"):
        decode_value(b"\x28\xb5\x2f\xfd" + b"\x00" * 20)


@pytest.mark.parametrize("limit", [0, -1, 1.5, "10", True])
def test_the_limit_is_checked(limit: object) -> None:
    from agentmem_plugin.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="limit"):
        decompress(b"", limit=limit)  # type: ignore[arg-type]


def test_a_backup_whose_entries_inflate_past_the_cap_is_refused(tmp_path: Path) -> None:
    """The backup reader streams: one line (entry) above the per-entry cap is refused as it passes the cap."""
    from agentmem_plugin.backup import read_backup, write_backup
    from agentmem_plugin.entry import MemoryEntry

    target = tmp_path / "bk"
    write_backup(target, [MemoryEntry("a", 1)], name="n")
    manifest = orjson.loads((target / "manifest.json").read_bytes())
    blob = bomb(
        1024 * MiB, declare=True
    )  # 1 GiB of spaces, no newline: one "entry" far beyond 256 MiB
    (target / manifest["entries_file"]).write_bytes(blob)
    import hashlib

    manifest["sha256"] = hashlib.sha256(blob).hexdigest()
    (target / "manifest.json").write_bytes(orjson.dumps(manifest))
    with pytest.raises(IntegrityError, match="bk"):
        read_backup(target)
    rss, out = peak_rss_mib(
        """
        import sys
        from agentmem_plugin.backup import read_backup
        from agentmem_plugin.errors import IntegrityError
        try:
            read_backup(sys.argv[1])
        except IntegrityError as exc:
            print("refused")
        """,
        str(target),
    )
    assert out == "refused"
    # Bounded by the per-entry cap (256 MiB) plus the interpreter, not by the 1 GiB the frame declares.
    assert rss < 400, f"reading a {len(blob)}-byte backup took {rss} MiB"


def test_a_backup_of_many_small_lines_beyond_its_count_stops_early(tmp_path: Path) -> None:
    """Valid-looking lines past the manifest's count are refused as they arrive, not after inflating them all."""
    from agentmem_plugin.backup import read_backup, write_backup
    from agentmem_plugin.entry import MemoryEntry

    target = tmp_path / "bk"
    write_backup(target, [MemoryEntry("a", 1)], name="n")
    line = orjson.dumps(MemoryEntry("a", 1).to_dict()) + b"\n"
    blob = bomb(len(line) * 2_000_000, declare=True, payload=line)  # ~200 MB of lines, count says 1
    import hashlib

    manifest = orjson.loads((target / "manifest.json").read_bytes())
    (target / manifest["entries_file"]).write_bytes(blob)
    manifest["sha256"] = hashlib.sha256(blob).hexdigest()
    (target / "manifest.json").write_bytes(orjson.dumps(manifest))
    with pytest.raises(IntegrityError, match="more entries than its manifest says"):
        read_backup(target)


def test_an_archived_blob_declaring_a_huge_size_is_refused(tmp_path: Path, declared_bomb: bytes) -> None:
    """A plain archive checks its blob's checksum, then inflates it through the same bounded decompress."""
    import hashlib

    from agentmem_plugin.entry import MemoryEntry
    from agentmem_plugin.tiers.archive import ArchiveTier

    archive = ArchiveTier(tmp_path / "archive", encrypt=False)
    archive.put(MemoryEntry("k", "small"))
    blob_path = next(p for p in (tmp_path / "archive").iterdir() if p.suffix == ".amar")
    header = blob_path.read_bytes()[:6]
    # a well-formed plain blob (valid checksum) whose payload is the bomb: only the bound stops it
    blob_path.write_bytes(header + hashlib.sha256(declared_bomb).digest() + declared_bomb)
    with pytest.raises(IntegrityError, match="268435456"):
        archive.get("k")
    archive.close()
