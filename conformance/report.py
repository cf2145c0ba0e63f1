"""What a run found, written for machines (report.json, junit.xml) and for people (report.md).

The JSON report is the record of a run: ``ollama-conformance diff`` compares two of them to show
what an Ollama upgrade changed, so its shape is versioned (``format``) and every result names its
requirement. JUnit XML exists for CI dashboards; each test case carries the requirement id and the
verdict as properties because JUnit itself only knows pass / fail / skip.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conformance import __version__
from conformance.verdict import Verdict

__all__ = [
    "REPORT_FORMAT",
    "Report",
    "ReportDiff",
    "ReportError",
    "Result",
    "StaleExpectation",
    "diff_reports",
    "load_report",
    "summary_lines",
    "write_reports",
]

#: Bumped when report.json changes incompatibly; ``load_report`` refuses other formats.
REPORT_FORMAT = "ollama-conformance-report/1"

#: Verdict columns, in the order every table shows them.
VERDICT_ORDER = (
    Verdict.PASS,
    Verdict.FAIL,
    Verdict.WARN,
    Verdict.SKIP,
    Verdict.NOT_IMPLEMENTED,
    Verdict.TIMEOUT,
    Verdict.ERROR,
)

#: Verdicts that, after a PASS, count as a regression in ``diff``.
REGRESSED = frozenset({Verdict.FAIL, Verdict.TIMEOUT, Verdict.NOT_IMPLEMENTED})


class ReportError(ValueError):
    """A report file that cannot be read; the message is one line."""


@dataclass
class Result:
    """The graded outcome of one test.

    ``fails_run`` says whether this result makes the run fail (a MUST that does not hold, or a
    broken test); ``deviation`` holds the reason when an expectations entry accepted it.
    """

    nodeid: str
    verdict: Verdict
    requirement: str | None = None
    level: str | None = None
    area: str | None = None
    statement: str | None = None
    message: str = ""
    expected: str | None = None
    actual: str | None = None
    curl: str | None = None
    duration: float = 0.0
    fails_run: bool = False
    deviation: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly; the verdict as its string value."""
        data = asdict(self)
        data["verdict"] = self.verdict.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Result:
        """The inverse of :meth:`to_dict`; unknown keys are ignored (newer reports)."""
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["verdict"] = Verdict.parse(str(data["verdict"]))
        return cls(**values)

    @property
    def key(self) -> str:
        """What identifies this result across runs: its requirement, else its test."""
        return self.requirement or self.nodeid


@dataclass(frozen=True)
class StaleExpectation:
    """An expectations entry whose test now passes: delete it from the file."""

    key: str
    outcome: str
    reason: str
    nodeids: tuple[str, ...] = ()


@dataclass
class Report:
    """A whole run: metadata, results, expectations that no longer apply."""

    results: list[Result] = field(default_factory=list)
    target: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    stale: list[StaleExpectation] = field(default_factory=list)
    unused_expectations: list[str] = field(default_factory=list)
    suite_version: str = __version__

    # -- derived ----------------------------------------------------------------------------

    def totals(self) -> dict[str, int]:
        """Results per verdict (every verdict present, zero included)."""
        counts = Counter(r.verdict for r in self.results)
        return {v.value: counts.get(v, 0) for v in VERDICT_ORDER}

    def by_area(self) -> dict[str, dict[str, int]]:
        """Results per area and verdict, areas sorted by name."""
        table: dict[str, Counter[Verdict]] = {}
        for r in self.results:
            table.setdefault(r.area or "(none)", Counter())[r.verdict] += 1
        return {
            area: {v.value: counts.get(v, 0) for v in VERDICT_ORDER}
            for area, counts in sorted(table.items())
        }

    def must_failures(self) -> list[Result]:
        """Results that fail the run, MUST requirements first (the reader's first question)."""
        failing = [r for r in self.results if r.fails_run]
        return sorted(failing, key=lambda r: (r.level != "MUST", r.area or "", r.nodeid))

    def of(self, *verdicts: Verdict) -> list[Result]:
        """Results with one of ``verdicts`` that do not fail the run."""
        return [r for r in self.results if r.verdict in verdicts and not r.fails_run]

    @property
    def failed(self) -> bool:
        """Whether any result fails the run."""
        return any(r.fails_run for r in self.results)

    # -- JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The content of report.json."""
        return {
            "format": REPORT_FORMAT,
            "suite_version": self.suite_version,
            "run": dict(self.run),
            "target": dict(self.target),
            "options": dict(self.options),
            "totals": self.totals(),
            "areas": self.by_area(),
            "failed": self.failed,
            "results": [r.to_dict() for r in self.results],
            "stale_expectations": [asdict(s) for s in self.stale],
            "unused_expectations": list(self.unused_expectations),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """Rebuild a report from report.json content."""
        return cls(
            results=[Result.from_dict(r) for r in data.get("results", [])],
            target=dict(data.get("target") or {}),
            run=dict(data.get("run") or {}),
            options=dict(data.get("options") or {}),
            stale=[
                StaleExpectation(
                    str(s.get("key")),
                    str(s.get("outcome")),
                    str(s.get("reason")),
                    tuple(s.get("nodeids") or ()),
                )
                for s in data.get("stale_expectations", [])
            ],
            unused_expectations=[str(u) for u in data.get("unused_expectations", [])],
            suite_version=str(data.get("suite_version", "")),
        )


def load_report(path: str | Path) -> Report:
    """Read a report.json; any problem is a :class:`ReportError` with a one-line message."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"cannot read report {file}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{file} is not a JSON report: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ReportError(f"{file} is not an {REPORT_FORMAT} report (format: {found!r})")
    try:
        return Report.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"{file} has a malformed result: {exc}") from None


# --------------------------------------------------------------------------------------------
# Writing


def write_reports(report: Report, directory: str | Path) -> dict[str, Path]:
    """Write report.json, report.md and junit.xml into ``directory`` (created if needed)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "report.json",
        "markdown": out / "report.md",
        "junit": out / "junit.xml",
    }
    paths["json"].write_text(
        json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    paths["markdown"].write_text(render_markdown(report), encoding="utf-8")
    junit = ET.ElementTree(render_junit(report))
    ET.indent(junit)
    junit.write(paths["junit"], encoding="utf-8", xml_declaration=True)
    return paths


def _md_cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text}\n{fence}"


def _details(r: Result) -> list[str]:
    lines = []
    if r.expected is not None:
        lines.append(f"- expected: {_md_cell(r.expected)}")
    if r.actual is not None:
        actual = r.actual
        lines.append(
            "- actual:\n\n" + _indent_md(_fence(actual))
            if "\n" in actual
            else f"- actual: {_md_cell(actual)}"
        )
    if not lines and r.message:
        lines.append("- message:\n\n" + _indent_md(_fence(r.message)))
    if r.curl:
        lines.append("- reproduce:\n\n" + _indent_md(_fence(r.curl)))
    return lines


def _indent_md(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


def _title(r: Result) -> str:
    level = f" {r.level}" if r.level else ""
    req = f"`{r.requirement}`{level}" if r.requirement else "(no requirement)"
    statement = f": {r.statement}" if r.statement else ""
    return f"{req}{statement} — {r.verdict.label} (`{r.nodeid}`)"


def render_markdown(report: Report) -> str:
    """report.md: summary per area, failures first, then warnings, skips, stale expectations."""
    t = report.target
    out = ["# Ollama conformance report", ""]
    out.append(f"- target: {t.get('url', '?')}")
    claimed = t.get("claimed_version")
    out.append(
        f"- version: judged as {t.get('effective_version', '?')}"
        + (f" (claims {claimed})" if claimed and claimed != t.get("effective_version") else "")
    )
    for note in t.get("notes") or []:
        out.append(f"- note: {note}")
    chosen = {k: v for k, v in (t.get("chosen_models") or {}).items() if v}
    if chosen:
        out.append("- models: " + ", ".join(f"{k} → `{v}`" for k, v in chosen.items()))
    run = report.run
    started, finished = run.get("started_at", "?"), run.get("finished_at", "?")
    out.append(f"- run: {run.get('id', '?')} ({started} → {finished})")
    out.append(f"- suite: ollama-conformance {report.suite_version}")
    out.append(f"- result: **{'FAILED' if report.failed else 'PASSED'}**")
    out += ["", "## Summary", ""]
    header = ["area", *(v.label for v in VERDICT_ORDER)]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    for area, counts in report.by_area().items():
        out.append("| " + " | ".join([area, *(str(counts[v.value]) for v in VERDICT_ORDER)]) + " |")
    totals = report.totals()
    out.append(
        "| **total** | " + " | ".join(f"**{totals[v.value]}**" for v in VERDICT_ORDER) + " |"
    )

    out += ["", "## MUST failures", ""]
    failures = report.must_failures()
    if not failures:
        out.append("None: every MUST requirement that was judged holds.")
    for r in failures:
        out += [f"### {_title(r)}", "", *_details(r), ""]

    sections: list[tuple[str, Sequence[Result]]] = [
        ("Warnings (SHOULD / MAY not met)", report.of(Verdict.WARN)),
        ("Not implemented", report.of(Verdict.NOT_IMPLEMENTED)),
        ("Timeouts", report.of(Verdict.TIMEOUT)),
    ]
    for heading, results in sections:
        shown = [r for r in results if r.deviation is None]
        if not shown:
            continue
        out += ["", f"## {heading}", ""]
        for r in shown:
            out += [f"### {_title(r)}", "", *_details(r), ""]

    deviations = [r for r in report.results if r.deviation is not None]
    if deviations:
        out += ["", "## Expected deviations", "", "| requirement | test | verdict | reason |"]
        out.append("|---|---|---|---|")
        for r in deviations:
            out.append(
                f"| {_md_cell(r.requirement)} | `{_md_cell(r.nodeid)}` | {r.verdict.label} "
                f"| {_md_cell(r.deviation)} |"
            )

    skips = [r for r in report.results if r.verdict is Verdict.SKIP and r.deviation is None]
    if skips:
        out += ["", "## Skipped", "", "| requirement | test | reason |", "|---|---|---|"]
        for r in skips:
            out.append(
                f"| {_md_cell(r.requirement)} | `{_md_cell(r.nodeid)}` | {_md_cell(r.message)} |"
            )

    if report.stale or report.unused_expectations:
        out += ["", "## Stale expectations", ""]
        for s in report.stale:
            out.append(
                f"- `{s.key}` expected {s.outcome} ({s.reason}) but now passes: remove the entry"
            )
        for key in report.unused_expectations:
            out.append(f"- `{key}` matched no test that ran")
    return "\n".join(out).rstrip() + "\n"


Markup = dict[str, bool]


def summary_lines(report: Report) -> list[tuple[str, Markup]]:
    """The terminal summary: per-area counts, MUST failures first, then the rest, one line each.

    Returned as (text, terminal markup) pairs so the plugin only has to print them.
    """
    lines: list[tuple[str, Markup]] = []
    t = report.target
    claims, version = t.get("claimed_version"), t.get("effective_version")
    if version:
        suffix = f" (claims {claims})" if claims and claims != version else ""
        lines.append((f"target {t.get('url')}: judged as Ollama {version}{suffix}", {}))
    lines += [(f"note: {note}", {}) for note in t.get("notes") or []]
    areas = report.by_area()
    width = max(8, *(len(a) for a in areas)) if areas else 8
    header = f"{'area':<{width}}  " + "  ".join(v.label for v in VERDICT_ORDER)
    lines.append((header, {"bold": True}))
    for area, counts in areas.items():
        cells = "  ".join(f"{counts[v.value]:>{len(v.label)}}" for v in VERDICT_ORDER)
        lines.append((f"{area:<{width}}  {cells}", {}))

    def listing(title: str, results: Sequence[Result], **markup: bool) -> None:
        shown = [r for r in results if r.deviation is None]
        if not shown:
            return
        lines.append(("", {}))
        lines.append((title, {"bold": True, **markup}))
        for r in shown:
            what = r.statement or (r.message.splitlines()[0] if r.message else r.nodeid)
            req = f"{r.requirement} ({r.level})" if r.requirement else r.nodeid
            lines.append((f"  {r.verdict.label:<15} {req}: {what}", {}))
            if r.actual and r.verdict is not Verdict.SKIP:
                lines.append((f"  {'':<15} actual: {r.actual.splitlines()[0]}", {}))

    listing("Failures (MUST requirements first):", report.must_failures(), red=True)
    listing("Warnings (SHOULD / MAY not met):", report.of(Verdict.WARN), yellow=True)
    listing(
        "Not implemented / timed out (not failing):",
        report.of(Verdict.NOT_IMPLEMENTED, Verdict.TIMEOUT),
        yellow=True,
    )
    deviations = [r for r in report.results if r.deviation is not None]
    if deviations:
        lines.append(("", {}))
        lines.append((f"Expected deviations ({len(deviations)}, from --expect):", {"bold": True}))
        for r in deviations:
            key = r.requirement or r.nodeid
            lines.append((f"  {r.verdict.label:<15} {key}: {r.deviation}", {}))
    for s in report.stale:
        text = f"stale expectation: {s.key!r} expected {s.outcome} but now passes; remove it"
        lines.append((text, {"yellow": True}))
    for key in report.unused_expectations:
        lines.append((f"unused expectation: {key!r} matched no test that ran", {"yellow": True}))
    return lines


def render_junit(report: Report) -> ET.Element:
    """JUnit XML; each testcase carries ``requirement``, ``level`` and ``verdict`` properties."""
    totals = Counter(r.verdict for r in report.results)
    failures = sum(1 for r in report.results if r.fails_run and r.verdict is not Verdict.ERROR)
    errors = sum(1 for r in report.results if r.fails_run and r.verdict is Verdict.ERROR)
    skipped = sum(
        1
        for r in report.results
        if not r.fails_run and (r.verdict not in (Verdict.PASS, Verdict.WARN))
    )
    suite = ET.Element(
        "testsuite",
        {
            "name": "ollama-conformance",
            "tests": str(len(report.results)),
            "failures": str(failures),
            "errors": str(errors),
            "skipped": str(skipped),
            "time": f"{sum(r.duration for r in report.results):.3f}",
            "timestamp": str(report.run.get("started_at", "")),
            "hostname": str(report.target.get("url", "")),
        },
    )
    props = ET.SubElement(suite, "properties")
    for name, value in (
        ("target", report.target.get("url")),
        ("claimed_version", report.target.get("claimed_version")),
        ("effective_version", report.target.get("effective_version")),
        ("run_id", report.run.get("id")),
        ("warnings", totals.get(Verdict.WARN, 0)),
    ):
        ET.SubElement(
            props, "property", {"name": name, "value": "" if value is None else str(value)}
        )
    for r in report.results:
        module, _, name = r.nodeid.rpartition("::")
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": module.replace("/", ".").removesuffix(".py"),
                "name": name or r.nodeid,
                "time": f"{r.duration:.3f}",
            },
        )
        cprops = ET.SubElement(case, "properties")
        for pname, pvalue in (
            ("requirement", r.requirement),
            ("level", r.level),
            ("verdict", r.verdict.value),
            ("area", r.area),
            ("deviation", r.deviation),
        ):
            if pvalue is not None:
                ET.SubElement(cprops, "property", {"name": pname, "value": str(pvalue)})
        text = r.message
        first = text.splitlines()[0] if text else r.verdict.label
        if r.fails_run:
            tag = "error" if r.verdict is Verdict.ERROR else "failure"
            el = ET.SubElement(case, tag, {"message": first, "type": r.verdict.value})
            el.text = text
        elif r.verdict not in (Verdict.PASS, Verdict.WARN):
            reason = f"expected deviation: {r.deviation}" if r.deviation else first
            ET.SubElement(case, "skipped", {"message": f"{r.verdict.label}: {reason}"})
        elif r.verdict is Verdict.WARN:
            ET.SubElement(case, "system-out").text = text
    return suite


# --------------------------------------------------------------------------------------------
# Diff


@dataclass(frozen=True)
class Change:
    """One requirement whose (worst) verdict differs between two reports."""

    key: str
    before: Verdict
    after: Verdict
    level: str | None = None

    @property
    def regression(self) -> bool:
        """A requirement that held and now does not."""
        return self.before is Verdict.PASS and self.after in REGRESSED

    @property
    def fixed(self) -> bool:
        """A requirement that did not hold and now does."""
        return self.after is Verdict.PASS and self.before in (*REGRESSED, Verdict.WARN)


@dataclass
class ReportDiff:
    """What changed between two runs (typically one Ollama version and the next)."""

    before: dict[str, Any]
    after: dict[str, Any]
    changes: list[Change] = field(default_factory=list)
    added: dict[str, Verdict] = field(default_factory=dict)
    removed: dict[str, Verdict] = field(default_factory=dict)

    @property
    def regressions(self) -> list[Change]:
        """Changes from PASS to FAIL, TIMEOUT or NOT IMPLEMENTED."""
        return [c for c in self.changes if c.regression]

    @property
    def version_changed(self) -> bool:
        """Whether the two targets claim different versions."""
        return self.before.get("effective_version") != self.after.get("effective_version")

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``diff --format json``."""
        return {
            "before": self.before,
            "after": self.after,
            "version_changed": self.version_changed,
            "regressions": [c.key for c in self.regressions],
            "changes": [
                {
                    "requirement": c.key,
                    "level": c.level,
                    "before": c.before.value,
                    "after": c.after.value,
                    "regression": c.regression,
                    "fixed": c.fixed,
                }
                for c in self.changes
            ],
            "added": {k: v.value for k, v in self.added.items()},
            "removed": {k: v.value for k, v in self.removed.items()},
        }


def _per_requirement(results: Iterable[Result]) -> dict[str, tuple[Verdict, str | None]]:
    """The worst verdict per requirement (or per test, for tests without one)."""
    worst: dict[str, tuple[Verdict, str | None]] = {}
    for r in results:
        current = worst.get(r.key)
        if current is None or r.verdict.severity > current[0].severity:
            worst[r.key] = (r.verdict, r.level)
    return worst


def _side(report: Report) -> dict[str, Any]:
    t = report.target
    return {
        "url": t.get("url"),
        "claimed_version": t.get("claimed_version"),
        "effective_version": t.get("effective_version"),
        "run_id": report.run.get("id"),
        "suite_version": report.suite_version,
    }


def diff_reports(a: Report | str | Path, b: Report | str | Path) -> ReportDiff:
    """Compare two runs requirement by requirement (``a`` before, ``b`` after)."""
    before = a if isinstance(a, Report) else load_report(a)
    after = b if isinstance(b, Report) else load_report(b)
    old, new = _per_requirement(before.results), _per_requirement(after.results)
    diff = ReportDiff(_side(before), _side(after))
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            diff.removed[key] = old[key][0]
        elif key not in old:
            diff.added[key] = new[key][0]
        elif old[key][0] is not new[key][0]:
            diff.changes.append(Change(key, old[key][0], new[key][0], new[key][1] or old[key][1]))
    diff.changes.sort(key=lambda c: (not c.regression, not c.fixed, c.key))
    return diff


def format_diff(diff: ReportDiff, fmt: str = "text") -> str:
    """Render a diff as ``text``, ``md`` or ``json``."""
    if fmt == "json":
        return json.dumps(diff.to_dict(), indent=2)
    md = fmt == "md"
    b, a = diff.before, diff.after
    lines = ["# Conformance diff", ""] if md else []
    version = (
        f"{b.get('effective_version')} → {a.get('effective_version')}"
        if diff.version_changed
        else f"{a.get('effective_version')} (unchanged)"
    )
    lines.append(f"{'- ' if md else ''}version: {version}")
    lines.append(f"{'- ' if md else ''}targets: {b.get('url')} → {a.get('url')}")
    regressions = diff.regressions
    lines.append(
        f"{'- ' if md else ''}{len(regressions)} regression(s), {len(diff.changes)} change(s), "
        f"{len(diff.added)} new, {len(diff.removed)} removed"
    )

    def section(title: str, rows: list[str]) -> None:
        if not rows:
            return
        lines.append("")
        lines.append(f"## {title}" if md else f"{title}:")
        lines.extend(("- " if md else "  ") + row for row in rows)

    def fmt_key(key: str) -> str:
        return f"`{key}`" if md else key

    section(
        "Regressions",
        [
            fmt_key(c.key)
            + (f" ({c.level})" if c.level else "")
            + f": {c.before.label} → {c.after.label}"
            for c in regressions
        ],
    )
    section(
        "Other changes",
        [
            f"{fmt_key(c.key)}: {c.before.label} → {c.after.label}"
            + (" (fixed)" if c.fixed else "")
            for c in diff.changes
            if not c.regression
        ],
    )
    section("New", [f"{fmt_key(k)}: {v.label}" for k, v in diff.added.items()])
    section("Removed", [f"{fmt_key(k)} (was {v.label})" for k, v in diff.removed.items()])
    return "\n".join(lines) + "\n"
