"""Streaming: how generate, chat and create deliver their answers, checked line by line.

Clients read Ollama's answers as NDJSON as they arrive: they split on ``\\n``, parse each line,
print the text of ``done: false`` lines and take the statistics from the one ``done: true`` line.
Every rule here is one a client relies on; a server that breaks it makes clients hang, print
garbage or lose the statistics. ``stream: false`` must give the same content in one object, and
an error that happens before any output must be a real HTTP error (0.12.6+), not a 200 stream.

Generate and chat have the same rules; each test runs for both endpoints and names the
endpoint's own requirement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.client import Client
from conformance.contract import iter_stream_issues
from conformance.exchange import Exchange, parse_json
from conformance.suite.generation import (
    STAT_FIELDS,
    TEXT_FIELD,
    Endpoint,
    assume_single,
    assume_stream,
    body_for,
    create_from_body,
    describe_errors,
    post,
    raw_text,
    standard_single,
    standard_stream,
    stat_keys,
    text_of,
)
from conformance.verdict import (
    assume,
    assume_status,
    check,
    expect_content_type,
    expect_json_object,
    expect_status,
    expect_valid,
)

NDJSON = "application/x-ndjson"


def _endpoints(topic: str) -> pytest.MarkDecorator:
    """Run a test for generate and chat, each under ``streaming.<endpoint>.<topic>``."""
    return pytest.mark.parametrize(
        "endpoint",
        [
            pytest.param("generate", id="generate", marks=_marks["generate", topic]),
            pytest.param("chat", id="chat", marks=_marks["chat", topic]),
        ],
    )


# The ids are spelled out so that a search for a requirement id finds its test.
_marks: dict[tuple[str, str], pytest.MarkDecorator] = {
    ("generate", "content-type"): pytest.mark.requirement("streaming.generate.content-type"),
    ("chat", "content-type"): pytest.mark.requirement("streaming.chat.content-type"),
    ("generate", "default-on"): pytest.mark.requirement("streaming.generate.default-on"),
    ("chat", "default-on"): pytest.mark.requirement("streaming.chat.default-on"),
    ("generate", "lines"): pytest.mark.requirement("streaming.generate.lines"),
    ("chat", "lines"): pytest.mark.requirement("streaming.chat.lines"),
    ("generate", "chunks-not-done"): pytest.mark.requirement("streaming.generate.chunks-not-done"),
    ("chat", "chunks-not-done"): pytest.mark.requirement("streaming.chat.chunks-not-done"),
    ("generate", "single-final"): pytest.mark.requirement("streaming.generate.single-final"),
    ("chat", "single-final"): pytest.mark.requirement("streaming.chat.single-final"),
    ("generate", "stats-final-only"): pytest.mark.requirement(
        "streaming.generate.stats-final-only"
    ),
    ("chat", "stats-final-only"): pytest.mark.requirement("streaming.chat.stats-final-only"),
    ("generate", "nonstream-json"): pytest.mark.requirement("streaming.generate.nonstream-json"),
    ("chat", "nonstream-json"): pytest.mark.requirement("streaming.chat.nonstream-json"),
    ("generate", "nonstream-equals-stream"): pytest.mark.requirement(
        "streaming.generate.nonstream-equals-stream"
    ),
    ("chat", "nonstream-equals-stream"): pytest.mark.requirement(
        "streaming.chat.nonstream-equals-stream"
    ),
    ("generate", "error-status"): pytest.mark.requirement("streaming.generate.error-status"),
    ("chat", "error-status"): pytest.mark.requirement("streaming.chat.error-status"),
    ("generate", "error-status.pre-0-12-6"): pytest.mark.requirement(
        "streaming.generate.error-status.pre-0-12-6"
    ),
    ("chat", "error-status.pre-0-12-6"): pytest.mark.requirement(
        "streaming.chat.error-status.pre-0-12-6"
    ),
    ("generate", "schema"): pytest.mark.requirement("streaming.generate.schema"),
    ("chat", "schema"): pytest.mark.requirement("streaming.chat.schema"),
}


def _line_problems(body: bytes, limit: int = 3) -> list[str]:
    """What keeps ``body`` from being NDJSON of objects, each line ended by a single ``\\n``."""
    if not body:
        return ["the body is empty"]
    problems: list[str] = []
    parts = body.split(b"\n")
    if parts[-1]:
        problems.append(f"the last line is not ended by \\n: {parts[-1][:60]!r}")
    for number, raw in enumerate(parts[:-1], start=1):
        if raw.endswith(b"\r"):
            problems.append(f"line {number} ends with \\r\\n, not \\n")
            raw = raw[:-1]
        if not raw.strip():
            problems.append(f"line {number} is blank")
            continue
        value, error = parse_json(raw)
        if error is not None:
            problems.append(f"line {number} is {error}")
        elif not isinstance(value, dict):
            problems.append(f"line {number} is a JSON {type(value).__name__}, not an object")
    return problems[:limit] + (
        [f"... {len(problems) - limit} more"] if len(problems) > limit else []
    )


def _check_lines(exchange: Exchange, expected: str = "one JSON object per line") -> None:
    """FAIL unless the body is NDJSON of objects (see :func:`_line_problems`)."""
    __tracebackhide__ = True
    problems = _line_problems(exchange.body)
    check(not problems, expected=expected, actual="; ".join(problems), exchange=exchange)


def _shape_problem(obj: object, endpoint: Endpoint) -> str | None:
    """Why a line is not a token chunk (``done: false`` plus its text), or None."""
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}"
    if "error" in obj:
        return f"the server's error {obj.get('error')!r}"
    if obj.get("done") is not False:
        return f"done {obj.get('done')!r}" if "done" in obj else "no done field"
    if endpoint == "generate":
        if not isinstance(obj.get("response"), str):
            return f"response {obj.get('response')!r}, not a string"
        return None
    message = obj.get("message")
    if not isinstance(message, dict):
        return f"message {message!r}, not an object"
    if message.get("role") != "assistant":
        return f"message.role {message.get('role')!r}"
    if not isinstance(message.get("content"), str):
        return f"message.content {message.get('content')!r}, not a string"
    return None


def _is_final(value: object) -> bool:
    return isinstance(value, dict) and value.get("done") is True


@_endpoints("content-type")
def test_stream_is_ndjson(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    exchange = standard_stream(client, endpoint, model_for("completion"))
    expect_status(exchange, 200)
    expect_content_type(exchange, NDJSON)


@_endpoints("default-on")
def test_stream_is_the_default(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    body = body_for(endpoint, model_for("completion"), stream=None, num_predict=4)
    exchange = post(client, endpoint, body)
    expect_status(exchange, 200)
    check(
        exchange.is_ndjson,
        expected=f"a stream (Content-Type {NDJSON}) when the request has no stream field",
        actual=f"Content-Type {exchange.headers.get('content-type')!r}",
        exchange=exchange,
    )
    _check_lines(exchange)


@_endpoints("lines")
def test_every_line_is_one_object(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    exchange = standard_stream(client, endpoint, model_for("completion"))
    assume_status(exchange, 200)
    _check_lines(
        exchange,
        "every line one JSON object followed by \\n (no blank lines, no SSE framing, no sentinel)",
    )


@_endpoints("chunks-not-done")
def test_lines_before_the_last_are_chunks(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    exchange = standard_stream(client, endpoint, model_for("completion"))
    assume_status(exchange, 200)
    bad = exchange.parse_errors
    assume(not bad, f"a line is not JSON (judged by streaming.{endpoint}.lines)")
    values = exchange.values
    assume(bool(values), f"the stream has no lines (judged by streaming.{endpoint}.lines)")
    wanted = (
        "done false and a string response"
        if endpoint == "generate"
        else "done false and message {role: assistant, content: string}"
    )
    for number, value in enumerate(values[:-1], start=1):
        problem = _shape_problem(value, endpoint)
        check(
            problem is None,
            expected=f"every line before the last with {wanted}",
            actual=f"line {number} of {len(values)}: {problem}",
            exchange=exchange,
        )


@_endpoints("single-final")
def test_one_final_line_and_it_is_last(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    exchange = standard_stream(client, endpoint, model_for("completion"))
    assume_status(exchange, 200)
    lines = exchange.lines
    finals = [i for i, line in enumerate(lines) if _is_final(line.value)]
    errors = describe_errors(exchange)
    check(
        len(finals) == 1,
        expected="exactly one line with done true",
        actual=f"{len(finals)} done:true lines among {len(lines)}"
        + (f"; {errors}" if errors else ""),
        exchange=exchange,
    )
    check(
        finals[0] == len(lines) - 1,
        expected="the done:true line is the last line",
        actual=f"the done:true line is line {finals[0] + 1} of {len(lines)}",
        exchange=exchange,
    )
    tail = lines[-1].raw + b"\n"
    check(
        exchange.body.endswith(tail),
        expected="nothing after the done:true line and its \\n",
        actual=f"the body ends with {exchange.body[-60:]!r}",
        exchange=exchange,
    )


@_endpoints("stats-final-only")
def test_statistics_only_on_the_final_line(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    stream = assume_stream(standard_stream(client, endpoint, model_for("completion")), endpoint)
    for number, chunk in enumerate(stream.chunks, start=1):
        early = stat_keys(chunk)
        check(
            not early,
            expected="no statistics on done:false lines",
            actual=f"line {number} (done false) carries {', '.join(early)}",
            exchange=stream.exchange,
        )
    check(
        bool(stat_keys(stream.final)),
        expected=f"the final line carries the statistics ({', '.join(STAT_FIELDS)})",
        actual=f"the final line has only {sorted(stream.final)}",
        exchange=stream.exchange,
    )


@pytest.mark.requirement("streaming.generate.incremental")
def test_text_arrives_over_several_lines(client: Client, model_for: Callable[[str], str]) -> None:
    body = body_for("generate", model_for("completion"), stream=True, num_predict=8)
    stream = assume_stream(post(client, "generate", body), "generate")
    eval_count = stream.final.get("eval_count")
    went_on = stream.final.get("done_reason") == "length" or (
        isinstance(eval_count, int) and eval_count >= 3
    )
    assume(
        went_on,
        f"the model ended after {eval_count!r} tokens, too few to see the text spread out",
    )
    check(
        stream.text_lines > 1,
        expected="the text spread over more than one line",
        actual=f"{stream.text_lines} line(s) with text for {eval_count!r} tokens "
        f"(done_reason {stream.final.get('done_reason')!r})",
        exchange=stream.exchange,
    )


@_endpoints("nonstream-json")
def test_stream_false_gives_one_object(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    exchange = standard_single(client, endpoint, model_for("completion"))
    expect_status(exchange, 200)
    expect_content_type(exchange, "application/json")
    value = expect_json_object(exchange)
    check(
        value.get("done") is True,
        expected="done true in the single object",
        actual=f"done {value.get('done')!r}",
        exchange=exchange,
    )
    where = TEXT_FIELD[endpoint]
    text = raw_text(value, endpoint)
    check(
        isinstance(text, str),
        expected=f"the whole text in {where} (a string)",
        actual=f"{where} {text!r}",
        exchange=exchange,
    )


@_endpoints("nonstream-equals-stream")
def test_stream_false_equals_the_joined_stream(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    model = model_for("completion")
    stream = assume_stream(standard_stream(client, endpoint, model), endpoint)
    single = standard_single(client, endpoint, model)
    value = assume_single(single)
    where = TEXT_FIELD[endpoint]
    whole = text_of(value, endpoint)
    check(
        whole == stream.text,
        expected=f"{where} of stream:false equal to the streamed text {stream.text!r} "
        "(temperature 0, same seed)",
        actual=f"{where} {whole!r}",
        exchange=single,
    )


def _format_error_request(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> Exchange:
    # "xml" is not a format; Ollama only finds out after loading the model, so the failure
    # comes from where a mid-stream error would (ref §19.3).
    body = body_for(endpoint, model_for("completion"), stream=True, num_predict=4, format="xml")
    return post(client, endpoint, body)


@_endpoints("error-status")
def test_error_before_output_has_a_real_status(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    exchange = _format_error_request(client, model_for, endpoint)
    expect_status(exchange, *range(400, 600))
    expect_content_type(exchange, "application/json")
    value = expect_json_object(exchange)
    check(
        isinstance(value.get("error"), str),
        expected='a JSON error object {"error": "<message>"}',
        actual=f"body {exchange.text_preview(160)!r}",
        exchange=exchange,
    )


@_endpoints("error-status.pre-0-12-6")
def test_error_before_output_is_an_error_line(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    exchange = _format_error_request(client, model_for, endpoint)
    expect_status(exchange, 200)
    expect_content_type(exchange, NDJSON)
    errors = [e for e in exchange.error_lines if isinstance(e.get("error"), str)]
    check(
        bool(errors),
        expected='a stream line {"error": "<message>"}',
        actual=f"body {exchange.text_preview(160)!r}",
        exchange=exchange,
    )


@_endpoints("schema")
def test_every_line_holds_to_the_contract(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint, api_version: str
) -> None:
    model = model_for("completion")
    stream = assume_stream(standard_stream(client, endpoint, model), endpoint)
    issues = [
        f"line {index + 1}: {issue.message}"
        for index, issue in iter_stream_issues(endpoint, stream.objects, api_version)
    ]
    check(
        not issues,
        expected=f"every line valid as {endpoint}.chunk (done false) or {endpoint}.final "
        f"(done true) as of Ollama {api_version}",
        actual="\n".join(issues[:10])
        + (f"\n... {len(issues) - 10} more" if len(issues) > 10 else ""),
        exchange=stream.exchange,
    )
    single = standard_single(client, endpoint, model)
    expect_valid(f"{endpoint}.response", assume_single(single), api_version, single)


# --------------------------------------------------------------------------------------------
# /api/create streams its progress the same way


def _create(
    client: Client,
    name: str,
    base: str,
    api_version: str,
    *,
    stream: bool | None,
) -> Exchange:
    body: dict[str, Any] = create_from_body(name, base, api_version, stream=bool(stream))
    if stream is None:
        body.pop("stream")
    return client.post("/api/create", json=body, stream=stream)


@pytest.mark.requirement("streaming.create.lines")
def test_create_streams_status_lines(
    client: Client, model_for: Callable[[str], str], scratch_name: str, api_version: str
) -> None:
    exchange = _create(client, scratch_name, model_for("completion"), api_version, stream=None)
    expect_status(exchange, 200)
    expect_content_type(exchange, NDJSON)
    _check_lines(exchange)
    values = exchange.values
    check(bool(values), expected="status lines", actual="an empty body", exchange=exchange)
    for number, value in enumerate(values, start=1):
        status = value.get("status") if isinstance(value, dict) else None
        check(
            isinstance(status, str),
            expected='every line an object with a string "status"',
            actual=f"line {number}: {value!r}",
            exchange=exchange,
        )
    check(
        values[-1] == {"status": "success"},
        expected='the last line {"status": "success"}',
        actual=f"last line {values[-1]!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("streaming.create.nonstream")
def test_create_stream_false_gives_success(
    client: Client, model_for: Callable[[str], str], scratch_name: str, api_version: str
) -> None:
    exchange = _create(client, scratch_name, model_for("completion"), api_version, stream=False)
    expect_status(exchange, 200)
    expect_content_type(exchange, "application/json")
    value = expect_json_object(exchange)
    check(
        value.get("status") == "success",
        expected='one object {"status": "success"}',
        actual=f"body {exchange.text_preview(160)!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("streaming.create.nonstream-content-type")
def test_create_stream_false_content_type_has_no_charset(
    client: Client, model_for: Callable[[str], str], scratch_name: str, api_version: str
) -> None:
    exchange = _create(client, scratch_name, model_for("completion"), api_version, stream=False)
    assume_status(exchange, 200)
    raw = exchange.headers.get("content-type")
    check(
        raw is not None and raw.strip().lower() == "application/json",
        expected="Content-Type exactly application/json",
        actual=f"Content-Type {raw!r}",
        exchange=exchange,
    )
