"""The ``agentmem`` command (also ``python -m agentmem_plugin``): look into and maintain a memory store on disk.

A *store* is the directory of a ``MemoryManager(storage_path=PATH)``: ``memory.sqlite3`` (the short- and
long-term tiers of every namespace), ``archive/`` (the external tier, one directory per namespace) and, once
semantic search has been used, ``chroma/`` and ``embeddings.sqlite3`` (the semantic index, derived from long-term
memory and rebuilt by ``reindex``).

Commands::

    agentmem stats PATH              tiers, counts, namespaces, archive encryption, semantic index
    agentmem search PATH QUERY       ranked hits across the tiers (--mode hybrid|keyword|semantic)
    agentmem get PATH KEY            the value (a str as it is, anything else as JSON)
    agentmem inspect PATH KEY        the whole entry: tier, ttl/expiry, priority, tags, metadata, reads
    agentmem put PATH KEY VALUE      store a value (--json-value, --ttl, --priority, --tag, --tier, ...)
    agentmem delete PATH KEY         delete a key from every tier
    agentmem list PATH               the entries of a namespace (--tier, --tag, --prefix, --limit/--offset)
    agentmem export PATH FILE        every entry of every namespace and tier as JSON lines (FILE "-": stdout)
    agentmem import PATH FILE        JSON lines back in; every line is checked before anything is written
    agentmem backup PATH DEST        a checksummed backup directory of the whole store
    agentmem restore PATH SRC        replace the store's contents with a backup (verified completely first)
    agentmem consolidate PATH        move what the consolidation policy selects from short- to long-term
    agentmem reindex PATH            rebuild the semantic index (loads the embedding model)
    agentmem cleanup PATH            delete expired entries
    agentmem demo                    a guided tour on a temporary store

Exit codes:
    0  success.
    1  not found: KEY has no live entry (get, inspect, delete).
    2  usage or bad input: an unknown command or option, a bad key, ttl, priority, tier, namespace or JSON
       value, a bad line of an import file (its number is given), an input file that cannot be read or an
       output file that cannot be written, restore onto a store holding entries without ``--force``.
    3  store error: PATH does not exist or is not a store, ``memory.sqlite3`` is not SQLite, a store written by
       a newer version, a read-only location, an encrypted archive without its key (``AGENTMEM_ARCHIVE_KEY``),
       a damaged backup, a semantic index built with another model, a consolidation that failed, a file
       system error under the store.
    4  missing dependency: the ``semantic`` extra is needed (search in hybrid/semantic mode, reindex).
    5  internal error: an unexpected exception (a bug); ``--verbose`` logs its traceback.

Read commands never create a store; ``put``, ``import`` and ``restore`` create one in a new or empty directory.
The result of a command (a value, a table, ``--json`` output, export lines) goes to stdout; errors, logs
(``--verbose``), progress bars and confirmations go to stderr. ``get`` and ``inspect`` only look: they neither
count as a read nor move the entry between tiers.

Tier limits are settings of the process that opens a store, not of the store: unless ``--short-term-limit`` or
``--long-term-limit`` is given, the command opens stores without limits, so it never moves entries between
tiers for capacity.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from inspect import cleandoc
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from agentmem_plugin.backup import backup_store, restore_store
from agentmem_plugin.codec import normalize
from agentmem_plugin.demo import run_demo
from agentmem_plugin.entry import MemoryEntry
from agentmem_plugin.errors import (
    AgentMemError,
    EmbeddingError,
    InvalidArgumentError,
    InvalidKeyError,
    KeyNotFoundError,
    MissingDependencyError,
    SerializationError,
)
from agentmem_plugin.manager import MEMORY_TIERS, MemoryManager
from agentmem_plugin.memory import DATABASE_FILENAME
from agentmem_plugin.tiers.base import Tier
from agentmem_plugin.tiers.chroma import report_progress
from agentmem_plugin.tiers.factory import AUTO_EMBEDDER
from agentmem_plugin.validation import validate_key, validate_namespace

__all__ = [
    "EXIT_DEPENDENCY",
    "EXIT_INTERNAL",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_STORE",
    "EXIT_USAGE",
    "app",
    "main",
    "run_demo",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0
"""The command did what it was asked."""
EXIT_NOT_FOUND = 1
"""The key has no live entry."""
EXIT_USAGE = 2
"""Bad usage or bad input (also what typer returns for an unknown option)."""
EXIT_STORE = 3
"""The store is missing, not a store, corrupt, locked away (encrypted, read-only, newer) or failed."""
EXIT_DEPENDENCY = 4
"""An optional dependency (the ``semantic`` extra) is not installed."""
EXIT_INTERNAL = 5
"""An unexpected error (a bug): the message names it; ``--verbose`` logs the traceback."""

TierName = Literal["short_term", "long_term", "external"]
SearchMode = Literal["hybrid", "keyword", "semantic"]

_UNBOUNDED = 2**62
"""The tier limit of a store opened without --short-term-limit/--long-term-limit: never reached."""
_WRITE_BATCH = 500
"""Entries per store_many call of import and restore (one progress step)."""

app = typer.Typer(
    name="agentmem",
    help="Multi-tier memory for LLM agents: look into and maintain a store directory.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: rich panels print a type such as <bool> beside every flag (--json, --force, --help).
    rich_markup_mode=None,
)


# -- plumbing --------------------------------------------------------------------------------------------------


class _CliError(Exception):
    """A failure the command reports with *message* on stderr and exits with *code*."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Session:
    """Options of the ``agentmem`` group, shared by every command of one invocation."""

    short_term_limit: int | None = None
    long_term_limit: int | None = None


class _StderrHandler(logging.Handler):
    """Writes log records to whatever ``sys.stderr`` is at the time (test runners replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # pragma: no cover - the standard handler contract
            self.handleError(record)


def _configure_logging(verbose: bool) -> Callable[[], None]:
    """Send the package's log records to stderr (DEBUG with --verbose, else WARNING); return the undo."""
    package = logging.getLogger("agentmem_plugin")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    previous = package.level
    package.addHandler(handler)
    package.setLevel(logging.DEBUG if verbose else logging.WARNING)

    def undo() -> None:
        package.removeHandler(handler)
        package.setLevel(previous)

    return undo


def _stdout() -> Console:
    return Console(highlight=False)


def _stderr() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _say(message: str) -> None:
    """Print a confirmation or a notice on stderr (stdout carries only results)."""
    _stderr().print(Text(message))


def _emit_json(data: Any) -> None:
    """Write *data* as one line of JSON to stdout."""
    sys.stdout.write(orjson.dumps(data).decode() + "\n")


def _die(code: int, message: str) -> typer.Exit:
    _stderr().print(Text(f"agentmem: error: {message}", style="red"))
    return typer.Exit(code)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Turn the package's typed errors into a message on stderr and the documented exit code."""
    try:
        yield
    except _CliError as exc:
        raise _die(exc.code, exc.message) from None
    except KeyNotFoundError as exc:
        raise _die(EXIT_NOT_FOUND, str(exc)) from None
    except (InvalidKeyError, InvalidArgumentError, SerializationError) as exc:
        raise _die(EXIT_USAGE, str(exc)) from None
    except MissingDependencyError as exc:
        raise _die(EXIT_DEPENDENCY, str(exc)) from None
    except EmbeddingError as exc:
        raise _die(EXIT_STORE, f"{exc} (from the command line: agentmem reindex PATH)") from None
    except AgentMemError as exc:
        raise _die(EXIT_STORE, str(exc)) from None
    except (typer.Exit, typer.Abort, typer.TyperException):
        raise
    except OSError as exc:  # the file system under the store failed (permissions, disk full, ...)
        logger.debug("store error", exc_info=True)
        raise _die(EXIT_STORE, f"{type(exc).__name__}: {exc}") from None
    except Exception as exc:  # a bug: never let it pass for "not found" (exit 1)
        logger.debug("internal error", exc_info=True)
        raise _die(
            EXIT_INTERNAL,
            f"internal error: {type(exc).__name__}: {exc} (run with --verbose for the traceback)",
        ) from None


_F = TypeVar("_F", bound=Callable[..., Any])


def _command(name: str, **kwargs: Any) -> Callable[[_F], _F]:
    """Register a command of :data:`app` whose errors are reported by :func:`_errors`."""

    def register(fn: _F) -> _F:
        @functools.wraps(fn)
        def run(*args: Any, **kw: Any) -> Any:
            with _errors():
                return fn(*args, **kw)

        kwargs.setdefault("help", _help_text(fn.__doc__))
        app.command(name, **kwargs)(run)
        return fn

    return register


_REST_ROLE = re.compile(r":(?:mod|class|func|meth|attr|data|exc|obj):`~?([^`]+)`")
_REST_LITERAL = re.compile(r"``([^`]+)``")


def _help_text(doc: str | None) -> str | None:
    """Return a command's docstring as ``--help`` shows it: reST roles and literals become plain text."""
    if doc is None:
        return None
    return _REST_LITERAL.sub(r"\1", _REST_ROLE.sub(r"\1", cleandoc(doc)))


@contextlib.contextmanager
def _progress() -> Iterator[Progress]:
    """Show a rich progress display on stderr (only when stderr is a terminal; removed when done)."""
    console = _stderr()
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    with progress:
        yield progress


@contextlib.contextmanager
def _status(message: str) -> Iterator[None]:
    """Show a spinner on stderr while something slow without measurable progress runs (terminal only)."""
    console = _stderr()
    if not console.is_terminal:
        yield
        return
    with console.status(message):
        yield


def _namespace(value: str | None) -> str:
    """Check a ``--namespace`` value (parts joined by ``/``); ``""`` and None mean the default namespace."""
    try:
        return validate_namespace(value)
    except InvalidArgumentError as exc:
        raise _CliError(EXIT_USAGE, str(exc)) from None


def _label(namespace: str) -> str:
    return namespace or "(default)"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _in(namespace: str) -> str:
    """Return " in namespace 'x'" for a named namespace, "" for the default one (for messages)."""
    return f" in namespace {namespace!r}" if namespace else ""


def _check_store(path: Path, *, create: bool) -> None:
    """Refuse a PATH that is not a store (read commands) or cannot become one (write commands).

    Nothing is created here; a write command's store is created when the manager opens it.
    """
    db = path / DATABASE_FILENAME
    if path.is_dir():
        if db.is_file():
            return
        if db.exists():
            raise _CliError(EXIT_STORE, f"{str(db)!r} is not a file: {str(path)!r} is not a store")
        if not create:
            raise _CliError(
                EXIT_STORE, f"no store at {str(path)!r}: the directory holds no {DATABASE_FILENAME}"
            )
        if any(path.iterdir()):
            raise _CliError(
                EXIT_STORE,
                f"{str(path)!r} is a directory with other files and no {DATABASE_FILENAME}; "
                "a new store needs a new or empty directory",
            )
        return
    if path.exists():
        hint = " (give the directory that holds it)" if path.name == DATABASE_FILENAME else ""
        raise _CliError(EXIT_STORE, f"{str(path)!r} is a file, not a store directory{hint}")
    if not create:
        raise _CliError(EXIT_STORE, f"no store at {str(path)!r}: the path does not exist")


def _open(
    ctx: typer.Context,
    path: Path,
    *,
    create: bool = False,
    namespace: str = "",
    embedder: Any = None,
    reindex: bool = False,
) -> MemoryManager:
    """Open the store at *path* as a MemoryManager with this invocation's limits (checked first)."""
    _check_store(path, create=create)
    session = ctx.ensure_object(_Session)
    logger.debug(
        "opening the store at %s (namespace %r, embedder %r, limits %s/%s)",
        path,
        namespace,
        embedder,
        session.short_term_limit or "none",
        session.long_term_limit or "none",
    )
    return MemoryManager(
        short_term_limit=session.short_term_limit or _UNBOUNDED,
        long_term_limit=session.long_term_limit or _UNBOUNDED,
        storage_path=path,
        embedder=embedder,
        namespace=namespace or None,
        reindex=reindex,
    )


def _tiers(manager: MemoryManager) -> list[tuple[str, Tier]]:
    return [
        ("short_term", manager.short_tier),
        ("long_term", manager.long_tier),
        ("external", manager.external_tier),
    ]


def _peek(manager: MemoryManager, key: str) -> tuple[str, MemoryEntry]:
    """Return (tier, entry) for *key* without counting a read or moving it; raise KeyNotFoundError."""
    key = validate_key(key)
    for name, tier in _tiers(manager):
        entry = tier.get(key, touch=False)
        if entry is not None:
            return name, entry
    raise KeyNotFoundError(f"no live memory under key {key!r}{_in(manager.namespace)}")


def _all_namespaces(manager: MemoryManager, path: Path) -> list[str]:
    """Every namespace holding entries, the archive's included."""
    return manager.namespaces()


def _selected_namespaces(manager: MemoryManager, path: Path, namespace: str | None) -> list[str]:
    return [_namespace(namespace)] if namespace is not None else _all_namespaces(manager, path)


def _preview(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def _when(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    iso = dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).isoformat(timespec="seconds")
    delta = ts - now
    return f"{iso} (in {_duration(delta)})" if delta >= 0 else f"{iso} ({_duration(-delta)} ago)"


def _parse_json(text: str, what: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _CliError(EXIT_USAGE, f"{what} is not valid JSON: {exc}") from None


# -- the group ---------------------------------------------------------------------------------------------------


def _show_version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"agentmem {version('agentmem-plugin')}")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            typer.echo("agentmem (version unknown: agentmem-plugin is not installed)")
        raise typer.Exit()


@app.callback()
def _group(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log at DEBUG level (on stderr).")
    ] = False,
    short_term_limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            envvar="AGENTMEM_SHORT_TERM_LIMIT",
            help="Short-term capacity while the store is open (default: no limit); overflow moves to long-term.",
        ),
    ] = None,
    long_term_limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            envvar="AGENTMEM_LONG_TERM_LIMIT",
            help="Long-term capacity while the store is open (default: no limit); overflow moves to the archive.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Multi-tier memory for LLM agents: look into and maintain a store directory (see docs/cli.md)."""
    ctx.obj = _Session(short_term_limit=short_term_limit, long_term_limit=long_term_limit)
    ctx.call_on_close(_configure_logging(verbose))


PathArg = Annotated[
    Path,
    typer.Argument(
        metavar="PATH", help="The store directory (holding memory.sqlite3).", show_default=False
    ),
]
KeyArg = Annotated[str, typer.Argument(metavar="KEY", help="The memory key.", show_default=False)]
NamespaceOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        metavar="NS",
        help="Namespace, parts joined by '/' (default: the default namespace).",
    ),
]
AllNamespacesOpt = Annotated[
    str | None,
    typer.Option(
        "--namespace", "-n", metavar="NS", help="Only this namespace (default: every namespace)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]


# -- stats -------------------------------------------------------------------------------------------------------


def _stats_data(
    manager: MemoryManager, path: Path, session: _Session, namespace: str
) -> dict[str, Any]:
    view = manager.with_namespace(namespace) if namespace else manager
    data = view.get_stats()
    for name, limit in (
        ("short_term", session.short_term_limit),
        ("long_term", session.long_term_limit),
    ):
        if limit is None:  # opened without a limit: do not report the sentinel as one
            data[name].update(limit=None, use=None, capacity=None)
    data["path"] = str(path)
    per_namespace: dict[str, dict[str, Any]] = {}
    for ns in _all_namespaces(manager, path):
        v = manager.with_namespace(ns)
        meta = v.long_tier.index_meta()
        per_namespace[ns] = {
            "short_term": v.short_tier.count(),
            "long_term": v.long_tier.count(),
            "external": v.external_tier.count(),
            "semantic_index": None if meta is None else {"model": meta[0], "dim": meta[1]},
        }
    data["namespaces"] = per_namespace
    return data


@_command("stats")
def stats(
    ctx: typer.Context, path: PathArg, namespace: NamespaceOpt = None, json_output: JsonOpt = False
) -> None:
    """Show the store: tiers and their counts, namespaces, archive encryption, semantic index."""
    ns = _namespace(namespace)
    with _open(ctx, path) as manager:
        data = _stats_data(manager, path, ctx.ensure_object(_Session), ns)
    if json_output:
        _emit_json(data)
        return
    out = _stdout()
    summary = Table(title=Text(f"agentmem store {path}"), show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value")
    external = data["external"]
    summary.add_row("namespace shown", Text(_label(data["namespace"])))
    summary.add_row("bytes on disk", f"{data['bytes_on_disk']:,}")
    summary.add_row(
        "archive encryption",
        Text(str(external.get("encryption", "encrypted" if data["archive_encrypted"] else "none"))),
    )
    summary.add_row("namespaces", str(len(data["namespaces"])))
    out.print(summary)
    tiers = Table(title=Text(f"tiers of namespace {_label(data['namespace'])}"))
    for column in ("tier", "entries", "limit", "backend", "location"):
        tiers.add_column(column, justify="right" if column in ("entries", "limit") else "left")
    for name in MEMORY_TIERS:
        info = data[name]
        limit = info.get("limit")
        tiers.add_row(
            name,
            str(info["size"]),
            "-" if limit is None else str(limit),
            str(info["tier"]),
            Text(str(info.get("path") or "")),
        )
    out.print(tiers)
    spaces = Table(title="namespaces")
    for column in ("namespace", "short_term", "long_term", "external", "semantic index"):
        spaces.add_column(column, justify="right" if column in MEMORY_TIERS else "left")
    for ns, counts in data["namespaces"].items():
        index = counts["semantic_index"]
        spaces.add_row(
            Text(_label(ns)),
            str(counts["short_term"]),
            str(counts["long_term"]),
            str(counts["external"]),
            "-" if index is None else f"{index['model']} ({index['dim']})",
        )
    out.print(spaces)


# -- search ------------------------------------------------------------------------------------------------------


@_command("search")
def search(
    ctx: typer.Context,
    path: PathArg,
    query: Annotated[str, typer.Argument(metavar="QUERY", help="Free text.", show_default=False)],
    mode: Annotated[
        SearchMode | None,
        typer.Option(
            help="Long-term search mode (default: hybrid; hybrid and semantic load the embedding model).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-k", min=1, metavar="N", help="Maximum hits.")
    ] = 10,
    namespace: NamespaceOpt = None,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain", help="Show the terms of each score (BM25, cosine, each boost) as columns."
        ),
    ] = False,
    recency_weight: Annotated[
        float | None,
        typer.Option(
            "--recency-weight",
            min=0.0,
            metavar="W",
            help="Boost recent memories: W * 0.5 ** (age / 30 days) is added to each score.",
            show_default=False,
        ),
    ] = None,
    importance_weight: Annotated[
        float | None,
        typer.Option(
            "--importance-weight",
            min=0.0,
            metavar="W",
            help="Boost important memories: W * metadata importance (0-1) is added to each score.",
            show_default=False,
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Search every tier by keyword, meaning or both (hybrid, the default)."""
    ns = _namespace(namespace)
    chosen: str = mode or "hybrid"
    _check_store(path, create=False)
    try:
        manager = _open_for_search(ctx, path, ns, chosen)
    except MissingDependencyError as exc:
        if mode is not None:
            raise
        logger.warning("semantic search unavailable (%s); searching by keyword", exc)
        chosen = "keyword"
        manager = _open(ctx, path, namespace=ns)
    with manager:
        hits = manager.search(
            query,
            limit,
            mode=chosen,
            explain=explain,
            recency_weight=recency_weight,
            importance_weight=importance_weight,
        )
    if json_output:
        _emit_json(hits)
        return
    if not hits:
        _say(f"no match for {query!r} ({chosen} search)")
        return
    terms = [t for t in EXPLAIN_COLUMNS if any(t in h.get("explain", {}) for h in hits)]
    table = Table(title=Text(f"{chosen} search: {query}"))
    for column in ("#", "key", "tier", "score", *terms, "value", "tags"):
        if column in ("key", "tier", "value", "tags"):
            table.add_column(column)
        else:  # numbers keep their width; the value column wraps instead
            table.add_column(column, justify="right", no_wrap=True)
    for rank, found in enumerate(hits, 1):
        parts = found.get("explain", {})
        table.add_row(
            str(rank),
            Text(found["key"]),
            found["tier"],
            f"{found['score']:.3f}",
            *(_term(parts.get(t)) for t in terms),
            Text(_preview(found["value"])),
            Text(",".join(found["tags"])),
        )
    _stdout().print(table)


EXPLAIN_COLUMNS = (
    "bm25",
    "cosine",
    "fused",
    "entity",
    "recency",
    "importance",
    "context",
    "session",
)
"""The score terms ``search --explain`` shows, in this order (those no hit carries are left out; ``--json``
gives every term, the scaled ``bm25_norm`` and ``cos_norm`` too)."""


def _term(value: float | None) -> str:
    """One score term for the explain table (a side that did not find the memory: "-")."""
    return "-" if value is None else f"{value:.3f}"


def _open_for_search(ctx: typer.Context, path: Path, namespace: str, mode: str) -> MemoryManager:
    if mode == "keyword":
        return _open(ctx, path, namespace=namespace)
    with _status("loading the embedding model and the semantic index"):
        return _open(ctx, path, namespace=namespace, embedder="default")


# -- one key -----------------------------------------------------------------------------------------------------


@_command("get")
def get(
    ctx: typer.Context,
    path: PathArg,
    key: KeyArg,
    namespace: NamespaceOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the value as JSON even when it is a str.")
    ] = False,
) -> None:
    """Print the value stored under KEY (a str as it is, anything else as JSON); exit 1 when absent."""
    ns = _namespace(namespace)
    validate_key(key)
    with _open(ctx, path, namespace=ns) as manager:
        _, entry = _peek(manager, key)
    if isinstance(entry.value, str) and not json_output:
        typer.echo(entry.value)
    else:
        _emit_json(entry.value)


@_command("inspect")
def inspect(
    ctx: typer.Context,
    path: PathArg,
    key: KeyArg,
    namespace: NamespaceOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Show the whole entry under KEY: tier, value, ttl and expiry, priority, tags, metadata, reads."""
    ns = _namespace(namespace)
    validate_key(key)
    with _open(ctx, path, namespace=ns) as manager:
        tier, entry = _peek(manager, key)
        now = manager.clock()
    if json_output:
        _emit_json({"namespace": ns, "tier": tier, **entry.to_dict()})
        return
    table = Table(title=Text(f"{key}{_in(ns)}"), show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    value = (
        entry.value
        if isinstance(entry.value, str)
        else orjson.dumps(entry.value, option=orjson.OPT_INDENT_2).decode()
    )
    rows = [
        ("key", entry.key),
        ("namespace", _label(ns)),
        ("tier", tier),
        ("value", value),
        ("priority", str(entry.priority)),
        ("tags", ", ".join(entry.tags) or "-"),
        ("metadata", orjson.dumps(entry.metadata).decode() if entry.metadata else "-"),
        ("ttl", "-" if entry.ttl is None else f"{entry.ttl:g} s"),
        ("expires", _when(entry.expires_at, now)),
        ("created", _when(entry.created_at, now)),
        ("access count", str(entry.access_count)),
        ("last accessed", _when(entry.last_accessed, now)),
    ]
    for field, text in rows:
        table.add_row(field, Text(text))
    _stdout().print(table)


@_command("put")
def put(
    ctx: typer.Context,
    path: PathArg,
    key: KeyArg,
    value: Annotated[
        str, typer.Argument(metavar="VALUE", help="The value (a str unless --json-value).")
    ],
    json_value: Annotated[
        bool,
        typer.Option("--json-value", help="Parse VALUE as JSON (an object, list, number, ...)."),
    ] = False,
    ttl: Annotated[
        float | None,
        typer.Option(metavar="SECONDS", help="Seconds to live (default: never expires)."),
    ] = None,
    priority: Annotated[int, typer.Option(metavar="N", help="Higher is kept longer.")] = 0,
    tag: Annotated[
        list[str] | None,
        typer.Option("--tag", "-t", metavar="TAG", help="A tag (repeat for several)."),
    ] = None,
    metadata: Annotated[
        str | None,
        typer.Option(metavar="JSON", help='Metadata as a JSON object, e.g. \'{"source": "cli"}\'.'),
    ] = None,
    tier: Annotated[TierName, typer.Option(help="The tier to store into.")] = "short_term",
    namespace: NamespaceOpt = None,
) -> None:
    """Store VALUE under KEY (replacing it, in whichever tier it was); creates the store when missing."""
    ns = _namespace(namespace)
    data = _parse_json(value, "VALUE") if json_value else value
    meta = None if metadata is None else _parse_json(metadata, "--metadata")
    if meta is not None and not isinstance(meta, dict):
        raise _CliError(EXIT_USAGE, f"--metadata must be a JSON object, got {metadata!r}")
    # Checked completely before the store is opened: bad input creates and changes nothing.
    entry = MemoryEntry(key, data, ttl=ttl, priority=priority, metadata=meta, tags=tag)
    entry.value = normalize(entry.value, what=f"value of key {key!r}")
    with _open(ctx, path, create=True, namespace=ns) as manager:
        manager.store_many([entry], memory_type=tier)
    _say(f"stored {key!r} in {tier}{_in(ns)}")


@_command("delete")
def delete(ctx: typer.Context, path: PathArg, key: KeyArg, namespace: NamespaceOpt = None) -> None:
    """Delete KEY from every tier; exit 1 when it had no live entry."""
    ns = _namespace(namespace)
    validate_key(key)
    with _open(ctx, path, namespace=ns) as manager:
        removed = manager.delete(key)
    if not removed:
        raise KeyNotFoundError(f"no live memory under key {key!r}{_in(ns)}")
    _say(f"deleted {key!r}{_in(ns)}")


# -- list --------------------------------------------------------------------------------------------------------


def _listing(
    manager: MemoryManager,
    *,
    tier: str | None,
    tags: Sequence[str],
    prefix: str,
) -> list[tuple[str, MemoryEntry]]:
    """Every live (tier, entry) of the manager's namespace matching the filters: tiers in order, keys sorted."""
    wanted = set(tags)
    return [
        (name, entry)
        for name, store in _tiers(manager)
        if tier is None or name == tier
        for entry in sorted(store.scan(), key=lambda e: e.key)
        if entry.key.startswith(prefix) and wanted.issubset(entry.tags)
    ]


@_command("list")
def list_(
    ctx: typer.Context,
    path: PathArg,
    namespace: NamespaceOpt = None,
    tier: Annotated[
        TierName | None,
        typer.Option(help="Only this tier (default: every tier).", show_default=False),
    ] = None,
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag",
            "-t",
            metavar="TAG",
            help="Only entries with this tag (repeat: with all of them).",
        ),
    ] = None,
    prefix: Annotated[
        str, typer.Option(metavar="TEXT", help="Only keys starting with TEXT.", show_default=False)
    ] = "",
    limit: Annotated[
        int, typer.Option("--limit", "-k", min=1, metavar="N", help="At most N entries.")
    ] = 50,
    offset: Annotated[
        int, typer.Option(min=0, metavar="N", help="Skip the first N matching entries.")
    ] = 0,
    json_output: JsonOpt = False,
) -> None:
    """List the entries of a namespace: key, tier, value, tags, priority, expiry (nothing counts as a read).

    Entries come tier by tier (short_term, long_term, external), keys sorted in each; --limit and --offset page
    through them. --json prints a list of entries as inspect --json does (namespace, tier and the entry's
    fields); the table's title gives the range shown and the total.
    """
    ns = _namespace(namespace)
    with _open(ctx, path, namespace=ns) as manager:
        matches = _listing(manager, tier=tier, tags=tag or (), prefix=prefix)
        now = manager.clock()
    page = matches[offset : offset + limit]
    if json_output:
        _emit_json([{"namespace": ns, "tier": name, **entry.to_dict()} for name, entry in page])
        return
    if not page:
        _say(f"no entries{_in(ns)} match (of {len(matches)} matching, offset {offset})")
        return
    title = f"entries {offset + 1}-{offset + len(page)} of {len(matches)}{_in(ns)}"
    table = Table(title=Text(title))
    for column in ("key", "tier", "value", "tags", "priority", "expires"):
        table.add_column(column, justify="right" if column == "priority" else "left")
    for name, entry in page:
        table.add_row(
            Text(entry.key),
            name,
            Text(_preview(entry.value, 48)),
            Text(",".join(entry.tags)),
            str(entry.priority),
            Text("-" if entry.expires_at is None else _when(entry.expires_at, now)),
        )
    _stdout().print(table)


# -- export / import ---------------------------------------------------------------------------------------------


def _export_rows(manager: MemoryManager, path: Path) -> Iterator[dict[str, Any]]:
    for ns in _all_namespaces(manager, path):
        view = manager.with_namespace(ns)
        for name, tier in _tiers(view):
            for entry in tier.scan():
                yield {"namespace": ns, "tier": name, **entry.to_dict()}


@_command("export")
def export(
    ctx: typer.Context,
    path: PathArg,
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="Output file, or - for stdout.", show_default=False),
    ],
) -> None:
    """Write every live entry of every namespace and tier as JSON lines (one entry per line).

    Each line holds namespace, tier, key, value, ttl, expires_at, priority, tags, metadata, created_at,
    access_count and last_accessed. The file is replaced atomically.
    """
    with _open(ctx, path) as manager:
        rows = list(_export_rows(manager, path))
    payload = b"".join(orjson.dumps(row) + b"\n" for row in rows)
    if str(file) == "-":
        sys.stdout.write(payload.decode())
        sys.stdout.flush()
    else:
        _write_atomically(file, payload)
    namespaces = _count(len({row["namespace"] for row in rows}), "namespace")
    _say(
        f"exported {len(rows)} entries from {namespaces} to {'stdout' if str(file) == '-' else file}"
    )


def _write_atomically(target: Path, payload: bytes) -> None:
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise _CliError(EXIT_USAGE, f"cannot write {str(target)!r}: {exc}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise _CliError(EXIT_USAGE, f"cannot write {str(target)!r}: {exc}") from None


def _read_lines(file: Path) -> list[str]:
    if str(file) == "-":
        return sys.stdin.read().splitlines()
    try:
        return file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise _CliError(EXIT_USAGE, f"cannot read {str(file)!r}: {exc}") from None


def _entry_from_line(line: str, number: int, source: str) -> tuple[str, str, MemoryEntry]:
    """Parse and check one export line; raise _CliError naming the line on any problem."""
    where = f"{source}, line {number}"
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise _CliError(EXIT_USAGE, f"{where}: not valid JSON: {exc}") from None
    if not isinstance(row, dict):
        raise _CliError(EXIT_USAGE, f"{where}: expected a JSON object, got {type(row).__name__}")
    namespace = row.pop("namespace", "")
    tier = row.pop("tier", "long_term")
    try:
        if not isinstance(namespace, str):
            raise InvalidArgumentError(f"namespace must be a str, got {namespace!r}")
        namespace = _namespace(namespace)
        if tier not in MEMORY_TIERS:
            raise InvalidArgumentError(
                f"tier must be one of {', '.join(MEMORY_TIERS)}; got {tier!r}"
            )
        entry = MemoryEntry.from_dict(row)
        entry.value = normalize(entry.value, what=f"value of key {entry.key!r}")
        if entry.metadata:
            entry.metadata = normalize(entry.metadata, what=f"metadata of key {entry.key!r}")
    except _CliError as exc:
        raise _CliError(EXIT_USAGE, f"{where}: {exc.message}") from None
    except (AgentMemError, ValueError, TypeError) as exc:
        raise _CliError(EXIT_USAGE, f"{where}: {exc}") from None
    return namespace, tier, entry


def _groups(
    rows: Iterable[tuple[str, str, MemoryEntry]],
) -> list[tuple[str, str, list[MemoryEntry]]]:
    """Consecutive rows of the same (namespace, tier), in batches of at most _WRITE_BATCH.

    A key given twice in one namespace keeps only its last row (short- and long-term are written before the
    archive, so an earlier row in another tier must not win by being written later).
    """
    last: dict[tuple[str, str], tuple[str, str, MemoryEntry]] = {}
    for row in rows:
        last.pop((row[0], row[2].key), None)
        last[(row[0], row[2].key)] = row
    groups: list[tuple[str, str, list[MemoryEntry]]] = []
    for ns, tier, entry in last.values():
        if groups and groups[-1][:2] == (ns, tier) and len(groups[-1][2]) < _WRITE_BATCH:
            groups[-1][2].append(entry)
        else:
            groups.append((ns, tier, [entry]))
    return groups


def _write_groups(
    manager: MemoryManager,
    groups: list[tuple[str, str, list[MemoryEntry]]],
    description: str,
    *,
    replace: Sequence[str] = (),
) -> None:
    """Store the groups: short- and long-term in one SQLite transaction, then the archive (file by file).

    The namespaces in *replace* are emptied first (inside the same transaction for short- and long-term).
    """
    total = sum(len(entries) for _, _, entries in groups)
    with _progress() as progress, report_progress(_embedding_task(progress)):
        task = progress.add_task(description, total=total)
        with manager.transaction():
            for ns in replace:
                manager.with_namespace(ns).clear_short_term()
                manager.with_namespace(ns).clear_long_term()
            for ns, tier, entries in groups:
                if tier != "external":
                    manager.with_namespace(ns).store_many(entries, memory_type=tier)
                    progress.advance(task, len(entries))
        for ns in replace:
            manager.with_namespace(ns).clear_external()
        for ns, tier, entries in groups:
            if tier == "external":
                manager.with_namespace(ns).store_many(entries, memory_type=tier)
                progress.advance(task, len(entries))


def _embedding_task(progress: Progress) -> Callable[[str, int | None], Callable[[int], None]]:
    """Return a progress hook showing the library's embedding jobs as one "embedding" task of *progress*."""
    task: list[TaskID] = []

    def hook(desc: str, total: int | None) -> Callable[[int], None]:
        if not task:
            task.append(progress.add_task("embedding", total=None))

        def advance(count: int) -> None:
            progress.advance(task[0], count)

        return advance

    return hook


@_command("import")
def import_(
    ctx: typer.Context,
    path: PathArg,
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="JSON lines file, or - for stdin.", show_default=False),
    ],
) -> None:
    """Store the entries of a JSON lines file (as written by export); creates the store when missing.

    Every line is checked before anything is written: a bad line is reported with its number and nothing
    changes. A line needs key and value; namespace defaults to the default namespace and tier to long_term.
    Entries keep their created_at, expiry, access count and order; entries already expired are skipped; of
    a key given twice in one namespace, the last line wins.
    """
    source = "stdin" if str(file) == "-" else str(file)
    lines = _read_lines(file)
    rows: list[tuple[str, str, MemoryEntry]] = []
    with _progress() as progress:
        task = progress.add_task("checking", total=len(lines))
        for number, line in enumerate(lines, 1):
            if line.strip():
                rows.append(_entry_from_line(line, number, source))
            progress.advance(task)
    with _open(
        ctx, path, create=True, embedder=AUTO_EMBEDDER
    ) as manager:  # embedded now, not at the next search
        now = manager.clock()
        live = [row for row in rows if not row[2].is_expired(now)]
        groups = _groups(live)
        _write_groups(manager, groups, "importing")
    skipped = len(rows) - len(live)
    note = f" (skipped {skipped} already expired)" if skipped else ""
    _say(f"imported {sum(len(g[2]) for g in groups)} entries from {source}{note}")


# -- backup / restore --------------------------------------------------------------------------------------------


@_command("backup")
def backup(
    ctx: typer.Context,
    path: PathArg,
    dest: Annotated[
        Path,
        typer.Argument(metavar="DEST", help="The backup directory to write.", show_default=False),
    ],
) -> None:
    """Write a verified, checksummed backup of every namespace and tier into the directory DEST.

    DEST holds ``agentmem-store.json`` and one backup per namespace and tier (the format of
    :mod:`agentmem_plugin.backup`). It is built beside DEST and swapped in atomically: a previous backup at DEST
    is replaced only by a complete one, and a DEST that is not empty and not a store backup is refused. The
    semantic index is not backed up: ``reindex`` rebuilds it. With ``$AGENTMEM_ARCHIVE_KEY`` set, every part is
    encrypted with it (AES-256-GCM); restore needs it too.
    """
    _check_store(path, create=False)
    with _status("backing up"):
        manifest = backup_store(path, dest, key=_backup_key())
    parts = len(manifest["parts"])
    _say(f"backed up {manifest['count']} entries ({parts} namespace tiers) to {dest}")


def _backup_key() -> str | None:
    """Return the key backups are sealed with: ``$AGENTMEM_ARCHIVE_KEY`` when set, else None."""
    return os.environ.get("AGENTMEM_ARCHIVE_KEY") or None


@_command("restore")
def restore(
    ctx: typer.Context,
    path: PathArg,
    src: Annotated[
        Path,
        typer.Argument(metavar="SRC", help="A directory written by backup.", show_default=False),
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a store that holds entries.")
    ] = False,
) -> None:
    """Replace the contents of the store with the backup SRC; creates the store when missing.

    The backup is verified completely (checksums, counts, every entry) before the store is touched; the new
    store is built beside PATH and swapped in atomically, so an interrupted restore leaves the old store or the
    new one. A store holding entries is replaced only with --force. Expired entries are not restored.
    """
    with _status("restoring"):
        result = restore_store(src, path, key=_backup_key(), force=force)
    note = f" (skipped {result.skipped} expired)" if result.skipped else ""
    _say(f"restored {result.restored} entries from {src}{note}")


# -- maintenance -------------------------------------------------------------------------------------------------


@_command("consolidate")
def consolidate(ctx: typer.Context, path: PathArg, namespace: AllNamespacesOpt = None) -> None:
    """Move what the consolidation policy selects from short-term to long-term (verified batches)."""
    with _open(ctx, path) as manager:
        reports = {
            ns: manager.with_namespace(ns).consolidate()
            for ns in _selected_namespaces(manager, path, namespace)
        }
    table = Table(title="consolidation")
    for column in ("namespace", "selected", "moved", "failed"):
        table.add_column(column, justify="left" if column == "namespace" else "right")
    for ns, report in reports.items():
        table.add_row(
            Text(_label(ns)), str(report["selected"]), str(report["moved"]), str(report["failed"])
        )
    _stdout().print(table)
    failed = sum(report["failed"] for report in reports.values())
    if failed:
        raise _CliError(
            EXIT_STORE,
            f"{failed} entries could not be consolidated and stay in short-term (see the log)",
        )


@_command("cleanup")
def cleanup(ctx: typer.Context, path: PathArg, namespace: AllNamespacesOpt = None) -> None:
    """Delete the expired entries of every tier."""
    removed: dict[str, int] = {}
    with _open(ctx, path) as manager:
        for ns in _selected_namespaces(manager, path, namespace):
            view = manager.with_namespace(ns)
            removed[ns] = sum(view.cleanup().values())
    detail = ", ".join(f"{ns or 'default namespace'}: {n}" for ns, n in removed.items() if n)
    _say(f"removed {sum(removed.values())} expired entries" + (f" ({detail})" if detail else ""))


@_command("reindex")
def reindex(ctx: typer.Context, path: PathArg, namespace: AllNamespacesOpt = None) -> None:
    """Rebuild the semantic index of every tier with the default embedder (offline MiniLM).

    Also the way to switch a store indexed with another model over to the default one.
    """
    with _open(ctx, path) as manager:
        names = [_namespace(namespace)] if namespace is not None else manager.namespaces()
    total = 0
    with _open(ctx, path, embedder="default", reindex=True) as manager, _progress() as progress:
        task = progress.add_task("reindexing", total=len(names))
        for ns in names:
            progress.update(task, description=f"reindexing {_label(ns)}")
            total += manager.with_namespace(ns).reindex()
            progress.advance(task)
    _say(f"reindexed {total} entries in {_count(len(names), 'namespace')}")


# -- mcp ---------------------------------------------------------------------------------------------------------


@app.command(
    "mcp",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def mcp(ctx: typer.Context) -> None:
    """Serve a store to MCP clients (Claude Desktop, Cursor, LangGraph): agentmem mcp --storage DIR [--http H:P].

    The same as the agentmem-mcp command of the agentmem-mcp package (agentmem mcp --help lists its options).
    """
    try:
        from agentmem_mcp.cli import main as serve
    except ImportError:
        raise _die(
            EXIT_DEPENDENCY,
            "the MCP server is in the agentmem-mcp package: pip install ./integrations/mcp (from a clone)",
        ) from None
    code = serve(list(ctx.args))
    if code:
        raise typer.Exit(code)


# -- demo --------------------------------------------------------------------------------------------------------


@app.command("demo")
def demo(
    path: Annotated[
        Path | None,
        typer.Option(
            help="Directory for the store (default: a temporary directory, removed after)."
        ),
    ] = None,
    no_semantic: Annotated[
        bool, typer.Option("--no-semantic", help="Skip the semantic search step (no model load).")
    ] = False,
) -> None:
    """Store, retrieve, search and expire memories, persist them, reopen the store, print a table."""
    with _errors():
        if path is not None:
            run_demo(path, semantic=not no_semantic)
        else:
            with tempfile.TemporaryDirectory(prefix="agentmem-demo-") as tmp:
                run_demo(Path(tmp), semantic=not no_semantic)


# -- entry point -------------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``agentmem`` command with *argv* (default: the process arguments); return the exit status.

    Example:
        >>> main(["--help"])  # doctest: +SKIP
        0

    """
    # The model loader's own "Loading weights" bar would clutter stderr; read when huggingface_hub is imported.
    quiet_hub = "HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ
    if quiet_hub:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        app(args=None if argv is None else list(argv), prog_name="agentmem")
    except SystemExit as exc:
        if exc.code is None:
            return EXIT_OK
        if isinstance(exc.code, int):
            return exc.code
        print(exc.code, file=sys.stderr)
        return EXIT_USAGE
    except (
        BrokenPipeError
    ):  # `agentmem export PATH - | head`: the reader left; not an error of ours
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        if quiet_hub:
            os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    return EXIT_OK
