"""An MkDocs hook: include an integration's README in a how-to page, with links that work in the site.

A page writes ``<!-- include-readme: integrations/langchain/README.md -->`` on a line of its own; the hook
replaces that line by the README (path relative to the repository root, beside ``mkdocs.yml``):

* its first line is dropped when it is a ``# title`` (the page has its own);
* relative links are rewritten for the page: a link to a file under ``docs/`` points at that page, a link to
  the repository's top-level ``README.md`` at the home page, and any other link to a repository file keeps
  only its text (the site does not publish the repository), so a README can never break
  ``mkdocs build --strict``;
* a README that does not exist yet includes nothing (a how-to page still builds while its package is written).

Loaded by ``mkdocs.yml`` (``hooks:``).
"""

from __future__ import annotations

import logging
import posixpath
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.readme_include")

_MARKER = re.compile(r"^<!--\s*include-readme:\s*(?P<path>\S+)\s*-->\s*$", re.MULTILINE)
_LINK = re.compile(
    r"(?P<bang>!?)\[(?P<text>[^\]\n]*)\]\((?P<target>[^)\s]+)(?P<title>\s+\"[^\"]*\")?\)"
)
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#|/)", re.IGNORECASE)


def rewrite_links(markdown: str, *, readme: str, page: str, docs_dir: str = "docs") -> str:
    """Return *markdown* (the README at repository path *readme*) with links fixed for the docs page *page*.

    *page* is the including page's path relative to *docs_dir*. Fenced code blocks are left alone.
    """
    out: list[str] = []
    fenced = False
    readme_dir = posixpath.dirname(readme)
    page_dir = posixpath.dirname(page)

    def fix(match: re.Match[str]) -> str:
        target = match.group("target")
        if _EXTERNAL.match(target):
            return match.group(0)
        path, sep, anchor = target.partition("#")
        repo_path = posixpath.normpath(posixpath.join(readme_dir, path))
        if repo_path.startswith(docs_dir + "/") and repo_path.endswith(".md"):
            doc = repo_path[len(docs_dir) + 1 :]
        elif repo_path == "README.md":
            doc = "index.md"
        else:
            return match.group("text")
        new = posixpath.relpath(doc, page_dir or ".") + (sep + anchor if sep else "")
        return f"{match.group('bang')}[{match.group('text')}]({new}{match.group('title') or ''})"

    for line in markdown.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            out.append(line)
        else:
            out.append(line if fenced else _LINK.sub(fix, line))
    return "\n".join(out)


def include(path: str, *, root: Path, page: str) -> str:
    """Return the README at repository path *path*, ready to sit in docs page *page* ("" when missing)."""
    file = root / path
    if not file.is_file():
        log.info("%s does not exist yet: nothing included in %s", path, page)
        return ""
    lines = file.read_text(encoding="utf-8").split("\n")
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return rewrite_links("\n".join(lines).strip("\n") + "\n", readme=path, page=page)


def on_page_markdown(markdown: str, *, page: Any, config: Any, **kwargs: Any) -> str:
    """Expand every ``include-readme`` marker of the page."""
    root = Path(config["config_file_path"]).parent
    src = page.file.src_uri
    return _MARKER.sub(lambda m: include(m.group("path"), root=root, page=src), markdown)
