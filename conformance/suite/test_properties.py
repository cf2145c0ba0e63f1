"""Property-based checks: requests drawn from the contract, and requests broken on purpose.

The other areas probe the cases someone thought of. Here hypothesis draws requests from the same
JSON Schemas that document the API (``schemas/*.request.schema.json``) and from an OpenAPI view of
them (schemathesis), so combinations nobody wrote down get sent too: every schema-valid request
must be answered 200 with lines that hold to the response schemas, and a request whose known field
has the wrong JSON type, or a body that is not JSON at all, must be a client error with a JSON
error object; never a 5xx, never a hang.

Only endpoints that cannot destroy anything are exercised (generate, chat, embed, embeddings,
show, and HEAD on blobs). Drawn requests are constrained after drawing where a value depends on
the target or would change it: the model is the suite's model for the capability, generation is
bounded (``options.num_predict`` at most 5, sampling options clamped, no ``num_ctx``),
``keep_alive`` is the default 5 minutes, and fields whose effect is judged elsewhere or that need
a model feature (``suffix``, ``template``, ``context``, ``images``, ``tools``, ``think``
other than false, non-JSON ``format``) are left out.

Budget and replay: each property runs ``--conformance-examples`` examples (default:
``OLLAMA_CONFORMANCE_EXAMPLES``, else 25; ``ollama-conformance run --examples N``) with
no example database, no deadline and no shrinking (every shrink step is another request to a
server that may be slow; set ``OLLAMA_CONFORMANCE_SHRINK=1`` to shrink). Every failure names the
seed and hypothesis's reproduction blob: rerun with ``--hypothesis-seed=N`` (or add ``@seed(N)``)
to draw the same requests again.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import os
import random
import re
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

import hypothesis
import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis.errors import FlakyFailure
from hypothesis_jsonschema import from_schema

from conformance.client import Bounds, Client
from conformance.contract import bundled, iter_stream_issues, schemas_dir, validate
from conformance.exchange import Exchange
from conformance.plugin import run_state
from conformance.suite.bad_inputs import installed_or_absent
from conformance.suite.scratch import ABSENT_MODEL
from conformance.target import Target
from conformance.verdict import (
    RequirementFailure,
    assume,
    check,
    expect_json_object,
    expect_status,
    expect_valid,
)
from conformance.versions import in_range

#: Environment variable with the number of examples per property (hypothesis max_examples).
EXAMPLES_ENV = "OLLAMA_CONFORMANCE_EXAMPLES"
DEFAULT_EXAMPLES = 25
#: Environment variable that turns hypothesis's shrinking back on ("1").
SHRINK_ENV = "OLLAMA_CONFORMANCE_SHRINK"

#: The most tokens a drawn request may generate.
MAX_NUM_PREDICT = 5
#: Drawn strings are cut to this many UTF-8 bytes: a byte-level tokenizer makes one token of
#: each byte, and four messages must stay far inside a 2048-token context.
MAX_TEXT_BYTES = 80
MAX_ITEMS = 4
#: Tool calls in a drawn chat history are kept only when their JSON is at most this long.
MAX_TOOL_CALLS_BYTES = 200
#: One property request may take this long at most (the run's --total-timeout can lower it).
PROPERTY_TOTAL_TIMEOUT = 60.0

#: The first version with each endpoint that is younger than the API itself.
ENDPOINT_SINCE: dict[str, str] = {"chat": "0.1.14", "embed": "0.2.6"}

#: Sampling options a drawn request keeps, clamped into ranges every runner accepts.
OPTION_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (0.0, 2.0),
    "seed": (0, 2**31 - 1),
    "top_k": (1, 100),
    "top_p": (0.05, 1.0),
    "min_p": (0.0, 0.5),
    "typical_p": (0.05, 1.0),
    "repeat_penalty": (0.5, 2.0),
    "repeat_last_n": (0, 64),
    "presence_penalty": (0.0, 1.0),
    "frequency_penalty": (0.0, 1.0),
}

#: Go's blob digest syntax (reference §16).
DIGEST = re.compile(r"sha256[:-][0-9a-fA-F]{64}")
#: Characters that stay one path segment, unencoded, on every HTTP stack.
PATH_SAFE = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:"


# --------------------------------------------------------------------------------------------
# Running a property: settings, seed, failure text


#: The run's ``--conformance-examples``, set around each test of this module.
_RUN_EXAMPLES: ContextVar[int | None] = ContextVar("run_examples", default=None)


@pytest.fixture(autouse=True)
def _run_examples(request: pytest.FixtureRequest) -> Iterator[None]:
    """Make :func:`example_count` answer the plugin's ``--conformance-examples``."""
    state = run_state(request.config)
    token = _RUN_EXAMPLES.set(state.settings.examples if state is not None else None)
    yield
    _RUN_EXAMPLES.reset(token)


def example_count() -> int:
    """How many examples each property draws: ``--conformance-examples``, else the
    ``OLLAMA_CONFORMANCE_EXAMPLES`` environment variable, else 25."""
    configured = _RUN_EXAMPLES.get()
    if configured is not None:
        return configured
    raw = os.environ.get(EXAMPLES_ENV, "").strip()
    if not raw:
        return DEFAULT_EXAMPLES
    try:
        value = int(raw)
    except ValueError:
        raise pytest.UsageError(
            f"{EXAMPLES_ENV}={raw!r} is not a whole number; set e.g. {EXAMPLES_ENV}=25"
        ) from None
    if value < 1:
        raise pytest.UsageError(f"{EXAMPLES_ENV} must be at least 1, got {value}")
    return value


def run_property(
    body: Callable[..., None], *strategies: st.SearchStrategy[Any], examples: int | None = None
) -> None:
    """Run ``body`` under hypothesis with the suite's settings; failures name how to replay.

    The seed is chosen here (or taken from ``--hypothesis-seed``) so every failure message can
    say it; hypothesis's ``@reproduce_failure`` blob and the falsifying example come along.
    """
    __tracebackhide__ = True
    forced = hypothesis.core.global_force_seed
    seed = forced if forced is not None else random.getrandbits(63)
    phases = [Phase.explicit, Phase.reuse, Phase.generate]
    if os.environ.get(SHRINK_ENV, "").strip() == "1":
        phases.append(Phase.shrink)
    drawn: list[str] = []

    @functools.wraps(body)
    def recorded(*args: Any, **kwargs: Any) -> None:
        shown = [_short_repr(a) for a in args] + [
            f"{k}={_short_repr(v)}" for k, v in kwargs.items()
        ]
        drawn[:] = [f"drawn: {', '.join(shown)}"]
        body(*args, **kwargs)

    test = settings(
        max_examples=examples or example_count(),
        deadline=None,
        database=None,
        derandomize=False,
        print_blob=True,
        report_multiple_bugs=False,
        phases=phases,
        suppress_health_check=list(HealthCheck),
    )(hypothesis.given(*strategies)(recorded))
    test = hypothesis.seed(seed)(test)
    try:
        test()
    except RequirementFailure as exc:
        raise _with_replay(exc, seed, exc, drawn) from None
    except FlakyFailure as group:
        inner = next((e for e in group.exceptions if isinstance(e, RequirementFailure)), None)
        if inner is None:
            raise
        raise _with_replay(inner, seed, group, drawn, flaky=True) from None


def _short_repr(value: object, limit: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _with_replay(
    exc: RequirementFailure,
    seed: int,
    source: BaseException,
    drawn: list[str],
    *,
    flaky: bool = False,
) -> RequirementFailure:
    notes = [str(n) for n in getattr(source, "__notes__", []) or getattr(exc, "__notes__", [])]
    replay = [f"replay: rerun with --hypothesis-seed={seed} (or decorate with @seed({seed}))"]
    if flaky:
        replay.append("the failure did not repeat when hypothesis replayed it (flaky server?)")
    replay += drawn
    # hypothesis's own "Failing test case" line is left out: the drawn values are above.
    replay += [n.strip() for n in notes if n.strip() and "Failing test case" not in n]
    return RequirementFailure(
        expected=exc.expected,
        actual=exc.actual + "\n" + "\n".join(replay),
        curl=exc.curl,
        requirement=exc.requirement,
        title=exc.title,
    )


def property_bounds(client: Client) -> Bounds:
    """The run's bounds, with one request capped at :data:`PROPERTY_TOTAL_TIMEOUT` seconds."""
    total = min(client.bounds.total_timeout, PROPERTY_TOTAL_TIMEOUT)
    return client.bounds.with_overrides(
        total_timeout=total,
        first_line_timeout=min(client.bounds.first_line_timeout, total),
        max_gap=min(client.bounds.max_gap, total),
    )


# --------------------------------------------------------------------------------------------
# Drawing valid requests


def _cut(text: object) -> object:
    if not isinstance(text, str):
        return text
    return text.encode("utf-8")[:MAX_TEXT_BYTES].decode("utf-8", errors="ignore")


def bounded_options(drawn: object, *, generate: bool = True) -> dict[str, Any]:
    """The drawn options with only safe sampling keys, clamped, and num_predict at most 5."""
    source = drawn if isinstance(drawn, dict) else {}
    options: dict[str, Any] = {}
    for key, (low, high) in OPTION_RANGES.items():
        value = source.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not math.isfinite(value):
            continue
        clamped = min(max(value, low), high)
        options[key] = int(clamped) if isinstance(value, int) else float(clamped)
    stop = source.get("stop")
    if isinstance(stop, list):
        kept = [s[:8] for s in stop if isinstance(s, str) and s][:MAX_ITEMS]
        if kept:
            options["stop"] = kept
    if generate:
        wanted = source.get("num_predict")
        n = wanted if isinstance(wanted, int) and not isinstance(wanted, bool) else MAX_NUM_PREDICT
        options["num_predict"] = min(max(n, 1), MAX_NUM_PREDICT)
    return options


def _common(request: dict[str, Any], model: str, *, generate: bool = True) -> dict[str, Any]:
    request["model"] = model
    if "keep_alive" in request:
        request["keep_alive"] = "5m"  # never unload, never pin a model forever
    if generate or "options" in request:
        request["options"] = bounded_options(request.get("options"), generate=generate)
    if "format" in request and request["format"] not in (None, "", "json"):
        request["format"] = "json"  # a JSON Schema object is judged by generate/chat.format.*
    if "think" in request:
        request["think"] = False  # true needs the thinking capability (judged elsewhere)
    return request


def constrain_generate(drawn: dict[str, Any], model: str) -> dict[str, Any]:
    """A drawn generate request made safe to send to ``model``."""
    request = dict(drawn)
    for key in ("suffix", "template", "context", "images", "_debug_render_only"):
        request.pop(key, None)
    for key in ("width", "height", "steps"):  # image generation only
        request.pop(key, None)
    for key in ("prompt", "system"):
        if key in request:
            request[key] = _cut(request[key])
    return _common(request, model)


#: Message keys a drawn message keeps; images need a vision model and unknown keys are judged
#: by http.body.unknown-fields.
MESSAGE_KEYS = ("role", "content", "thinking", "tool_calls", "tool_name", "tool_call_id")


def _message(drawn: dict[str, Any]) -> dict[str, Any]:
    message = {k: _cut(v) for k, v in drawn.items() if k in MESSAGE_KEYS}
    calls = message.get("tool_calls")
    if calls is not None and len(json.dumps(calls).encode("utf-8")) > MAX_TOOL_CALLS_BYTES:
        del message["tool_calls"]
    return message


def constrain_chat(drawn: dict[str, Any], model: str) -> dict[str, Any]:
    """A drawn chat request made safe to send to ``model``."""
    request = dict(drawn)
    for key in ("tools", "_debug_render_only"):
        request.pop(key, None)
    messages = request.get("messages")
    if isinstance(messages, list):
        messages = [_message(m) for m in messages[:MAX_ITEMS]]
        if messages and not any(m.get("content") for m in messages):
            # A history without any content can render to an empty prompt, which real Ollama
            # answers with 500 "no input provided" (seen on 0.12.11 and 0.24.0).
            messages[-1]["content"] = "a"
        request["messages"] = messages
    return _common(request, model)


def constrain_embed(drawn: dict[str, Any], model: str) -> dict[str, Any]:
    """A drawn embed request; empty strings are left out of lists (real Ollama answers 500)."""
    request = dict(drawn)
    for key in ("truncate", "dimensions"):
        request.pop(key, None)
    value = request.get("input")
    if isinstance(value, str):
        request["input"] = _cut(value)
    elif isinstance(value, list):
        request["input"] = [_cut(s) for s in value if s][:MAX_ITEMS]
    return _common(request, model, generate=False)


def constrain_embeddings(drawn: dict[str, Any], model: str) -> dict[str, Any]:
    """A drawn legacy embeddings request."""
    request = dict(drawn)
    if "prompt" in request:
        request["prompt"] = _cut(request["prompt"])
    return _common(request, model, generate=False)


def constrain_show(drawn: dict[str, Any], model: str) -> dict[str, Any]:
    """A drawn show request about ``model`` (the deprecated ``name`` is set to it as well)."""
    request = dict(drawn)
    request["model"] = model
    if "name" in request:
        request["name"] = model
    for key in ("system", "template"):
        if key in request:
            request[key] = _cut(request[key])
    if "options" in request:
        request["options"] = bounded_options(request["options"], generate=False)
    return request


CONSTRAIN: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "generate": constrain_generate,
    "chat": constrain_chat,
    "embed": constrain_embed,
    "embeddings": constrain_embeddings,
    "show": constrain_show,
}


#: The field that makes a request do real work, and how to make it non-empty in the schema.
#: hypothesis-jsonschema favours small objects, so without this most drawn generate requests
#: would be empty-prompt loads; three in four draws come from the narrowed schema instead.
WORK_FIELD: dict[str, tuple[str, dict[str, Any]]] = {
    "generate": ("prompt", {"minLength": 1}),
    "chat": ("messages", {"minItems": 1}),
    "embed": ("input", {}),
    "embeddings": ("prompt", {"minLength": 1}),
}


def _narrowed(schema: dict[str, Any], name: str, extra: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with ``name`` required and ``extra`` added to its property schema."""
    narrowed = json.loads(json.dumps(schema))
    narrowed["required"] = sorted({*narrowed.get("required", []), name})
    narrowed["properties"][name] = {**narrowed["properties"][name], **extra}
    return narrowed


def _top_field(path: str) -> str | None:
    """``$.messages[0].role`` -> ``messages``; ``$`` -> None."""
    match = re.match(r"\$\.([^.\[]+)", path)
    return match.group(1) if match else None


def fit_version(request: dict[str, Any], endpoint: str, version: str) -> dict[str, Any] | None:
    """``request`` without the fields the target's version does not know (generations.toml).

    An older server ignores such fields, but a request drawn "from the schema" should be one
    that version documents. None when what breaks the contract is not an optional field.
    """
    for _ in range(3):
        issues = validate(f"{endpoint}.request", request, version)
        if not issues:
            return request
        fields = {_top_field(issue.path) for issue in issues}
        if None in fields or "model" in fields:
            return None
        request = {k: v for k, v in request.items() if k not in fields}
    return None


def valid_requests(endpoint: str, model: str, version: str) -> st.SearchStrategy[dict[str, Any]]:
    """Requests drawn from ``<endpoint>.request``, constrained for ``model`` and ``version``."""
    constrain = CONSTRAIN[endpoint]
    schema = bundled(f"{endpoint}.request")
    drawn = from_schema(schema)
    if endpoint in WORK_FIELD:
        working = from_schema(_narrowed(schema, *WORK_FIELD[endpoint]))
        drawn = st.sampled_from((True, True, True, False)).flatmap(
            lambda work: working if work else from_schema(schema)
        )
    fitted = drawn.map(
        lambda r: fit_version(constrain(dict(r), model), endpoint, version)  # type: ignore[arg-type]
    )
    return fitted.filter(lambda r: r is not None)  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Judging answers


def _line_problems(exchange: Exchange) -> list[str]:
    problems = [
        f"line {exchange.lines.index(line) + 1}: {line.parse_error}"
        for line in exchange.parse_errors
    ]
    problems += [f"error line {json.dumps(v)[:200]}" for v in exchange.error_lines]
    return problems


def judge_generation(exchange: Exchange, endpoint: str, api_version: str) -> None:
    """A schema-valid generate/chat request: 200, and every line (or the object) is valid."""
    __tracebackhide__ = True
    expect_status(exchange, 200)
    if exchange.read_as_lines:
        problems = _line_problems(exchange)
        check(
            not problems,
            expected="every line one JSON object, and no error after the 200",
            actual="; ".join(problems[:5]),
            exchange=exchange,
        )
        check(
            bool(exchange.values),
            expected="at least one line",
            actual="an empty NDJSON body",
            exchange=exchange,
        )
        issues = list(iter_stream_issues(endpoint, exchange.values, api_version))
        listed = "\n".join(f"line {i + 1}: {issue.message}" for i, issue in issues[:10])
        check(
            not issues,
            expected=f"every line a valid {endpoint}.chunk (done false) or {endpoint}.final",
            actual=f"{len(issues)} schema issue(s):\n{listed}",
            exchange=exchange,
        )
        return
    body = expect_json_object(exchange)
    expect_valid(f"{endpoint}.response", body, api_version, exchange)


def judge_client_error(exchange: Exchange, what: str) -> None:
    """A 4xx status and a JSON object whose ``error`` is a string."""
    __tracebackhide__ = True
    check(
        exchange.complete and exchange.status is not None and 400 <= exchange.status < 500,
        expected=f"a 4xx status (Ollama: 400) for {what}",
        actual=f"status {exchange.status}; body {exchange.text_preview(160)!r}",
        exchange=exchange,
    )
    value, _ = exchange.json()
    check(
        isinstance(value, dict) and isinstance(value.get("error"), str),
        expected='a JSON object {"error": "<message>"}',
        actual=f"Content-Type {exchange.headers.get('content-type')!r}, body "
        f"{exchange.text_preview(160)!r}",
        exchange=exchange,
    )


def _any_model(target: Target) -> str | None:
    for capability in ("completion", "embedding"):
        name = target.model_for(capability)
        if name:
            return name
    local = [m.name for m in target.models if not m.is_cloud]
    return local[0] if local else None


# --------------------------------------------------------------------------------------------
# Valid requests


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(
            "generate", marks=pytest.mark.requirement("properties.generate.valid-requests")
        ),
        pytest.param("chat", marks=pytest.mark.requirement("properties.chat.valid-requests")),
    ],
)
def test_drawn_generation_requests_are_answered(
    client: Client, model_for: Callable[[str], str], api_version: str, endpoint: str
) -> None:
    model = model_for("completion")
    bounds = property_bounds(client)

    def prop(request: dict[str, Any]) -> None:
        exchange = client.post(f"/api/{endpoint}", json=request, bounds=bounds)
        judge_generation(exchange, endpoint, api_version)

    run_property(prop, valid_requests(endpoint, model, api_version))


def _expected_vectors(request: dict[str, Any]) -> int:
    value = request.get("input")
    if isinstance(value, str):
        return 1 if value else 0
    if isinstance(value, list):
        return sum(1 for s in value if s)
    return 0


@pytest.mark.requirement("properties.embed.valid-requests")
def test_drawn_embed_requests_are_answered(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    model = model_for("embedding")
    bounds = property_bounds(client)

    def prop(request: dict[str, Any]) -> None:
        exchange = client.post("/api/embed", json=request, bounds=bounds)
        expect_status(exchange, 200)
        body = expect_json_object(exchange)
        expect_valid("embed.response", body, api_version, exchange)
        vectors = body.get("embeddings")
        wanted = _expected_vectors(request)
        count = len(vectors) if isinstance(vectors, list) else None
        check(
            count == wanted and all(isinstance(v, list) and v for v in vectors or []),
            expected=f"{wanted} non-empty vector(s), one per non-empty input",
            actual=f"{count} vector(s) of lengths "
            f"{[len(v) if isinstance(v, list) else v for v in (vectors or [])][:8]}",
            exchange=exchange,
        )

    run_property(prop, valid_requests("embed", model, api_version))


@pytest.mark.requirement("properties.embeddings.valid-requests")
def test_drawn_embeddings_requests_are_answered(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    model = model_for("embedding")
    bounds = property_bounds(client)

    def prop(request: dict[str, Any]) -> None:
        exchange = client.post("/api/embeddings", json=request, bounds=bounds)
        expect_status(exchange, 200)
        body = expect_json_object(exchange)
        expect_valid("embeddings.response", body, api_version, exchange)
        vector = body.get("embedding")
        if request.get("prompt"):
            check(
                isinstance(vector, list) and len(vector) > 0,
                expected="a non-empty vector for a non-empty prompt",
                actual=f"embedding {json.dumps(vector)[:80]}",
                exchange=exchange,
            )

    run_property(prop, valid_requests("embeddings", model, api_version))


@pytest.mark.requirement("properties.show.valid-requests")
def test_drawn_show_requests_are_answered(client: Client, target: Target, api_version: str) -> None:
    model = _any_model(target)
    assume(model is not None, "the target lists no local model to show")
    assert model is not None
    bounds = property_bounds(client)

    def prop(request: dict[str, Any]) -> None:
        exchange = client.post("/api/show", json=request, bounds=bounds)
        expect_status(exchange, 200)
        body = expect_json_object(exchange)
        expect_valid("show.response", body, api_version, exchange)

    run_property(
        prop, valid_requests("show", model, api_version), examples=min(example_count(), 10)
    )


@pytest.mark.requirement("properties.timing.no-hang")
def test_drawn_streams_end_with_a_final_line(
    client: Client, model_for: Callable[[str], str], api_version: str
) -> None:
    model = model_for("completion")
    bounds = property_bounds(client)
    streamed = {
        endpoint: valid_requests(endpoint, model, api_version).map(
            lambda r: {k: v for k, v in r.items() if k != "stream"}
        )
        for endpoint in ("generate", "chat")
    }

    def prop(case: tuple[str, dict[str, Any]]) -> None:
        endpoint, request = case
        exchange = client.post(f"/api/{endpoint}", json=request, bounds=bounds)
        check(
            exchange.complete,
            expected="a complete answer within the time bounds",
            actual=exchange.problem or "no answer",
            exchange=exchange,
        )
        if not exchange.read_as_lines:
            return  # a single object (e.g. a load answer) ends by itself
        last = exchange.values[-1] if exchange.values else None
        ended = isinstance(last, dict) and (last.get("done") is True or "error" in last)
        check(
            ended,
            expected="the stream's last line is a done:true object or an error object",
            actual=f"{len(exchange.lines)} line(s), the last "
            + (repr(exchange.lines[-1].raw[:160]) if exchange.lines else "missing"),
            exchange=exchange,
        )

    cases = st.sampled_from(sorted(streamed)).flatmap(lambda e: st.tuples(st.just(e), streamed[e]))
    run_property(prop, cases)


# --------------------------------------------------------------------------------------------
# Invalid requests: wrong JSON types, non-JSON bodies


#: Fields whose wrong JSON type is a decode error (400) on real Ollama, with the JSON type they
#: take and the first version that reads them (an older server ignores an unknown field).
#: Left out on purpose: options values, format, keep_alive, think (custom decoders; some wrong
#: values are 500 on real Ollama, reference §19), embed input (a 400 of its own).
WRONG_TYPE_FIELDS: dict[str, dict[str, tuple[str, str | None]]] = {
    "generate": {
        "model": ("string", None),
        "prompt": ("string", None),
        "system": ("string", None),
        "template": ("string", None),
        "context": ("array", None),
        "stream": ("boolean", "0.1.2"),
        "raw": ("boolean", "0.1.9"),
        "images": ("array", "0.1.15"),
        "options": ("object", None),
    },
    "chat": {
        "model": ("string", "0.1.14"),
        "messages": ("array", "0.1.14"),
        "stream": ("boolean", "0.1.14"),
        "options": ("object", "0.1.14"),
    },
    "embed": {"model": ("string", "0.2.6"), "options": ("object", "0.2.6")},
    "embeddings": {
        "model": ("string", None),
        "prompt": ("string", None),
        "options": ("object", None),
    },
    "show": {
        "model": ("string", "0.1.18"),
        "name": ("string", None),
        "system": ("string", None),
        "options": ("object", None),
    },
}

_SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "string": st.text(max_size=8),
    "boolean": st.booleans(),
    "number": st.one_of(
        st.integers(-(2**40), 2**40), st.floats(allow_nan=False, allow_infinity=False)
    ),
    "array": st.lists(st.one_of(st.integers(-9, 9), st.text(max_size=4)), max_size=3),
    "object": st.dictionaries(st.text(max_size=4), st.integers(-9, 9), max_size=2),
}


def wrong_type(json_type: str) -> st.SearchStrategy[Any]:
    """Any non-null JSON value of a different type than ``json_type``."""
    return st.one_of([s for name, s in _SCALARS.items() if name != json_type])


@pytest.mark.requirement("properties.body.invalid-types")
def test_wrong_field_types_are_client_errors(
    client: Client, target: Target, api_version: str
) -> None:
    bounds = property_bounds(client)
    models = {
        "generate": installed_or_absent(target, "completion"),
        "chat": installed_or_absent(target, "completion"),
        "embed": installed_or_absent(target, "embedding"),
        "embeddings": installed_or_absent(target, "embedding"),
        "show": _any_model(target) or ABSENT_MODEL,
    }
    fields = {
        endpoint: sorted(
            name for name, (_, since) in table.items() if in_range(api_version, since, None)
        )
        for endpoint, table in WRONG_TYPE_FIELDS.items()
        if in_range(api_version, ENDPOINT_SINCE.get(endpoint), None)
    }

    @st.composite
    def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any], str]:
        endpoint = draw(st.sampled_from(sorted(fields)))
        request = draw(valid_requests(endpoint, models[endpoint], api_version))
        name = draw(st.sampled_from(fields[endpoint]))
        request[name] = draw(wrong_type(WRONG_TYPE_FIELDS[endpoint][name][0]))
        return endpoint, request, name

    def prop(case: tuple[str, dict[str, Any], str]) -> None:
        endpoint, request, name = case
        exchange = client.post(f"/api/{endpoint}", json=request, bounds=bounds)
        kind = type(request[name]).__name__
        judge_client_error(exchange, f"{name} given a JSON {kind} on /api/{endpoint}")

    run_property(prop, mutated())


#: Endpoints whose body is one JSON object; none of them changes the target.
JSON_ENDPOINTS = ("generate", "chat", "embed", "embeddings", "show")

NOT_JSON_SAMPLES = (
    b"",
    b"   ",
    b'{"model":',
    b"hello",
    b"[]",
    b'"text"',
    b"42",
    b"true",
    b"\xef\xbb\xbf{}",
    b"{'model': 'x'}",
)


def decodes_to_object(body: bytes) -> bool:
    """Whether Go's decoder would read an object or null first (then it is not a body error).

    Go reads only the first JSON value and ignores the rest (reference §1.3), so ``{}garbage``
    is a valid empty request; such bodies are left out of the property.
    """
    text = body.decode("utf-8", errors="replace").lstrip(" \t\n\r")

    def refuse(name: str) -> None:
        raise ValueError(name)

    try:
        value, _ = json.JSONDecoder(parse_constant=refuse).raw_decode(text)
    except ValueError:
        return False
    return value is None or isinstance(value, dict)


@pytest.mark.requirement("properties.body.random-bytes")
def test_non_json_bodies_are_client_errors(client: Client, api_version: str) -> None:
    bounds = property_bounds(client)
    endpoints = [e for e in JSON_ENDPOINTS if in_range(api_version, ENDPOINT_SINCE.get(e), None)]
    bodies = st.one_of(st.sampled_from(NOT_JSON_SAMPLES), st.binary(max_size=48)).filter(
        lambda b: not decodes_to_object(b)
    )

    def prop(endpoint: str, body: bytes) -> None:
        exchange = client.post(
            f"/api/{endpoint}",
            content=body,
            headers={"Content-Type": "application/json"},
            bounds=bounds,
        )
        judge_client_error(exchange, f"a body that is not a JSON object: {body[:40]!r}")

    run_property(prop, st.sampled_from(endpoints), bodies)


# --------------------------------------------------------------------------------------------
# Arbitrary names and digests


def names() -> st.SearchStrategy[str]:
    """Well-formed model names and arbitrary strings, without cloud or local routing suffixes."""
    pattern = bundled("show.request")["properties"]["model"]["pattern"]
    return (
        st.one_of(st.from_regex(pattern, fullmatch=True), st.text(max_size=40))
        .filter(lambda n: len(n) <= 200)
        .filter(lambda n: "cloud" not in n.lower() and ":local" not in n.lower())
    )


@pytest.mark.requirement("properties.names.generate")
def test_arbitrary_names_on_generate(client: Client, target: Target) -> None:
    bounds = property_bounds(client)

    def prop(name: str) -> None:
        hypothesis.assume(not target.has_model(name.strip()))
        request = {"model": name, "prompt": "a", "stream": False, "options": {"num_predict": 1}}
        exchange = client.post("/api/generate", json=request, bounds=bounds)
        check(
            exchange.status in (400, 404),
            expected=f"status 400 or 404 for model {name!r}, which is not installed",
            actual=f"status {exchange.status}; body {exchange.text_preview(160)!r}",
            exchange=exchange,
        )
        judge_client_error(exchange, f"model {name!r}")

    run_property(prop, names())


@pytest.mark.requirement("properties.names.show")
def test_arbitrary_names_on_show(client: Client) -> None:
    bounds = property_bounds(client)

    def prop(name: str) -> None:
        exchange = client.post("/api/show", json={"model": name}, bounds=bounds)
        check(
            exchange.status in (200, 400, 404),
            expected=f"status 200, 400 or 404 for model {name!r}",
            actual=f"status {exchange.status}; body {exchange.text_preview(160)!r}",
            exchange=exchange,
        )
        if exchange.status != 200:
            judge_client_error(exchange, f"model {name!r}")

    run_property(prop, names())


def digests() -> st.SearchStrategy[str]:
    """Path segments: well-formed digests (either separator, any hex case) and arbitrary ones."""
    return st.one_of(
        st.from_regex(r"\Asha256[:-][0-9a-fA-F]{64}\Z"),
        st.text(alphabet=PATH_SAFE, min_size=1, max_size=80).filter(lambda s: s not in (".", "..")),
    )


@pytest.mark.requirement("properties.blobs.digests")
def test_blob_digest_paths(client: Client) -> None:
    bounds = property_bounds(client)

    def prop(digest: str) -> None:
        exchange = client.head(f"/api/blobs/{digest}", bounds=bounds)
        wanted = (200, 404) if DIGEST.fullmatch(digest) else (400,)
        check(
            exchange.status in wanted,
            expected=f"status {' or '.join(map(str, wanted))} for HEAD /api/blobs/{digest}",
            actual=f"status {exchange.status}",
            exchange=exchange,
        )

    run_property(prop, digests())


# --------------------------------------------------------------------------------------------
# schemathesis over schemas/openapi.yaml


#: The operations that neither stream nor change anything, with the first version that has them.
OPENAPI_OPERATIONS: tuple[tuple[str, str, str | None], ...] = (
    ("GET", "/", None),
    ("HEAD", "/", "0.0.13"),
    ("GET", "/api/version", "0.1.14"),
    ("HEAD", "/api/version", "0.1.14"),
    ("GET", "/api/tags", None),
    ("HEAD", "/api/tags", "0.0.20"),
    ("GET", "/api/ps", "0.1.38"),
    ("POST", "/api/show", None),
    ("HEAD", "/api/blobs/{digest}", "0.1.10"),
)


@functools.cache
def _openapi_schema() -> Any:
    import schemathesis

    return schemathesis.openapi.from_path(str(schemas_dir() / "openapi.yaml"))


def _openapi_operation(method: str, path: str) -> Any:
    for result in _openapi_schema().get_all_operations():
        operation = result.ok()
        if operation.method.upper() == method and operation.path == path:
            return operation
    raise LookupError(f"{method} {path} is not in openapi.yaml")


def _as_response(exchange: Exchange) -> Any:
    import httpx

    response = httpx.Response(
        exchange.status or 0,
        headers=exchange.headers,
        content=exchange.body,
        request=httpx.Request(exchange.method, exchange.url),
    )
    response.elapsed = dt.timedelta(seconds=exchange.finished_after or 0.0)
    return response


@pytest.mark.requirement("properties.openapi.positive")
@pytest.mark.parametrize(
    ("method", "path", "since"),
    OPENAPI_OPERATIONS,
    ids=[f"{m} {p}" for m, p, _ in OPENAPI_OPERATIONS],
)
def test_openapi_operation(
    client: Client,
    target: Target,
    api_version: str,
    method: str,
    path: str,
    since: str | None,
) -> None:
    assume(in_range(api_version, since, None), f"{method} {path} exists from Ollama {since}")
    from schemathesis.checks import (
        content_type_conformance,
        not_a_server_error,
        response_schema_conformance,
        status_code_conformance,
    )
    from schemathesis.core.failures import FailureGroup

    operation = _openapi_operation(method, path)
    model = _any_model(target) if path == "/api/show" else None
    if path == "/api/show":
        assume(model is not None, "the target lists no local model to show")
    bounds = property_bounds(client)
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]

    def prop(case: Any) -> None:
        body: object = None
        if model is not None:
            case.body = constrain_show(dict(case.body or {}), model)
            body = case.body
        target_path = case.formatted_path
        if body is None:
            exchange = client.request(method, target_path, bounds=bounds)
        else:
            exchange = client.request(method, target_path, json=body, bounds=bounds)
        check(
            exchange.complete,
            expected="a complete answer within the time bounds",
            actual=exchange.problem or "no answer",
            exchange=exchange,
        )
        try:
            case.validate_response(_as_response(exchange), checks=checks)
        except (AssertionError, FailureGroup) as exc:  # one failure, or schemathesis's group
            problem = str(exc)
        else:
            return
        check(
            False,
            expected=f"an answer that {method} {path} in openapi.yaml documents (status, "
            "Content-Type, body schema) and no 5xx",
            actual=problem[:1500],
            exchange=exchange,
        )

    parameterless = "{" not in path and method != "POST"
    run_property(prop, operation.as_strategy(), examples=3 if parameterless else None)
