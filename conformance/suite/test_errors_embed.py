"""Refusals of ``POST /api/embed`` and the legacy ``POST /api/embeddings``.

The two endpoints word the same mistakes differently (``model '' not found`` against ``model is
required`` for an empty name) and reworded them across releases, so each statement is pinned to
its version range. The over-long-input check builds a text longer than the model's whole trained
context and also asks for a small ``num_ctx``, so it overflows whatever context the server picks
and stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.suite.bad_inputs import (
    SMALL_CTX,
    go_quote,
    installed_or_absent,
    too_long_input,
)
from conformance.suite.scratch import ABSENT_MODEL, INVALID_NAME, expect_error
from conformance.target import Target

ModelFor = Callable[[str], str]

PULL_FIRST = f"model {go_quote(ABSENT_MODEL)} not found, try pulling it first"


def embed(client: Client, **fields: Any) -> Exchange:
    """An ``/api/embed`` request for one short input, with ``fields`` added or replaced."""
    return client.post("/api/embed", json={"input": "hi", **fields})


def embeddings(client: Client, **fields: Any) -> Exchange:
    """An ``/api/embeddings`` request for one short prompt, with ``fields`` added or replaced."""
    return client.post("/api/embeddings", json={"prompt": "hi", **fields})


# -- /api/embed -----------------------------------------------------------------------------------


@pytest.mark.requirement("errors.embed.model-missing")
def test_embed_empty_model_is_404(client: Client) -> None:
    expect_error(embed(client, model=""), 404, "model '' not found")


@pytest.mark.requirement("errors.embed.model-missing.pre-0-17-8-rc0")
def test_embed_empty_model_is_404_from_scheduler(client: Client) -> None:
    expect_error(embed(client, model=""), 404, 'model "" not found, try pulling it first')


@pytest.mark.requirement("errors.embed.model-not-found")
def test_embed_absent_model_is_404(client: Client) -> None:
    expect_error(embed(client, model=ABSENT_MODEL), 404, PULL_FIRST)


@pytest.mark.requirement("errors.embed.invalid-name")
def test_embed_invalid_name_is_400(client: Client) -> None:
    expect_error(embed(client, model=INVALID_NAME), 400, "invalid model name")


@pytest.mark.requirement("errors.embed.keep-alive-wrong-type")
def test_embed_keep_alive_boolean_is_400(client: Client, target: Target) -> None:
    model = installed_or_absent(target, "embedding")
    expect_error(embed(client, model=model, keep_alive=True), 400, "Unsupported type: 'bool'")


@pytest.mark.requirement("errors.embed.input-type")
@pytest.mark.parametrize("input_", [42, ["a", 1]], ids=["number", "list-with-number"])
def test_embed_input_of_wrong_type_is_400(
    client: Client, model_for: ModelFor, input_: object
) -> None:
    exchange = embed(client, model=model_for("embedding"), input=input_)
    expect_error(exchange, 400, "invalid input type")


def overlong_without_truncation(client: Client, model: str) -> Exchange:
    """``truncate: false`` with an input no context can hold."""
    return embed(
        client,
        model=model,
        input=too_long_input(client, model),
        truncate=False,
        options={"num_ctx": SMALL_CTX},
    )


@pytest.mark.requirement("errors.embed.truncate")
def test_overlong_input_without_truncation_is_400(client: Client, model_for: ModelFor) -> None:
    exchange = overlong_without_truncation(client, model_for("embedding"))
    expect_error(exchange, 400, "the input length exceeds the context length")


@pytest.mark.requirement("errors.embed.truncate.pre-0-13-3")
def test_overlong_input_without_truncation_is_400_0_12(client: Client, model_for: ModelFor) -> None:
    exchange = overlong_without_truncation(client, model_for("embedding"))
    expect_error(exchange, 400, "input exceeds maximum context length")


@pytest.mark.requirement("errors.embed.truncate.pre-0-12-0")
def test_overlong_input_without_truncation_is_400_before_0_12(
    client: Client, model_for: ModelFor
) -> None:
    exchange = overlong_without_truncation(client, model_for("embedding"))
    expect_error(exchange, 400, "input length exceeds maximum context length")


# -- /api/embeddings ------------------------------------------------------------------------------


@pytest.mark.requirement("errors.embeddings.model-missing")
@pytest.mark.parametrize("model", [None, ""], ids=["no-model-field", "empty-model"])
def test_embeddings_without_model_is_400(client: Client, model: str | None) -> None:
    exchange = embeddings(client) if model is None else embeddings(client, model=model)
    expect_error(exchange, 400, "model is required")


@pytest.mark.requirement("errors.embeddings.model-not-found")
def test_embeddings_absent_model_is_404(client: Client) -> None:
    expect_error(embeddings(client, model=ABSENT_MODEL), 404, PULL_FIRST)


@pytest.mark.requirement("errors.embeddings.invalid-name")
def test_embeddings_invalid_name_is_400(client: Client) -> None:
    expect_error(embeddings(client, model=INVALID_NAME), 400, "invalid model name")


@pytest.mark.requirement("errors.embeddings.invalid-name.pre-0-17-8-rc0")
def test_embeddings_invalid_name_is_model_required_before_0_17_8(client: Client) -> None:
    expect_error(embeddings(client, model=INVALID_NAME), 400, "model is required")
