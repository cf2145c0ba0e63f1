"""Refusals of ``think``: values the server cannot parse, and models that cannot think.

``think`` changed type twice (absent before 0.9, a boolean in 0.9 to 0.10, a boolean or a level
string from 0.11, plus ``"max"`` from 0.21.3), and every change reworded the refusal, so each
wording has its own requirement with its version range. A value the decoder rejects is rejected
whatever the model, so those checks use an installed model when there is one (an accepted value
then cannot be mistaken for a not-found answer) and bound the request to one token.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from conformance.client import Client
from conformance.suite.bad_inputs import (
    go_quote,
    installed_or_absent,
    model_info,
    model_without,
    qualified_name,
    send_chat,
    send_generate,
)
from conformance.suite.scratch import expect_error
from conformance.target import Target

ModelFor = Callable[[str], str]

LEVELS_WITH_MAX = '"high", "medium", "low", "max", true, or false'
LEVELS = '"high", "medium", "low", true, or false'


# -- values the decoder rejects ------------------------------------------------------------------


@pytest.mark.requirement("errors.think.string")
def test_unknown_think_level_is_400(client: Client, target: Target) -> None:
    exchange = send_generate(client, model=installed_or_absent(target, "completion"), think="bogus")
    expect_error(exchange, 400, f'invalid think value: "bogus" (must be {LEVELS_WITH_MAX})')


@pytest.mark.requirement("errors.think.string.pre-0-21-3-rc0")
def test_unknown_think_level_is_400_without_max(client: Client, target: Target) -> None:
    exchange = send_generate(client, model=installed_or_absent(target, "completion"), think="bogus")
    expect_error(exchange, 400, f'invalid think value: "bogus" (must be {LEVELS})')


@pytest.mark.requirement("errors.think.string.pre-0-11-0")
def test_think_string_is_a_type_error_while_boolean(client: Client, target: Target) -> None:
    exchange = send_generate(client, model=installed_or_absent(target, "completion"), think="bogus")
    expect_error(
        exchange,
        400,
        "json: cannot unmarshal string into Go struct field GenerateRequest.think of type bool",
    )


@pytest.mark.requirement("errors.think.type")
def test_think_number_is_400(client: Client, target: Target) -> None:
    exchange = send_chat(client, model=installed_or_absent(target, "completion"), think=1)
    expect_error(exchange, 400, f"think must be a boolean or string ({LEVELS_WITH_MAX})")


@pytest.mark.requirement("errors.think.type.pre-0-21-3-rc0")
def test_think_number_is_400_without_max(client: Client, target: Target) -> None:
    exchange = send_chat(client, model=installed_or_absent(target, "completion"), think=1)
    expect_error(exchange, 400, f"think must be a boolean or string ({LEVELS})")


@pytest.mark.requirement("errors.think.type.pre-0-12-4")
def test_think_number_is_400_levels_only(client: Client, target: Target) -> None:
    exchange = send_chat(client, model=installed_or_absent(target, "completion"), think=1)
    expect_error(exchange, 400, 'think must be a boolean or string ("high", "medium", "low")')


@pytest.mark.requirement("errors.think.type.pre-0-11-0")
def test_think_number_is_a_type_error_while_boolean(client: Client, target: Target) -> None:
    exchange = send_chat(client, model=installed_or_absent(target, "completion"), think=1)
    expect_error(
        exchange,
        400,
        "json: cannot unmarshal number into Go struct field ChatRequest.think of type bool",
    )


# -- models that cannot think --------------------------------------------------------------------


@pytest.mark.requirement("errors.think.unsupported")
def test_think_on_non_thinking_model_is_400(client: Client, target: Target) -> None:
    model = model_without(target, "completion", "thinking")
    exchange = send_generate(client, model=model, think=True)
    expect_error(exchange, 400, f"{go_quote(model)} does not support thinking")


@pytest.mark.requirement("errors.think.unsupported.pre-0-12-5")
def test_think_on_non_thinking_model_names_it_fully(client: Client, target: Target) -> None:
    model = model_without(target, "completion", "thinking")
    exchange = send_generate(client, model=model, think=True)
    expect_error(exchange, 400, f"{qualified_name(model)} does not support thinking")


@pytest.mark.requirement("errors.chat.think-unsupported")
def test_chat_think_on_non_thinking_model_is_400(client: Client, target: Target) -> None:
    model = model_without(target, "completion", "thinking")
    exchange = send_chat(client, model=model, think=True)
    expect_error(exchange, 400, f"{go_quote(model)} does not support thinking")


#: Families whose models use the gpt-oss (harmony) format, the only ones that took levels.
_HARMONY_FAMILIES = ("gptoss", "gpt-oss")


@pytest.mark.requirement("errors.think.level-unsupported")
def test_think_level_on_non_harmony_model_is_400(
    client: Client, target: Target, model_for: ModelFor
) -> None:
    model = model_for("completion")
    info = model_info(target, model)
    family = (info.family or "").lower() if info is not None else ""
    if any(h in family for h in _HARMONY_FAMILIES):
        pytest.skip(f"cannot judge: {model} is a gpt-oss model, which accepts think levels")
    exchange = send_generate(client, model=model, think="high")
    expect_error(exchange, 400, 'think value "high" is not supported for this model')
