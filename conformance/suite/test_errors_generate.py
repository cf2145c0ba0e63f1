"""Refusals of ``POST /api/generate``: names, parameters and capabilities, with exact wording.

Clients tell "pull the model first" from "fix your request" by the status and the ``error``
string, so each check pins both, for the version range in which Ollama used that wording. Errors
raised while the body is read (bad ``images``, ``keep_alive``, ``options``, ``top_logprobs``) are
sent for a model that does not exist where the statement says the check comes before the model
lookup, which proves the order as well. Errors that need a loaded model (``format``, option
types, capabilities) use a model the target reports, and every such request is bounded to one
token in case a server accepts it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.suite.bad_inputs import (
    BOUNDED,
    bounded_generate,
    describe_answer,
    embedding_only_model,
    go_quote,
    installed_or_absent,
    model_without,
    qualified_name,
    send_generate,
)
from conformance.suite.scratch import ABSENT_MODEL, INVALID_NAME, expect_error
from conformance.target import Target
from conformance.verdict import check, expect_json_object

ModelFor = Callable[[str], str]

#: Go's %q of the raw format bytes ``"xml"``, inside Ollama's sentence.
FORMAT_XML_ERROR = 'invalid format: "\\"xml\\""; expected "json" or a valid JSON Schema object'
TOP_LOGPROBS_ERROR = "top_logprobs must be between 0 and 20"


# -- model names -------------------------------------------------------------------------------


@pytest.mark.requirement("errors.generate.model-missing")
@pytest.mark.parametrize("model", [None, ""], ids=["no-model-field", "empty-model"])
def test_generate_without_model_is_404(client: Client, model: str | None) -> None:
    body = bounded_generate() if model is None else bounded_generate(model=model)
    expect_error(client.post("/api/generate", json=body), 404, "model '' not found")


@pytest.mark.requirement("errors.generate.model-not-found")
def test_generate_absent_model_is_404(client: Client) -> None:
    expect_error(
        send_generate(client, model=ABSENT_MODEL), 404, f"model '{ABSENT_MODEL}' not found"
    )


@pytest.mark.requirement("errors.generate.invalid-name")
def test_generate_invalid_name_is_400(client: Client) -> None:
    expect_error(send_generate(client, model=INVALID_NAME), 400, "invalid model name")


@pytest.mark.requirement("errors.generate.invalid-name.pre-0-17-8-rc0")
def test_generate_invalid_name_is_not_found_before_0_17_8(client: Client) -> None:
    expect_error(
        send_generate(client, model=INVALID_NAME), 404, f"model '{INVALID_NAME}' not found"
    )


@pytest.mark.requirement("errors.unload.model-not-found")
def test_unload_of_absent_model_is_404(client: Client) -> None:
    # No prompt and keep_alive 0 asks for an unload; it still needs an existing model.
    exchange = client.post("/api/generate", json={"model": ABSENT_MODEL, "keep_alive": 0})
    expect_error(exchange, 404, f"model '{ABSENT_MODEL}' not found")


# -- request fields checked while the body is read ------------------------------------------------


@pytest.mark.requirement("errors.generate.top-logprobs")
@pytest.mark.parametrize("top_logprobs", [21, -1])
def test_top_logprobs_out_of_range_is_400(client: Client, top_logprobs: int) -> None:
    # For an absent model: the range is checked before the model lookup (a 404 would be wrong).
    exchange = send_generate(client, model=ABSENT_MODEL, logprobs=True, top_logprobs=top_logprobs)
    expect_error(exchange, 400, TOP_LOGPROBS_ERROR)


@pytest.mark.requirement("errors.generate.images-invalid")
def test_invalid_base64_image_is_400(client: Client) -> None:
    expect_error(send_generate(client, model=ABSENT_MODEL, images=["%%% not base64"]), 400)


@pytest.mark.requirement("errors.generate.images-invalid-message")
def test_invalid_base64_image_names_the_byte(client: Client) -> None:
    exchange = send_generate(client, model=ABSENT_MODEL, images=["%%% not base64"])
    expect_error(exchange, 400, "illegal base64 data at input byte 0")


@pytest.mark.requirement("errors.options.not-object")
def test_options_not_an_object_is_400(client: Client) -> None:
    # No num_predict can ride along here, so the model is absent: nothing can generate.
    body = {"model": ABSENT_MODEL, "prompt": "hi", "stream": False, "options": "fast"}
    expect_error(client.post("/api/generate", json=body), 400)


@pytest.mark.requirement("errors.keep-alive.invalid-string")
@pytest.mark.parametrize("keep_alive", ["10", "abc"])
def test_keep_alive_string_without_unit_is_400(client: Client, keep_alive: str) -> None:
    expect_error(send_generate(client, model=ABSENT_MODEL, keep_alive=keep_alive), 400)


@pytest.mark.requirement("errors.keep-alive.invalid-string-message")
@pytest.mark.parametrize(
    ("keep_alive", "message"),
    [("10", 'time: missing unit in duration "10"'), ("abc", 'time: invalid duration "abc"')],
    ids=["no-unit", "not-a-duration"],
)
def test_keep_alive_string_error_is_go_wording(
    client: Client, keep_alive: str, message: str
) -> None:
    expect_error(send_generate(client, model=ABSENT_MODEL, keep_alive=keep_alive), 400, message)


@pytest.mark.requirement("errors.keep-alive.wrong-type")
def test_keep_alive_boolean_is_400(client: Client, target: Target) -> None:
    model = installed_or_absent(target, "completion")
    expect_error(
        send_generate(client, model=model, keep_alive=True), 400, "Unsupported type: 'bool'"
    )


# -- errors that need the model --------------------------------------------------------------------


@pytest.mark.requirement("errors.generate.raw-conflict")
@pytest.mark.parametrize(
    "extra",
    [{"template": "{{ .Prompt }}"}, {"system": "Be brief."}, {"context": [1, 2, 3]}],
    ids=["template", "system", "context"],
)
def test_raw_with_template_system_or_context_is_400(
    client: Client, model_for: ModelFor, extra: dict[str, Any]
) -> None:
    exchange = send_generate(client, model=model_for("completion"), raw=True, **extra)
    expect_error(exchange, 400, "raw mode does not support template, system, or context")


@pytest.mark.requirement("errors.generate.embedding-model")
def test_generate_on_embedding_model_is_400(client: Client, target: Target) -> None:
    model = embedding_only_model(target)
    expect_error(
        send_generate(client, model=model), 400, f"{go_quote(model)} does not support generate"
    )


@pytest.mark.requirement("errors.generate.insert-unsupported")
def test_suffix_without_insert_capability_is_400(client: Client, target: Target) -> None:
    model = model_without(target, "completion", "insert")
    exchange = send_generate(client, model=model, suffix="return x")
    expect_error(exchange, 400, f"{qualified_name(model)} does not support insert")


def format_error_of(exchange: Exchange) -> object:
    """The ``error`` of a refused ``format``: the JSON body's, or the first stream error line's."""
    if exchange.is_ndjson:
        lines = exchange.error_lines
        return lines[0].get("error") if lines else None
    value, _ = exchange.json()
    return value.get("error") if isinstance(value, dict) else None


@pytest.mark.requirement("errors.generate.format-invalid")
def test_unknown_format_is_refused_with_ollama_wording(client: Client, model_for: ModelFor) -> None:
    exchange = send_generate(client, model=model_for("completion"), format="xml")
    error = format_error_of(exchange)
    refused = exchange.is_ndjson or (exchange.status or 0) >= 400
    check(
        refused and error == FORMAT_XML_ERROR,
        expected=f"the error {FORMAT_XML_ERROR!r} (as a non-2xx JSON body or a stream line)",
        actual=describe_answer(exchange),
        exchange=exchange,
    )


#: An integer option with a string value; num_predict stays valid so nothing runs unbounded.
WRONG_TYPE_OPTIONS: dict[str, Any] = {**BOUNDED, "top_k": "many"}
WRONG_TYPE_ERROR = 'option "top_k" must be of type integer'


@pytest.mark.requirement("errors.options.wrong-type")
def test_option_of_wrong_type_is_refused(client: Client, model_for: ModelFor) -> None:
    exchange = send_generate(client, model=model_for("completion"), options=WRONG_TYPE_OPTIONS)
    body = expect_json_object(exchange)
    check(
        not 200 <= (exchange.status or 0) < 300 and body.get("error") == WRONG_TYPE_ERROR,
        expected=f'a non-2xx status with {{"error": {WRONG_TYPE_ERROR!r}}}',
        actual=describe_answer(exchange),
        exchange=exchange,
    )
