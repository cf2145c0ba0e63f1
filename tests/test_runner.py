"""``ollama-conformance run``: early refusals, ``--list``, exit codes, and whole runs.

The whole runs execute the real suite in-process against a scripted fake Ollama on 127.0.0.1
(``--area root`` / ``version`` keep them short), once well-behaved and once broken.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fakeserver import Conn, Request, ScriptedServer

from conformance.cli import main
from conformance.client import Client
from conformance.plugin import CATALOGUE_ENV
from conformance.report import Result
from conformance.runner import _Outcome, exit_code
from conformance.verdict import Verdict

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parents[1]

# See tests/test_plugin.py: import httpcore outside any nested pytest run.
Client("http://127.0.0.1:9").close()


class FakeOllama:
    """GET/HEAD / and /api/version as Ollama answers them; ``root_body`` breaks GET /."""

    def __init__(self, root_body: bytes = b"Ollama is running") -> None:
        self.root_body = root_body

    async def __call__(self, request: Request, conn: Conn) -> None:
        head = request.method == "HEAD"
        if request.path == "/":
            body = self.root_body
            ctype = "text/plain; charset=utf-8"
        elif request.path == "/api/version":
            body, ctype = b'{"version":"0.12.11"}', "application/json; charset=utf-8"
        elif request.path == "/api/tags":
            body, ctype = b'{"models":[]}', "application/json; charset=utf-8"
        else:
            body, ctype = b"404 page not found", "text/plain"
        status = 404 if body == b"404 page not found" else 200
        head_line = (
            f"HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        await conn.send(head_line.encode() + (b"" if head else body))


@pytest.fixture
def good_server() -> Iterator[str]:
    with ScriptedServer(FakeOllama()) as server:
        yield server.url


def test_unreachable_target_exits_2_fast_with_one_line() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "conformance", "run", "--target", "http://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
        env=env,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 2
    assert elapsed < 5
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "http://127.0.0.1:1 is unreachable" in lines[0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "127.0.0.1:11434"], "is not an http(s) URL"),
        (["--api-version", "newest"], "is not an Ollama version"),
        (["--timeout", "-1"], "--timeout must be a positive number"),
        (["--area", "no-such-area"], "unknown area 'no-such-area'; known areas:"),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_malformed_expectations_exit_2(
    tmp_path: Path, good_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "expect.toml"
    bad.write_text('["root.get.body"]\noutcome = "SOMETIMES"\nreason = "x"\n')
    assert main(["run", "--target", good_server, "--expect", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has outcome 'SOMETIMES'" in err[0]


def test_list_prints_requirements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    catalogue = tmp_path / "requirements.toml"
    catalogue.write_text(
        """
[[requirement]]
id = "root.get.status"
area = "root"
endpoint = "GET /"
level = "MUST"
statement = "GET / answers 200."
source = "test"

[[requirement]]
id = "version.get.format"
area = "version"
endpoint = "GET /api/version"
level = "SHOULD"
since = "0.1.14"
statement = "version is a release string."
source = "test"
"""
    )
    monkeypatch.setenv(CATALOGUE_ENV, str(catalogue))
    assert main(["run", "--list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert out[0].split()[:3] == ["root.get.status", "MUST", "all"]
    assert "since 0.1.14" in out[1] and "version is a release string." in out[1]
    assert main(["run", "--list", "--area", "version"]) == 0
    assert capsys.readouterr().out.split()[0] == "version.get.format"


def test_full_run_passes_and_writes_reports(
    tmp_path: Path, good_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = tmp_path / "reports"
    code = main(
        [
            *("run", "--target", good_server, "--report-dir", str(reports)),
            *("--area", "root", "--area", "version", "--run-id", "runner-test"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "ollama-conformance summary" in out
    data = json.loads((reports / "report.json").read_text())
    assert data["run"]["id"] == "runner-test"
    assert data["target"]["claimed_version"] == "0.12.11"
    assert {r["requirement"] for r in data["results"]} >= {"root.get.body", "version.get.format"}
    assert data["totals"]["FAIL"] == 0
    assert (reports / "junit.xml").is_file() and (reports / "report.md").is_file()


def test_broken_server_fails_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reports = tmp_path / "reports"
    with ScriptedServer(FakeOllama(root_body=b"Llama is running")) as server:
        code = main(["run", "--target", server.url, "--report-dir", str(reports), "--area", "root"])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "root.get.body (MUST)" in out
    md = (reports / "report.md").read_text()
    assert "## MUST failures" in md and "Llama is running" in md


def test_no_target_runs_against_the_reference_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("conformance.reference.server")
    code = main(["run", "--report-dir", str(tmp_path), "--area", "root", "--area", "version"])
    out = capsys.readouterr().out
    assert code == 0, out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["target"]["reference_server"] is True
    assert report["target"]["url"].startswith("http://127.0.0.1:")


def outcome_with(*results: Result, collection_errors: int = 0) -> _Outcome:
    outcome = _Outcome()
    outcome.state = SimpleNamespace(results={r.nodeid: r for r in results})
    outcome.collection_errors = collection_errors
    return outcome


@pytest.mark.parametrize(
    ("pytest_code", "results", "collection_errors", "expected"),
    [
        (0, [], 0, 0),
        (1, [Result("a", Verdict.FAIL, fails_run=True)], 0, 1),
        (1, [Result("a", Verdict.ERROR, fails_run=True)], 0, 3),
        (
            1,
            [Result("a", Verdict.ERROR, fails_run=True), Result("b", Verdict.FAIL, fails_run=True)],
            0,
            1,
        ),
        (2, [], 0, 2),  # interrupted, or the plugin's exit for an unreachable target
        (2, [], 1, 3),  # a collection error is ours
        (3, [], 0, 3),
        (4, [], 0, 2),
        (5, [], 0, 2),
    ],
)
def test_exit_code_mapping(
    pytest_code: int, results: list[Result], collection_errors: int, expected: int
) -> None:
    assert exit_code(pytest_code, outcome_with(*results, collection_errors=collection_errors)) == (
        expected
    )
