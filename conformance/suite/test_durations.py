"""Durations and counts: the statistics on the final object, in nanoseconds and tokens.

Clients compute tokens per second as ``eval_count / eval_duration * 1e9`` and show load and prompt
times, so every duration must be an integer number of *nanoseconds* (a server that writes
milliseconds or float seconds makes every client off by a factor of a million). The values are
judged against the client's own clock: the server cannot have spent longer on a request than the
client waited for it, and a value 1000 times too small is caught as the wrong unit.

Allowances, from what real servers do (ref §19.6, /work/notes/real-ollama.md §3): any metric that
is zero may be left out (``omitempty``); a single-token answer has no ``eval_duration``;
``eval_count`` counts the end-of-sequence and stop-string tokens that are never sent as text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.client import Client
from conformance.suite.generation import (
    COUNT_FIELDS,
    DURATION_FIELDS,
    PROMPT,
    Endpoint,
    Stream,
    assume_single,
    assume_stream,
    body_for,
    is_json_int,
    post,
    standard_single,
    standard_stream,
)
from conformance.verdict import assume, assume_status, check, expect_json_object

#: Slack for the upper bound: the server's clock and the client's are not the same clock.
UPPER_SLACK_NS = 100_000_000
UPPER_FACTOR = 1.05
#: A correct total_duration is at least this fraction of the client's wait even over a slow
#: network; microseconds give at most 1/1000 of it, milliseconds 1/1000000.
LOWER_FRACTION = 1 / 500
#: Rounding allowance when the parts are added up.
SUM_SLACK_NS = 1_000_000


def _standard(client: Client, endpoint: Endpoint, model: str) -> Stream:
    return assume_stream(standard_stream(client, endpoint, model), endpoint)


def _integers_problem(value: dict[str, Any], fields: tuple[str, ...]) -> str | None:
    for name in fields:
        if name not in value:
            continue
        number = value[name]
        if not is_json_int(number):
            return f"{name} {number!r} is a JSON {type(number).__name__}, not an integer"
        if number < 0:
            return f"{name} {number} is negative"
    return None


def _check_integers(exchange: Any, value: dict[str, Any], fields: tuple[str, ...]) -> None:
    problem = _integers_problem(value, fields)
    check(
        problem is None,
        expected=f"{', '.join(fields)}, when present, non-negative JSON integers",
        actual=problem or "",
        exchange=exchange,
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(
            "generate",
            id="generate",
            marks=pytest.mark.requirement("durations.generate.integers"),
        ),
        pytest.param("chat", id="chat", marks=pytest.mark.requirement("durations.chat.integers")),
    ],
)
def test_durations_are_integers(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    model = model_for("completion")
    stream = _standard(client, endpoint, model)
    _check_integers(stream.exchange, stream.final, DURATION_FIELDS)
    single = standard_single(client, endpoint, model)
    _check_integers(single, assume_single(single), DURATION_FIELDS)


@pytest.mark.requirement("durations.embed.integers")
def test_embed_durations_are_integers(client: Client, model_for: Callable[[str], str]) -> None:
    exchange = client.post("/api/embed", json={"model": model_for("embedding"), "input": PROMPT})
    assume_status(exchange, 200)
    value = expect_json_object(exchange)
    _check_integers(exchange, value, ("total_duration", "load_duration"))


@pytest.mark.requirement("durations.generate.counts")
def test_counts_are_integers(client: Client, model_for: Callable[[str], str]) -> None:
    model = model_for("completion")
    stream = _standard(client, "generate", model)
    _check_integers(stream.exchange, stream.final, COUNT_FIELDS)
    single = standard_single(client, "generate", model)
    _check_integers(single, assume_single(single), COUNT_FIELDS)


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(
            "generate",
            id="generate",
            marks=pytest.mark.requirement("durations.generate.total-present"),
        ),
        pytest.param(
            "chat", id="chat", marks=pytest.mark.requirement("durations.chat.total-present")
        ),
    ],
)
def test_total_duration_is_present(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    stream = _standard(client, endpoint, model_for("completion"))
    total = stream.final.get("total_duration")
    check(
        is_json_int(total) and total > 0,
        expected="total_duration greater than 0 on the final object",
        actual=f"total_duration {total!r}" if "total_duration" in stream.final else "absent",
        exchange=stream.exchange,
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(
            "generate",
            id="generate",
            marks=pytest.mark.requirement("durations.generate.nanoseconds"),
        ),
        pytest.param(
            "chat", id="chat", marks=pytest.mark.requirement("durations.chat.nanoseconds")
        ),
    ],
)
def test_total_duration_is_in_nanoseconds(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    # A request of its own: a cached exchange's timing would be just as valid, but one measured
    # now keeps the client-side clock reading next to the server's.
    body = body_for(endpoint, model_for("completion"), stream=True)
    stream = assume_stream(post(client, endpoint, body), endpoint)
    total = stream.final.get("total_duration")
    assume(is_json_int(total), f"no integer total_duration (judged by durations.{endpoint}.*)")
    assert isinstance(total, int)
    waited_ns = stream.exchange.lines[-1].at * 1e9
    upper = waited_ns * UPPER_FACTOR + UPPER_SLACK_NS
    lower = waited_ns * LOWER_FRACTION
    check(
        lower <= total <= upper,
        expected=f"total_duration in nanoseconds: between {lower:,.0f} and {upper:,.0f} for a "
        f"request the client saw take {waited_ns / 1e6:.1f} ms",
        actual=f"total_duration {total:,}"
        + (" (looks like a coarser unit)" if total < lower else " (longer than the request)"),
        exchange=stream.exchange,
    )


@pytest.mark.parametrize(
    "endpoint",
    [
        pytest.param(
            "generate",
            id="generate",
            marks=pytest.mark.requirement("durations.generate.total-ge-parts"),
        ),
        pytest.param(
            "chat", id="chat", marks=pytest.mark.requirement("durations.chat.total-ge-parts")
        ),
    ],
)
def test_total_covers_each_part(
    client: Client, model_for: Callable[[str], str], endpoint: Endpoint
) -> None:
    stream = _standard(client, endpoint, model_for("completion"))
    final = stream.final
    total = final.get("total_duration")
    assume(is_json_int(total), f"no integer total_duration (judged by durations.{endpoint}.*)")
    assert isinstance(total, int)
    for part in ("load_duration", "prompt_eval_duration", "eval_duration"):
        value = final.get(part)
        if not is_json_int(value):
            continue
        check(
            total >= value,
            expected=f"total_duration at least {part}",
            actual=f"total_duration {total:,} < {part} {value:,}",
            exchange=stream.exchange,
        )


@pytest.mark.requirement("durations.generate.total-ge-sum")
def test_total_covers_the_sum_of_parts(client: Client, model_for: Callable[[str], str]) -> None:
    stream = _standard(client, "generate", model_for("completion"))
    final = stream.final
    total = final.get("total_duration")
    assume(is_json_int(total), "no integer total_duration (judged by durations.generate.*)")
    assert isinstance(total, int)
    parts = {
        k: final[k]
        for k in ("load_duration", "prompt_eval_duration", "eval_duration")
        if is_json_int(final.get(k))
    }
    added = sum(parts.values())
    check(
        total + SUM_SLACK_NS >= added,
        expected="total_duration at least load + prompt_eval + eval durations (1 ms slack)",
        actual=f"total_duration {total:,} < {' + '.join(f'{v:,}' for v in parts.values())} "
        f"= {added:,}",
        exchange=stream.exchange,
    )


@pytest.mark.requirement("durations.generate.eval-count-lines")
def test_eval_count_covers_the_streamed_tokens(
    client: Client, model_for: Callable[[str], str]
) -> None:
    stream = _standard(client, "generate", model_for("completion"))
    eval_count = stream.final.get("eval_count", 0)
    assume(is_json_int(eval_count), f"eval_count {eval_count!r} is not an integer")
    assert isinstance(eval_count, int)
    check(
        eval_count >= stream.text_lines,
        expected=f"eval_count at least the {stream.text_lines} lines that carried text "
        "(each line is at most one token)",
        actual=f"eval_count {eval_count}",
        exchange=stream.exchange,
    )


@pytest.mark.requirement("durations.generate.eval-count-length")
def test_eval_count_equals_num_predict_at_length(
    client: Client, model_for: Callable[[str], str]
) -> None:
    limit = 4
    body = body_for("generate", model_for("completion"), stream=True, num_predict=limit)
    stream = assume_stream(post(client, "generate", body), "generate")
    assume(
        stream.final.get("done_reason") == "length",
        f"the answer ended with done_reason {stream.final.get('done_reason')!r} before the "
        f"limit of {limit} tokens",
    )
    check(
        stream.final.get("eval_count") == limit,
        expected=f"eval_count {limit} when num_predict {limit} ended the answer",
        actual=f"eval_count {stream.final.get('eval_count')!r}",
        exchange=stream.exchange,
    )


@pytest.mark.requirement("durations.generate.rate")
def test_tokens_per_second_is_plausible(client: Client, model_for: Callable[[str], str]) -> None:
    stream = _standard(client, "generate", model_for("completion"))
    count = stream.final.get("eval_count")
    duration = stream.final.get("eval_duration")
    assume(
        is_json_int(count) and is_json_int(duration) and count > 0 and duration > 0,
        f"eval_count {count!r} and eval_duration {duration!r} are not both present and non-zero",
    )
    assert isinstance(count, int) and isinstance(duration, int)
    rate = count / duration * 1e9
    check(
        0.01 <= rate <= 10_000_000,
        expected="eval_count / eval_duration * 1e9 between 0.01 and 10,000,000 tokens/s",
        actual=f"{rate:,.3f} tokens/s (eval_count {count}, eval_duration {duration:,})",
        exchange=stream.exchange,
    )


@pytest.mark.requirement("durations.embed.prompt-eval-count")
def test_embed_prompt_eval_count_covers_the_inputs(
    client: Client, model_for: Callable[[str], str]
) -> None:
    inputs = [PROMPT, "Hello there"]
    exchange = client.post("/api/embed", json={"model": model_for("embedding"), "input": inputs})
    assume_status(exchange, 200)
    value = expect_json_object(exchange)
    assume("prompt_eval_count" in value, "the answer has no prompt_eval_count (it may be omitted)")
    count = value["prompt_eval_count"]
    check(
        is_json_int(count) and count >= len(inputs),
        expected=f"prompt_eval_count an integer of at least {len(inputs)} (one per input)",
        actual=f"prompt_eval_count {count!r}",
        exchange=exchange,
    )
