"""The ``agentmem-mcp`` command: serve a memory store over MCP, on stdio (default) or streamable HTTP.

Usage::

    agentmem-mcp --storage DIR [--namespace user/alice]                 # stdio: what Claude Desktop, Cursor run
    agentmem-mcp --storage DIR --http 127.0.0.1:8765                    # streamable HTTP at /mcp
    agentmem-mcp --storage DIR --http 0.0.0.0:8765 --allow-remote       # other machines too (no auth!)

The HTTP server binds a loopback address unless ``--allow-remote`` is given; there is no authentication, so a
remote bind exposes the memory to anyone who can reach the port. Port 0 picks a free port; the address served is
written to stderr (``agentmem-mcp: serving streamable HTTP on http://127.0.0.1:PORT/mcp``). Logs go to stderr;
stdout carries only the protocol.

Exit codes: 0 when the client closes the stream (stdio) or on Ctrl-C/SIGTERM (HTTP); 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
from collections.abc import Sequence

from agentmem_plugin.errors import AgentMemError

__all__ = ["main", "parse_http_address"]

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_http_address(value: str) -> tuple[str, int]:
    """Return ``(host, port)`` from ``HOST:PORT`` (``[::1]:8765`` for IPv6); raise ValueError otherwise."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"--http needs HOST:PORT (e.g. 127.0.0.1:8765), got {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Return True for ``localhost`` and loopback IP addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentmem-mcp",
        description="Serve an agentmem memory store to MCP clients (tools: remember, search_memories, "
        "recall, forget, list_memories).",
    )
    parser.add_argument(
        "--storage",
        required=True,
        metavar="DIR",
        help="the store's directory (created when missing)",
    )
    parser.add_argument(
        "--namespace", metavar="NS", help="serve only this namespace, e.g. user/alice"
    )
    parser.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio",
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow --http on a non-loopback address"
    )
    parser.add_argument(
        "--no-semantic",
        action="store_true",
        help="keyword search only: never load the embedding model",
    )
    parser.add_argument(
        "--long-term-limit",
        type=int,
        default=100_000,
        metavar="N",
        help="memories kept in long-term memory before the least important are archived (default 100000)",
    )
    parser.add_argument(
        "--log-level", choices=_LOG_LEVELS, default="WARNING", help="log level (stderr)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until the client goes away; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    host, port = "127.0.0.1", 0
    if args.http is not None:
        try:
            host, port = parse_http_address(args.http)
        except ValueError as exc:
            parser.error(str(exc))
        if not is_loopback(host) and not args.allow_remote:
            parser.error(
                f"--http {args.http}: {host!r} is not a loopback address; the server has no authentication, "
                "so pass --allow-remote to serve other machines"
            )
    if args.long_term_limit <= 0:
        parser.error(f"--long-term-limit must be a positive int, got {args.long_term_limit}")
    if args.namespace is not None and any(not part for part in args.namespace.split("/")):
        parser.error(f"--namespace needs non-empty parts separated by '/', got {args.namespace!r}")

    from agentmem_mcp.server import create_server
    from agentmem_mcp.service import MemoryService

    try:
        service = MemoryService(
            args.storage,
            namespace=args.namespace,
            embedder=None if args.no_semantic else "default",
            long_term_limit=args.long_term_limit,
        )
    except AgentMemError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
    server = create_server(service, host=host, port=port, log_level=args.log_level)
    try:
        if args.http is None:
            server.run("stdio")
        else:
            _serve_http(server, host, port, args.log_level)
    except KeyboardInterrupt:
        pass
    finally:
        service.close()
    return 0


def _serve_http(server: object, host: str, port: int, log_level: str) -> None:
    """Serve *server*'s streamable HTTP app with uvicorn on a socket bound here (so port 0 works)."""
    import anyio
    import uvicorn

    app = server.streamable_http_app()  # type: ignore[attr-defined]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    config = uvicorn.Config(app, log_level=log_level.lower(), lifespan="on")
    # Listen before announcing the address: a client that connects at once then waits in the backlog until
    # uvicorn has started, instead of being refused (uvicorn only listens after its lifespan startup).
    sock.listen(config.backlog)
    print(
        f"agentmem-mcp: serving streamable HTTP on http://{shown}:{bound}/mcp",
        file=sys.stderr,
        flush=True,
    )
    anyio.run(uvicorn.Server(config).serve, [sock])
