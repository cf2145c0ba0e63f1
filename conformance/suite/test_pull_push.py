"""``POST /api/pull`` and ``POST /api/push``: moving models between a server and a registry.

Most of what can be judged needs no registry: a name that is not valid is refused before any
network traffic, and pushing a model the server does not have fails while it reads its own
manifest. Those checks always run. They send only invalid names to pull, and push only names that
are not installed (checked first), so nothing ever leaves the machine.

Checks marked ``needs = ["network"]`` in the catalogue make the target talk to the registry and run
only with ``--allow-network``. A pull installs a model under its registry name, outside the run's
scratch prefix, so the ones that download something also need the user to name a small model they
are happy to have pulled, in the environment variable ``OLLAMA_CONFORMANCE_PULL_MODEL`` (for
example ``smollm:135m``); the suite never deletes it, and the safety checks allow for it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.suite import scratch
from conformance.suite.scratch import ABSENT_MODEL, INVALID_NAME, expect_error, normalize_name
from conformance.target import Target
from conformance.verdict import (
    assume,
    assume_status,
    check,
    expect_content_type,
    expect_json_object,
    expect_status,
    expect_valid,
)

#: Well-formed, in a namespace nobody owns: never installed, and pushing it needs no network.
ABSENT_PUSH = "conformance-absent/model:latest"
RETRIEVING = {"status": "retrieving manifest"}
NOT_RETRIEVED = {"status": "couldn't retrieve manifest"}


@pytest.fixture(autouse=True, scope="module")
def _audited(request: pytest.FixtureRequest, client: Client, target: Target) -> scratch.Audit:
    """Take the safety snapshot before this module can change anything (see scratch.audit)."""
    return scratch.audit(request.config, client, target)


def _lines(exchange: Exchange) -> list[str]:
    return [line.raw.decode("utf-8", errors="replace")[:160] for line in exchange.lines][:10]


# --------------------------------------------------------------------------------------------
# Pull without a registry


@pytest.mark.requirement("pull.name.invalid")
def test_pull_invalid_name_answers_400(client: Client) -> None:
    expect_error(client.post("/api/pull", json={"model": INVALID_NAME}), 400, "invalid model name")


@pytest.mark.requirement("pull.name.invalid-nonstream")
def test_pull_invalid_name_without_stream_answers_400(client: Client) -> None:
    exchange = client.post("/api/pull", json={"model": INVALID_NAME, "stream": False})
    expect_error(exchange, 400, "invalid model name")


@pytest.mark.requirement("pull.name.alias")
def test_pull_reads_name(client: Client) -> None:
    expect_error(client.post("/api/pull", json={"name": INVALID_NAME}), 400, "invalid model name")


# --------------------------------------------------------------------------------------------
# Pull from the registry (--allow-network)


def _pull_model() -> str:
    name = scratch.allowed_pull_model()
    if name is None:
        pytest.skip(
            f"cannot judge: set {scratch.PULL_MODEL_ENV} to a small registry model the suite may "
            "pull (e.g. smollm:135m); a pull installs it outside the scratch prefix"
        )
    return name


def _tag_digest(client: Client, name: str) -> object:
    listed = scratch.tags_by_name(client.get("/api/tags")) or {}
    entry = listed.get(normalize_name(name))
    return entry.get("digest") if entry else None


def _pull_line_problem(value: object) -> str | None:
    if not isinstance(value, dict) or not isinstance(value.get("status"), str):
        return f"not an object with a string status: {json.dumps(value)[:120]}"
    if "error" in value:
        return f"an error line: {json.dumps(value)[:120]}"
    if "total" in value or "completed" in value:
        total, completed = value.get("total", 0), value.get("completed", 0)
        if not isinstance(value.get("digest"), str):
            return f"a download line without a string digest: {json.dumps(value)[:120]}"
        counts = (total, completed)
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in counts):
            return f"total/completed not integers: {json.dumps(value)[:120]}"
        if completed > total:
            return f"completed > total: {json.dumps(value)[:120]}"
    return None


@pytest.fixture(scope="module")
def streamed_pull(client: Client) -> tuple[str, Exchange]:
    """The user's pull model pulled once, streamed: the other registry checks build on it."""
    model = _pull_model()
    return model, client.post("/api/pull", json={"model": model})


def _pull_failure(exchange: Exchange) -> str | None:
    """Why a pull did not get through (registry unreachable, unknown model), or None."""
    if exchange.status != 200 or not exchange.complete:
        return f"status {exchange.status}; {exchange.problem or exchange.text_preview(120)}"
    errors = exchange.error_lines
    return json.dumps(errors[0])[:160] if errors else None


def _require_pulled(streamed_pull: tuple[str, Exchange]) -> str:
    model, exchange = streamed_pull
    failure = _pull_failure(exchange)
    assume(failure is None, f"pulling {model} failed ({failure}): the registry cannot be used")
    return model


@pytest.mark.requirement("pull.stream.progress")
def test_pull_streams_progress(api_version: str, streamed_pull: tuple[str, Exchange]) -> None:
    _, exchange = streamed_pull
    expect_status(exchange, 200)
    expect_content_type(exchange, "application/x-ndjson")
    values = exchange.values
    check(
        bool(values) and values[0] == {"status": "pulling manifest"},
        expected='the first line {"status": "pulling manifest"}',
        actual=f"lines {_lines(exchange)}",
        exchange=exchange,
    )
    # An error after the manifest request is the registry's or the network's answer, not a
    # wrong progress stream: the check cannot go on (pull.remote.unknown judges error streams).
    _require_pulled(streamed_pull)
    problems = [p for v in values if (p := _pull_line_problem(v)) is not None]
    check(
        not problems,
        expected="status lines; download lines with a string digest and integer total >= completed",
        actual="; ".join(problems[:3]),
        exchange=exchange,
    )
    for value in values:
        expect_valid("pull.progress", value, api_version, exchange)
    check(
        values[-1] == {"status": "success"},
        expected='the last line {"status": "success"}',
        actual=f"last line {json.dumps(values[-1])[:120]}",
        exchange=exchange,
    )


@pytest.mark.requirement("pull.stream.nonstream")
def test_pull_without_stream_answers_success(
    client: Client, streamed_pull: tuple[str, Exchange]
) -> None:
    model = _require_pulled(streamed_pull)
    exchange = client.post("/api/pull", json={"model": model, "stream": False})
    expect_status(exchange, 200)
    body = expect_json_object(exchange)
    check(
        body == {"status": "success"},
        expected='one object {"status": "success"}',
        actual=f"body {exchange.text_preview(200)!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("pull.remote.unknown")
def test_pull_of_unknown_remote_model_fails(client: Client) -> None:
    streamed = client.post("/api/pull", json={"model": ABSENT_MODEL})
    assume(streamed.complete, f"no complete answer: {streamed.problem}")
    if streamed.status == 200:
        last = streamed.values[-1] if streamed.values else None
        check(
            isinstance(last, dict) and isinstance(last.get("error"), str),
            expected="a stream that ends with an error line",
            actual=f"lines {_lines(streamed)}",
            exchange=streamed,
        )
    else:
        expect_error(streamed, streamed.status or 500)
    plain = client.post("/api/pull", json={"model": ABSENT_MODEL, "stream": False})
    check(
        plain.status is not None and plain.status >= 400,
        expected="an error status with stream false",
        actual=f"status {plain.status}; body {plain.text_preview(120)!r}",
        exchange=plain,
    )
    expect_error(plain, plain.status or 500)


@pytest.mark.requirement("pull.remote.idempotent")
def test_pull_of_current_model_keeps_its_digest(
    client: Client, streamed_pull: tuple[str, Exchange]
) -> None:
    model = _require_pulled(streamed_pull)
    before = _tag_digest(client, model)
    assume(before is not None, f"/api/tags does not list {model} after pulling it")
    again = client.post("/api/pull", json={"model": model, "stream": False})
    expect_status(again, 200)
    after = _tag_digest(client, model)
    check(
        after == before,
        expected=f"{model} still listed with digest {before}",
        actual=f"digest {after}",
        exchange=again,
    )


# --------------------------------------------------------------------------------------------
# Push without a registry


@pytest.fixture
def absent_push_name(client: Client) -> str:
    """The name pushed by the offline checks, after making sure the server does not have it."""
    listed = scratch.tags_by_name(client.get("/api/tags"))
    assume(listed is not None, "/api/tags gave no model list; the push name cannot be vetted")
    if normalize_name(ABSENT_PUSH) in (listed or {}):
        pytest.skip(f"cannot judge: {ABSENT_PUSH} is installed, and the suite never pushes models")
    return ABSENT_PUSH


@pytest.mark.requirement("push.name.required")
def test_push_without_name_answers_400(client: Client) -> None:
    expect_error(client.post("/api/push", json={}), 400, "model is required")


def _push_stream(client: Client, body: dict[str, Any]) -> tuple[Exchange, list[object]]:
    exchange = client.post("/api/push", json=body)
    expect_status(exchange, 200)
    expect_content_type(exchange, "application/x-ndjson")
    return exchange, exchange.values


@pytest.mark.requirement("push.missing-local.stream")
def test_push_of_missing_model_streams_an_error(client: Client, absent_push_name: str) -> None:
    exchange, values = _push_stream(client, {"model": absent_push_name})
    last = values[-1] if values else None
    check(
        bool(values)
        and values[0] == RETRIEVING
        and isinstance(last, dict)
        and isinstance(last.get("error"), str),
        expected=f"first line {json.dumps(RETRIEVING)}, last line an object with a string error",
        actual=f"lines {_lines(exchange)}",
        exchange=exchange,
    )


@pytest.mark.requirement("push.missing-local.status-line")
def test_push_of_missing_model_says_it_could_not_retrieve(
    client: Client, absent_push_name: str
) -> None:
    exchange = client.post("/api/push", json={"model": absent_push_name})
    assume_status(exchange, 200)
    values = exchange.values
    errors = [i for i, v in enumerate(values) if isinstance(v, dict) and "error" in v]
    assume(bool(errors), "the stream has no error line (push.missing-local.stream)")
    before = values[errors[0] - 1] if errors[0] > 0 else None
    check(
        before == NOT_RETRIEVED,
        expected=f"the line before the error {json.dumps(NOT_RETRIEVED)}",
        actual=f"lines {_lines(exchange)}",
        exchange=exchange,
    )


@pytest.mark.requirement("push.missing-local.nonstream")
def test_push_of_missing_model_without_stream_fails(client: Client, absent_push_name: str) -> None:
    exchange = client.post("/api/push", json={"model": absent_push_name, "stream": False})
    assume(exchange.complete, f"no complete answer: {exchange.problem}")
    check(
        exchange.status is not None and not 200 <= exchange.status < 300,
        expected="a non-2xx status (Ollama: 500) with a JSON error object",
        actual=f"status {exchange.status}; body {exchange.text_preview(160)!r}",
        exchange=exchange,
    )
    expect_error(exchange, exchange.status or 500)


@pytest.mark.requirement("push.name.alias")
def test_push_reads_name(client: Client, absent_push_name: str) -> None:
    exchange, values = _push_stream(client, {"name": absent_push_name})
    check(
        bool(values) and values[0] == RETRIEVING,
        expected=f"first line {json.dumps(RETRIEVING)}, as with model",
        actual=f"lines {_lines(exchange)}",
        exchange=exchange,
    )
