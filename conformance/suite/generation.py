"""Shared request builders and stream readers for the generation areas.

The streaming, generate, chat, done_reason, durations and timestamps areas all look at the same
kind of exchange: a bounded ``/api/generate`` or ``/api/chat`` request and the NDJSON stream (or
single object) that comes back. This module keeps the pieces they share in one place:

* request bodies that are always bounded (``num_predict`` at most 30) and deterministic
  (``temperature: 0`` and a fixed ``seed``), because the suite must never let a model run on and
  must be able to compare two answers to the same request;
* readers that turn an exchange into a :class:`Stream` or a single object, and *skip* (cannot
  judge) when a precondition another requirement judges is missing: a wrong status, an unparsable
  line, an ``{"error": ...}`` line, a stream without its final object. The requirements that own
  those facts fail them once, with the server's own words; the others do not repeat the finding;
* a small per-run cache of the "standard" exchanges, so that the many requirements that read the
  same kind of answer (timestamps, durations, echo, stats placement) do not each pay for it;
* the successor model: the suite's tiny GGUF (``conformance.models.tiny_gguf``, variant ``cycle``)
  whose greedy output is known in advance, used where a requirement can only be judged by knowing
  exactly what the model must say (templates, system prompts, raw mode);
* an RFC 3339 parser that keeps nanoseconds, for ``created_at`` / ``modified_at`` / ``expires_at``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

import jsonschema

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.verdict import (
    assume,
    assume_json_object,
    assume_status,
    check,
    expect_json_object,
    expect_status,
)
from conformance.versions import in_range

__all__ = [
    "ANSWER_SCHEMA",
    "COUNT_FIELDS",
    "DEFAULT_PREDICT",
    "DONE_REASONS",
    "DURATION_FIELDS",
    "END_PROMPT",
    "IDENTITY_TEMPLATE",
    "MAX_PREDICT",
    "PROBE_PREDICT",
    "PROBE_PROMPT",
    "PROMPT",
    "SEED",
    "STAT_FIELDS",
    "SUCCESSOR_VARIANT",
    "TEXT_FIELD",
    "THINKING_FIELD",
    "TOOL_PROMPT",
    "WEATHER_TOOL",
    "Endpoint",
    "StopProbe",
    "Stream",
    "SuccessorProbe",
    "assume_single",
    "assume_stream",
    "assume_successor_runs",
    "body_for",
    "chat_body",
    "check_json_format",
    "check_model_echo",
    "check_nonempty_answer",
    "check_same_answer_twice",
    "check_thinking_apart",
    "create_from_body",
    "create_successor",
    "describe_errors",
    "generate_body",
    "is_json_int",
    "no_thinking",
    "options",
    "parse_rfc3339",
    "pick_stop",
    "post",
    "probe_successor",
    "ps_entries_of",
    "raw_text",
    "same_model",
    "single",
    "standard_single",
    "standard_stream",
    "stat_keys",
    "stop_probe",
    "stream",
    "successor_text",
    "text_of",
    "thinking_of",
    "tiny_png_base64",
    "tool_calls_of",
    "tool_exchange",
]

Endpoint = Literal["generate", "chat"]

#: A prompt any instruction-following model answers in a sentence or two.
PROMPT = "Why is the sky blue? Answer in one short sentence."
#: A prompt that invites a natural end well within the token bound (done_reason "stop").
END_PROMPT = "Reply with only the word OK."
SEED = 42
#: The default bound of the suite's generations; the brief caps every request at 30 tokens, and
#: real Ollama silently ends a stream when one token repeats more than 30 times (ref §18.5).
DEFAULT_PREDICT = 20
MAX_PREDICT = 30

#: The statistics that belong on the final object only (ref §18.5).
STAT_FIELDS: tuple[str, ...] = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)
DURATION_FIELDS: tuple[str, ...] = (
    "total_duration",
    "load_duration",
    "prompt_eval_duration",
    "eval_duration",
)
COUNT_FIELDS: tuple[str, ...] = ("prompt_eval_count", "eval_count")
#: Every done_reason a locally run model produces (ref §19.5).
DONE_REASONS = frozenset({"stop", "length", "load", "unload"})


# --------------------------------------------------------------------------------------------
# Request bodies


def options(num_predict: int = DEFAULT_PREDICT, **extra: Any) -> dict[str, Any]:
    """Greedy, seeded and bounded sampling options; ``extra`` adds or overrides keys."""
    if not 0 < num_predict <= MAX_PREDICT:
        raise ValueError(f"num_predict must be in 1..{MAX_PREDICT}, got {num_predict}")
    return {"temperature": 0, "seed": SEED, "num_predict": num_predict, **extra}


def generate_body(
    model: str,
    prompt: str = PROMPT,
    *,
    stream: bool | None = True,
    num_predict: int = DEFAULT_PREDICT,
    extra_options: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A bounded ``/api/generate`` body; ``stream=None`` leaves the field out (server default)."""
    body: dict[str, Any] = {"model": model, "prompt": prompt}
    if stream is not None:
        body["stream"] = stream
    body["options"] = options(num_predict, **dict(extra_options or {}))
    body.update(fields)
    return body


def chat_body(
    model: str,
    content: str = PROMPT,
    *,
    messages: list[dict[str, Any]] | None = None,
    stream: bool | None = True,
    num_predict: int = DEFAULT_PREDICT,
    extra_options: Mapping[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A bounded ``/api/chat`` body with one user message unless ``messages`` is given."""
    convo = messages if messages is not None else [{"role": "user", "content": content}]
    body: dict[str, Any] = {"model": model, "messages": convo}
    if stream is not None:
        body["stream"] = stream
    body["options"] = options(num_predict, **dict(extra_options or {}))
    body.update(fields)
    return body


def body_for(endpoint: Endpoint, model: str, text: str = PROMPT, **kwargs: Any) -> dict[str, Any]:
    """The same question asked of either endpoint."""
    if endpoint == "generate":
        return generate_body(model, text, **kwargs)
    return chat_body(model, text, **kwargs)


def post(client: Client, endpoint: Endpoint, body: dict[str, Any]) -> Exchange:
    """POST to ``/api/<endpoint>``, always splitting the body into lines.

    Reading lines even when the server declares another type means a server that ignores
    ``stream`` still yields its one object as one line; the content type is judged separately.
    """
    return client.post(f"/api/{endpoint}", json=body, stream=True)


# --------------------------------------------------------------------------------------------
# Reading answers


#: Where each endpoint puts the answer text and the reasoning, spelled as verdicts name them.
TEXT_FIELD: dict[Endpoint, str] = {"generate": "response", "chat": "message.content"}
THINKING_FIELD: dict[Endpoint, str] = {"generate": "thinking", "chat": "message.thinking"}


def raw_text(obj: Mapping[str, Any], endpoint: Endpoint) -> object:
    """The answer text field as the server sent it (``response`` or ``message.content``), of
    whatever type; None when it is missing."""
    if endpoint == "generate":
        return obj.get("response")
    message = obj.get("message")
    return message.get("content") if isinstance(message, dict) else None


def text_of(obj: Mapping[str, Any], endpoint: Endpoint) -> str:
    """The answer text a line carries (``response`` or ``message.content``); '' if none."""
    value = raw_text(obj, endpoint)
    return value if isinstance(value, str) else ""


def thinking_of(obj: Mapping[str, Any], endpoint: Endpoint) -> str:
    """The reasoning a line carries (``thinking`` or ``message.thinking``); '' if none."""
    source = obj if endpoint == "generate" else obj.get("message")
    value = source.get("thinking") if isinstance(source, dict) else None
    return value if isinstance(value, str) else ""


def tool_calls_of(obj: Mapping[str, Any], endpoint: Endpoint) -> list[Any]:
    """The tool calls a line carries; [] if none (a non-list is returned as [that value])."""
    source = obj if endpoint == "generate" else obj.get("message")
    value = source.get("tool_calls") if isinstance(source, dict) else None
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


@dataclass
class Stream:
    """A streamed answer whose lines all parsed and whose last line is the only ``done: true``."""

    exchange: Exchange
    endpoint: Endpoint
    objects: list[dict[str, Any]]

    @property
    def chunks(self) -> list[dict[str, Any]]:
        """Every line before the final one."""
        return self.objects[:-1]

    @property
    def final(self) -> dict[str, Any]:
        """The ``done: true`` line."""
        return self.objects[-1]

    @property
    def text(self) -> str:
        """The answer, every line's text joined (0.30+ may put a last piece on the final)."""
        return "".join(text_of(o, self.endpoint) for o in self.objects)

    @property
    def thinking(self) -> str:
        """The reasoning, joined."""
        return "".join(thinking_of(o, self.endpoint) for o in self.objects)

    @property
    def text_lines(self) -> int:
        """How many lines carry answer or reasoning text (each at most one token's worth)."""
        return sum(
            1 for o in self.objects if text_of(o, self.endpoint) or thinking_of(o, self.endpoint)
        )

    @property
    def tool_calls(self) -> list[Any]:
        """Every tool call of the stream, in order."""
        return [c for o in self.objects for c in tool_calls_of(o, self.endpoint)]


def describe_errors(exchange: Exchange) -> str | None:
    """The server's own words when a stream carries ``{"error": ...}`` lines, else None."""
    errors = exchange.error_lines
    if not errors:
        return None
    shown = "; ".join(repr(e.get("error")) for e in errors[:3])
    return f"the server reported an error in the stream: {shown}"


def assume_stream(exchange: Exchange, endpoint: Endpoint) -> Stream:
    """The stream, or SKIP when a precondition judged by the streaming area is missing."""
    __tracebackhide__ = True
    assume_status(exchange, 200)
    problem = describe_errors(exchange)
    assume(problem is None, problem or "")
    bad = exchange.parse_errors
    assume(
        not bad,
        f"line {exchange.lines.index(bad[0]) + 1 if bad else 0} of the stream is not JSON "
        f"({bad[0].parse_error if bad else ''}; judged by streaming.{endpoint}.lines)",
    )
    objects = exchange.values
    assume(
        bool(objects) and all(isinstance(o, dict) for o in objects),
        f"the stream has no lines or a line that is not an object "
        f"(judged by streaming.{endpoint}.lines)",
    )
    dicts: list[dict[str, Any]] = [o for o in objects if isinstance(o, dict)]
    done = [i for i, o in enumerate(dicts) if o.get("done") is True]
    assume(
        done == [len(dicts) - 1],
        f"the stream does not end with exactly one done:true line "
        f"(judged by streaming.{endpoint}.single-final)",
    )
    return Stream(exchange, endpoint, dicts)


def assume_single(exchange: Exchange) -> dict[str, Any]:
    """A ``stream: false`` answer as an object, or SKIP when it is not a 200 JSON object."""
    __tracebackhide__ = True
    assume_status(exchange, 200)
    value = assume_json_object(exchange)
    assume(
        "error" not in value,
        f"the server answered 200 with an error object: {value.get('error')!r}",
    )
    return value


def stream(client: Client, endpoint: Endpoint, body: dict[str, Any]) -> Stream:
    """Send a streamed request and read it with :func:`assume_stream`."""
    __tracebackhide__ = True
    return assume_stream(post(client, endpoint, {**body, "stream": True}), endpoint)


def single(client: Client, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
    """Send a ``stream: false`` request and read it with :func:`assume_single`."""
    __tracebackhide__ = True
    return assume_single(post(client, endpoint, {**body, "stream": False}))


def check_model_echo(client: Client, endpoint: Endpoint, model: str, api_version: str) -> None:
    """Every line's ``model`` is the request's string, however it was spelled.

    The name is sent without its ``:latest`` tag (a server that adds it back fails), and, from
    0.6.0 where names are matched case-insensitively (ref §7.3, §21), once more in upper case.
    """
    __tracebackhide__ = True
    spelled = model.removesuffix(":latest") if ":" in model.rsplit("/", 1)[-1] else model
    found = stream(client, endpoint, body_for(endpoint, spelled, num_predict=4))
    for number, line in enumerate(found.objects, start=1):
        check(
            line.get("model") == spelled,
            expected=f"model {spelled!r} on every line, exactly as sent",
            actual=f"line {number}: model {line.get('model')!r}",
            exchange=found.exchange,
        )
    if not in_range(api_version, "0.6.0"):
        return
    shouted = spelled.upper()
    exchange = post(client, endpoint, body_for(endpoint, shouted, stream=False, num_predict=2))
    if exchange.status == 404:
        # Some versions look chat models up case-sensitively (0.12.11 answers 404 where 0.24.0
        # answers): name matching is not this requirement's business, the echo was judged above.
        return
    value = assume_single(exchange)
    check(
        value.get("model") == shouted,
        expected=f"model {shouted!r}, exactly as sent (case kept)",
        actual=f"model {value.get('model')!r}",
        exchange=exchange,
    )


# --------------------------------------------------------------------------------------------
# Shared exchanges, one per run and model

_SHARED: dict[tuple[int, str, str], Exchange] = {}


def _shared(client: Client, endpoint: Endpoint, body: dict[str, Any]) -> Exchange:
    key = (id(client), endpoint, json.dumps(body, sort_keys=True))
    exchange = _SHARED.get(key)
    if exchange is None:
        exchange = post(client, endpoint, body)
        _SHARED[key] = exchange
    return exchange


def standard_stream(client: Client, endpoint: Endpoint, model: str) -> Exchange:
    """The run's streamed answer to :data:`PROMPT` (20 tokens at most, greedy, seeded)."""
    return _shared(client, endpoint, body_for(endpoint, model, stream=True))


def standard_single(client: Client, endpoint: Endpoint, model: str) -> Exchange:
    """The same request as :func:`standard_stream` with ``stream: false``."""
    return _shared(client, endpoint, body_for(endpoint, model, stream=False))


#: A tool every tools model can be asked to call, with one required string argument.
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "the city's name"}},
            "required": ["city"],
        },
    },
}
TOOL_PROMPT = "What is the weather in Paris right now? Use the get_weather tool."


def no_thinking(api_version: str) -> dict[str, Any]:
    """``think: false`` where the field exists (0.9+), so a thinking model spends the small
    token bound on the answer being judged rather than on reasoning; {} before."""
    return {"think": False} if in_range(api_version, "0.9.0") else {}


def tool_exchange(client: Client, model: str, api_version: str, *, stream: bool) -> Exchange:
    """The run's chat request that invites a call of :data:`WEATHER_TOOL` (cached)."""
    body = chat_body(
        model,
        TOOL_PROMPT,
        stream=stream,
        num_predict=MAX_PREDICT,
        tools=[WEATHER_TOOL],
        **no_thinking(api_version),
    )
    return _shared(client, "chat", body)


# --------------------------------------------------------------------------------------------
# Checks generate and chat share (each endpoint's test names its own requirement)

#: A JSON Schema small models can fill in within the token bound.
ANSWER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}


def check_same_answer_twice(client: Client, endpoint: Endpoint, body: dict[str, Any]) -> None:
    """The same ``stream: false`` request, sent twice, gets the same text (greedy, seeded)."""
    __tracebackhide__ = True
    field = TEXT_FIELD[endpoint]
    first = assume_single(post(client, endpoint, body))
    second_exchange = post(client, endpoint, body)
    second = assume_single(second_exchange)
    check(
        raw_text(first, endpoint) == raw_text(second, endpoint),
        expected=f"the same {field} twice: {raw_text(first, endpoint)!r}",
        actual=f"second {field} {raw_text(second, endpoint)!r}",
        exchange=second_exchange,
    )


def _ended_answer(client: Client, endpoint: Endpoint, body: dict[str, Any]) -> tuple[Exchange, str]:
    """The text of a ``stream: false`` answer that must end by itself, or SKIP when it was cut
    off (a cut answer cannot be judged as complete JSON)."""
    __tracebackhide__ = True
    exchange = post(client, endpoint, body)
    value = assume_single(exchange)
    assume(
        value.get("done_reason") == "stop",
        f"the answer ended with done_reason {value.get('done_reason')!r}, not stop: "
        f"cut off before it was complete, it cannot be judged",
    )
    text = raw_text(value, endpoint)
    assume(isinstance(text, str), f"{TEXT_FIELD[endpoint]} {text!r} is not a string")
    return exchange, str(text)


def check_json_format(
    client: Client,
    endpoint: Endpoint,
    model: str,
    api_version: str,
    schema: dict[str, Any] | None = None,
) -> None:
    """``format: "json"`` gives text that parses as JSON; ``format: <schema>`` (``schema``
    given) gives JSON valid against the schema."""
    __tracebackhide__ = True
    form: str | dict[str, Any] = "json" if schema is None else schema
    if schema is None:
        prompt = "Give the colour of the sky as a JSON object."
    else:
        prompt = "Answer in JSON: what colour is the sky?"
    body = body_for(
        endpoint,
        model,
        prompt,
        stream=False,
        num_predict=MAX_PREDICT,
        format=form,
        **no_thinking(api_version),
    )
    exchange, text = _ended_answer(client, endpoint, body)
    field = TEXT_FIELD[endpoint]
    problem = None
    try:
        value = json.loads(text)
        if schema is not None:
            jsonschema.validate(value, schema)
    except (ValueError, jsonschema.ValidationError) as exc:
        problem = str(exc) if schema is None else str(exc).splitlines()[0]
    check(
        problem is None,
        expected=f"{field} that parses as JSON"
        if schema is None
        else f"JSON valid against {json.dumps(schema)}",
        actual=f"{field} {text!r}: {problem}",
        exchange=exchange,
    )


def check_nonempty_answer(exchange: Exchange, endpoint: Endpoint) -> None:
    """A 200 ``stream: false`` answer whose text is a non-empty string."""
    __tracebackhide__ = True
    expect_status(exchange, 200)
    value = expect_json_object(exchange)
    field = TEXT_FIELD[endpoint]
    text = raw_text(value, endpoint)
    check(
        isinstance(text, str) and text != "",
        expected=f"a non-empty {field}",
        actual=f"{field} {text!r}",
        exchange=exchange,
    )


def check_thinking_apart(client: Client, endpoint: Endpoint, model: str) -> None:
    """With ``think: true`` the reasoning arrives in its own field, with no tags in the text."""
    __tracebackhide__ = True
    body = body_for(endpoint, model, stream=True, num_predict=MAX_PREDICT, think=True)
    found = stream(client, endpoint, body)
    field = TEXT_FIELD[endpoint]
    check(
        found.thinking != "",
        expected=f"reasoning in {THINKING_FIELD[endpoint]}",
        actual=f"no thinking; {field} {found.text!r}",
        exchange=found.exchange,
    )
    check(
        "<think>" not in found.text and "</think>" not in found.text,
        expected=f"no thinking tags inside {field}",
        actual=f"{field} {found.text!r}",
        exchange=found.exchange,
    )


# --------------------------------------------------------------------------------------------
# Stop sequences chosen from the model's own answer


def pick_stop(text: str, avoid: str = "") -> tuple[str, str] | None:
    """A stop string from the middle of ``text`` and the text that must come before it.

    The string is a run of up to four non-space characters whose first occurrence in ``text`` is
    preceded by some non-space text, and that does not occur in ``avoid`` (e.g. the reasoning,
    which a server may match stop strings against too). None when no such string exists.
    """
    middle = len(text) // 2
    order = list(range(middle, len(text))) + list(range(middle - 1, 0, -1))
    for start in order:
        if text[start].isspace():
            continue
        end = start
        while end < len(text) and end - start < 4 and not text[end].isspace():
            end += 1
        stop = text[start:end]
        first = text.find(stop)
        if text[:first].strip() and stop not in avoid:
            return stop, text[:first]
    return None


@dataclass
class StopProbe:
    """The answer with a stop string taken from the unconstrained answer to the same request."""

    stop: str
    expected: str
    exchange: Exchange


_STOPS: dict[tuple[int, str, str], StopProbe] = {}


def stop_probe(client: Client, endpoint: Endpoint, model: str) -> StopProbe:
    """Ask again with ``options.stop`` set to a string from the middle of the standard answer.

    At temperature 0 with a fixed seed the model says the same thing until the stop string, so
    the answer must be exactly the text before its first occurrence. SKIPs when the standard
    answer is unusable (judged elsewhere) or too short to hold a stop string.
    """
    __tracebackhide__ = True
    key = (id(client), endpoint, model)
    probe = _STOPS.get(key)
    if probe is not None:
        return probe
    baseline = assume_stream(standard_stream(client, endpoint, model), endpoint)
    picked = pick_stop(baseline.text, avoid=baseline.thinking)
    assume(
        picked is not None,
        f"the model's answer {baseline.text!r} is too short to take a stop string from",
    )
    assert picked is not None
    stop, expected = picked
    body = body_for(endpoint, model, stream=True, extra_options={"stop": [stop]})
    probe = StopProbe(stop, expected, post(client, endpoint, body))
    _STOPS[key] = probe
    return probe


# --------------------------------------------------------------------------------------------
# Scratch models


def create_from_body(name: str, base: str, api_version: str, *, stream: bool) -> dict[str, Any]:
    """A body that creates ``name`` as a copy of ``base`` in the form the version understands.

    From 0.5.5 the request names the base in ``from``; before, it carried a Modelfile (and the
    target in ``name``), fields that newer servers no longer read (ref §11.1).
    """
    if in_range(api_version, None, "0.5.5"):
        return {"name": name, "modelfile": f"FROM {base}\n", "stream": stream}
    return {"model": name, "from": base, "stream": stream}


# --------------------------------------------------------------------------------------------
# The successor model (a tiny GGUF whose greedy output is known in advance)

#: The variant that never ends by itself: every answer is bounded by num_predict or a stop string.
SUCCESSOR_VARIANT = "cycle"
#: A template that renders the prompt alone, so a raw and a templated request see the same text.
IDENTITY_TEMPLATE = "{{ .Prompt }}"


def successor_text(rendered_prompt: str, num_predict: int) -> str:
    """What the successor model must answer to ``rendered_prompt`` under ``num_predict``."""
    from conformance.models.tiny_gguf import expected_completion

    text, _ = expected_completion(SUCCESSOR_VARIANT, rendered_prompt, num_predict=num_predict)
    return text


def _upload_successor(client: Client) -> tuple[str | None, Exchange | None]:
    """Make sure the target has the successor GGUF blob; its digest, or None and the failure."""
    from conformance.models.tiny_gguf import model_bytes, model_digest

    digest = model_digest(SUCCESSOR_VARIANT)
    head = client.head(f"/api/blobs/{digest}")
    if head.status == 200:
        return digest, None
    posted = client.post(
        f"/api/blobs/{digest}",
        content=model_bytes(SUCCESSOR_VARIANT),
        headers={"Content-Type": "application/octet-stream"},
    )
    if posted.status in (200, 201):
        return digest, None
    return None, posted


def create_successor(
    client: Client, name: str, api_version: str, template: str, system: str | None = None
) -> Exchange:
    """Create ``name`` from the successor GGUF with ``template`` (and ``system``).

    From 0.5.5 the blob is named in ``files``; older servers read a Modelfile that names it
    ``FROM @sha256:...`` (ref §11.1). SKIPs when the blob cannot be uploaded or the create fails:
    uploading and creating are judged by the blobs and lifecycle areas, not here.
    """
    __tracebackhide__ = True
    digest, failed = _upload_successor(client)
    if digest is None:
        assert failed is not None
        assume_status(failed, 200, 201)
    body: dict[str, Any]
    if in_range(api_version, None, "0.5.5"):
        modelfile = f'FROM @{digest}\nTEMPLATE """{template}"""\n'
        if system is not None:
            modelfile += f'SYSTEM """{system}"""\n'
        body = {"name": name, "modelfile": modelfile, "stream": False}
    else:
        body = {"model": name, "files": {"model.gguf": digest}, "template": template}
        if system is not None:
            body["system"] = system
        body["stream"] = False
    created = client.post("/api/create", json=body)
    assume_status(created, 200)
    return created


@dataclass
class SuccessorProbe:
    """The raw answer of a successor model with the identity template, and what was due."""

    prompt: str
    expected: str
    actual: str | None
    exchange: Exchange

    @property
    def ok(self) -> bool:
        """Whether the server continued the prompt exactly as the weights dictate."""
        return self.actual == self.expected


_PROBES: dict[int, SuccessorProbe] = {}
#: The raw prompt of the probe and how many tokens it asks for.
PROBE_PROMPT = "abc"
PROBE_PREDICT = 3


def probe_successor(
    client: Client, new_name: Callable[[], str], api_version: str
) -> SuccessorProbe:
    """Create a successor model once per run and ask it for a raw continuation of ``abc``.

    ``new_name`` supplies a scratch name if the model must still be created. The result is cached,
    so requirements that rely on the server running the model faithfully can check that once and
    skip (rather than fail again) when it does not.
    """
    __tracebackhide__ = True
    probe = _PROBES.get(id(client))
    if probe is not None:
        return probe
    name = new_name()
    create_successor(client, name, api_version, IDENTITY_TEMPLATE)
    body = generate_body(name, PROBE_PROMPT, stream=False, num_predict=PROBE_PREDICT, raw=True)
    exchange = post(client, "generate", body)
    value, _ = exchange.json()
    actual = None
    if (
        exchange.status == 200
        and isinstance(value, dict)
        and isinstance(value.get("response"), str)
    ):
        actual = value["response"]
    probe = SuccessorProbe(
        PROBE_PROMPT, successor_text(PROBE_PROMPT, PROBE_PREDICT), actual, exchange
    )
    _PROBES[id(client)] = probe
    return probe


def assume_successor_runs(client: Client, new_name: Callable[[], str], api_version: str) -> None:
    """SKIP unless the server continues the successor model as its weights dictate."""
    __tracebackhide__ = True
    probe = probe_successor(client, new_name, api_version)
    assume(
        probe.ok,
        f"the server does not run the suite's successor model faithfully (raw {probe.prompt!r} "
        f"gave {probe.actual!r}, not {probe.expected!r}; judged by generate.successor.predicted)",
    )


# --------------------------------------------------------------------------------------------
# Values

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def parse_rfc3339(value: object) -> int | None:
    """Nanoseconds since the Unix epoch of an RFC 3339 date-time, or None if it is not one.

    Written out rather than ``datetime.fromisoformat`` because Go writes up to nine fractional
    digits, which would otherwise be rounded, and ordering checks need every nanosecond.
    """
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    fraction = (match[7] or "").ljust(9, "0")
    try:
        moment = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError:
        return None
    if match[8] is None:
        if int(match[10]) > 23 or int(match[11]) > 59:
            return None
        offset = (int(match[10]) * 60 + int(match[11])) * 60
        moment -= dt.timedelta(seconds=offset if match[9] == "+" else -offset)
    return int(moment.timestamp()) * 1_000_000_000 + int(fraction)


def is_json_int(value: object) -> TypeGuard[int]:
    """A JSON integer (Python's json gives int for ``12`` and float for ``12.0``/``1e3``)."""
    return isinstance(value, int) and not isinstance(value, bool)


def same_model(a: str, b: str) -> bool:
    """Whether two model names mean the same model (case-insensitive; missing tag = latest)."""

    def norm(name: str) -> str:
        name = name.strip().lower()
        return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"

    return norm(a) == norm(b)


def ps_entries_of(ps: Exchange, model: str) -> list[dict[str, Any]] | None:
    """The entries of an ``/api/ps`` answer that name ``model`` (see :func:`same_model`); None
    when the answer holds no model list."""
    value, _ = ps.json()
    models = value.get("models") if isinstance(value, dict) else None
    if not isinstance(models, list):
        return None
    return [
        m
        for m in models
        if isinstance(m, dict)
        and any(same_model(str(m.get(k, "")), model) for k in ("name", "model"))
    ]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def tiny_png_base64(size: int = 32) -> str:
    """A small RGB checkerboard PNG, base64-encoded as the API's ``images`` entries are."""
    rows = bytearray()
    for y in range(size):
        rows.append(0)  # filter: none
        for x in range(size):
            light = (x // 8 + y // 8) % 2 == 0
            rows += bytes((230, 230, 230) if light else (40, 90, 200))
    png = b"\x89PNG\r\n\x1a\n"
    png += _png_chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
    png += _png_chunk(b"IDAT", zlib.compress(bytes(rows)))
    png += _png_chunk(b"IEND", b"")
    return base64.b64encode(png).decode("ascii")


def stat_keys(obj: Mapping[str, Any], keys: Iterable[str] = STAT_FIELDS) -> list[str]:
    """Which of ``keys`` an object carries."""
    return [k for k in keys if k in obj]
