"""``ollama-conformance run``: the suite as one command, with documented exit codes.

It is a thin shell around ``pytest.main([... "--pyargs", "conformance.suite"])`` run in-process:
the plugin does the work (target discovery, grading, reports). What the runner adds is what a CI
job needs and pytest does not give:

* arguments checked before anything runs, and an unreachable ``--target`` reported in one line
  within seconds (exit 2), not as a hundred identical failures;
* pytest isolated from the caller's own project (its ini file, addopts, cache directory);
* pytest's exit codes mapped onto ours: 0 every MUST holds, 1 a MUST failed, 2 usage error or
  unreachable target, 3 internal error (a collection error or a test that crashed).

Without ``--target`` the plugin starts the embedded reference server on a free loopback port and
stops it at the end of the run.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from conformance.cli import EXIT_FAILED, EXIT_INTERNAL, EXIT_OK, EXIT_USAGE, UsageError
from conformance.client import check_reachable
from conformance.expectations import ExpectationError
from conformance.expectations import load as load_expectations
from conformance.verdict import Verdict
from conformance.versions import Version, VersionError

__all__ = ["plugin_args", "register", "run_command"]

#: How long the reachability probe may take; the whole check must finish within 5 s.
REACH_TIMEOUT = 3.0
#: The pytest11 entry point name under which an installed package registers the plugin.
ENTRY_POINT = "ollama_conformance"


def plugin_args() -> list[str]:
    """``-p conformance.plugin`` unless pytest loads the plugin from its entry point anyway.

    Loading it twice (by name and by entry point) is an error in pytest, and a checkout that is
    not installed has no entry point, so both cases need handling.
    """
    if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        for ep in importlib.metadata.entry_points(group="pytest11"):
            if ep.name == ENTRY_POINT:
                return []
    return ["-p", "conformance.plugin"]


def register(subparsers: Any) -> None:
    """Add the ``run`` sub-command."""
    parser = subparsers.add_parser(
        "run",
        help="run the conformance suite against a target (default: the reference server)",
        description="Run the conformance suite. Exit codes: 0 every MUST requirement holds, "
        "1 a MUST failed, 2 usage error or unreachable target, 3 internal error.",
    )
    parser.add_argument(
        "--target",
        metavar="URL",
        help="server under test, e.g. http://127.0.0.1:11434 "
        "(default: the embedded reference server on a free loopback port)",
    )
    for flag, capability in (
        ("--model", "completion"),
        ("--embed-model", "embedding"),
        ("--tools-model", "tools"),
        ("--thinking-model", "thinking"),
        ("--vision-model", "vision"),
    ):
        parser.add_argument(
            flag,
            metavar="NAME",
            help=f"model for tests that need '{capability}' (default: picked from the target)",
        )
    parser.add_argument(
        "--api-version",
        metavar="VERSION",
        help="judge the target as this Ollama version (default: what /api/version claims)",
    )
    parser.add_argument(
        "--expect", metavar="FILE", help="YAML/TOML file of accepted deviations (default: none)"
    )
    parser.add_argument(
        "--allow-network",
        action="store_true",
        help="run tests that make the target reach a model registry (default: skipped)",
    )
    parser.add_argument(
        "--report-dir",
        metavar="DIR",
        default="reports",
        help="where report.json, report.md and junit.xml go (default: ./reports)",
    )
    parser.add_argument(
        "--area",
        metavar="AREA",
        action="append",
        default=[],
        help="only this area's requirements, e.g. generate; repeatable (default: all)",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="print the requirements (id, level, versions, statement) and exit",
    )
    parser.add_argument(
        "-k", metavar="EXPR", dest="keyword", help="only tests matching this pytest -k expression"
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        help="longest time one request may take (default: 300)",
    )
    parser.add_argument(
        "--connect-timeout", metavar="SECONDS", type=float, help="connect timeout (default: 5)"
    )
    parser.add_argument(
        "--read-timeout",
        metavar="SECONDS",
        type=float,
        help="longest silence while reading an answer (default: 120)",
    )
    parser.add_argument("--run-id", metavar="ID", help="run id (default: time + random)")
    parser.add_argument(
        "--examples",
        metavar="N",
        type=int,
        help="hypothesis examples per property test "
        "(default: $OLLAMA_CONFORMANCE_EXAMPLES, else 25)",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="one line per test (repeat for more)"
    )
    parser.set_defaults(handler=run_command)


# --------------------------------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> None:
    """Refuse bad arguments up front, each with a message that says what to do."""
    if args.target:
        from conformance.plugin import validate_url

        try:
            args.target = validate_url(args.target)
        except pytest.UsageError as exc:
            raise UsageError(str(exc).removeprefix("ollama-conformance: ")) from None
    if args.api_version:
        try:
            Version.parse(args.api_version)
        except VersionError:
            raise UsageError(
                f"--api-version {args.api_version!r} is not an Ollama version; "
                "pass e.g. --api-version 0.12.11"
            ) from None
    for name in ("timeout", "connect_timeout", "read_timeout"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must be a positive number of seconds, got {value:g}")
    if args.examples is not None and args.examples < 1:
        raise UsageError(f"--examples must be at least 1, got {args.examples}; pass e.g. 25")
    if args.examples is None:  # the plugin falls back on $OLLAMA_CONFORMANCE_EXAMPLES
        from conformance.plugin_options import example_count

        try:
            example_count(None)
        except pytest.UsageError as exc:
            raise UsageError(str(exc).removeprefix("ollama-conformance: ")) from None
    if args.expect:
        try:
            load_expectations(args.expect)
        except ExpectationError as exc:
            raise UsageError(str(exc)) from None


def _catalogue() -> Any:
    from conformance.requirements import load_catalogue

    return load_catalogue()  # honours $OLLAMA_CONFORMANCE_CATALOGUE


def _check_areas(areas: list[str], catalogue: Any) -> None:
    known = sorted({r.area for r in catalogue})
    unknown = [a for a in areas if a not in known]
    if unknown:
        raise UsageError(
            f"unknown area {unknown[0]!r}; known areas: {', '.join(known) or '(none)'}"
        )


def _versions(req: Any) -> str:
    if req.since and req.until:
        return f"{req.since}..{req.until}"
    if req.since:
        return f"since {req.since}"
    if req.until:
        return f"until {req.until}"
    return "all"


def list_requirements(areas: list[str]) -> int:
    """Print the catalogue (optionally some areas) as an aligned table."""
    catalogue = _catalogue()
    if areas:
        _check_areas(areas, catalogue)
    rows = sorted(
        (r for r in catalogue if not areas or r.area in areas), key=lambda r: (r.area, r.id)
    )
    width = max((len(r.id) for r in rows), default=2)
    for r in rows:
        print(f"{r.id:<{width}}  {r.level:<6}  {_versions(r):<18}  {r.statement}")
    print(f"{len(rows)} requirement(s)", file=sys.stderr)
    return EXIT_OK


class _Outcome:
    """A pytest plugin object that keeps what the runner needs after ``pytest.main``."""

    def __init__(self) -> None:
        self.state: Any = None
        self.collection_errors = 0

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_errors += 1

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from conformance.plugin import run_state

        self.state = run_state(session.config)


def _suite_modules(areas: list[str]) -> list[str]:
    """What to collect: the areas' own modules (``test_<area>``) when each has one, else all.

    Collecting only what runs is faster and keeps an unrelated module's import error from
    turning an area run into an internal error; ``--conformance-area`` still does the selecting.
    """
    if areas:
        modules = [f"conformance.suite.test_{area}" for area in areas]
        if all(importlib.util.find_spec(m) is not None for m in modules):
            return modules
    return ["conformance.suite"]


def build_pytest_args(args: argparse.Namespace, ini: Path) -> list[str]:
    """The pytest command line for these ``run`` arguments."""
    package_root = Path(__file__).resolve().parent.parent
    argv = [
        *plugin_args(),
        "--pyargs",
        *_suite_modules(args.area),
        # Isolate from the caller's project: our own empty ini, rootdir at the package, no cache.
        "-c",
        str(ini),
        "--rootdir",
        str(package_root),
        "-p",
        "no:cacheprovider",
        "--no-header",
        # The CLI imported the package before pytest could rewrite asserts in it: harmless.
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
        "--tb=short",
        "--report-dir",
        args.report_dir,
    ]
    if args.verbose:
        argv.append("-" + "v" * args.verbose)
    pairs = {
        "--target": args.target,
        "--model": args.model,
        "--embed-model": args.embed_model,
        "--tools-model": args.tools_model,
        "--thinking-model": args.thinking_model,
        "--vision-model": args.vision_model,
        "--api-version": args.api_version,
        "--expect": args.expect,
        "--run-id": args.run_id,
        "-k": args.keyword,
        "--total-timeout": args.timeout,
        "--connect-timeout": args.connect_timeout,
        "--read-timeout": args.read_timeout,
        "--conformance-examples": args.examples,
    }
    for flag, value in pairs.items():
        if value is not None:
            argv += [flag, str(value)]
    if args.allow_network:
        argv.append("--allow-network")
    for area in args.area:
        argv += ["--conformance-area", area]
    return argv


def exit_code(pytest_code: int, outcome: _Outcome) -> int:
    """Map pytest's exit code and the graded results onto the documented codes."""
    if outcome.collection_errors:
        return EXIT_INTERNAL
    if pytest_code == pytest.ExitCode.OK:
        return EXIT_OK
    if pytest_code == pytest.ExitCode.TESTS_FAILED:
        results = list(outcome.state.results.values()) if outcome.state is not None else []
        if any(r.fails_run and r.verdict is not Verdict.ERROR for r in results):
            return EXIT_FAILED
        if any(r.fails_run for r in results):
            return EXIT_INTERNAL  # only broken tests: the suite's fault, not the server's
        return EXIT_FAILED
    if pytest_code in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERRUPTED):
        return EXIT_USAGE  # includes the plugin's exit for an unreachable target
    if pytest_code == pytest.ExitCode.NO_TESTS_COLLECTED:
        return EXIT_USAGE
    return EXIT_INTERNAL


def run_command(args: argparse.Namespace) -> int:
    """Validate, probe the target, run the suite in-process, return the exit code."""
    _validate(args)
    if args.list:
        return list_requirements(args.area)
    if args.area:
        _check_areas(args.area, _catalogue())
    if args.target:
        reason = check_reachable(args.target, timeout=REACH_TIMEOUT)
        if reason is not None:
            raise UsageError(f"target {args.target} is unreachable: {reason}")
    where = args.target or "the embedded reference server"
    print(f"ollama-conformance: running the suite against {where}", flush=True)
    outcome = _Outcome()
    with tempfile.TemporaryDirectory(prefix="ollama-conformance-") as tmp:
        ini = Path(tmp) / "pytest.ini"
        ini.write_text("[pytest]\n", encoding="utf-8")
        code = pytest.main(build_pytest_args(args, ini), plugins=[outcome])
    result = exit_code(int(code), outcome)
    if int(code) == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("ollama-conformance: error: no test matched -k / --area", file=sys.stderr)
    elif result == EXIT_INTERNAL:
        print(
            "ollama-conformance: internal error: the suite itself broke (see the errors above)",
            file=sys.stderr,
        )
    return result
