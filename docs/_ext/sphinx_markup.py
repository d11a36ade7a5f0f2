"""A griffe extension for the documentation site: Sphinx-flavoured docstring markup to Markdown.

agentmem_plugin's docstrings are Google style (parsed by griffe) but use a little reStructuredText that
mkdocstrings would otherwise print literally. This extension rewrites griffe's copy of each docstring (the
source files are never touched) before it is parsed:

* ``:class:`~pkg.mod.Name```, ``:meth:`store```, ``:func:`title <pkg.mod.fn>``` (any Sphinx role) become
  optional cross-references: a link when the target is rendered somewhere in the site, plain code otherwise,
  so a role can never break ``mkdocs build --strict``. Names are resolved in the scope of the documented object,
  then, failing that, by a unique name anywhere in the package.
* RST simple tables (``====  ====`` borders) become Markdown tables.
* A paragraph ending in ``::`` loses one colon (the indented block after it already renders as code), and a line
  holding only ``::`` is dropped.
* ``Example:`` section headers become ``Examples:`` (griffe only parses the plural as an examples section, which
  renders ``>>>`` lines as Python console code instead of Markdown quotes).

Loaded by ``mkdocs.yml`` (``plugins.mkdocstrings.handlers.python.options.extensions``).
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|mod|data|attr|exc|obj|const|ref):"
    r"`(?P<tilde>~?)(?P<text>[^`<]+?)(?:\s*<(?P<target>[^>`]+)>)?`"
)
_BORDER = re.compile(r"^(?P<indent>\s*)=+(?:\s+=+)+\s*$")
_EXAMPLE_HEADER = re.compile(r"^(?P<indent>\s*)Example:\s*$", re.MULTILINE)


def _columns(border: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"=+", border)]


def _cells(line: str, cols: list[tuple[int, int]]) -> list[str]:
    out = []
    for i, (start, _) in enumerate(cols):
        end = cols[i + 1][0] if i + 1 < len(cols) else len(line)
        out.append(line[start:end].strip())
    return out


def _table_rows(lines: list[str], cols: list[tuple[int, int]]) -> list[list[str]]:
    rows: list[list[str]] = []
    for line in lines:
        if not line.strip():
            continue
        cells = _cells(line, cols)
        if rows and not cells[0]:  # a continuation line: first column empty
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
        else:
            rows.append(cells)
    return rows


def _markdown_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", r"\|") for c in cells) + " |"


def convert_tables(text: str) -> str:
    """Return *text* with every RST simple table (three ``=`` borders) written as a Markdown table."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        match = _BORDER.match(lines[i])
        if match:
            borders = [i]
            j = i + 1
            while j < len(lines) and len(borders) < 3:
                if lines[j].strip() == lines[i].strip():
                    borders.append(j)
                elif not lines[j].strip():
                    break
                j += 1
            if len(borders) == 3:
                indent = match.group("indent")
                cols = _columns(lines[i])
                header = _table_rows(lines[borders[0] + 1 : borders[1]], cols)
                body = _table_rows(lines[borders[1] + 1 : borders[2]], cols)
                if header:
                    head = [" ".join(parts).strip() for parts in zip(*header, strict=True)]
                    if out and out[-1].strip():
                        out.append("")
                    out.append(indent + _markdown_row(head))
                    out.append(indent + _markdown_row(["---"] * len(cols)))
                    out.extend(indent + _markdown_row(row) for row in body)
                    i = borders[2] + 1
                    continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def convert_literal_markers(text: str) -> str:
    """Return *text* with RST ``::`` literal-block markers removed (the indented block stays a code block)."""
    lines = text.split("\n")
    out = []
    for line in lines:
        if line.strip() == "::":
            continue
        if line.endswith("::") and not line.rstrip().endswith(":::"):
            line = line[:-1]
        out.append(line)
    return "\n".join(out)


class SphinxMarkup(griffe.Extension):
    """Rewrite Sphinx roles, RST tables and literal markers in every docstring of a loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings of *pkg* once it is completely loaded (imports are known then)."""
        objects = list(_walk(pkg))
        by_name: dict[str, set[str]] = defaultdict(set)
        for obj in objects:
            by_name[obj.name].add(obj.path)
        for obj in objects:
            if obj.docstring is not None:
                obj.docstring.value = self.rewrite(obj.docstring.value, obj, by_name)

    def rewrite(self, text: str, obj: griffe.Object, by_name: dict[str, set[str]]) -> str:
        """Return *text* (the docstring of *obj*) in Markdown."""
        text = _EXAMPLE_HEADER.sub(r"\g<indent>Examples:", text)
        text = convert_tables(text)
        text = convert_literal_markers(text)

        def role(match: re.Match[str]) -> str:
            shown = match.group("text").strip()
            target = (match.group("target") or shown).strip().lstrip("~")
            if match.group("tilde"):
                shown = shown.rsplit(".", 1)[-1]
            identifier = _resolve(target, obj, by_name)
            title = f"<code>{html.escape(shown)}</code>"
            return f'<autoref identifier="{html.escape(identifier)}" optional>{title}</autoref>'

        return _ROLE.sub(role, text)


def _walk(obj: griffe.Object) -> Any:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _walk(member)  # type: ignore[arg-type]


def _resolve(target: str, obj: griffe.Object, by_name: dict[str, set[str]]) -> str:
    if target.startswith(obj.package.name + "."):
        return target
    first, _, rest = target.partition(".")
    try:
        base = obj.resolve(first)
    except griffe.NameResolutionError:
        candidates = by_name.get(first, set())
        if len(candidates) != 1:
            return target
        base = next(iter(candidates))
    return f"{base}.{rest}" if rest else base
