"""``POST /api/generate``: what a completion request may carry and what its answer holds.

Generate is the oldest endpoint and the one with the most knobs: prompt, system, template, raw,
context, suffix, images, format, options, keep_alive, think, logprobs. A client library exposes
every one of them, so each must do what the documents say. Where the only way to know that a knob
worked is to know what the model must say (templates, system prompts, raw mode), the test uses the
suite's *successor model*: a tiny GGUF whose greedy continuation of any text is the alphabet after
its last letter (``conformance.models.tiny_gguf``). Everything else is judged model-independently,
by comparing a server's answers with each other at temperature 0 and a fixed seed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from conformance.client import Client
from conformance.suite.generation import (
    ANSWER_SCHEMA,
    IDENTITY_TEMPLATE,
    PROBE_PREDICT,
    PROBE_PROMPT,
    assume_single,
    assume_stream,
    assume_successor_runs,
    check_json_format,
    check_model_echo,
    check_nonempty_answer,
    check_same_answer_twice,
    check_thinking_apart,
    create_successor,
    generate_body,
    parse_rfc3339,
    post,
    probe_successor,
    ps_entries_of,
    standard_single,
    standard_stream,
    stop_probe,
    successor_text,
    tiny_png_base64,
)
from conformance.target import Target
from conformance.verdict import (
    assume,
    assume_json_object,
    assume_status,
    check,
    expect_content_type,
    expect_json_object,
    expect_status,
)


def _generate(client: Client, body: dict[str, Any]) -> Any:
    return post(client, "generate", body)


@pytest.mark.requirement("generate.response.fields")
def test_single_answer_has_the_documented_fields(
    client: Client, model_for: Callable[[str], str]
) -> None:
    exchange = standard_single(client, "generate", model_for("completion"))
    assume_status(exchange, 200)
    value = expect_json_object(exchange)
    wrong = []
    if not isinstance(value.get("model"), str):
        wrong.append(f"model {value.get('model')!r}")
    if not isinstance(value.get("created_at"), str):
        wrong.append(f"created_at {value.get('created_at')!r}")
    if not isinstance(value.get("response"), str):
        wrong.append(
            f"response {value.get('response')!r}" if "response" in value else "no response"
        )
    if value.get("done") is not True:
        wrong.append(f"done {value.get('done')!r}")
    check(
        not wrong,
        expected="model (string), created_at (string), response (string) and done true",
        actual="; ".join(wrong),
        exchange=exchange,
    )


@pytest.mark.requirement("generate.model.echo")
def test_every_line_echoes_the_model_as_sent(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    check_model_echo(client, "generate", model_for("completion"), api_version)


@pytest.mark.requirement("generate.context.returned")
def test_final_carries_context(client: Client, model_for: Callable[[str], str]) -> None:
    stream = assume_stream(standard_stream(client, "generate", model_for("completion")), "generate")
    context = stream.final.get("context")
    check(
        isinstance(context, list)
        and bool(context)
        and all(isinstance(t, int) and not isinstance(t, bool) for t in context),
        expected="context: a non-empty array of integers on the final line",
        actual=f"context {context!r}"[:200] if "context" in stream.final else "no context",
        exchange=stream.exchange,
    )


@pytest.mark.requirement("generate.context.raw-omitted")
def test_raw_answer_has_no_context(client: Client, model_for: Callable[[str], str]) -> None:
    body = generate_body(model_for("completion"), stream=True, num_predict=4, raw=True)
    stream = assume_stream(_generate(client, body), "generate")
    check(
        "context" not in stream.final,
        expected="no context on the final line of a raw generate",
        actual=f"context {stream.final.get('context')!r}"[:200],
        exchange=stream.exchange,
    )


@pytest.mark.requirement("generate.context.accepted")
def test_context_can_be_sent_back(client: Client, model_for: Callable[[str], str]) -> None:
    model = model_for("completion")
    first = assume_stream(standard_stream(client, "generate", model), "generate")
    context = first.final.get("context")
    assume(
        isinstance(context, list) and bool(context),
        "the first answer has no context (judged by generate.context.returned)",
    )
    body = generate_body(model, "And why is the sunset red?", stream=False, context=context)
    exchange = _generate(client, body)
    expect_status(exchange, 200)
    value = expect_json_object(exchange)
    check(
        value.get("done") is True and isinstance(value.get("response"), str),
        expected="a normal answer (done true, a string response)",
        actual=exchange.text_preview(200),
        exchange=exchange,
    )


# --------------------------------------------------------------------------------------------
# Templates, system prompts and raw mode, judged on the successor model


def _successor_answer(client: Client, name: str, **fields: Any) -> tuple[Any, str | None]:
    body = generate_body(name, PROBE_PROMPT, stream=False, num_predict=PROBE_PREDICT, **fields)
    exchange = _generate(client, body)
    value = assume_single(exchange)
    response = value.get("response")
    return exchange, response if isinstance(response, str) else None


@pytest.mark.requirement("generate.successor.predicted")
def test_successor_model_continues_as_its_weights_say(
    client: Client, scratch_name: Callable[[], str], api_version: str
) -> None:
    probe = probe_successor(client, scratch_name, api_version)
    assume_status(probe.exchange, 200)
    check(
        probe.ok,
        expected=f"raw prompt {probe.prompt!r} with num_predict {PROBE_PREDICT} continued as "
        f"{probe.expected!r} (the model's only non-zero logit is the next letter)",
        actual=f"response {probe.actual!r}",
        exchange=probe.exchange,
    )


@pytest.mark.requirement("generate.raw.bypasses-template")
def test_raw_skips_the_template(
    client: Client, scratch_name: Callable[[], str], api_version: str
) -> None:
    assume_successor_runs(client, scratch_name, api_version)
    name = scratch_name()
    create_successor(client, name, api_version, "{{ .Prompt }}q")
    raw_exchange, raw = _successor_answer(client, name, raw=True)
    want_raw = successor_text(PROBE_PROMPT, PROBE_PREDICT)
    check(
        raw == want_raw,
        expected=f"raw {PROBE_PROMPT!r} reaches the model as is and continues {want_raw!r}",
        actual=f"response {raw!r}",
        exchange=raw_exchange,
    )
    templated_exchange, templated = _successor_answer(client, name)
    want = successor_text(PROBE_PROMPT + "q", PROBE_PREDICT)
    check(
        templated == want,
        expected=f"without raw the template renders {PROBE_PROMPT + 'q'!r}, continued {want!r}",
        actual=f"response {templated!r}",
        exchange=templated_exchange,
    )


@pytest.mark.requirement("generate.template.override")
def test_request_template_replaces_the_model_template(
    client: Client, scratch_name: Callable[[], str], api_version: str
) -> None:
    assume_successor_runs(client, scratch_name, api_version)
    name = scratch_name()
    create_successor(client, name, api_version, IDENTITY_TEMPLATE)
    exchange, response = _successor_answer(client, name, template="{{ .Prompt }}x")
    want = successor_text(PROBE_PROMPT + "x", PROBE_PREDICT)
    check(
        response == want,
        expected=f"template {'{{ .Prompt }}x'!r} renders {PROBE_PROMPT + 'x'!r}, then {want!r}",
        actual=f"response {response!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("generate.system.override")
def test_request_system_replaces_the_model_system(
    client: Client, scratch_name: Callable[[], str], api_version: str
) -> None:
    assume_successor_runs(client, scratch_name, api_version)
    name = scratch_name()
    create_successor(client, name, api_version, "{{ .Prompt }}{{ .System }}", system="a")
    exchange, response = _successor_answer(client, name, system="m")
    want = successor_text(PROBE_PROMPT + "m", PROBE_PREDICT)
    check(
        response == want,
        expected=f"system 'm' replaces the model's 'a': {PROBE_PROMPT + 'm'!r} continued {want!r}",
        actual=f"response {response!r}",
        exchange=exchange,
    )


# --------------------------------------------------------------------------------------------
# Options


@pytest.mark.requirement("generate.options.seed-deterministic")
def test_same_seed_same_text(client: Client, model_for: Callable[[str], str]) -> None:
    body = generate_body(model_for("completion"), stream=False)
    check_same_answer_twice(client, "generate", body)


@pytest.mark.requirement("generate.options.num-predict")
def test_num_predict_bounds_eval_count(client: Client, model_for: Callable[[str], str]) -> None:
    limit = 5
    body = generate_body(model_for("completion"), stream=True, num_predict=limit)
    stream = assume_stream(_generate(client, body), "generate")
    eval_count = stream.final.get("eval_count", 0)
    assume(isinstance(eval_count, int), f"eval_count {eval_count!r} is not a number")
    check(
        eval_count <= limit,
        expected=f"eval_count at most {limit} with num_predict {limit}",
        actual=f"eval_count {eval_count} ({stream.text_lines} lines of text)",
        exchange=stream.exchange,
    )


@pytest.mark.requirement("generate.options.stop")
def test_stop_string_ends_the_text_before_it(
    client: Client, model_for: Callable[[str], str]
) -> None:
    probe = stop_probe(client, "generate", model_for("completion"))
    stream = assume_stream(probe.exchange, "generate")
    check(
        stream.text == probe.expected,
        expected=f"with stop [{probe.stop!r}] exactly the text before it: {probe.expected!r}",
        actual=f"response {stream.text!r}",
        exchange=stream.exchange,
    )


@pytest.mark.requirement("generate.options.unknown-ignored")
def test_unknown_option_is_ignored(client: Client, model_for: Callable[[str], str]) -> None:
    model = model_for("completion")
    baseline = assume_single(standard_single(client, "generate", model))
    body = generate_body(model, stream=False, extra_options={"conformance_unknown": 1})
    exchange = _generate(client, body)
    expect_status(exchange, 200)
    value = assume_json_object(exchange)
    check(
        value.get("response") == baseline.get("response"),
        expected=f"the answer without the option: {baseline.get('response')!r}",
        actual=f"response {value.get('response')!r}",
        exchange=exchange,
    )


@pytest.mark.requirement("generate.format.json")
def test_format_json_gives_json(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    check_json_format(client, "generate", model_for("completion"), api_version)


@pytest.mark.requirement("generate.format.schema")
def test_format_schema_gives_valid_json(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    check_json_format(client, "generate", model_for("completion"), api_version, ANSWER_SCHEMA)


@pytest.mark.requirement("generate.images.accepted")
def test_vision_model_accepts_images(client: Client, model_for: Callable[[str], str]) -> None:
    body = generate_body(
        model_for("vision"),
        "Describe this picture in a few words.",
        stream=False,
        images=[tiny_png_base64()],
    )
    check_nonempty_answer(_generate(client, body), "generate")


@pytest.mark.requirement("generate.load.empty-prompt")
def test_empty_prompt_loads_and_answers_once(
    client: Client, model_for: Callable[[str], str]
) -> None:
    exchange = client.post("/api/generate", json={"model": model_for("completion")})
    expect_status(exchange, 200)
    expect_content_type(exchange, "application/json")
    value = expect_json_object(exchange)
    check(
        value.get("response") == "" and value.get("done") is True,
        expected='one object with response "" and done true',
        actual=exchange.text_preview(200),
        exchange=exchange,
    )


@pytest.mark.requirement("generate.keep-alive.forms")
@pytest.mark.parametrize("keep_alive", ["5m", 300], ids=["string", "seconds"])
def test_keep_alive_forms(
    client: Client, model_for: Callable[[str], str], keep_alive: object
) -> None:
    body = generate_body(model_for("completion"), stream=False, num_predict=2)
    exchange = _generate(client, {**body, "keep_alive": keep_alive})
    expect_status(exchange, 200)


@pytest.mark.requirement("generate.keep-alive.negative")
def test_negative_keep_alive_keeps_the_model(
    client: Client, model_for: Callable[[str], str]
) -> None:
    model = model_for("completion")
    body = generate_body(model, stream=False, num_predict=2)
    try:
        exchange = _generate(client, {**body, "keep_alive": -1})
        expect_status(exchange, 200)
        asked = time.time()
        ps = client.get("/api/ps")
        assume_status(ps, 200)
        listing = assume_json_object(ps).get("models")
        entries = ps_entries_of(ps, model) or []
        check(
            bool(entries),
            expected=f"/api/ps lists {model!r} after keep_alive -1",
            actual=f"models {[m.get('name') for m in listing or [] if isinstance(m, dict)]}",
            exchange=ps,
        )
        expires = entries[0].get("expires_at")
        moment = parse_rfc3339(expires)
        year_ahead = (asked + 365 * 24 * 3600) * 1e9
        check(
            moment is not None and moment > year_ahead,
            expected="expires_at more than a year ahead",
            actual=f"expires_at {expires!r}",
            exchange=ps,
        )
    finally:
        # Give the model back its ordinary expiry: the suite must not pin it in memory forever.
        client.post("/api/generate", json={"model": model, "keep_alive": "5m"})


@pytest.mark.requirement("generate.think.false-accepted")
def test_think_false_is_accepted(client: Client, model_for: Callable[[str], str]) -> None:
    body = generate_body(model_for("completion"), stream=False, num_predict=2, think=False)
    expect_status(_generate(client, body), 200)


@pytest.mark.requirement("generate.think.output")
def test_thinking_arrives_in_its_own_field(client: Client, model_for: Callable[[str], str]) -> None:
    check_thinking_apart(client, "generate", model_for("thinking"))


@pytest.mark.requirement("generate.suffix.insert")
def test_suffix_on_an_insert_model(client: Client, target: Target) -> None:
    model = target.model_for("insert")
    assume(model is not None, "no model with capability 'insert' on the target")
    assert model is not None
    body = generate_body(model, "def add(a, b):\n    ", stream=False, suffix="\n    return c\n")
    expect_status(_generate(client, body), 200)


@pytest.mark.requirement("generate.logprobs.entries")
def test_logprobs_entries(client: Client, model_for: Callable[[str], str]) -> None:
    top = 3
    body = generate_body(
        model_for("completion"), stream=True, num_predict=5, logprobs=True, top_logprobs=top
    )
    stream = assume_stream(_generate(client, body), "generate")
    assume(stream.text != "", "the answer is empty, so there is nothing to carry logprobs")
    entries = [e for o in stream.objects for e in (o.get("logprobs") or [])]
    check(
        bool(entries),
        expected="logprobs entries on the lines that carry text",
        actual="no logprobs on any line",
        exchange=stream.exchange,
    )
    for entry in entries:
        check(
            _logprob_problem(entry, top) is None,
            expected=f"token a string, logprob a number <= 0, at most {top} alternatives sorted "
            "highest first",
            actual=f"{_logprob_problem(entry, top)}: {json.dumps(entry)[:200]}",
            exchange=stream.exchange,
        )


def _logprob_problem(entry: object, top: int) -> str | None:
    def bad(item: object) -> str | None:
        if not isinstance(item, dict):
            return "an entry that is not an object"
        if not isinstance(item.get("token"), str):
            return f"token {item.get('token')!r}"
        value = item.get("logprob")
        if isinstance(value, bool) or not isinstance(value, int | float) or value > 0:
            return f"logprob {value!r}"
        return None

    problem = bad(entry)
    if problem or not isinstance(entry, dict):
        return problem
    alternatives = entry.get("top_logprobs") or []
    if not isinstance(alternatives, list):
        return f"top_logprobs {alternatives!r}"
    if len(alternatives) > top:
        return f"{len(alternatives)} alternatives"
    for alternative in alternatives:
        problem = bad(alternative)
        if problem:
            return f"alternative with {problem}"
    values = [a["logprob"] for a in alternatives]
    if values != sorted(values, reverse=True):
        return f"alternatives not sorted highest first: {values}"
    return None
