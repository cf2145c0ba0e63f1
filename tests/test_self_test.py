"""The suite judges servers correctly: no FAIL on the reference server, and every fault caught.

A conformance test that cannot fail is worthless, and one that fails a correct server is worse.
So the suite is run, exactly as a user runs it (``ollama-conformance run``, in-process), against

* the plain reference server: every result must be PASS, SKIP, WARN or NOT IMPLEMENTED;
* each deliberately broken server of :mod:`conformance.faults`: the requirements the fault names
  must be graded FAIL (WARN for a SHOULD), and the run must exit 1 when a MUST is among them.

To stay fast, a fault's run keeps only the tests that carry one of its requirements (found by
reading the suite with ``ast``, see ``test_suite_coverage.suite_markers``; the run loads this
module as a pytest plugin through ``PYTEST_PLUGINS`` to deselect the rest).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_suite_coverage import markers_by_requirement, suite_markers

from conformance.cli import EXIT_FAILED, EXIT_OK
from conformance.cli import main as cli_main
from conformance.faults import FAULTS, Fault, start_faulty_server
from conformance.report import Report, load_report
from conformance.requirements import load_catalogue
from conformance.verdict import Verdict

#: Requirement ids a fault run keeps (comma-separated); read by the hook below in the inner run.
ONLY_ENV = "OLLAMA_CONFORMANCE_SELFTEST_ONLY"
#: Fewer hypothesis examples per property in fault runs: a fault shows up in the first few.
FAULT_EXAMPLES = "10"

#: Verdicts a correct server may get.
ACCEPTABLE_ON_REFERENCE = {Verdict.PASS, Verdict.SKIP, Verdict.WARN, Verdict.NOT_IMPLEMENTED}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Inside a fault run only: keep the tests whose requirement is in ``$ONLY_ENV``."""
    wanted = {i for i in os.environ.get(ONLY_ENV, "").split(",") if i}
    if not wanted:
        return
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("requirement")
        requirement = (
            (marker.args[0] if marker.args else marker.kwargs.get("id")) if marker else None
        )
        (keep if requirement in wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def run_suite(
    report_dir: Path, *args: str, only: set[str] | None = None, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, Report]:
    """``ollama-conformance run`` in this process; its exit code and report."""
    if only:
        monkeypatch.setenv("PYTEST_PLUGINS", "test_self_test")
        monkeypatch.setenv(ONLY_ENV, ",".join(sorted(only)))
        monkeypatch.setenv("OLLAMA_CONFORMANCE_EXAMPLES", FAULT_EXAMPLES)
    code = cli_main(["run", "--report-dir", str(report_dir), "--run-id", "selftest", *args])
    path = report_dir / "report.json"
    assert path.exists(), f"the run (exit {code}) wrote no report.json"
    return code, load_report(path)


def _describe(report: Report, verdicts: set[Verdict]) -> str:
    lines = []
    for result in report.results:
        if result.verdict in verdicts:
            message = (result.message or "").strip().splitlines()
            first = next((m for m in message if m.strip()), "")
            lines.append(f"{result.verdict.value} {result.requirement} {result.nodeid}: {first}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# (a) the reference server


@pytest.mark.slow
def test_reference_server_gets_no_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code, report = run_suite(tmp_path, monkeypatch=monkeypatch)
    bad = {v for v in Verdict} - ACCEPTABLE_ON_REFERENCE
    offenders = [r for r in report.results if r.verdict in bad]
    if offenders:
        pytest.fail(
            f"{len(offenders)} result(s) against the plain reference server are not "
            "PASS/SKIP/WARN/NOT IMPLEMENTED (a suite or reference bug):\n" + _describe(report, bad),
            pytrace=False,
        )
    assert code == EXIT_OK
    assert len(report.results) > 0


# --------------------------------------------------------------------------------------------
# (b) the faults


def test_fault_registry_is_well_formed() -> None:
    catalogue = load_catalogue()
    assert len(FAULTS) >= 22
    for fault in FAULTS.values():
        assert fault.catches, f"{fault.name} names no requirement"
        unknown = [i for i in fault.catches if i not in catalogue]
        assert not unknown, f"{fault.name} names unknown requirements {unknown}"
        levels = {catalogue.get(i).level for i in fault.catches}
        expected = "MUST" if "MUST" in levels else "SHOULD"
        assert fault.level == expected, f"{fault.name}: level {fault.level}, catchers {levels}"


@pytest.fixture(scope="module")
def judged() -> dict[str, list[str]]:
    """Requirement id -> the suite tests that judge it."""
    return {
        requirement: [m.where() for m in markers]
        for requirement, markers in markers_by_requirement(suite_markers()).items()
    }


@pytest.fixture
def faulty_server(request: pytest.FixtureRequest) -> Iterator[str]:
    server = start_faulty_server(request.param)
    try:
        yield server.url
    finally:
        server.stop()


def _expected(fault: Fault, requirement: str) -> Verdict:
    level = load_catalogue().get(requirement).level
    return Verdict.FAIL if level == "MUST" else Verdict.WARN


@pytest.mark.slow
@pytest.mark.parametrize("faulty_server", sorted(FAULTS), indirect=True)
def test_fault_is_caught(
    faulty_server: str,
    request: pytest.FixtureRequest,
    judged: dict[str, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fault = FAULTS[request.node.callspec.params["faulty_server"]]
    tested = [i for i in fault.catches if i in judged]
    untested = [i for i in fault.catches if i not in judged]
    if not tested:
        pytest.skip(f"no suite test carries {', '.join(untested)} yet (see test_suite_coverage)")

    code, report = run_suite(
        tmp_path, "--target", faulty_server, only=set(tested), monkeypatch=monkeypatch
    )

    missed = []
    for requirement in tested:
        expected = _expected(fault, requirement)
        results = [r for r in report.results if r.requirement == requirement]
        if not any(r.verdict is expected for r in results):
            got = ", ".join(f"{r.verdict.value} ({r.nodeid.split('::')[-1]})" for r in results)
            reasons = "; ".join(
                (r.message or "").strip().splitlines()[0] for r in results if r.message
            )
            missed.append(
                f"{requirement}: expected {expected.value}, got {got or 'no result'}"
                + (f" — {reasons[:300]}" if reasons else "")
            )
    assert not missed, f"fault {fault.name!r} ({fault.summary}) was not caught:\n" + "\n".join(
        missed
    )
    wanted_code = EXIT_FAILED if fault.level == "MUST" else EXIT_OK
    assert code == wanted_code, (
        f"fault {fault.name!r}: exit code {code}, expected {wanted_code}\n"
        + _describe(report, {Verdict.FAIL, Verdict.ERROR, Verdict.TIMEOUT})
    )
