"""Timestamps: ``created_at``, ``modified_at`` and ``expires_at`` as clients parse them.

Every client library parses these strings into dates (Go's ``time.Time``, JavaScript's ``Date``,
Python's ``datetime``), so each must be RFC 3339. Real Ollama stamps ``created_at`` in UTC as each
chunk is produced, so within a stream it never goes backwards and it matches the wall clock;
``modified_at`` and ``expires_at`` are local time with an offset, which RFC 3339 allows. The
checks of UTC, order and clock agreement are SHOULDs: the documents show other offsets, and
only the format is promised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.suite.generation import (
    Endpoint,
    assume_single,
    assume_stream,
    create_from_body,
    parse_rfc3339,
    same_model,
    standard_single,
    standard_stream,
)
from conformance.target import Target
from conformance.verdict import (
    assume,
    assume_json_object,
    assume_status,
    check,
    expect_json_object,
)

#: How far the server's clock may be from the client's for the SHOULD checks.
CLOCK_SLACK_NS = 5 * 60 * 1_000_000_000
RFC3339_EXAMPLE = "2025-10-26T17:15:24.097767Z or 2023-08-04T08:52:19.385406455-07:00"


def _lines_and_single(
    client: Client, endpoint: Endpoint, model: str
) -> list[tuple[Exchange, int, dict[str, Any]]]:
    """Every line of the standard stream and the stream:false answer, numbered."""
    stream = assume_stream(standard_stream(client, endpoint, model), endpoint)
    found = [(stream.exchange, n, o) for n, o in enumerate(stream.objects, start=1)]
    single = standard_single(client, endpoint, model)
    found.append((single, 0, assume_single(single)))
    return found


def _where(number: int) -> str:
    return f"line {number}" if number else "the stream:false answer"


def _check_rfc3339(client: Client, endpoint: Endpoint, model: str) -> None:
    for exchange, number, value in _lines_and_single(client, endpoint, model):
        stamp = value.get("created_at")
        check(
            parse_rfc3339(stamp) is not None,
            expected=f"created_at an RFC 3339 date-time, e.g. {RFC3339_EXAMPLE}",
            actual=f"{_where(number)}: created_at {stamp!r}",
            exchange=exchange,
        )


def _check_utc(client: Client, endpoint: Endpoint, model: str) -> None:
    for exchange, number, value in _lines_and_single(client, endpoint, model):
        stamp = value.get("created_at")
        assume(parse_rfc3339(stamp) is not None, f"created_at {stamp!r} is not RFC 3339")
        check(
            str(stamp).endswith("Z"),
            expected="created_at in UTC, ending in Z",
            actual=f"{_where(number)}: created_at {stamp!r}",
            exchange=exchange,
        )


@pytest.mark.requirement("timestamps.generate.rfc3339")
def test_generate_created_at_is_rfc3339(client: Client, model_for: Callable[[str], str]) -> None:
    _check_rfc3339(client, "generate", model_for("completion"))


@pytest.mark.requirement("timestamps.generate.utc")
def test_generate_created_at_is_utc(client: Client, model_for: Callable[[str], str]) -> None:
    _check_utc(client, "generate", model_for("completion"))


@pytest.mark.requirement("timestamps.chat.rfc3339")
def test_chat_created_at_is_rfc3339(client: Client, model_for: Callable[[str], str]) -> None:
    _check_rfc3339(client, "chat", model_for("completion"))


@pytest.mark.requirement("timestamps.chat.utc")
def test_chat_created_at_is_utc(client: Client, model_for: Callable[[str], str]) -> None:
    _check_utc(client, "chat", model_for("completion"))


@pytest.mark.requirement("timestamps.generate.monotonic")
def test_created_at_never_goes_back(client: Client, model_for: Callable[[str], str]) -> None:
    stream = assume_stream(standard_stream(client, "generate", model_for("completion")), "generate")
    stamps = [o.get("created_at") for o in stream.objects]
    moments = [parse_rfc3339(s) for s in stamps]
    assume(all(m is not None for m in moments), "a created_at is not RFC 3339")
    for number in range(1, len(moments)):
        earlier, later = moments[number - 1], moments[number]
        assert earlier is not None and later is not None
        check(
            later >= earlier,
            expected="created_at never decreasing from one line to the next",
            actual=f"line {number + 1} {stamps[number]!r} is before line {number} "
            f"{stamps[number - 1]!r}",
            exchange=stream.exchange,
        )


@pytest.mark.requirement("timestamps.generate.clock")
def test_created_at_matches_the_clock(client: Client, model_for: Callable[[str], str]) -> None:
    stream = assume_stream(standard_stream(client, "generate", model_for("completion")), "generate")
    stamp = stream.final.get("created_at")
    moment = parse_rfc3339(stamp)
    assume(moment is not None, f"created_at {stamp!r} is not RFC 3339")
    assert moment is not None
    exchange = stream.exchange
    arrived_ns = int((exchange.sent_at + exchange.lines[-1].at) * 1e9)
    apart = abs(moment - arrived_ns)
    check(
        apart <= CLOCK_SLACK_NS,
        expected="created_at of the final line within 5 minutes of the client's clock",
        actual=f"created_at {stamp!r} is {apart / 1e9:,.1f} s from the client's clock",
        exchange=exchange,
    )


@pytest.mark.requirement("timestamps.load.rfc3339")
def test_load_answer_created_at_is_rfc3339(client: Client, model_for: Callable[[str], str]) -> None:
    exchange = client.post("/api/generate", json={"model": model_for("completion")})
    assume_status(exchange, 200)
    value = expect_json_object(exchange)
    stamp = value.get("created_at")
    check(
        parse_rfc3339(stamp) is not None,
        expected=f"created_at an RFC 3339 date-time, e.g. {RFC3339_EXAMPLE}",
        actual=f"created_at {stamp!r}" if "created_at" in value else "no created_at",
        exchange=exchange,
    )


def _models_of(exchange: Exchange) -> list[dict[str, Any]]:
    assume_status(exchange, 200)
    models = assume_json_object(exchange).get("models")
    assume(isinstance(models, list), f"{exchange.path} has no models array")
    assert isinstance(models, list)
    return [m for m in models if isinstance(m, dict)]


@pytest.mark.requirement("timestamps.tags.modified-at")
def test_tags_modified_at_is_rfc3339(client: Client) -> None:
    exchange = client.get("/api/tags")
    models = _models_of(exchange)
    assume(bool(models), "the target has no models to look at")
    for entry in models:
        stamp = entry.get("modified_at")
        check(
            parse_rfc3339(stamp) is not None,
            expected="modified_at of every entry an RFC 3339 date-time (any offset)",
            actual=f"{entry.get('name')!r}: modified_at {stamp!r}",
            exchange=exchange,
        )


@pytest.mark.requirement("timestamps.show.modified-at")
def test_show_modified_at_is_rfc3339(client: Client, target: Target) -> None:
    names = [m.name for m in target.models if not m.is_cloud]
    assume(bool(names), "the target has no local models to show")
    exchange = client.post("/api/show", json={"model": names[0]})
    assume_status(exchange, 200)
    value = assume_json_object(exchange)
    stamp = value.get("modified_at")
    check(
        parse_rfc3339(stamp) is not None,
        expected="modified_at an RFC 3339 date-time (any offset)",
        actual=f"modified_at {stamp!r}" if "modified_at" in value else "no modified_at",
        exchange=exchange,
    )


@pytest.mark.requirement("timestamps.ps.expires-at")
def test_ps_expires_at_is_rfc3339(client: Client, target: Target) -> None:
    model = target.model_for("completion")
    if model is not None:
        # A load request puts one model in /api/ps, so there is an entry to look at.
        client.post("/api/generate", json={"model": model})
    exchange = client.get("/api/ps")
    models = _models_of(exchange)
    assume(bool(models), "no model is loaded on the target")
    for entry in models:
        stamp = entry.get("expires_at")
        check(
            parse_rfc3339(stamp) is not None,
            expected="expires_at of every entry an RFC 3339 date-time (any offset)",
            actual=f"{entry.get('name')!r}: expires_at {stamp!r}",
            exchange=exchange,
        )


@pytest.mark.requirement("timestamps.tags.recent-after-create")
def test_new_model_is_stamped_now(
    client: Client,
    model_for: Callable[[str], str],
    scratch_name: str,
    api_version: str,
) -> None:
    body = create_from_body(scratch_name, model_for("completion"), api_version, stream=False)
    created = client.post("/api/create", json=body)
    assume_status(created, 200)
    exchange = client.get("/api/tags")
    now_ns = int((exchange.sent_at + (exchange.headers_after or 0.0)) * 1e9)
    models = _models_of(exchange)
    entries = [m for m in models if same_model(str(m.get("name", "")), scratch_name)]
    assume(bool(entries), f"/api/tags does not list {scratch_name!r} after creating it")
    stamp = entries[0].get("modified_at")
    moment = parse_rfc3339(stamp)
    assume(moment is not None, f"modified_at {stamp!r} is not RFC 3339")
    assert moment is not None
    apart = abs(moment - now_ns)
    check(
        apart <= CLOCK_SLACK_NS,
        expected="modified_at of a just-created model within 5 minutes of the client's clock",
        actual=f"modified_at {stamp!r} is {apart / 1e9:,.1f} s from the client's clock",
        exchange=exchange,
    )
