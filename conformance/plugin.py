"""The pytest plugin behind the conformance suite: options, fixtures, grading, reports.

Installed as the ``ollama_conformance`` pytest11 entry point, so it loads in *every* pytest
session of an environment that has the package. It therefore stays inert unless asked: it only
adds its options and the ``requirement`` marker, and switches on (fixtures, grading, summary,
reports) when ``--target`` is given or when the ``conformance.suite`` tests are collected (the
suite's conftest activates it). Fixture names like ``client`` are common; registering them only
then keeps them from shadowing another plugin's fixtures in unrelated projects.

Grading turns pytest outcomes into verdicts (see :mod:`conformance.verdict`):

* the requirement's catalogue entry decides the level; an unknown id is an ERROR of the test;
* a requirement that does not apply to the target's version, or needs a capability no model has,
  is skipped *before* the test runs, with the reason;
* a failed MUST is FAIL (fails the run); a failed SHOULD or MAY is WARN (does not);
* NOT IMPLEMENTED and TIMEOUT fail the run for a MUST and are reported otherwise;
* an ``--expect`` entry whose outcome matches turns the result into an expected deviation.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import re
import secrets
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from conformance import __version__
from conformance.client import Bounds, Client, check_reachable
from conformance.expectations import ExpectationError, Expectations
from conformance.expectations import load as load_expectations
from conformance.report import Report, Result, StaleExpectation, summary_lines, write_reports
from conformance.target import CAPABILITY_OPTIONS, SCRATCH_PREFIX, Overrides, Target, discover
from conformance.verdict import (
    GradedOutcome,
    RequirementFailure,
    RequirementRef,
    Verdict,
    grade,
    requirement_context,
)
from conformance.versions import Version, VersionError

if TYPE_CHECKING:
    from conformance.requirements import Catalogue, Requirement

__all__ = [
    "CATALOGUE_ENV",
    "ConformanceState",
    "ScratchName",
    "activate",
    "run_state",
    "suite_fixtures",
]

#: Environment variable naming another requirements catalogue (tests and forks use it).
CATALOGUE_ENV = "OLLAMA_CONFORMANCE_CATALOGUE"

#: pytest's code for a usage error is 4; ours (documented for the CLI) is 2. A target that
#: cannot be reached is the user's to fix, so the plugin exits with 2 as the CLI does.
EXIT_UNREACHABLE = 2

_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
_STATE = pytest.StashKey["ConformanceState"]()


class RequirementError(Exception):
    """A test's ``requirement`` marker is missing its id or names no catalogue entry."""


# --------------------------------------------------------------------------------------------
# Options


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options of the suite, in one group, each with a metavar and its default in the help."""
    group = parser.getgroup("ollama-conformance", "Ollama API conformance suite")
    group.addoption(
        "--target",
        metavar="URL",
        default=None,
        help="base URL of the server under test, e.g. http://127.0.0.1:11434 "
        "(default: start the embedded reference server on a free 127.0.0.1 port)",
    )
    for option, capability in (
        ("--model", "completion"),
        ("--embed-model", "embedding"),
        ("--tools-model", "tools"),
        ("--thinking-model", "thinking"),
        ("--vision-model", "vision"),
    ):
        group.addoption(
            option,
            metavar="NAME",
            default=None,
            help=f"model to use for tests that need '{capability}' "
            "(default: the smallest local model whose capabilities include it)",
        )
    group.addoption(
        "--api-version",
        metavar="VERSION",
        default=None,
        help="judge the target as this Ollama version, e.g. 0.12.11 (default: the version "
        "/api/version claims; the newest known for dev builds)",
    )
    group.addoption(
        "--expect",
        metavar="FILE",
        default=None,
        help="YAML or TOML file of accepted deviations: requirement or test id -> "
        "{outcome, reason} (default: none)",
    )
    group.addoption(
        "--allow-network",
        action="store_true",
        default=False,
        help="run tests that make the target reach a model registry (pull, push) "
        "(default: skipped)",
    )
    for option, default, what in (
        ("--connect-timeout", 5.0, "connecting to the target"),
        ("--read-timeout", 120.0, "silence while reading an answer (model loads count)"),
        ("--total-timeout", 300.0, "one whole request"),
    ):
        group.addoption(
            option,
            metavar="SECONDS",
            type=float,
            default=default,
            help=f"longest time for {what} (default: {default:g})",
        )
    group.addoption(
        "--run-id",
        metavar="ID",
        default=None,
        help="identifies this run in reports and in scratch model names "
        "conformance-<ID>-N (default: UTC time plus a random suffix)",
    )
    group.addoption(
        "--report-dir",
        metavar="DIR",
        default=None,
        help="write report.json, report.md and junit.xml there (default: no files)",
    )
    group.addoption(
        "--conformance-area",
        metavar="AREA",
        action="append",
        default=[],
        help="run only requirements of this area, e.g. generate; repeatable (default: all)",
    )


def _usage(message: str) -> pytest.UsageError:
    return pytest.UsageError(f"ollama-conformance: {message}")


def validate_url(url: str, option: str = "--target") -> str:
    """The URL without a trailing slash, or a UsageError saying what a good one looks like."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise _usage(
            f"{option} {url!r} is not an http(s) URL; pass e.g. {option} http://127.0.0.1:11434"
        )
    return url.rstrip("/")


class Settings:
    """The plugin's options, checked once so that mistakes stop the run before it starts."""

    def __init__(self, config: pytest.Config) -> None:
        opt = config.getoption
        target = opt("--target")
        self.target_url: str | None = validate_url(target) if target else None
        api_version = opt("--api-version")
        if api_version:
            try:
                Version.parse(api_version)
            except VersionError:
                raise _usage(
                    f"--api-version {api_version!r} is not an Ollama version; "
                    "pass e.g. --api-version 0.12.11"
                ) from None
        models: dict[str, str | None] = {}
        for name in ("model", "embed_model", "tools_model", "thinking_model", "vision_model"):
            value = opt(name)
            if value is not None and not str(value).strip():
                flag = "--" + name.replace("_", "-")
                raise _usage(f"{flag} is empty; pass a model name such as {flag} llama3.2")
            models[name] = str(value).strip() if value else None
        self.overrides = Overrides(api_version=api_version or None, **models)
        self.timeouts: dict[str, float] = {}
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            value = opt(name)
            if not value or value <= 0:
                flag = "--" + name.replace("_", "-")
                raise _usage(f"{flag} must be a positive number of seconds, got {value!r}")
            self.timeouts[name] = float(value)
        run_id = opt("--run-id")
        if run_id is not None and not _RUN_ID.match(run_id):
            raise _usage(
                f"--run-id {run_id!r} cannot be part of a model name; use 1-40 lower-case "
                "letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        self.run_id: str = run_id or _new_run_id()
        self.expect_path: str | None = opt("--expect")
        self.expectations: Expectations | None = None
        if self.expect_path:
            try:
                self.expectations = load_expectations(self.expect_path)
            except ExpectationError as exc:
                raise _usage(str(exc)) from None
        report_dir = opt("--report-dir")
        self.report_dir: Path | None = Path(report_dir) if report_dir else None
        if (
            self.report_dir is not None
            and self.report_dir.exists()
            and not self.report_dir.is_dir()
        ):
            raise _usage(f"--report-dir {report_dir!r} is a file; pass a directory")
        self.allow_network: bool = bool(opt("--allow-network"))
        self.areas: list[str] = [a.strip() for a in opt("--conformance-area") or [] if a.strip()]

    def bounds(self) -> Bounds:
        """Per-request limits for the session client."""
        read = self.timeouts["read_timeout"]
        total = self.timeouts["total_timeout"]
        return Bounds(
            connect_timeout=self.timeouts["connect_timeout"],
            read_timeout=read,
            write_timeout=read,
            first_line_timeout=min(read, total),
            max_gap=min(read, total),
            total_timeout=total,
        )

    def to_dict(self) -> dict[str, Any]:
        """What the report records about how the run was configured."""
        return {
            "target": self.target_url,
            "api_version": self.overrides.api_version,
            "models": {
                k: v
                for k, v in vars(self.overrides).items()
                if k != "api_version" and v is not None
            },
            "expect": self.expect_path,
            "allow_network": self.allow_network,
            "timeouts": dict(self.timeouts),
            "areas": list(self.areas),
        }


def _new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dt%H%M%S")
    return f"{stamp}-{secrets.token_hex(2)}"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------------------------
# Session state


class ScratchName(str):
    """A unique, tracked model name under the run prefix; call it for another one.

    It is a ``str`` so ``json={"model": scratch_name}`` just works, and callable because tests
    that copy or rename need a second name: ``dest = scratch_name()``.
    """

    _factory: Callable[[], ScratchName]

    def __new__(cls, value: str, factory: Callable[[], ScratchName]) -> ScratchName:
        obj = super().__new__(cls, value)
        obj._factory = factory
        return obj

    def __call__(self) -> ScratchName:
        return self._factory()


class ConformanceState:
    """Everything one run shares: settings, target, client, results. Kept in the config stash."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.active = False
        self.results: dict[str, Result] = {}
        self.started_at = _now()
        self._started_mono = time.monotonic()
        self._finished_mono: float | None = None
        self.finished_at: str | None = None
        self.report_paths: dict[str, Path] = {}
        self.stale: list[StaleExpectation] = []
        self.unused_expectations: list[str] = []
        self.cleanup_notes: list[str] = []
        self._catalogue: Catalogue | None = None
        self._catalogue_error: str | None = None
        self._server: Any = None
        self._base_url: str | None = settings.target_url
        self._client: Client | None = None
        self._target: Target | None = None
        self._initial_models: set[str] = set()
        self._scratch: set[str] = set()
        self._prefix_used = False  # a test asked for run_prefix or a scratch name
        self._counter = itertools.count(1)
        self._durations: dict[str, float] = {}
        self._used: set[str] = set()  # expectation keys that matched a result
        self._passing: dict[str, list[str]] = {}  # expectation key -> passing node ids

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def run_prefix(self) -> str:
        """Every model this run creates is named under this prefix.

        Whoever asks may create models under it, so asking arms the end-of-run clean-up.
        """
        self._prefix_used = True
        return f"{SCRATCH_PREFIX}{self.settings.run_id}"

    def base_url(self) -> str:
        """The target's URL, starting the embedded reference server on first use if needed."""
        if self._base_url is None:
            from conformance.reference.config import ReferenceConfig
            from conformance.reference.server import start_background

            self._server = start_background(ReferenceConfig())
            self._base_url = str(self._server.url).rstrip("/")
        return self._base_url

    @property
    def uses_reference(self) -> bool:
        """Whether the target is the embedded reference server this run started."""
        return self._server is not None

    def client(self) -> Client:
        """The session's bounded client (one for discovery, tests and clean-up)."""
        if self._client is None:
            self._client = Client(self.base_url(), bounds=self.settings.bounds())
        return self._client

    def target(self) -> Target:
        """The discovered target; an unreachable one ends the session with exit code 2."""
        if self._target is None:
            url = self.base_url()
            reason = check_reachable(
                url, timeout=min(5.0, self.settings.timeouts["connect_timeout"])
            )
            if reason is not None:
                pytest.exit(
                    f"ollama-conformance: target {url} is unreachable ({reason}); "
                    "start the server or fix --target",
                    returncode=EXIT_UNREACHABLE,
                )
            self._target = discover(url, self.client(), self.settings.overrides)
            self._initial_models = {m.name.lower() for m in self._target.models}
        return self._target

    def new_scratch_name(self) -> ScratchName:
        """A unique model name under the run prefix, remembered for clean-up."""
        name = f"{self.run_prefix}-{next(self._counter)}"
        self._scratch.add(name)
        return ScratchName(name, self.new_scratch_name)

    def cleanup(self) -> None:
        """Delete the models under the run prefix that this run created; nothing else."""
        if self._client is None or self._target is None or not self._prefix_used:
            return  # no test asked for a scratch name: nothing of ours to look for
        prefix = f"{SCRATCH_PREFIX}{self.settings.run_id}-".lower()
        # A target that stopped answering must not hold the end of the run for minutes.
        bounds = self._client.bounds.with_overrides(
            total_timeout=min(15.0, self._client.bounds.total_timeout)
        )
        tags = self._client.get("/api/tags", bounds=bounds)
        value, _ = tags.json()
        models = value.get("models") if isinstance(value, dict) else None
        if not isinstance(models, list):
            return
        scratch = {s.lower() for s in self._scratch}
        for entry in models:
            name = entry.get("name") if isinstance(entry, dict) else None
            if not isinstance(name, str) or not name.lower().startswith(prefix):
                continue
            base = name.lower().split(":", 1)[0]
            if base not in scratch and name.lower() in self._initial_models:
                continue  # was there before the run started: not ours to delete
            ex = self._client.delete("/api/delete", json={"model": name}, bounds=bounds)
            if ex.status != 200:
                self.cleanup_notes.append(
                    f"could not delete scratch model {name}: {ex.problem or f'status {ex.status}'}"
                )

    def close(self) -> None:
        """Close the client and stop the reference server, if this run started one."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.stop()
            self._server = None

    # -- requirements -----------------------------------------------------------------------

    def catalogue(self) -> Catalogue | None:
        """The requirement catalogue (``$OLLAMA_CONFORMANCE_CATALOGUE`` overrides the path)."""
        if self._catalogue is None and self._catalogue_error is None:
            try:
                from conformance.requirements import load_catalogue

                path = os.environ.get(CATALOGUE_ENV) or None
                self._catalogue = load_catalogue(path) if path else load_catalogue()
            except Exception as exc:  # reported on every marked test, not as a crash
                self._catalogue_error = f"{type(exc).__name__}: {exc}"
        return self._catalogue

    def requirement(self, req_id: str) -> Requirement:
        """The catalogue entry; RequirementError when there is none."""
        catalogue = self.catalogue()
        if catalogue is None:
            raise RequirementError(f"requirement catalogue unreadable: {self._catalogue_error}")
        problem = f"unknown requirement {req_id!r}"
        try:
            entry = catalogue.get(req_id)
        except KeyError as exc:  # the catalogue's message suggests close ids for a typo
            entry, problem = None, str(exc.args[0]) if exc.args else problem
        if entry is None:
            where = os.environ.get(CATALOGUE_ENV) or "schemas/requirements.toml"
            raise RequirementError(
                f"{problem} (from @pytest.mark.requirement; add the id to {where} "
                "or fix the marker)"
            )
        return entry

    def requirement_of(self, item: pytest.Item) -> Requirement | None:
        """The item's catalogue entry, None without a marker; RequirementError if bad."""
        marker = item.get_closest_marker("requirement")
        if marker is None:
            return None
        req_id = marker.args[0] if marker.args else marker.kwargs.get("id")
        if not isinstance(req_id, str) or not req_id:
            raise RequirementError(
                'a requirement marker needs an id: @pytest.mark.requirement("area.behaviour")'
            )
        return self.requirement(req_id)

    def missing_need(self, need: str) -> str | None:
        """Why the target cannot judge a requirement that needs ``need``, or None."""
        if need == "create":
            return None  # scratch models are named under the run prefix and deleted afterwards
        if need == "network":
            if self.settings.allow_network:
                return None
            return "needs the target to reach a model registry; pass --allow-network"
        if self.target().model_for(need) is not None:
            return None
        option = CAPABILITY_OPTIONS.get(need, "--model")
        return f"no model with capability '{need}' on the target; pass {option}"

    # -- grading ----------------------------------------------------------------------------

    def record(
        self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport
    ) -> None:
        """Grade one phase report in place and keep the Result."""
        nodeid = report.nodeid
        self._durations[nodeid] = self._durations.get(nodeid, 0.0) + report.duration
        if report.when == "setup" and report.passed:
            return
        if report.when == "teardown":
            existing = self.results.get(nodeid)
            if existing is not None:
                existing.duration = self._durations[nodeid]
            if report.failed and (existing is None or not existing.fails_run):
                self.results[nodeid] = Result(
                    nodeid=nodeid,
                    verdict=Verdict.ERROR,
                    message=f"teardown failed: {_message_of(call, report)}",
                    fails_run=True,
                    duration=self._durations[nodeid],
                    **_identity(item, existing),
                )
            return
        self.results[nodeid] = self._grade(item, call, report)

    def _grade(
        self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport
    ) -> Result:
        exc = call.excinfo.value if call.excinfo is not None else None
        try:
            requirement = self.requirement_of(item)
        except RequirementError:
            requirement = None
        ref: RequirementRef | None = None
        if requirement is not None:
            ref = RequirementRef(requirement.id, requirement.level, requirement.statement)
        carried = getattr(exc, "requirement", None)
        if isinstance(exc, RequirementFailure | GradedOutcome) and isinstance(
            carried, RequirementRef
        ):
            ref = carried  # a check about another requirement than the marker's
        level = (ref.level if ref is not None else None) or None
        expected = actual = curl = None
        if isinstance(exc, RequirementFailure | GradedOutcome):
            expected, actual, curl = exc.expected, exc.actual, exc.curl

        verdict, fails_run = grade(exc, outcome=report.outcome, when=report.when, level=level)
        message = "" if verdict is Verdict.PASS else _message_of(call, report)
        if verdict is Verdict.WARN:
            _set_outcome(report, item, "passed")
        elif fails_run and report.skipped:  # a MUST that is NOT IMPLEMENTED or TIMEOUT
            _set_outcome(report, item, "failed", message)

        result = Result(
            nodeid=report.nodeid,
            verdict=verdict,
            requirement=ref.id if ref is not None else None,
            level=level,
            area=(requirement.area if requirement is not None else None) or _area_of(item),
            statement=(ref.statement or None) if ref is not None else None,
            message=message,
            expected=expected,
            actual=actual,
            curl=curl,
            duration=self._durations.get(report.nodeid, report.duration),
            fails_run=fails_run,
        )
        self._apply_expectation(item, report, result)
        report.conformance_verdict = result.verdict.value  # type: ignore[attr-defined]
        report.conformance_deviation = result.deviation  # type: ignore[attr-defined]
        report.user_properties.append(("verdict", result.verdict.value))
        if result.requirement:
            report.user_properties.append(("requirement", result.requirement))
        return result

    def _apply_expectation(
        self, item: pytest.Item, report: pytest.TestReport, result: Result
    ) -> None:
        expectations = self.settings.expectations
        if expectations is None:
            return
        entry = expectations.find(result.nodeid, result.requirement)
        if entry is None:
            return
        self._used.add(entry.key)
        if result.verdict is Verdict.PASS:
            self._passing.setdefault(entry.key, []).append(result.nodeid)
            return
        if entry.accepts(result.verdict):
            result.deviation = entry.reason
            result.fails_run = False
            _set_outcome(
                report,
                item,
                "skipped",
                f"expected deviation ({result.verdict.label}): {entry.reason}",
            )
        else:
            result.message += (
                f"\n(--expect {entry.key!r} expected {entry.outcome.label}, "
                f"got {result.verdict.label}: the entry does not apply)"
            )

    def finish(self) -> None:
        """Close the books: clean up, find stale expectations, write the report files."""
        self.finished_at = _now()
        self._finished_mono = time.monotonic()
        with contextlib.suppress(Exception):  # clean-up must never mask the run's outcome
            self.cleanup()
        expectations = self.settings.expectations
        if expectations is not None:
            self.stale = [
                StaleExpectation(e.key, e.outcome.value, e.reason, tuple(self._passing[e.key]))
                for e in expectations
                if e.key in self._passing
                and not any(
                    r.deviation is not None or r.verdict is not Verdict.PASS
                    for r in self.results.values()
                    if e.matches(r.nodeid, r.requirement)
                )
            ]
            self.unused_expectations = [e.key for e in expectations if e.key not in self._used]
        if self.settings.report_dir is not None:
            self.report_paths = write_reports(self.report(), self.settings.report_dir)

    def report(self) -> Report:
        """The run as a :class:`~conformance.report.Report`."""
        target: dict[str, Any] = self._target.to_dict() if self._target else {"url": self._base_url}
        target["reference_server"] = self.uses_reference
        return Report(
            results=list(self.results.values()),
            target=target,
            run={
                "id": self.settings.run_id,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "duration": round(
                    (self._finished_mono or time.monotonic()) - self._started_mono, 3
                ),
                "suite_version": __version__,
                "cleanup_notes": list(self.cleanup_notes),
            },
            options=self.settings.to_dict(),
            stale=list(self.stale),
            unused_expectations=list(self.unused_expectations),
        )


def _identity(item: pytest.Item, existing: Result | None) -> dict[str, Any]:
    if existing is not None:
        return {k: getattr(existing, k) for k in ("requirement", "level", "area", "statement")}
    return {"requirement": None, "level": None, "area": _area_of(item), "statement": None}


def _area_of(item: pytest.Item) -> str:
    """A test's area when its requirement does not say: ``test_generate.py`` -> ``generate``."""
    return item.path.stem.removeprefix("test_")


def _message_of(call: pytest.CallInfo[None], report: pytest.TestReport) -> str:
    """A short text for the report: our formatted failure, else the exception line."""
    excinfo = call.excinfo
    if excinfo is not None:
        exc = excinfo.value
        if isinstance(exc, GradedOutcome | RequirementFailure | RequirementError):
            return str(exc.msg if isinstance(exc, GradedOutcome) else exc)
        if isinstance(exc, pytest.skip.Exception | pytest.fail.Exception):
            return str(exc.msg or excinfo.typename)
        text = str(exc).strip()
        return f"{excinfo.typename}: {text}" if text else excinfo.typename
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr or "")


def _set_outcome(
    report: pytest.TestReport, item: pytest.Item, outcome: str, message: str = ""
) -> None:
    """Regrade a report: the terminal, the exit code and JUnit all follow ``outcome``."""
    report.outcome = outcome  # type: ignore[assignment]
    if outcome == "passed":
        report.longrepr = None
    elif outcome == "skipped":
        path, line, _ = item.reportinfo()
        report.longrepr = (str(path), (line or 0) + 1, message)
    else:
        report.longrepr = message


def run_state(config: pytest.Config) -> ConformanceState | None:
    """The run's state (for the CLI runner, which reads the results after ``pytest.main``)."""
    return config.stash.get(_STATE, None)


def _state(config: pytest.Config) -> ConformanceState:
    return config.stash[_STATE]


# --------------------------------------------------------------------------------------------
# Fixtures (registered only when the suite is active)


def suite_fixtures() -> types.ModuleType:
    """A module object holding the fixtures conformance tests use; :func:`activate` registers it.

    Built on demand rather than defined at module level so that loading the plugin does not
    define fixtures named ``client`` or ``target`` in every pytest session of the environment.
    """

    @pytest.fixture(scope="session")
    def target(request: pytest.FixtureRequest) -> Target:
        """The server under test: URL, claimed and effective version, models and capabilities."""
        return _state(request.config).target()

    @pytest.fixture(scope="session")
    def client(request: pytest.FixtureRequest, target: Target) -> Client:
        """A bounded client for the target; requests never raise for server misbehaviour."""
        return _state(request.config).client()

    @pytest.fixture(scope="session")
    def api_version(target: Target) -> str:
        """The Ollama version the target is judged as (claimed, ``--api-version`` or newest)."""
        return target.effective_version

    @pytest.fixture(scope="session")
    def model_for(request: pytest.FixtureRequest, target: Target) -> Callable[[str], str]:
        """``model_for("tools")``: a model with that capability, or skip saying which option."""
        state = _state(request.config)

        def pick(capability: str) -> str:
            __tracebackhide__ = True
            name = target.model_for(capability)
            if name is None:
                pytest.skip(state.missing_need(capability) or f"no model for {capability!r}")
            return name

        return pick

    @pytest.fixture(scope="session")
    def run_prefix(request: pytest.FixtureRequest) -> str:
        """``conformance-<run id>``: the prefix of every model this run creates."""
        return _state(request.config).run_prefix

    @pytest.fixture
    def scratch_name(request: pytest.FixtureRequest, target: Target) -> ScratchName:
        """A unique model name under the run prefix, deleted at the end of the run if created."""
        return _state(request.config).new_scratch_name()

    module = types.ModuleType("conformance.plugin.fixtures", suite_fixtures.__doc__)
    fixtures = {
        "target": target,
        "client": client,
        "api_version": api_version,
        "model_for": model_for,
        "run_prefix": run_prefix,
        "scratch_name": scratch_name,
    }
    for name, fixture in fixtures.items():
        setattr(module, name, fixture)
    return module


_FIXTURES_PLUGIN = "ollama-conformance-fixtures"


def activate(config: pytest.Config) -> None:
    """Switch the plugin on for this session (idempotent): fixtures, grading, summary, reports."""
    state = config.stash.get(_STATE, None)
    if state is None or state.active:
        return
    state.active = True
    if not config.pluginmanager.has_plugin(_FIXTURES_PLUGIN):
        config.pluginmanager.register(suite_fixtures(), _FIXTURES_PLUGIN)


# --------------------------------------------------------------------------------------------
# Hooks


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; validate options; activate when a target is named."""
    config.addinivalue_line(
        "markers",
        "requirement(id): the catalogue requirement (schemas/requirements.toml) this test judges",
    )
    state = ConformanceState(config, Settings(config))
    config.stash[_STATE] = state
    if state.settings.target_url is not None:
        activate(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Release the client and the reference server even after an interrupted run."""
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.close()


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    """Name the target and run id at the top of the output."""
    state = config.stash.get(_STATE, None)
    if state is None or not state.active:
        return None
    target = state.settings.target_url or "embedded reference server"
    return [f"ollama-conformance {__version__}: target {target}, run {state.settings.run_id}"]


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Keep only the requested areas (``--conformance-area``)."""
    state = config.stash.get(_STATE, None)
    if state is None or not state.active or not state.settings.areas:
        return
    wanted = set(state.settings.areas)
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        try:
            requirement = state.requirement_of(item)
        except RequirementError:
            keep.append(item)  # let it run and report the bad marker
            continue
        area = requirement.area if requirement is not None else _area_of(item)
        (keep if area in wanted else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Make the item's requirement the default of ``check()`` while it runs."""
    state = item.config.stash.get(_STATE, None)
    ref: RequirementRef | None = None
    if state is not None and state.active:
        try:
            requirement = state.requirement_of(item)
        except RequirementError:
            requirement = None
        if requirement is not None:
            ref = RequirementRef(requirement.id, requirement.level, requirement.statement)
    with requirement_context(ref):
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture: reject bad markers, skip what the target cannot be judged on."""
    state = item.config.stash.get(_STATE, None)
    if state is None or not state.active:
        return
    problem: str | None = None
    try:
        requirement = state.requirement_of(item)
    except RequirementError as exc:
        requirement, problem = None, str(exc)
    if problem is not None:
        pytest.fail(problem, pytrace=False)  # the suite's bug: one line, no plugin traceback
    if requirement is None:
        return
    target = state.target()
    reason = requirement.reason_not_applicable(target.effective_version)
    if reason:
        pytest.skip(reason)
    for need in requirement.needs:
        missing = state.missing_need(need)
        if missing:
            pytest.skip(missing)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Turn each phase's pytest outcome into a verdict (see the module docstring)."""
    report = yield
    state = item.config.stash.get(_STATE, None)
    if state is not None and state.active:
        state.record(item, call, report)  # type: ignore[arg-type]
    return report


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str | tuple[str, dict[str, bool]]] | None:
    """Show WARN, NOT IMPLEMENTED, TIMEOUT and expected deviations as what they are."""
    verdict = getattr(report, "conformance_verdict", None)
    if verdict is None or report.failed:
        return None
    if getattr(report, "conformance_deviation", None):
        return "deviation", "d", ("DEVIATION", {"yellow": True})
    if verdict == Verdict.WARN.value:
        return "warned", "W", ("WARN", {"yellow": True})
    if verdict == Verdict.NOT_IMPLEMENTED.value:
        return "not_implemented", "N", ("NOT IMPLEMENTED", {"yellow": True})
    if verdict == Verdict.TIMEOUT.value:
        return "timeout", "T", ("TIMEOUT", {"yellow": True})
    return None


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Clean up scratch models and write the reports (after fixtures are torn down)."""
    state = session.config.stash.get(_STATE, None)
    if state is None or not state.active:
        return
    state.finish()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Per-area counts, then MUST failures, warnings and the rest, one line each."""
    state = config.stash.get(_STATE, None)
    if state is None or not state.active or not state.results:
        return
    tr = terminalreporter
    tr.section("ollama-conformance summary", sep="=")
    for line, markup in summary_lines(state.report()):
        tr.write_line(line, **markup)
    for note in state.cleanup_notes:
        tr.write_line(f"clean-up: {note}", yellow=True)
    if state.report_paths:
        tr.write_line("reports: " + ", ".join(str(p) for p in state.report_paths.values()))
