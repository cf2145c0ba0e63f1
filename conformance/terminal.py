"""What the plugin writes to the terminal: the header, each test's status word, the summary."""

from __future__ import annotations

from typing import Any

import pytest

from conformance import __version__
from conformance.report import summary_lines
from conformance.run_state import ConformanceState
from conformance.verdict import Verdict

__all__ = ["header_lines", "status_of", "write_summary"]

#: Verdicts that pytest would show as a plain pass or skip: (category, letter, word).
_STATUS: dict[str, tuple[str, str, str]] = {
    Verdict.WARN.value: ("warned", "W", "WARN"),
    Verdict.NOT_IMPLEMENTED.value: ("not_implemented", "N", "NOT IMPLEMENTED"),
    Verdict.TIMEOUT.value: ("timeout", "T", "TIMEOUT"),
}


def header_lines(state: ConformanceState) -> list[str]:
    """Name the target and run id at the top of the output."""
    target = state.settings.target_url or "embedded reference server"
    return [f"ollama-conformance {__version__}: target {target}, run {state.settings.run_id}"]


def status_of(
    report: pytest.TestReport,
) -> tuple[str, str, str | tuple[str, dict[str, bool]]] | None:
    """WARN, NOT IMPLEMENTED, TIMEOUT and expected deviations as what they are; else None."""
    verdict = getattr(report, "conformance_verdict", None)
    if verdict is None or report.failed:
        return None
    if getattr(report, "conformance_deviation", None):
        return "deviation", "d", ("DEVIATION", {"yellow": True})
    if verdict in _STATUS:
        category, letter, word = _STATUS[verdict]
        return category, letter, (word, {"yellow": True})
    return None


def write_summary(terminalreporter: Any, state: ConformanceState) -> None:
    """Per-area counts, then MUST failures, warnings and the rest, one line each."""
    tr = terminalreporter
    tr.section("ollama-conformance summary", sep="=")
    for line, markup in summary_lines(state.report()):
        tr.write_line(line, **markup)
    for note in state.cleanup_notes:
        tr.write_line(f"clean-up: {note}", yellow=True)
    if state.report_paths:
        tr.write_line("reports: " + ", ".join(str(p) for p in state.report_paths.values()))
