"""``ollama-conformance diff A.json B.json``: what changed between two runs.

Made for upgrades: run the suite against Ollama 0.9, then 0.12, and diff the two reports. The
exit code lets CI gate on it: 0 nothing regressed, 1 a requirement that passed now fails (FAIL,
TIMEOUT or NOT IMPLEMENTED), 2 a report could not be read.
"""

from __future__ import annotations

import argparse
from typing import Any

from conformance.cli import EXIT_FAILED, EXIT_OK, UsageError
from conformance.report import ReportError, diff_reports, format_diff

__all__ = ["diff_command", "register"]


def register(subparsers: Any) -> None:
    """Add the ``diff`` sub-command."""
    parser = subparsers.add_parser(
        "diff",
        help="compare two report.json files (e.g. before and after an Ollama upgrade)",
        description="Show per requirement what changed between two runs. Exit codes: 0 no "
        "regression, 1 a requirement went from PASS to FAIL/TIMEOUT/NOT IMPLEMENTED, 2 a "
        "report could not be read.",
    )
    parser.add_argument("before", metavar="A.json", help="the earlier run's report.json")
    parser.add_argument("after", metavar="B.json", help="the later run's report.json")
    parser.add_argument(
        "--format",
        choices=("text", "md", "json"),
        default="text",
        help="output format (default: text)",
    )
    parser.set_defaults(handler=diff_command)


def diff_command(args: argparse.Namespace) -> int:
    """Print the diff; the exit code says whether anything regressed."""
    try:
        diff = diff_reports(args.before, args.after)
    except ReportError as exc:
        raise UsageError(str(exc)) from None
    print(format_diff(diff, args.format), end="")
    return EXIT_FAILED if diff.regressions else EXIT_OK
