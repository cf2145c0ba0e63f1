"""The pytest plugin's grading, options, fixtures and clean-up, run through ``pytester``.

Each test writes a tiny conformance test file, points it with ``--target`` at a scripted fake
Ollama on 127.0.0.1, and reads the verdicts from the exit code, the terminal and report.json.
The requirement ids come from a small catalogue written per test and selected with
``$OLLAMA_CONFORMANCE_CATALOGUE``, so these tests do not depend on the real catalogue's content.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakeserver import Conn, Request, ScriptedServer

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.plugin import CATALOGUE_ENV
from conformance.runner import plugin_args
from conformance.target import Overrides, Target, discover, infer_capabilities, judge_version
from conformance.verdict import (
    NotImplementedOutcome,
    RequirementFailure,
    RequirementRef,
    TimeoutOutcome,
    Verdict,
    check,
    expect_json_object,
    expect_status,
    grade,
    requirement_context,
)
from conformance.versions import NEWEST_KNOWN

pytest_plugins = ("pytester",)
pytestmark = pytest.mark.timeout(30)

# httpx imports httpcore on first use and caches its exception classes; pytester's in-process runs
# drop modules first imported inside them, so a later re-import would create exception classes
# httpx no longer recognises. Importing it here, outside any inner run, keeps one copy.
Client("http://127.0.0.1:9").close()


def requirement(req_id: str, level: str, statement: str, **extra: Any) -> str:
    """One catalogue entry in the real file's format."""
    lines = [
        "[[requirement]]",
        f'id = "{req_id}"',
        'area = "root"',
        'endpoint = "GET /"',
        f'level = "{level}"',
        f'statement = "{statement}"',
        'source = "tests/test_plugin.py"',
    ]
    for key, value in extra.items():
        lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


CATALOGUE = "\n".join(
    [
        requirement("root.plugin-test.must", "MUST", "GET / answers with the magic word."),
        requirement("root.plugin-test.should", "SHOULD", "GET / should answer quickly."),
        requirement("root.plugin-test.may", "MAY", "GET / may mention llamas."),
        requirement("root.plugin-test.future", "MUST", "Only from 0.99.", since="0.99.0"),
        requirement("root.plugin-test.tools", "MUST", "Needs tools.", needs=["tools"]),
    ]
)


@pytest.fixture(autouse=True)
def catalogue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away catalogue for the tests in this module."""
    path = tmp_path / "requirements.toml"
    path.write_text(CATALOGUE, encoding="utf-8")
    monkeypatch.setenv(CATALOGUE_ENV, str(path))
    return path


Route = Callable[[Request, Conn], Awaitable[None]]


class FakeOllama:
    """Just enough of Ollama for discovery, plus per-test routes and a model store."""

    def __init__(self, version: object = "0.12.11", routes: dict[str, Route] | None = None):
        self.version = version
        self.routes = routes or {}
        self.models: list[dict[str, Any]] = []
        self.deleted: list[str] = []

    async def __call__(self, request: Request, conn: Conn) -> None:
        path = request.path
        if path in self.routes:
            await self.routes[path](request, conn)
        elif path == "/api/version":
            await conn.json({"version": self.version})
        elif path == "/api/tags":
            await conn.json({"models": self.models})
        elif path == "/api/show":
            await conn.json({"capabilities": ["completion"]})
        elif path == "/api/create":
            self.models.append({"name": request.json()["model"] + ":latest", "size": 1})
            await conn.json({"status": "success"})
        elif path == "/api/delete":
            name = request.json()["model"]
            self.deleted.append(name)
            self.models = [m for m in self.models if m["name"] != name]
            await conn.respond(200, b"", content_type=None)
        elif path == "/":
            await conn.respond(200, b"Ollama is running", content_type="text/plain")
        else:
            await conn.respond(404, b"404 page not found", content_type="text/plain")


@pytest.fixture
def fake() -> Iterator[tuple[FakeOllama, str]]:
    """A running FakeOllama and its URL."""
    app = FakeOllama()
    with ScriptedServer(app) as server:
        yield app, server.url


def run(pytester: pytest.Pytester, url: str, *args: str) -> pytest.RunResult:
    """Run the test files written into ``pytester`` against ``url``."""
    return pytester.runpytest(*plugin_args(), "-p", "no:cacheprovider", "--target", url, *args)


def results(report_dir: Path) -> dict[str, dict[str, Any]]:
    """report.json's results by test name."""
    data = json.loads((report_dir / "report.json").read_text())
    return {r["nodeid"].rsplit("::", 1)[-1]: r for r in data["results"]}


TESTS = """
import pytest
from conformance.verdict import check, expect_status


def failing(client):
    exchange = client.get("/")
    check(
        exchange.body == b"magic",
        expected="body 'magic'",
        actual=f"body {exchange.body!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("root.plugin-test.must")
def test_must(client):
    failing(client)


@pytest.mark.requirement("root.plugin-test.should")
def test_should(client):
    failing(client)


@pytest.mark.requirement("root.plugin-test.may")
def test_may(client):
    failing(client)


@pytest.mark.requirement("root.plugin-test.future")
def test_future(client):
    raise AssertionError("must not run")


@pytest.mark.requirement("root.plugin-test.tools")
def test_tools(client, model_for):
    raise AssertionError("must not run")


@pytest.mark.requirement("root.plugin-test.must")
def test_passes(client):
    expect_status(client.get("/"), 200)
"""


# --------------------------------------------------------------------------------------------
# Grading


def test_grading_of_levels_versions_and_needs(
    pytester: pytest.Pytester, fake: tuple[FakeOllama, str]
) -> None:
    pytester.makepyfile(test_graded=TESTS)
    result = run(pytester, fake[1], "--report-dir", "out", "-rs")
    assert result.ret == 1  # the MUST failure fails the run
    out = result.stdout.str()
    # The failure message: requirement, statement, expected, actual, curl.
    assert "[root.plugin-test.must] MUST: GET / answers with the magic word." in out
    assert "expected: body 'magic'" in out
    assert "actual: body b'Ollama is running'" in out
    assert "reproduce: curl http://127.0.0.1:" in out
    # Skip reasons name the version range and the option to pass.
    assert "0.99.0" in out
    assert "no model with capability 'tools' on the target; pass --tools-model" in out
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1
    assert outcomes["warned"] == 2
    assert outcomes["skipped"] == 2
    assert outcomes["passed"] == 1
    verdicts = {name: r["verdict"] for name, r in results(pytester.path / "out").items()}
    assert verdicts == {
        "test_must": "FAIL",
        "test_should": "WARN",
        "test_may": "WARN",
        "test_future": "SKIP",
        "test_tools": "SKIP",
        "test_passes": "PASS",
    }
    # The summary lists the MUST failure first, with its statement, then the warnings.
    summary = out[out.index("ollama-conformance summary") :]
    assert summary.index("root.plugin-test.must (MUST)") < summary.index("Warnings")
    assert "root.plugin-test.should (SHOULD)" in summary


def test_should_failure_alone_exits_0(
    pytester: pytest.Pytester, fake: tuple[FakeOllama, str]
) -> None:
    pytester.makepyfile(test_graded=TESTS)
    result = run(pytester, fake[1], "-k", "should or may")
    assert result.ret == 0
    assert result.parseoutcomes()["warned"] == 2


def test_unknown_requirement_is_an_error(
    pytester: pytest.Pytester, fake: tuple[FakeOllama, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requirement("root.no-such-requirement")
        def test_x(client):
            pass
        """
    )
    result = run(pytester, fake[1])
    assert result.ret == 1
    assert result.parseoutcomes()["errors"] == 1
    result.stdout.fnmatch_lines(["*unknown requirement 'root.no-such-requirement'*"])


def test_missing_endpoint_is_not_implemented(
    pytester: pytest.Pytester, fake: tuple[FakeOllama, str]
) -> None:
    pytester.makepyfile(
        """
        import pytest
        from conformance.verdict import expect_status

        @pytest.mark.requirement("root.plugin-test.must")
        def test_must(client):
            expect_status(client.get("/api/conformance-missing"), 200)

        @pytest.mark.requirement("root.plugin-test.should")
        def test_should(client):
            expect_status(client.get("/api/conformance-missing"), 200)
        """
    )
    result = run(pytester, fake[1], "--report-dir", "out")
    assert result.ret == 1  # a MUST that is not implemented does not hold
    assert result.parseoutcomes()["not_implemented"] == 1
    found = results(pytester.path / "out")
    assert found["test_must"]["verdict"] == found["test_should"]["verdict"] == "NOT_IMPLEMENTED"
    assert found["test_must"]["fails_run"] and not found["test_should"]["fails_run"]
    assert "404 page not found" in found["test_must"]["actual"]


def test_server_that_never_answers_is_timeout(pytester: pytest.Pytester) -> None:
    async def hang(request: Request, conn: Conn) -> None:
        await conn.hang()

    app = FakeOllama(routes={"/api/slow": hang})
    pytester.makepyfile(
        """
        import pytest
        from conformance.verdict import expect_status

        @pytest.mark.requirement("root.plugin-test.should")
        def test_slow(client):
            expect_status(client.get("/api/slow"), 200)
        """
    )
    with ScriptedServer(app) as server:
        result = run(
            pytester,
            server.url,
            "--read-timeout",
            "0.3",
            "--total-timeout",
            "1",
            "--report-dir",
            "o",
        )
    assert result.ret == 0  # a SHOULD that timed out is reported, not failed
    assert result.parseoutcomes()["timeout"] == 1
    assert results(pytester.path / "o")["test_slow"]["verdict"] == "TIMEOUT"


def test_unreachable_target_exits_2(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_graded=TESTS)
    result = run(pytester, "http://127.0.0.1:1")
    assert result.ret == 2
    result.stdout.fnmatch_lines(["*target http://127.0.0.1:1 is unreachable*"])


# --------------------------------------------------------------------------------------------
# Expectations


def test_expected_deviation_and_stale_entry(
    pytester: pytest.Pytester, fake: tuple[FakeOllama, str]
) -> None:
    pytester.makepyfile(test_graded=TESTS)
    pytester.path.joinpath("expect.yaml").write_text(
        textwrap.dedent(
            """
            root.plugin-test.must:
              outcome: FAIL
              reason: our server says something else on purpose
            test_graded.py::test_passes:
              outcome: FAIL
              reason: was broken once
            """
        )
    )
    result = run(pytester, fake[1], "--expect", "expect.yaml", "-k", "test_must or test_passes")
    out = result.stdout.str()
    # test_passes has its own (test id) entry, which wins over the requirement entry: stale.
    assert result.ret == 0, out
    assert result.parseoutcomes()["deviation"] == 1
    assert "our server says something else on purpose" in out
    assert "stale expectation: 'test_graded.py::test_passes'" in out


def test_malformed_expectations_file_is_a_usage_error(
    pytester: pytest.Pytester, fake: tuple[FakeOllama, str]
) -> None:
    pytester.makepyfile(test_graded=TESTS)
    pytester.path.joinpath("expect.yaml").write_text("root.plugin-test.must: [unclosed\n")
    result = run(pytester, fake[1], "--expect", "expect.yaml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if "expect.yaml" in line]
    assert len(errors) == 1 and "not valid YAML" in errors[0]


# --------------------------------------------------------------------------------------------
# Options, inertness, fixtures


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--target", "localhost:11434"), "is not an http(s) URL; pass e.g. --target http://"),
        (("--api-version", "latest"), "is not an Ollama version; pass e.g. --api-version"),
        (("--read-timeout", "0"), "--read-timeout must be a positive number"),
        (("--run-id", "Has Spaces"), "--run-id 'Has Spaces' cannot be part of a model name"),
    ],
)
def test_bad_options_are_one_line_usage_errors(
    pytester: pytest.Pytester, args: tuple[str, ...], message: str
) -> None:
    pytester.makepyfile("def test_x(): pass")
    result = pytester.runpytest(*plugin_args(), *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if message in line]


def test_plugin_is_inert_without_target_or_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.requirement("root.plugin-test.must")
        def test_plain():
            assert True

        def test_wants_client(client):
            pass
        """
    )
    result = pytester.runpytest(*plugin_args(), "-p", "no:cacheprovider")
    out = result.stdout.str()
    assert "fixture 'client' not found" in out  # no fixtures leak into unrelated sessions
    assert "ollama-conformance summary" not in out
    outcomes = result.parseoutcomes()
    assert (outcomes["passed"], outcomes["errors"]) == (1, 1)


def test_help_lists_options_with_metavars_and_defaults(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(*plugin_args(), "-p", "no:cacheprovider", "--help")
    out = result.stdout.str()
    assert "Ollama API conformance suite:" in out
    for text in ("--target=URL", "--tools-model=NAME", "--expect=FILE", "--read-timeout=SECONDS"):
        assert text in out
    assert "(default: start the embedded reference server" in " ".join(out.split())


def test_scratch_names_are_cleaned_up_and_nothing_else(
    pytester: pytest.Pytester, fake: tuple[FakeOllama, str]
) -> None:
    app, url = fake
    app.models = [
        {"name": "conformance-t1-99:latest", "size": 1},  # same prefix, but there before the run
        {"name": "llama3.2:latest", "size": 5},
    ]
    pytester.makepyfile(
        """
        def test_creates(client, scratch_name, run_prefix):
            assert isinstance(scratch_name, str) and scratch_name.startswith(run_prefix + "-")
            other = scratch_name()
            assert other != scratch_name
            for name in (scratch_name, other):
                assert client.post("/api/create", json={"model": name}).status == 200

        def test_model_for(model_for):
            assert model_for("completion") == "llama3.2:latest"
        """
    )
    result = run(pytester, url, "--run-id", "t1")
    assert result.ret == 0, result.stdout.str()
    assert sorted(app.deleted) == ["conformance-t1-1:latest", "conformance-t1-2:latest"]
    assert [m["name"] for m in app.models] == ["conformance-t1-99:latest", "llama3.2:latest"]


# --------------------------------------------------------------------------------------------
# Helpers used by tests (no pytest session needed)


def exchange(status: int | None, body: bytes = b"", **fields: Any) -> Exchange:
    import httpx

    headers = httpx.Headers(fields.pop("headers", {}))
    return Exchange(
        "GET", "http://127.0.0.1:9/api/x", "/api/x", status=status, body=body, headers=headers,
        **fields,
    )  # fmt: skip


def test_check_message_has_requirement_expected_actual_and_curl() -> None:
    ref = RequirementRef("root.get.body", "MUST", "GET / says it runs.")
    with requirement_context(ref), pytest.raises(RequirementFailure) as info:
        check(False, expected="a", actual="b", exchange=exchange(200))
    text = str(info.value)
    assert text.splitlines()[0] == "[root.get.body] MUST: GET / says it runs."
    assert "  expected: a" in text and "  actual: b" in text
    assert "  reproduce: curl http://127.0.0.1:9/api/x" in text
    assert info.value.requirement_id == "root.get.body"


def test_garbage_body_is_a_clear_failure_not_a_traceback() -> None:
    with pytest.raises(RequirementFailure) as info:
        expect_json_object(exchange(200, b"\x00\xffgarbage"))
    assert "expected: a JSON object body" in str(info.value)
    assert "garbage" in info.value.actual  # names the first bytes


def test_not_implemented_only_for_plain_404_or_501() -> None:
    with pytest.raises(NotImplementedOutcome):
        expect_status(exchange(404, b"404 page not found"), 200)
    with pytest.raises(NotImplementedOutcome):
        expect_status(exchange(501), 200)
    with pytest.raises(RequirementFailure):  # Ollama's JSON 404 is an answer, not a missing route
        expect_status(exchange(404, b'{"error":"model \'x\' not found"}'), 200)


def test_transport_error_and_time_bound_are_timeouts() -> None:
    with pytest.raises(TimeoutOutcome) as info:
        expect_status(exchange(None, error="connection refused: http://127.0.0.1:9"), 200)
    assert info.value.verdict is Verdict.TIMEOUT
    with pytest.raises(TimeoutOutcome):
        expect_status(exchange(200, bound="max_gap", bound_detail="no line for 1 s"), 200)
    with pytest.raises(RequirementFailure):  # a size bound is the server's fault
        expect_status(exchange(200, bound="max_line_bytes"), 200)


def _outcome(verdict: Verdict) -> TimeoutOutcome | NotImplementedOutcome:
    kind = TimeoutOutcome if verdict is Verdict.TIMEOUT else NotImplementedOutcome
    return kind(expected="e", actual="a")


@pytest.mark.parametrize(
    ("exc", "outcome", "when", "level", "expected"),
    [
        (None, "passed", "call", "MUST", (Verdict.PASS, False)),
        (
            RequirementFailure(expected="e", actual="a"),
            "failed",
            "call",
            "MUST",
            (Verdict.FAIL, True),
        ),
        (AssertionError("plain assert"), "failed", "call", "SHOULD", (Verdict.WARN, False)),
        (AssertionError("in a fixture"), "failed", "setup", "MUST", (Verdict.ERROR, True)),
        (KeyError("bug in the test"), "failed", "call", "MAY", (Verdict.ERROR, True)),
        (_outcome(Verdict.TIMEOUT), "skipped", "call", "MUST", (Verdict.TIMEOUT, True)),
        (
            _outcome(Verdict.NOT_IMPLEMENTED),
            "skipped",
            "call",
            "MAY",
            (Verdict.NOT_IMPLEMENTED, False),
        ),
        (None, "skipped", "setup", "MUST", (Verdict.SKIP, False)),
        (
            RequirementFailure(expected="e", actual="a"),
            "failed",
            "call",
            None,
            (Verdict.FAIL, True),
        ),
    ],
)
def test_grading_rules(
    exc: BaseException | None, outcome: str, when: str, level: str | None, expected: object
) -> None:
    assert grade(exc, outcome=outcome, when=when, level=level) == expected


# --------------------------------------------------------------------------------------------
# Target discovery


@pytest.mark.parametrize(
    ("claimed", "override", "effective", "noted"),
    [
        ("0.12.11", None, "0.12.11", False),
        ("v0.9.0", None, "0.9.0", False),
        ("0.0.0", None, NEWEST_KNOWN, True),
        (None, None, NEWEST_KNOWN, True),
        ("garbled", "0.6.0", "0.6.0", True),
        ("0.12.11", "0.9.0", "0.9.0", True),
    ],
)
def test_judged_version(claimed: object, override: str | None, effective: str, noted: bool) -> None:
    version, note = judge_version(claimed, override)
    assert version == effective
    assert (note is not None) == noted


def test_capabilities_inferred_for_old_servers() -> None:
    assert infer_capabilities("llama") == {"completion"}
    assert infer_capabilities("nomic-bert") == {"embedding"}
    assert infer_capabilities(None, ["bert"]) == {"embedding"}
    assert infer_capabilities("llama", reported=["completion", "tools"]) == {"completion", "tools"}


def test_discovery_picks_models_never_cloud_and_honours_options() -> None:
    async def show(request: Request, conn: Conn) -> None:
        name = request.json()["model"]
        if name.startswith("old"):
            await conn.json({"details": {"family": "bert"}})  # no capabilities: pre-0.9
        else:
            await conn.json({"capabilities": ["completion", "tools"]})

    app = FakeOllama(version="0.0.0", routes={"/api/show": show})
    app.models = [
        {"name": "big:latest", "size": 900},
        {"name": "small:latest", "size": 10},
        {"name": "gpt-oss:20b-cloud", "size": 1},
        {"name": "old-embed:latest", "size": 5},
    ]
    with ScriptedServer(app) as server, Client(server.url) as client:
        target = discover(server.url, client, Overrides(vision_model="my-vision"))
    assert isinstance(target, Target)
    assert target.claimed_version == "0.0.0" and target.effective_version == NEWEST_KNOWN
    assert target.notes and "development-build" in target.notes[0]
    assert target.model_for("tools") == "small:latest"  # smallest, and not the cloud one
    assert target.model_for("embedding") == "old-embed:latest"
    assert target.model_for("vision") == "my-vision"  # explicit wins even if not listed
    assert target.model_for("thinking") is None
