"""``done_reason``: why a generation ended, provoked once for each value.

Clients decide what to do next from ``done_reason``: ``length`` means "the answer was cut, ask for
more", ``stop`` means it is complete, ``load`` / ``unload`` acknowledge a model being loaded or
unloaded without generating anything. Each value is provoked the way Ollama produces it (ref
§19.5): a natural end or a stop string for ``stop``, ``num_predict`` for ``length``, an empty
prompt (or message list) for ``load``, and the same with ``keep_alive: 0`` for ``unload``.

A natural end cannot be forced on every model (the suite's ``cycle`` model never ends by
itself), so the ``stop`` checks judge only answers that ended before the token bound and skip
otherwise; the stop-string check works on any model because the string is taken from the model's
own answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from conformance.client import Client
from conformance.suite.generation import (
    DONE_REASONS,
    END_PROMPT,
    MAX_PREDICT,
    Endpoint,
    assume_single,
    assume_stream,
    body_for,
    post,
    ps_entries_of,
    standard_single,
    standard_stream,
    stop_probe,
    tool_exchange,
)
from conformance.verdict import (
    assume,
    assume_json_object,
    assume_status,
    check,
    expect_content_type,
    expect_json_object,
    expect_status,
)

#: How long /api/ps may keep listing a model after an unload answer.
UNLOAD_GRACE = 10.0


def _final_reason(client: Client, endpoint: Endpoint, body: dict[str, Any]) -> tuple[Any, Any]:
    stream = assume_stream(post(client, endpoint, {**body, "stream": True}), endpoint)
    return stream, stream.final


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(
            "generate", id="generate", marks=pytest.mark.requirement("done_reason.generate.stop")
        ),
        pytest.param("chat", id="chat", marks=pytest.mark.requirement("done_reason.chat.stop")),
    ],
)
def test_natural_end_is_stop(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    body = body_for(endpoint, model_for("completion"), END_PROMPT, num_predict=MAX_PREDICT)
    stream, final = _final_reason(client, endpoint, body)
    eval_count = final.get("eval_count")
    assume(
        isinstance(eval_count, int) and eval_count < MAX_PREDICT,
        f"the answer did not end by itself within {MAX_PREDICT} tokens (eval_count "
        f"{eval_count!r}, done_reason {final.get('done_reason')!r}); this model cannot be made "
        "to stop naturally within the suite's bound",
    )
    check(
        final.get("done_reason") == "stop",
        expected=f'done_reason "stop" for an answer that ended by itself after {eval_count} '
        f"of at most {MAX_PREDICT} tokens",
        actual=f"done_reason {final.get('done_reason')!r}",
        exchange=stream.exchange,
    )


@pytest.mark.requirement("done_reason.generate.stop-sequence")
def test_stop_string_is_stop(client: Client, model_for: Callable[[str], str]) -> None:
    probe = stop_probe(client, "generate", model_for("completion"))
    stream = assume_stream(probe.exchange, "generate")
    check(
        stream.final.get("done_reason") == "stop",
        expected=f'done_reason "stop" when options.stop [{probe.stop!r}] ended the answer',
        actual=f"done_reason {stream.final.get('done_reason')!r} (text {stream.text!r})",
        exchange=stream.exchange,
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(
            "generate",
            id="generate",
            marks=pytest.mark.requirement("done_reason.generate.length"),
        ),
        pytest.param("chat", id="chat", marks=pytest.mark.requirement("done_reason.chat.length")),
    ],
)
def test_num_predict_cut_is_length(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    model = model_for("completion")
    limit = 3
    # The standard answer (up to 20 tokens) shows whether the model goes on past the limit.
    baseline = assume_stream(standard_stream(client, endpoint, model), endpoint)
    longer = baseline.final.get("done_reason") == "length" or baseline.text_lines > limit + 1
    assume(
        longer,
        f"the model's whole answer is only {baseline.text_lines} lines long, so a limit of "
        f"{limit} tokens may not cut it",
    )
    stream, final = _final_reason(client, endpoint, body_for(endpoint, model, num_predict=limit))
    check(
        final.get("done_reason") == "length",
        expected=f'done_reason "length" when num_predict {limit} cut the answer',
        actual=f"done_reason {final.get('done_reason')!r} after {stream.text!r}",
        exchange=stream.exchange,
    )


def _load(client: Client, endpoint: Endpoint, model: str, **fields: Any) -> Any:
    body: dict[str, Any] = {"model": model, **fields}
    if endpoint == "chat":
        body["messages"] = []
    return client.post(f"/api/{endpoint}", json=body)


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(
            "generate", id="generate", marks=pytest.mark.requirement("done_reason.generate.load")
        ),
        pytest.param("chat", id="chat", marks=pytest.mark.requirement("done_reason.chat.load")),
    ],
)
def test_empty_request_is_load(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    exchange = _load(client, endpoint, model_for("completion"))
    assume_status(exchange, 200)
    value = expect_json_object(exchange)
    check(
        value.get("done_reason") == "load",
        expected='done_reason "load"',
        actual=f"done_reason {value.get('done_reason')!r}",
        exchange=exchange,
    )


def _unload_problem(value: dict[str, Any], endpoint: Endpoint) -> str | None:
    if value.get("done") is not True:
        return f"done {value.get('done')!r}"
    if value.get("done_reason") != "unload":
        return f"done_reason {value.get('done_reason')!r}"
    if endpoint == "generate":
        return None if value.get("response") == "" else f"response {value.get('response')!r}"
    message = value.get("message")
    if not (
        isinstance(message, dict)
        and message.get("role") == "assistant"
        and message.get("content") == ""
    ):
        return f"message {message!r}"
    return None


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(
            "generate",
            id="generate",
            marks=pytest.mark.requirement("done_reason.generate.unload"),
        ),
        pytest.param("chat", id="chat", marks=pytest.mark.requirement("done_reason.chat.unload")),
    ],
)
def test_keep_alive_zero_is_unload(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    exchange = _load(client, endpoint, model_for("completion"), keep_alive=0)
    expect_status(exchange, 200)
    expect_content_type(exchange, "application/json")
    value = expect_json_object(exchange)
    empty = 'response ""' if endpoint == "generate" else 'message {role: "assistant", content: ""}'
    problem = _unload_problem(value, endpoint)
    check(
        problem is None,
        expected=f'a single object with {empty}, done true and done_reason "unload"',
        actual=f"{problem}: {exchange.text_preview(200)}",
        exchange=exchange,
    )


def _listed(client: Client, model: str) -> tuple[Any, bool | None]:
    ps = client.get("/api/ps")
    entries = ps_entries_of(ps, model) if ps.status == 200 else None
    return ps, None if entries is None else bool(entries)


@pytest.mark.requirement("done_reason.unload.leaves-ps")
def test_unloaded_model_leaves_ps(client: Client, model_for: Callable[[str], str]) -> None:
    model = model_for("completion")
    loaded = _load(client, "generate", model)
    assume_status(loaded, 200)
    unloaded = _load(client, "generate", model, keep_alive=0)
    assume_status(unloaded, 200)
    value = assume_json_object(unloaded)
    assume(
        value.get("done_reason") == "unload",
        "the answer was not an unload (judged by done_reason.generate.unload)",
    )
    deadline = time.monotonic() + UNLOAD_GRACE
    while True:
        ps, listed = _listed(client, model)
        assume(listed is not None, "/api/ps did not answer with a model list")
        if not listed or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    check(
        not listed,
        expected=f"/api/ps without {model!r} within {UNLOAD_GRACE:g} s of the unload answer",
        actual=f"still listed after {UNLOAD_GRACE:g} s: {ps.text_preview(200)}",
        exchange=ps,
    )


@pytest.mark.requirement("done_reason.generate.keep-alive-zero-prompt")
def test_keep_alive_zero_with_prompt_generates(
    client: Client, model_for: Callable[[str], str]
) -> None:
    body = body_for("generate", model_for("completion"), stream=False, num_predict=5)
    exchange = post(client, "generate", {**body, "keep_alive": 0})
    value = assume_single(exchange)
    check(
        value.get("done_reason") in ("stop", "length"),
        expected='a normal answer: done_reason "stop" or "length", not "unload"',
        actual=f"done_reason {value.get('done_reason')!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("done_reason.stream.final-only")
def test_done_reason_only_on_the_final_line(
    client: Client, model_for: Callable[[str], str]
) -> None:
    stream = assume_stream(standard_stream(client, "generate", model_for("completion")), "generate")
    early = [n for n, c in enumerate(stream.chunks, start=1) if "done_reason" in c]
    check(
        not early,
        expected="done_reason on the done:true line only",
        actual=f"done_reason on done:false line(s) {early}",
        exchange=stream.exchange,
    )
    check(
        "done_reason" in stream.final,
        expected="done_reason on the done:true line",
        actual=f"the final line has only {sorted(stream.final)}",
        exchange=stream.exchange,
    )


@pytest.mark.requirement("done_reason.value.known")
def test_done_reason_is_a_known_value(client: Client, model_for: Callable[[str], str]) -> None:
    model = model_for("completion")
    seen = []
    stream = assume_stream(standard_stream(client, "chat", model), "chat")
    seen.append((stream.exchange, stream.final))
    single = standard_single(client, "chat", model)
    seen.append((single, assume_single(single)))
    for exchange, value in seen:
        reason = value.get("done_reason")
        check(
            "done_reason" not in value or reason in DONE_REASONS,
            expected=f"done_reason one of {sorted(DONE_REASONS)}",
            actual=f"done_reason {reason!r}",
            exchange=exchange,
        )


@pytest.mark.requirement("done_reason.stream.nonstream-same")
@pytest.mark.parametrize("endpoint", ["generate", "chat"])
def test_stream_false_has_the_same_done_reason(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    model = model_for("completion")
    stream = assume_stream(standard_stream(client, endpoint, model), endpoint)
    single = standard_single(client, endpoint, model)
    value = assume_single(single)
    check(
        value.get("done_reason") == stream.final.get("done_reason"),
        expected=f"done_reason {stream.final.get('done_reason')!r}, as on the streamed answer",
        actual=f"done_reason {value.get('done_reason')!r}",
        exchange=single,
    )


@pytest.mark.requirement("done_reason.chat.tool-calls")
def test_tool_call_reply_is_stop(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    tools_model = model_for("tools")
    stream = assume_stream(tool_exchange(client, tools_model, api_version, stream=True), "chat")
    assume(bool(stream.tool_calls), "the model answered without calling a tool")
    eval_count = stream.final.get("eval_count")
    assume(
        isinstance(eval_count, int) and eval_count < MAX_PREDICT,
        f"the reply used the whole token bound (eval_count {eval_count!r}), so it may have been "
        "cut rather than ended",
    )
    check(
        stream.final.get("done_reason") == "stop",
        expected='done_reason "stop" for a reply of tool calls',
        actual=f"done_reason {stream.final.get('done_reason')!r}",
        exchange=stream.exchange,
    )
