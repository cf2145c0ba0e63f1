"""The ``ollama-conformance`` command: one sub-command per job, each defined in its own module.

Exit codes are part of the interface (CI jobs branch on them): 0 success, 1 a MUST requirement
failed, 2 usage error or unreachable target, 3 internal error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from conformance import __version__

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3

#: Modules that each expose ``register(subparsers)``; a module that is missing is skipped so a
#: partial install still offers the rest.
COMMAND_MODULES = (
    "conformance.runner",
    "conformance.reference.cli",
    "conformance.bench.cli",
    "conformance.report_cli",
    "conformance.ollama.cli",
    "conformance.differential",
    "conformance.transcripts",
    "conformance.openapi",
)


class UsageError(Exception):
    """Bad input to our own tool: printed as one line, exit code 2."""


Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every available sub-command."""
    parser = argparse.ArgumentParser(
        prog="ollama-conformance",
        description="Conformance suite and benchmarks for servers that implement the Ollama API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except UsageError as exc:
        print(f"ollama-conformance: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ollama-conformance: interrupted", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # a bug of ours: say so plainly and keep CI's exit code distinct
        print(f"ollama-conformance: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
