"""Turning pytest outcomes into verdicts: one :class:`~conformance.report.Result` per test.

The rules (see :mod:`conformance.verdict` for the verdicts themselves):

* the requirement's catalogue entry decides the level; an unknown id is an ERROR of the test;
* a failed MUST is FAIL (fails the run); a failed SHOULD or MAY is WARN (does not);
* NOT IMPLEMENTED and TIMEOUT fail the run for a MUST and are reported otherwise;
* an ``--expect`` entry whose outcome matches turns the result into an expected deviation.

Each phase report is regraded in place (outcome and longrepr), so the terminal, the exit code
and JUnit all tell the same story as the conformance report.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance.expectations import Expectations
from conformance.report import Result, StaleExpectation
from conformance.requirement_markers import RequirementError, RequirementLookup, area_of
from conformance.verdict import (
    GradedOutcome,
    RequirementFailure,
    RequirementRef,
    Verdict,
    grade,
)

__all__ = ["Grader"]


class Grader:
    """Grades each test's phase reports and keeps one Result per test, by node id."""

    def __init__(self, requirements: RequirementLookup, expectations: Expectations | None) -> None:
        self.requirements = requirements
        self.expectations = expectations
        self.results: dict[str, Result] = {}
        self._durations: dict[str, float] = {}
        self._used: set[str] = set()  # expectation keys that matched a result
        self._passing: dict[str, list[str]] = {}  # expectation key -> passing node ids

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

    def stale_expectations(self) -> tuple[list[StaleExpectation], list[str]]:
        """``(stale, unused)``: entries whose tests all passed, and entries that matched nothing."""
        if self.expectations is None:
            return [], []
        stale = [
            StaleExpectation(e.key, e.outcome.value, e.reason, tuple(self._passing[e.key]))
            for e in self.expectations
            if e.key in self._passing
            and not any(
                r.deviation is not None or r.verdict is not Verdict.PASS
                for r in self.results.values()
                if e.matches(r.nodeid, r.requirement)
            )
        ]
        unused = [e.key for e in self.expectations if e.key not in self._used]
        return stale, unused

    def _grade(
        self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport
    ) -> Result:
        exc = call.excinfo.value if call.excinfo is not None else None
        requirement, ref = self.requirements.ref_of(item)
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
            area=(requirement.area if requirement is not None else None) or area_of(item),
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
        if self.expectations is None:
            return
        entry = self.expectations.find(result.nodeid, result.requirement)
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


def _identity(item: pytest.Item, existing: Result | None) -> dict[str, Any]:
    if existing is not None:
        return {k: getattr(existing, k) for k in ("requirement", "level", "area", "statement")}
    return {"requirement": None, "level": None, "area": area_of(item), "statement": None}


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
