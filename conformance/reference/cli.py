"""The ``serve`` sub-command: run the reference server alone (e.g. to test a client against it).

Kept import-light on purpose: ``ollama-conformance serve`` must answer ``GET /`` within 2 s, so
Starlette, uvicorn and the server modules are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` to the ``ollama-conformance`` command line."""
    parser = subparsers.add_parser(
        "serve",
        help="run the embedded reference Ollama server",
        description=(
            "Serve a faithful, deterministic implementation of the Ollama HTTP API with tiny "
            "built-in models (tiny-completion, tiny-tools, tiny-insert, tiny-thinking, "
            "tiny-vision, tiny-embed). No network access is ever used."
        ),
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=11434, help="port (0 = any free port; default: %(default)s)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="model store (blobs/, manifests/); default: a temporary directory removed on exit",
    )
    parser.add_argument(
        "--ollama-version",
        metavar="V",
        help="Ollama release to emulate (default: the newest in the reference facts)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="validate every request against the contract and report violations",
    )
    parser.add_argument(
        "--strict-log",
        type=Path,
        metavar="FILE",
        help="append one JSON line per strict-mode violation to FILE",
    )
    parser.add_argument(
        "--token-rate",
        type=float,
        metavar="TOK_PER_S",
        help="generated tokens per second (0 = unpaced; default 500)",
    )
    parser.add_argument(
        "--load-time", type=float, metavar="SECONDS", help="model load time (default 0.02)"
    )
    parser.set_defaults(handler=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Handler of ``serve``: build the config and serve until interrupted."""
    from conformance.versions import NEWEST_KNOWN, Version, VersionError

    from .config import ReferenceConfig

    version = args.ollama_version or NEWEST_KNOWN
    try:
        Version.parse(version)
    except VersionError as exc:
        print(f"ollama-conformance serve: error: {exc}", file=sys.stderr)
        return 2
    if args.strict_log and not args.strict:
        print("ollama-conformance serve: error: --strict-log needs --strict", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"ollama-conformance serve: error: invalid port {args.port}", file=sys.stderr)
        return 2
    extra_origins = tuple(
        o.strip() for o in os.environ.get("OLLAMA_ORIGINS", "").split(",") if o.strip()
    )
    kwargs: dict[str, object] = {}
    if args.token_rate is not None:
        kwargs["token_rate"] = args.token_rate
    if args.load_time is not None:
        kwargs["load_time"] = args.load_time
    try:
        config = ReferenceConfig(
            version=version,
            data_dir=args.data_dir,
            strict=args.strict,
            strict_log=args.strict_log,
            origins=extra_origins,
            **kwargs,  # type: ignore[arg-type]
        )
    except ValueError as exc:
        print(f"ollama-conformance serve: error: {exc}", file=sys.stderr)
        return 2
    from .server import serve

    try:
        serve(config, args.host, args.port)
    except OSError as exc:
        print(
            f"ollama-conformance serve: error: cannot listen on {args.host}:{args.port}: {exc}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m conformance.reference.cli serve ...``."""
    parser = argparse.ArgumentParser(prog="ollama-conformance")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
