"""``POST /api/chat``: conversations, roles, tools, thinking, images and structured output.

Chat is what most applications use: a list of messages in, the assistant's message out (streamed
or whole). Clients depend on the shape of that message (role, content, thinking, tool_calls with
*object* arguments), on conversations with history and tool results being accepted, and on
``format`` producing JSON they can parse. Answers are compared with each other at temperature 0
and a fixed seed, so the checks hold for any model; tool, thinking and vision checks use the
model the target offers for that capability and skip when it has none.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from conformance.client import Client
from conformance.suite.generation import (
    ANSWER_SCHEMA,
    PROMPT,
    TOOL_PROMPT,
    WEATHER_TOOL,
    Stream,
    assume_single,
    assume_stream,
    chat_body,
    check_json_format,
    check_model_echo,
    check_nonempty_answer,
    check_same_answer_twice,
    check_thinking_apart,
    post,
    raw_text,
    standard_single,
    standard_stream,
    tiny_png_base64,
    tool_calls_of,
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

#: The id Ollama 0.12.11+ gives a tool call (ref §8.3).
TOOL_CALL_ID = re.compile(r"^call_[a-z0-9]{8}$")


def _chat(client: Client, body: dict[str, Any]) -> Any:
    return post(client, "chat", body)


def _expect_done(client: Client, body: dict[str, Any]) -> None:
    """200 and a single object with done true (the answer to an accepted request)."""
    exchange = _chat(client, {**body, "stream": False})
    expect_status(exchange, 200)
    value = expect_json_object(exchange)
    check(
        value.get("done") is True,
        expected="a final object with done true",
        actual=exchange.text_preview(200),
        exchange=exchange,
    )


@pytest.mark.requirement("chat.response.fields")
def test_single_answer_has_the_documented_fields(
    client: Client, model_for: Callable[[str], str]
) -> None:
    exchange = standard_single(client, "chat", model_for("completion"))
    assume_status(exchange, 200)
    value = expect_json_object(exchange)
    message = value.get("message")
    wrong = []
    if not isinstance(value.get("model"), str):
        wrong.append(f"model {value.get('model')!r}")
    if not isinstance(value.get("created_at"), str):
        wrong.append(f"created_at {value.get('created_at')!r}")
    if not isinstance(message, dict):
        wrong.append(f"message {message!r}")
    else:
        if message.get("role") != "assistant":
            wrong.append(f"message.role {message.get('role')!r}")
        if not isinstance(message.get("content"), str):
            wrong.append(f"message.content {message.get('content')!r}")
    if value.get("done") is not True:
        wrong.append(f"done {value.get('done')!r}")
    check(
        not wrong,
        expected='model, created_at, message {role: "assistant", content: string} and done true',
        actual="; ".join(wrong),
        exchange=exchange,
    )


@pytest.mark.requirement("chat.model.echo")
def test_every_line_echoes_the_model_as_sent(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    check_model_echo(client, "chat", model_for("completion"), api_version)


@pytest.mark.requirement("chat.history.accepted")
def test_conversation_with_history(client: Client, model_for: Callable[[str], str]) -> None:
    messages = [
        {"role": "system", "content": "You answer briefly."},
        {"role": "user", "content": "Why is the sky blue?"},
        {"role": "assistant", "content": "Because air scatters blue light the most."},
        {"role": "user", "content": "And why is the sunset red?"},
    ]
    _expect_done(client, chat_body(model_for("completion"), messages=messages, num_predict=8))


@pytest.mark.requirement("chat.roles.tool-accepted")
def test_tool_role_is_accepted(client: Client, model_for: Callable[[str], str]) -> None:
    messages = [
        {"role": "user", "content": TOOL_PROMPT},
        {"role": "tool", "content": "18 degrees Celsius, light rain"},
    ]
    exchange = _chat(client, chat_body(model_for("completion"), messages=messages, stream=False))
    expect_status(exchange, 200)


@pytest.mark.requirement("chat.roles.case-folded")
def test_role_is_case_insensitive(client: Client, model_for: Callable[[str], str]) -> None:
    model = model_for("completion")
    lower = assume_single(standard_single(client, "chat", model))
    body = chat_body(model, messages=[{"role": "User", "content": PROMPT}], stream=False)
    exchange = _chat(client, body)
    expect_status(exchange, 200)
    value = assume_json_object(exchange)
    content, wanted = raw_text(value, "chat"), raw_text(lower, "chat")
    check(
        content == wanted,
        expected=f"the answer given to role 'user': {wanted!r}",
        actual=f"message.content {content!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("chat.final.message")
def test_final_line_carries_a_message(client: Client, model_for: Callable[[str], str]) -> None:
    stream = assume_stream(standard_stream(client, "chat", model_for("completion")), "chat")
    message = stream.final.get("message")
    check(
        isinstance(message, dict) and message.get("role") == "assistant",
        expected="the done:true line carries message {role: assistant, ...}",
        actual=f"message {message!r}" if "message" in stream.final else "no message",
        exchange=stream.exchange,
    )


@pytest.mark.requirement("chat.options.seed-deterministic")
def test_same_seed_same_reply(client: Client, model_for: Callable[[str], str]) -> None:
    body = chat_body(model_for("completion"), stream=False, extra_options={"seed": 101})
    check_same_answer_twice(client, "chat", body)


@pytest.mark.requirement("chat.format.json")
def test_format_json_gives_json(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    check_json_format(client, "chat", model_for("completion"), api_version)


@pytest.mark.requirement("chat.format.schema")
def test_format_schema_gives_valid_json(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    check_json_format(client, "chat", model_for("completion"), api_version, ANSWER_SCHEMA)


@pytest.mark.requirement("chat.images.accepted")
def test_vision_model_accepts_images(client: Client, model_for: Callable[[str], str]) -> None:
    messages = [
        {
            "role": "user",
            "content": "Describe this picture in a few words.",
            "images": [tiny_png_base64()],
        }
    ]
    exchange = _chat(client, chat_body(model_for("vision"), messages=messages, stream=False))
    check_nonempty_answer(exchange, "chat")


# --------------------------------------------------------------------------------------------
# Tools


def _tool_stream(client: Client, model: str, api_version: str) -> Stream:
    """The streamed reply to the weather question, or SKIP when it holds no tool call."""
    stream = assume_stream(tool_exchange(client, model, api_version, stream=True), "chat")
    assume(
        bool(stream.tool_calls),
        f"the model answered without calling a tool (content {stream.text!r}); a model may "
        "choose not to, so the call's shape cannot be judged",
    )
    return stream


def _call_problem(call: object) -> str | None:
    if not isinstance(call, dict):
        return f"a call that is not an object: {call!r}"
    function = call.get("function")
    if not isinstance(function, dict):
        return f"function {function!r}"
    if not isinstance(function.get("name"), str):
        return f"function.name {function.get('name')!r}"
    arguments = function.get("arguments")
    if not isinstance(arguments, dict):
        kind = "a string" if isinstance(arguments, str) else type(arguments).__name__
        return f"function.arguments is {kind}, not a JSON object: {arguments!r}"
    return None


def _call_key(call: object) -> object:
    """What two reports of the same call agree on (the id is random per answer)."""
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        return call
    function = call["function"]
    return (function.get("name"), json.dumps(function.get("arguments"), sort_keys=True))


@pytest.mark.requirement("chat.tools.call-shape")
def test_tool_call_has_object_arguments(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    stream = _tool_stream(client, model_for("tools"), api_version)
    for number, line in enumerate(stream.objects, start=1):
        message = line.get("message")
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if calls is None:
            continue
        check(
            isinstance(calls, list),
            expected="message.tool_calls an array",
            actual=f"line {number}: tool_calls {calls!r}",
            exchange=stream.exchange,
        )
        for call in calls:
            problem = _call_problem(call)
            check(
                problem is None,
                expected="each call {function: {name: string, arguments: object}}",
                actual=f"line {number}: {problem}",
                exchange=stream.exchange,
            )


@pytest.mark.requirement("chat.tools.declared-name")
def test_tool_call_names_a_declared_tool(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    stream = _tool_stream(client, model_for("tools"), api_version)
    declared = WEATHER_TOOL["function"]["name"]
    for call in stream.tool_calls:
        name = call.get("function", {}).get("name") if isinstance(call, dict) else None
        check(
            name == declared,
            expected=f"calls of the declared tool {declared!r} only",
            actual=f"a call of {name!r}",
            exchange=stream.exchange,
        )


@pytest.mark.requirement("chat.tools.nonstream-aggregated")
def test_stream_false_carries_every_tool_call(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    model = model_for("tools")
    stream = _tool_stream(client, model, api_version)
    single = tool_exchange(client, model, api_version, stream=False)
    value = assume_single(single)
    streamed = [_call_key(c) for c in stream.tool_calls]
    whole = [_call_key(c) for c in tool_calls_of(value, "chat")]
    check(
        whole == streamed,
        expected=f"message.tool_calls with the streamed calls, in order: {streamed}",
        actual=f"calls {whole}",
        exchange=single,
    )


@pytest.mark.requirement("chat.tools.result-roundtrip")
def test_tool_result_is_accepted(client: Client, model_for: Callable[[str], str]) -> None:
    call = {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": TOOL_PROMPT},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "content": "18 degrees Celsius, light rain", "tool_name": "get_weather"},
    ]
    body = chat_body(model_for("tools"), messages=messages, num_predict=8, tools=[WEATHER_TOOL])
    _expect_done(client, body)


@pytest.mark.requirement("chat.tools.id")
def test_tool_call_id_format(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    stream = _tool_stream(client, model_for("tools"), api_version)
    for call in stream.tool_calls:
        call_id = call.get("id") if isinstance(call, dict) else None
        check(
            isinstance(call_id, str) and TOOL_CALL_ID.match(call_id) is not None,
            expected="id: call_ followed by 8 lower-case letters or digits",
            actual=f"id {call_id!r}" if isinstance(call, dict) and "id" in call else "no id",
            exchange=stream.exchange,
        )


# --------------------------------------------------------------------------------------------
# Thinking, loading, keep_alive


@pytest.mark.requirement("chat.think.false-accepted")
def test_think_false_is_accepted(client: Client, model_for: Callable[[str], str]) -> None:
    body = chat_body(model_for("completion"), stream=False, num_predict=2, think=False)
    expect_status(_chat(client, body), 200)


@pytest.mark.requirement("chat.think.output")
def test_thinking_arrives_in_its_own_field(client: Client, model_for: Callable[[str], str]) -> None:
    check_thinking_apart(client, "chat", model_for("thinking"))


@pytest.mark.requirement("chat.think.level")
@pytest.mark.parametrize("level", ["low", "medium", "high"])
def test_think_levels_are_accepted(
    client: Client, model_for: Callable[[str], str], level: str
) -> None:
    body = chat_body(model_for("thinking"), stream=False, num_predict=2, think=level)
    expect_status(_chat(client, body), 200)


@pytest.mark.requirement("chat.load.empty-messages")
def test_empty_messages_load_and_answer_once(
    client: Client, model_for: Callable[[str], str]
) -> None:
    exchange = client.post("/api/chat", json={"model": model_for("completion"), "messages": []})
    expect_status(exchange, 200)
    expect_content_type(exchange, "application/json")
    value = expect_json_object(exchange)
    message = value.get("message")
    check(
        isinstance(message, dict)
        and message.get("role") == "assistant"
        and message.get("content") == ""
        and value.get("done") is True,
        expected='one object with message {role: "assistant", content: ""} and done true',
        actual=exchange.text_preview(200),
        exchange=exchange,
    )


@pytest.mark.requirement("chat.keep-alive.forms")
@pytest.mark.parametrize("keep_alive", ["5m", 300], ids=["string", "seconds"])
def test_keep_alive_forms(
    client: Client, model_for: Callable[[str], str], keep_alive: object
) -> None:
    body = chat_body(model_for("completion"), stream=False, num_predict=2)
    expect_status(_chat(client, {**body, "keep_alive": keep_alive}), 200)
