"""The pytest plugin behind the conformance suite: its hooks and its fixtures, nothing else.

Installed as the ``ollama_conformance`` pytest11 entry point, so it loads in *every* pytest
session of an environment that has the package. It therefore stays inert unless asked: it only
adds its options and the ``requirement`` marker, and switches on (fixtures, grading, summary,
reports) when ``--target`` is given or when the ``conformance.suite`` tests are collected (the
suite's conftest activates it). Fixture names like ``client`` are common; registering them only
then keeps them from shadowing another plugin's fixtures in unrelated projects.

The work is done elsewhere, one job per module:

* :mod:`conformance.plugin_options`: the options, checked before anything runs;
* :mod:`conformance.run_state`: the session's target, client and results; the end of the run;
* :mod:`conformance.requirement_markers`: which catalogue requirement a test judges;
* :mod:`conformance.grading`: pytest outcomes to verdicts (FAIL, WARN, NOT IMPLEMENTED, ...);
* :mod:`conformance.scratch_models`: names for the models a run creates, and their clean-up;
* :mod:`conformance.terminal`: the header, status words and summary on the terminal.

A requirement that does not apply to the target's version, or needs a capability no model has,
is skipped *before* the test runs, with the reason.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from conformance import terminal
from conformance.client import Client
from conformance.plugin_options import Settings, add_options, validate_url
from conformance.requirement_markers import RequirementError, split_by_area
from conformance.requirements import CATALOGUE_ENV
from conformance.run_state import (
    EXIT_UNREACHABLE,
    ConformanceState,
    active_state,
    install,
    run_state,
    state_of,
)
from conformance.scratch_models import ScratchName
from conformance.target import Target
from conformance.verdict import requirement_context

__all__ = [
    "CATALOGUE_ENV",
    "EXIT_UNREACHABLE",
    "ConformanceState",
    "RequirementError",
    "ScratchName",
    "Settings",
    "activate",
    "run_state",
    "suite_fixtures",
    "validate_url",
]

_FIXTURES_PLUGIN = "ollama-conformance-fixtures"


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
        return state_of(request.config).target()

    @pytest.fixture(scope="session")
    def client(request: pytest.FixtureRequest, target: Target) -> Client:
        """A bounded client for the target; requests never raise for server misbehaviour."""
        return state_of(request.config).client()

    @pytest.fixture(scope="session")
    def api_version(target: Target) -> str:
        """The Ollama version the target is judged as (claimed, ``--api-version`` or newest)."""
        return target.effective_version

    @pytest.fixture(scope="session")
    def model_for(request: pytest.FixtureRequest, target: Target) -> Callable[[str], str]:
        """``model_for("tools")``: a model with that capability, or skip saying which option."""
        state = state_of(request.config)

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
        return state_of(request.config).run_prefix

    @pytest.fixture
    def scratch_name(request: pytest.FixtureRequest, target: Target) -> ScratchName:
        """A unique model name under the run prefix, deleted at the end of the run if created."""
        return state_of(request.config).new_scratch_name()

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


def activate(config: pytest.Config) -> None:
    """Switch the plugin on for this session (idempotent): fixtures, grading, summary, reports."""
    __tracebackhide__ = True
    state = run_state(config)
    if state is None or state.active:
        return
    _ = state.settings.examples  # a bad $OLLAMA_CONFORMANCE_EXAMPLES stops the run here
    state.active = True
    if not config.pluginmanager.has_plugin(_FIXTURES_PLUGIN):
        config.pluginmanager.register(suite_fixtures(), _FIXTURES_PLUGIN)


# --------------------------------------------------------------------------------------------
# Hooks


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options of the suite, in one group (see :mod:`conformance.plugin_options`)."""
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker; validate options; activate when a target is named."""
    config.addinivalue_line(
        "markers",
        "requirement(id): the catalogue requirement (schemas/requirements.toml) this test judges",
    )
    state = install(config)
    if state.settings.target_url is not None:
        activate(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Release the client and the reference server even after an interrupted run."""
    state = run_state(config)
    if state is not None:
        state.close()


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    """Name the target and run id at the top of the output."""
    state = active_state(config)
    return terminal.header_lines(state) if state is not None else None


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Keep only the requested areas (``--conformance-area``)."""
    state = active_state(config)
    if state is None or not state.settings.areas:
        return
    keep, dropped = split_by_area(items, set(state.settings.areas), state.requirements)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Make the item's requirement the default of ``check()`` while it runs."""
    state = active_state(item.config)
    _, ref = state.requirements.ref_of(item) if state is not None else (None, None)
    with requirement_context(ref):
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Before any fixture: reject bad markers, skip what the target cannot be judged on."""
    state = active_state(item.config)
    if state is None:
        return
    problem: str | None = None
    try:
        requirement = state.requirements.requirement_of(item)
    except RequirementError as exc:
        requirement, problem = None, str(exc)
    if problem is not None:
        pytest.fail(problem, pytrace=False)  # the suite's bug: one line, no plugin traceback
    if requirement is None:
        return
    reason = state.reason_to_skip(requirement)
    if reason:
        pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Turn each phase's pytest outcome into a verdict (see :mod:`conformance.grading`)."""
    report = yield
    state = active_state(item.config)
    if state is not None:
        state.grader.record(item, call, report)  # type: ignore[arg-type]
    return report


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str | tuple[str, dict[str, bool]]] | None:
    """Show WARN, NOT IMPLEMENTED, TIMEOUT and expected deviations as what they are."""
    return terminal.status_of(report)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Clean up scratch models and write the reports (after fixtures are torn down)."""
    state = active_state(session.config)
    if state is not None:
        state.finish()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Per-area counts, then MUST failures, warnings and the rest, one line each."""
    state = active_state(config)
    if state is not None and state.results:
        terminal.write_summary(terminalreporter, state)
