"""The documentation site: nav, API reference coverage, the docs build helpers, and a strict build.

The build (``mkdocs build --strict``, the same as ``make docs``) fails on any warning: a broken link or anchor,
a nav entry without a page, a module that cannot be collected, a griffe warning about a docstring.
"""

from __future__ import annotations

import html
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

import agentmem_plugin

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
REFERENCE = DOCS / "reference"
PACKAGE = ROOT / "agentmem_plugin"

# Pages under docs/ deliberately left out of the nav, with the reason.
NOT_IN_NAV: dict[str, str] = {}

# Exported names that are not API to document, with the reason.
NOT_DOCUMENTED: dict[str, str] = {
    "__version__": "the version string, shown by the package metadata"
}

# Modules of agentmem_plugin without a generated reference page, with the reason.
NO_REFERENCE_PAGE: dict[str, str] = {
    "agentmem_plugin.cli": "a command, documented by hand in docs/cli.md",
}

_DIRECTIVE = re.compile(r"^:::\s+(?P<target>[\w.]+)\s*$", re.MULTILINE)


def _nav_pages(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        if not re.match(r"^[a-z][a-z0-9+.-]*://", node):
            yield node
    elif isinstance(node, list):
        for item in node:
            yield from _nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from _nav_pages(value)


def _config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    return config


def _directives() -> set[str]:
    found: set[str] = set()
    for page in REFERENCE.rglob("*.md"):
        found.update(
            m.group("target") for m in _DIRECTIVE.finditer(page.read_text(encoding="utf-8"))
        )
    return found


def _defining_module(name: str, obj: object) -> ModuleType:
    """The module that defines *obj*: its ``__module__``, or (constants) the loaded module that exports it."""
    module_name = getattr(obj, "__module__", None)
    if (inspect.isclass(obj) or inspect.isfunction(obj)) and isinstance(module_name, str):
        return sys.modules[module_name]
    owners = [
        module
        for loaded, module in sorted(sys.modules.items())
        if loaded.startswith("agentmem_plugin.")
        and name in getattr(module, "__all__", ())
        and getattr(module, name, None) is obj
    ]
    assert len(owners) == 1, f"{name}: cannot tell which module defines it ({owners})"
    return owners[0]


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_docs_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the nav -------------------------------------------------------------------------------------------------


def test_every_nav_page_exists() -> None:
    missing = [page for page in _nav_pages(_config()["nav"]) if not (DOCS / page).is_file()]
    assert missing == []


def test_every_page_is_in_the_nav() -> None:
    in_nav = set(_nav_pages(_config()["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert sorted(pages - in_nav - set(NOT_IN_NAV)) == []
    assert sorted(set(NOT_IN_NAV) - pages) == [], "NOT_IN_NAV names a page that no longer exists"


def test_nav_lists_each_page_once() -> None:
    pages = list(_nav_pages(_config()["nav"]))
    assert sorted(p for p in set(pages) if pages.count(p) > 1) == []


# -- the API reference ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(set(agentmem_plugin.__all__) - set(NOT_DOCUMENTED)))
def test_every_export_has_a_reference_directive(name: str) -> None:
    obj = getattr(agentmem_plugin, name)
    module = _defining_module(name, obj)
    directives = _directives()
    by_module = module.__name__ in directives and name in getattr(module, "__all__", ())
    assert by_module or f"{module.__name__}.{name}" in directives, (
        f"agentmem_plugin.{name} is defined in {module.__name__}: add '::: {module.__name__}' (with {name} "
        f"in its __all__) or '::: {module.__name__}.{name}' to a page under docs/reference/"
    )


def test_every_module_has_a_reference_page() -> None:
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in PACKAGE.rglob("*.py")
        if not path.name.startswith("_")  # packages' __init__, __main__ and private modules
    }
    wanted = modules - set(NO_REFERENCE_PAGE)
    assert sorted(wanted - _directives()) == []


def test_every_directive_names_an_existing_module() -> None:
    modules = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in PACKAGE.rglob("*.py")
    }
    unknown = [d for d in _directives() if d not in modules and d.rsplit(".", 1)[0] not in modules]
    assert unknown == []


def test_reference_pages_are_in_the_nav() -> None:
    in_nav = set(_nav_pages(_config()["nav"]))
    pages = {p.relative_to(DOCS).as_posix() for p in REFERENCE.rglob("*.md")}
    assert sorted(pages - in_nav) == []


# -- the build helpers (docs/_ext) ---------------------------------------------------------------------------


def test_readme_links_are_rewritten_for_the_page() -> None:
    hook = _load(DOCS / "_ext" / "readme_include.py")
    readme = "\n".join(
        [
            "See [the core](../../README.md), [errors](../../docs/api.md#errors) and [tests](tests/).",
            "Docs: [LangChain](https://python.langchain.com) and [below](#install).",
            "```python",
            "x = [a](b)",
            "```",
        ]
    )
    out = hook.rewrite_links(
        readme, readme="integrations/langchain/README.md", page="howto/langchain.md"
    )
    assert out.split("\n") == [
        "See [the core](../index.md), [errors](../api.md#errors) and tests.",
        "Docs: [LangChain](https://python.langchain.com) and [below](#install).",
        "```python",
        "x = [a](b)",
        "```",
    ]


def test_missing_readme_includes_nothing(tmp_path: Path) -> None:
    hook = _load(DOCS / "_ext" / "readme_include.py")
    assert hook.include("integrations/none/README.md", root=tmp_path, page="howto/none.md") == ""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "README.md").write_text("# pkg\n\nBody, see [core](../README.md).\n")
    assert hook.include("pkg/README.md", root=tmp_path, page="howto/pkg.md") == (
        "Body, see [core](../index.md).\n"
    )


def test_rst_markup_becomes_markdown() -> None:
    markup = _load(DOCS / "_ext" / "sphinx_markup.py")
    table = "\n".join(
        [
            "Intro::",
            "",
            "    code",
            "",
            "=====  ==========",
            "tier   where",
            "=====  ==========",
            "short  the buffer",
            "long   SQLite, with",
            "       FTS5",
            "=====  ==========",
        ]
    )
    converted = markup.convert_literal_markers(markup.convert_tables(table))
    assert converted.split("\n") == [
        "Intro:",
        "",
        "    code",
        "",
        "| tier | where |",
        "| --- | --- |",
        "| short | the buffer |",
        "| long | SQLite, with FTS5 |",
    ]


# -- the strict build ----------------------------------------------------------------------------------------


# mkdocs's own command line, in a fresh interpreter that then reports which heavy packages the build imported.
_BUILD = """
import sys
from mkdocs.__main__ import cli
cli.main(["build", "--strict", "--site-dir", sys.argv[1]], standalone_mode=False)
print("HEAVY:" + ",".join(m for m in sys.argv[2:] if m in sys.modules))
"""
HEAVY = ("torch", "chromadb", "sentence_transformers", "langchain_core", "llama_index", "langgraph")


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """Build the site once, as ``make docs`` does (``mkdocs build --strict``), into a temporary directory.

    Returns the site directory and the heavy packages the build imported.
    """
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-c", _BUILD, str(out), *HEAVY],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    heavy = result.stdout.rsplit("HEAVY:", 1)[1].strip()
    return out, [m for m in heavy.split(",") if m]


@pytest.fixture
def site(build: tuple[Path, list[str]]) -> Path:
    """The built site."""
    return build[0]


def test_strict_build_succeeds(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "reference" / "manager" / "index.html").is_file()
    assert not (site / "_ext").exists(), "docs/_ext holds build helpers, not pages"


def test_build_imports_no_heavy_dependency(build: tuple[Path, list[str]]) -> None:
    assert (
        build[1] == []
    )  # griffe reads the sources statically: torch, chromadb, ... are never imported


@pytest.mark.parametrize("framework", ["langchain", "langgraph", "llamaindex"])
def test_howto_pages_include_the_readme(site: Path, framework: str) -> None:
    readme = ROOT / "integrations" / framework / "README.md"
    page = (site / "howto" / framework / "index.html").read_text(encoding="utf-8")
    text = html.unescape(re.sub(r"<[^>]+>", "", page))
    source = (
        readme.read_text(encoding="utf-8") if readme.is_file() else ""
    )  # missing: nothing included
    headings = re.findall(r"^## (.+)$", source, re.MULTILINE)
    missing = [h for h in headings if re.sub(r"[`*]", "", h).strip() not in text]
    assert missing == []


def test_every_export_is_rendered(site: Path) -> None:
    rendered = "\n".join(
        p.read_text(encoding="utf-8") for p in (site / "reference").rglob("*.html")
    )
    missing = []
    for name in sorted(set(agentmem_plugin.__all__) - set(NOT_DOCUMENTED)):
        module = _defining_module(name, getattr(agentmem_plugin, name))
        if f'id="{module.__name__}.{name}"' not in rendered:
            missing.append(f"{module.__name__}.{name}")
    assert missing == []


def test_docstring_markup_is_converted(site: Path) -> None:
    leftovers = {}
    for page in (site / "reference").rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        found = re.findall(
            r":(?:class|meth|func|mod|data|attr|exc):<code>|:(?:class|meth|func):`|<autoref\b|={5,} ",
            text,
        )
        if found:
            leftovers[page.relative_to(site).as_posix()] = found[:3]
    assert leftovers == {}
    manager = (site / "reference" / "manager" / "index.html").read_text(encoding="utf-8")
    assert 'href="../memory/#agentmem_plugin.memory.Memory"' in manager  # a role became a link
