"""report.json / report.md / junit.xml, and ``diff`` between two runs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.cli import main
from conformance.report import (
    Report,
    Result,
    StaleExpectation,
    diff_reports,
    format_diff,
    load_report,
    write_reports,
)
from conformance.verdict import Verdict

CURL = "curl http://127.0.0.1:9/ -H 'User-Agent: x'"


def result(
    name: str, verdict: Verdict, requirement: str | None, level: str = "MUST", **extra: object
) -> Result:
    return Result(
        nodeid=f"conformance/suite/test_root.py::{name}",
        verdict=verdict,
        requirement=requirement,
        level=level,
        area=requirement.split(".")[0] if requirement else "root",
        statement=f"statement of {requirement}",
        **extra,  # type: ignore[arg-type]
    )


def sample(version: str = "0.12.11", **verdicts: Verdict) -> Report:
    """A report with one result per requirement id given as keyword (dots as underscores)."""
    results = [
        result(f"test_{key}", verdict, key.replace("_", "."), fails_run=verdict is Verdict.FAIL)
        for key, verdict in verdicts.items()
    ]
    return Report(
        results=results,
        target={
            "url": "http://127.0.0.1:9",
            "claimed_version": version,
            "effective_version": version,
        },
        run={"id": "r1", "started_at": "2026-01-01T00:00:00+00:00"},
    )


@pytest.fixture
def full_report() -> Report:
    return Report(
        results=[
            result("test_ok", Verdict.PASS, "root.get.status"),
            result(
                "test_body",
                Verdict.FAIL,
                "root.get.body",
                message="[root.get.body] MUST ...",
                expected="body 'Ollama is running'",
                actual="body 'nope'",
                curl=CURL,
                fails_run=True,
            ),
            result(
                "test_type",
                Verdict.WARN,
                "root.get.content-type",
                "SHOULD",
                expected="Content-Type text/plain",
                actual="Content-Type 'text/html'",
                curl=CURL,
            ),
            result("test_new", Verdict.SKIP, "version.x", message="applies from 0.99.0"),
            result("test_push", Verdict.NOT_IMPLEMENTED, "push.y", "MAY", actual="status 404"),
            result("test_slow", Verdict.TIMEOUT, "chat.z", fails_run=True, actual="max_gap"),
            result("test_dev", Verdict.FAIL, "chat.w", deviation="known proxy issue"),
        ],
        target={
            "url": "http://127.0.0.1:9",
            "claimed_version": "0.0.0",
            "effective_version": "0.32.15",
        },
        run={"id": "r1", "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "x"},
        stale=[StaleExpectation("root.get.status", "FAIL", "was broken", ("t::a",))],
    )


def test_written_files_are_parseable(tmp_path: Path, full_report: Report) -> None:
    paths = write_reports(full_report, tmp_path / "reports")
    data = json.loads(paths["json"].read_text())
    assert data["format"] == "ollama-conformance-report/1"
    assert data["target"]["effective_version"] == "0.32.15"
    assert data["totals"]["FAIL"] == 2 and data["totals"]["PASS"] == 1
    assert data["failed"] is True
    first = data["results"][1]
    assert {"nodeid", "requirement", "level", "verdict", "message", "expected", "actual"} <= set(
        first
    )
    assert {"curl", "duration"} <= set(first)
    assert load_report(paths["json"]).results == full_report.results  # round trip

    suite = ET.parse(paths["junit"]).getroot()
    assert suite.tag == "testsuite" and suite.get("tests") == "7"
    assert suite.get("failures") == "2"  # the MUST FAIL and the MUST TIMEOUT
    cases = suite.findall("testcase")
    assert len(cases) == 7
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["requirement"] and props["verdict"]
    body = next(c for c in cases if c.get("name") == "test_body")
    assert body.find("failure") is not None
    assert next(c for c in cases if c.get("name") == "test_dev").find("skipped") is not None

    md = paths["markdown"].read_text()
    assert "## MUST failures" in md
    must = md.index("## MUST failures")
    assert md.index("`root.get.body` MUST", must) < md.index("## Warnings")
    assert "body 'nope'" in md and CURL in md
    assert "## Skipped" in md and "applies from 0.99.0" in md
    assert "## Expected deviations" in md and "known proxy issue" in md
    assert "## Stale expectations" in md and "now passes" in md
    assert "| root |" in md


def test_must_failures_come_first(full_report: Report) -> None:
    levels = [r.level for r in full_report.must_failures()]
    assert levels == sorted(levels, key=lambda level: level != "MUST")
    assert all(r.fails_run for r in full_report.must_failures())


def test_diff_finds_regressions_changes_and_version(tmp_path: Path) -> None:
    before = sample(
        "0.9.0",
        root_get_status=Verdict.PASS,
        root_get_body=Verdict.FAIL,
        chat_a=Verdict.PASS,
        old_gone=Verdict.PASS,
    )
    after = sample(
        "0.12.11",
        root_get_status=Verdict.FAIL,
        root_get_body=Verdict.PASS,
        chat_a=Verdict.PASS,
        new_one=Verdict.WARN,
    )
    diff = diff_reports(before, after)
    assert [c.key for c in diff.regressions] == ["root.get.status"]
    assert diff.version_changed
    assert diff.added == {"new.one": Verdict.WARN}
    assert diff.removed == {"old.gone": Verdict.PASS}
    fixed = [c for c in diff.changes if c.fixed]
    assert [c.key for c in fixed] == ["root.get.body"]

    text = format_diff(diff, "text")
    assert "version: 0.9.0 → 0.12.11" in text
    assert "root.get.status (MUST): PASS → FAIL" in text
    assert "`root.get.status`" in format_diff(diff, "md")
    assert json.loads(format_diff(diff, "json"))["regressions"] == ["root.get.status"]


def test_diff_worst_verdict_per_requirement() -> None:
    before = sample(root_a=Verdict.PASS)
    after = sample(root_a=Verdict.PASS)
    after.results.append(result("test_more", Verdict.SKIP, "root.a"))
    assert not diff_reports(before, after).changes  # a skip does not hide a pass
    after.results.append(result("test_third", Verdict.FAIL, "root.a"))
    assert [c.after for c in diff_reports(before, after).changes] == [Verdict.FAIL]


def test_diff_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_reports(sample(root_a=Verdict.PASS), tmp_path / "a")["json"]
    b = write_reports(sample(root_a=Verdict.FAIL), tmp_path / "b")["json"]
    assert main(["diff", str(a), str(a)]) == 0
    assert main(["diff", str(a), str(b), "--format", "md"]) == 1
    assert "PASS → FAIL" in capsys.readouterr().out
    assert main(["diff", str(b), str(a)]) == 0  # a fix is not a regression

    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    capsys.readouterr()
    assert main(["diff", str(a), str(garbage)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "garbage.json is not a JSON report" in err[0]
    assert main(["diff", str(a), str(tmp_path / "missing.json")]) == 2
    other = tmp_path / "other.json"
    other.write_text('{"format": "something-else"}')
    assert main(["diff", str(a), str(other)]) == 2
