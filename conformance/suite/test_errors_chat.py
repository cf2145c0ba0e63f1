"""Refusals of ``POST /api/chat``, which checks names and capabilities in its own order.

Chat differs from generate in ways clients trip over: a missing model is a 400 ``model is
required`` (generate says 404), and a not-found model was worded by the scheduler until 0.12.0
(``model "x" not found, try pulling it first``) and by the handler afterwards (``model 'x' not
found``). Each wording is pinned for its version range. Capability errors name the model either
as sent (``"x" does not support chat``) or fully qualified (``registry.ollama.ai/library/x:latest
does not support tools``), as Ollama does.
"""

from __future__ import annotations

import pytest

from conformance.client import Client
from conformance.suite.bad_inputs import (
    bounded_chat,
    embedding_only_model,
    go_quote,
    installed_or_absent,
    model_without,
    qualified_name,
    send_chat,
)
from conformance.suite.generation import WEATHER_TOOL
from conformance.suite.scratch import ABSENT_MODEL, INVALID_NAME, expect_error
from conformance.target import Target


@pytest.mark.requirement("errors.chat.model-missing")
@pytest.mark.parametrize("model", [None, ""], ids=["no-model-field", "empty-model"])
def test_chat_without_model_is_400(client: Client, model: str | None) -> None:
    body = bounded_chat() if model is None else bounded_chat(model=model)
    expect_error(client.post("/api/chat", json=body), 400, "model is required")


@pytest.mark.requirement("errors.chat.model-not-found")
def test_chat_absent_model_is_404(client: Client) -> None:
    expect_error(send_chat(client, model=ABSENT_MODEL), 404, f"model '{ABSENT_MODEL}' not found")


@pytest.mark.requirement("errors.chat.model-not-found.pre-0-12-0")
def test_chat_absent_model_is_404_from_scheduler(client: Client) -> None:
    expect_error(
        send_chat(client, model=ABSENT_MODEL),
        404,
        f"model {go_quote(ABSENT_MODEL)} not found, try pulling it first",
    )


@pytest.mark.requirement("errors.chat.invalid-name")
def test_chat_invalid_name_is_400(client: Client) -> None:
    expect_error(send_chat(client, model=INVALID_NAME), 400, "invalid model name")


@pytest.mark.requirement("errors.chat.invalid-name.pre-0-17-8-rc0")
def test_chat_invalid_name_is_model_required_before_0_17_8(client: Client) -> None:
    expect_error(send_chat(client, model=INVALID_NAME), 400, "model is required")


@pytest.mark.requirement("errors.chat.keep-alive-wrong-type")
def test_chat_keep_alive_boolean_is_400(client: Client, target: Target) -> None:
    model = installed_or_absent(target, "completion")
    expect_error(send_chat(client, model=model, keep_alive=True), 400, "Unsupported type: 'bool'")


@pytest.mark.requirement("errors.chat.images-invalid")
def test_chat_invalid_base64_image_is_400(client: Client) -> None:
    # For an absent model: images are decoded with the body, before any model lookup.
    message = {"role": "user", "content": "What is this?", "images": ["%%% not base64"]}
    expect_error(send_chat(client, model=ABSENT_MODEL, messages=[message]), 400)


@pytest.mark.requirement("errors.chat.messages-type")
def test_chat_messages_not_an_array_is_400(client: Client, target: Target) -> None:
    model = installed_or_absent(target, "completion")
    expect_error(send_chat(client, model=model, messages="hello"), 400)


@pytest.mark.requirement("errors.chat.tools-unsupported")
def test_chat_tools_on_model_without_tools_is_400(client: Client, target: Target) -> None:
    model = model_without(target, "completion", "tools")
    exchange = send_chat(client, model=model, tools=[WEATHER_TOOL])
    expect_error(exchange, 400, f"{qualified_name(model)} does not support tools")


@pytest.mark.requirement("errors.chat.embedding-model")
def test_chat_on_embedding_model_is_400(client: Client, target: Target) -> None:
    model = embedding_only_model(target)
    exchange = send_chat(client, model=model)
    expect_error(exchange, 400, f"{go_quote(model)} does not support chat")
