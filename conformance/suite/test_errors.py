"""Error bodies in general, and the refusals of ``POST /api/show``.

Every client library reads a failed answer's ``error`` field to tell the user what went wrong,
so every 4xx/5xx of a JSON endpoint must be ``{"error": "<non-empty string>"}``. That is checked
over a spread of bad requests to every JSON endpoint (bad_inputs.BODY_SHAPE_CASES): empty and
malformed bodies, absent models, bad field values, and refusals that only come after a model
loads. The only answers the statement excludes are the router's plain-text 404/405 (an unknown
route or method) and the empty 403 of the Origin and Host guards.

``/api/show`` errors live here too: they are the ones a client meets first, when it checks a
model before using it.
"""

from __future__ import annotations

import pytest

from conformance.client import Client
from conformance.suite.bad_inputs import (
    BODY_SHAPE_CASES,
    BadRequest,
    describe_answer,
    fill,
)
from conformance.suite.scratch import ABSENT_MODEL, INVALID_NAME, expect_error
from conformance.target import Target
from conformance.verdict import assume, check, expect_json_object, not_implemented_if_missing


@pytest.mark.requirement("errors.body.shape")
@pytest.mark.parametrize("case", BODY_SHAPE_CASES, ids=[c.label for c in BODY_SHAPE_CASES])
def test_error_answers_carry_an_error_string(
    client: Client, target: Target, request: pytest.FixtureRequest, case: BadRequest
) -> None:
    replacements: dict[str, str] = {}
    if case.scratch:  # a name under the run prefix: even a wrong answer touches nothing real
        replacements["<scratch>"] = str(request.getfixturevalue("scratch_name"))
    if case.model is not None:
        model = target.model_for(case.model)
        if model is None:
            pytest.skip(f"cannot judge: no model with capability '{case.model}' on the target")
        replacements["<model>"] = model
    if case.raw is not None:
        exchange = client.request(
            case.method, case.path, content=case.raw, headers={"Content-Type": "application/json"}
        )
    else:
        exchange = client.request(case.method, case.path, json=fill(case.json, replacements))
    not_implemented_if_missing(exchange)
    assume(
        exchange.status is None or exchange.status >= 400,
        f"the request was not refused ({describe_answer(exchange, 80)}); its own requirement "
        "judges that",
    )
    assume(
        exchange.status not in (403, 405) or exchange.content_type == "application/json",
        f"status {exchange.status} without a JSON body is the router's or a guard's answer, "
        "which the statement excludes",
    )
    body = expect_json_object(exchange)
    error = body.get("error")
    check(
        isinstance(error, str) and error != "",
        expected='a JSON object whose "error" is a non-empty string',
        actual=f"error {error!r}" if "error" in body else f"no error field; fields {sorted(body)}",
        exchange=exchange,
    )


# -- /api/show -------------------------------------------------------------------------------------


@pytest.mark.requirement("errors.show.model-missing")
def test_show_without_model_is_400(client: Client) -> None:
    expect_error(client.post("/api/show", json={}), 400, "model is required")


@pytest.mark.requirement("errors.show.not-found")
def test_show_absent_model_names_it_with_tag(client: Client) -> None:
    exchange = client.post("/api/show", json={"model": ABSENT_MODEL})
    expect_error(exchange, 404, f"model '{ABSENT_MODEL}:latest' not found")


@pytest.mark.requirement("errors.show.not-found.pre-0-30-0")
def test_show_absent_model_names_it_as_sent(client: Client) -> None:
    exchange = client.post("/api/show", json={"model": ABSENT_MODEL})
    expect_error(exchange, 404, f"model '{ABSENT_MODEL}' not found")


@pytest.mark.requirement("errors.show.invalid-name")
def test_show_invalid_name_is_refused(client: Client) -> None:
    exchange = client.post("/api/show", json={"model": INVALID_NAME})
    not_implemented_if_missing(exchange)
    check(
        exchange.status is not None and exchange.status >= 400,
        expected="a 4xx or 5xx status for an invalid model name",
        actual=describe_answer(exchange),
        exchange=exchange,
    )
    body = expect_json_object(exchange)
    error = body.get("error")
    check(
        isinstance(error, str) and error != "",
        expected='a JSON object whose "error" is a non-empty string',
        actual=describe_answer(exchange),
        exchange=exchange,
    )


@pytest.mark.requirement("errors.show.invalid-name-status")
def test_show_invalid_name_is_400(client: Client) -> None:
    expect_error(client.post("/api/show", json={"model": INVALID_NAME}), 400, "invalid model name")
