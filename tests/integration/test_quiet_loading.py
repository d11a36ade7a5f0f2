"""Loading the embedding model prints no progress bars unless asked (show_progress=True or $AGENTMEM_SHOW_PROGRESS).

The model is cached once per process and transformers reads its progress-bar setting at import, so the loads run
in one fresh interpreter whose stderr is captured: each load writes a marker line to stderr before it starts.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agentmem_plugin.embeddings import (
    SHOW_PROGRESS_ENV,
    SentenceTransformerEmbedder,
    show_progress_default,
)

# Each load: a marker on stderr, then a fresh model load (the process cache emptied) with the given option.
_LOADS = """
import os, sys
from agentmem_plugin import embeddings
for case in sys.argv[1:]:
    name, _, env = case.partition(":")
    os.environ.pop("AGENTMEM_SHOW_PROGRESS", None)
    if env:
        os.environ["AGENTMEM_SHOW_PROGRESS"] = env
    kwargs = {} if name == "default" else {"show_progress": name == "true"}
    print(f"@@ {case}", file=sys.stderr, flush=True)
    embeddings._MODELS.clear()
    emb = embeddings.SentenceTransformerEmbedder(**kwargs)
    assert emb.dim == 384 and len(emb.embed_documents(["a", "b"])) == 2
    print(f"@@ end", file=sys.stderr, flush=True)
"""


@pytest.fixture(scope="module")
def stderr_by_case() -> dict[str, str]:
    pytest.importorskip("sentence_transformers")
    cases = ["default", "true", "default:1", "false:1"]
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (SHOW_PROGRESS_ENV, "HF_HUB_DISABLE_PROGRESS_BARS")
    }
    done = subprocess.run(
        [sys.executable, "-c", _LOADS, *cases],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, str] = {}
    for chunk in done.stderr.split("@@ ")[1:]:
        case, _, text = chunk.partition("\n")
        if case != "end":
            out[case] = text
    assert sorted(out) == sorted(cases)
    return out


@pytest.mark.slow
def test_loading_the_model_prints_nothing_by_default(stderr_by_case: dict[str, str]) -> None:
    quiet = stderr_by_case["default"]
    assert "Loading weights" not in quiet
    assert "it/s" not in quiet  # no tqdm bar of any kind
    assert "%|" not in quiet


@pytest.mark.slow
def test_progress_bars_shown_when_asked(stderr_by_case: dict[str, str]) -> None:
    assert "Loading weights" in stderr_by_case["true"]
    assert "Loading weights" in stderr_by_case["default:1"]  # $AGENTMEM_SHOW_PROGRESS=1


@pytest.mark.slow
def test_explicit_false_wins_over_the_environment(stderr_by_case: dict[str, str]) -> None:
    assert "Loading weights" not in stderr_by_case["false:1"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("no", False),
        ("1", True),
        ("true", True),
        (" YES ", True),
        ("on", True),
    ],
)
def test_show_progress_default_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, value: str | None, shown: bool
) -> None:
    if value is None:
        monkeypatch.delenv(SHOW_PROGRESS_ENV, raising=False)
    else:
        monkeypatch.setenv(SHOW_PROGRESS_ENV, value)
    assert show_progress_default() is shown
    assert SentenceTransformerEmbedder().show_progress is shown
    assert SentenceTransformerEmbedder(show_progress=not shown).show_progress is (not shown)
