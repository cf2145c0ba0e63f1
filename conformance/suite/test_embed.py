"""``POST /api/embed``: batch embeddings, the API retrieval and RAG clients are built on.

Clients index documents with one vector per input and compare them by cosine similarity, so the
checks here are about what makes that safe: one vector per input in input order, one common
length, finite numbers, unit length (the server normalises), the same answer twice, and the
documented switches (``truncate``, ``dimensions``, ``keep_alive``). Nothing here depends on what
a particular model's vectors mean, only on their shape and arithmetic, so any embedding model
will do; the tiny test models make every request cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.suite.bad_inputs import (
    SMALL_CTX,
    all_finite,
    cosine,
    l2_norm,
    too_long_input,
    vectors_of,
)
from conformance.verdict import (
    assume,
    assume_status,
    check,
    expect_content_type,
    expect_json_object,
    expect_status,
    expect_valid,
)

TEXT = "Why is the sky blue?"
#: Three inputs that end differently, so even a last-token model gives three different vectors.
BATCH = ["The sky is blue", "Grass is green", "Snow is white!"]
#: Norms within this distance of 1 count as unit length (float32 vectors, summed in float64).
NORM_TOLERANCE = 1e-3

ModelFor = Callable[[str], str]


def embed(client: Client, model: str, input_: object, **fields: Any) -> Exchange:
    """One ``/api/embed`` request."""
    return client.post("/api/embed", json={"model": model, "input": input_, **fields})


@pytest.mark.requirement("embed.response.shape")
def test_embed_answers_model_and_nested_vectors(
    client: Client, model_for: ModelFor, api_version: str
) -> None:
    model = model_for("embedding")
    exchange = embed(client, model, TEXT)
    expect_status(exchange, 200)
    expect_content_type(exchange, "application/json")
    body = expect_json_object(exchange)
    check(
        body.get("model") == model,
        expected=f"model {model!r} (the name as sent)",
        actual=f"model {body.get('model')!r}",
        exchange=exchange,
    )
    expect_valid("embed.response", body, api_version, exchange)


@pytest.mark.requirement("embed.input.single")
def test_string_input_gives_one_vector(client: Client, model_for: ModelFor) -> None:
    exchange = embed(client, model_for("embedding"), TEXT)
    vectors = vectors_of(exchange)
    check(
        len(vectors) == 1 and len(vectors[0]) > 0,
        expected="exactly one non-empty vector",
        actual=f"{len(vectors)} vectors of lengths {[len(v) for v in vectors][:5]}",
        exchange=exchange,
    )


@pytest.mark.requirement("embed.input.batch")
def test_list_input_gives_one_vector_each(client: Client, model_for: ModelFor) -> None:
    exchange = embed(client, model_for("embedding"), BATCH)
    vectors = vectors_of(exchange)
    lengths = [len(v) for v in vectors]
    check(
        len(vectors) == len(BATCH) and len(set(lengths)) == 1,
        expected=f"{len(BATCH)} vectors of one common length",
        actual=f"{len(vectors)} vectors of lengths {lengths[:10]}",
        exchange=exchange,
    )


@pytest.mark.requirement("embed.input.batch-order")
def test_batch_vectors_keep_input_order(client: Client, model_for: ModelFor) -> None:
    model = model_for("embedding")
    batch_exchange = embed(client, model, BATCH)
    batch = vectors_of(batch_exchange)
    assume(len(batch) == len(BATCH), "wrong vector count (judged by embed.input.batch)")
    for index, text in enumerate(BATCH):
        alone_exchange = embed(client, model, text)
        alone = vectors_of(alone_exchange)
        assume(len(alone) == 1, "wrong vector count (judged by embed.input.single)")
        similarity = cosine(batch[index], alone[0])
        check(
            similarity >= 0.999,
            expected=f"vector {index} of the batch to match {text!r} embedded alone "
            "(cosine similarity >= 0.999)",
            actual=f"cosine similarity {similarity:.6f} "
            f"(lengths {len(batch[index])} and {len(alone[0])})",
            exchange=batch_exchange,
        )


@pytest.mark.requirement("embed.vector.finite")
def test_vectors_hold_finite_numbers(client: Client, model_for: ModelFor) -> None:
    exchange = embed(client, model_for("embedding"), BATCH)
    assume_status(exchange, 200)
    _, error = exchange.json()
    # NaN and Infinity are not JSON; a body that carries them is this requirement's failure.
    check(
        error is None or "non-standard JSON constant" not in error,
        expected="vectors of finite JSON numbers",
        actual=f"the body is {error}",
        exchange=exchange,
    )
    vectors = vectors_of(exchange, numbers=False)
    bad = [(i, j, x) for i, v in enumerate(vectors) for j, x in enumerate(v) if not all_finite([x])]
    check(
        not bad,
        expected="every component a finite number",
        actual=f"{len(bad)} bad components, e.g. vector {bad[0][0]} index {bad[0][1]}: "
        f"{bad[0][2]!r}"
        if bad
        else "",
        exchange=exchange,
    )


@pytest.mark.requirement("embed.vector.normalized")
def test_vectors_have_unit_length(client: Client, model_for: ModelFor) -> None:
    exchange = embed(client, model_for("embedding"), [TEXT, *BATCH])
    vectors = vectors_of(exchange)
    norms = [l2_norm(v) for v in vectors]
    # An all-zero vector cannot be normalised; Ollama leaves it zero, and so may any server.
    off = [(i, n) for i, n in enumerate(norms) if n != 0.0 and abs(n - 1.0) > NORM_TOLERANCE]
    check(
        not off,
        expected=f"every non-zero vector of L2 norm 1 +- {NORM_TOLERANCE}",
        actual=", ".join(f"vector {i} has norm {n:.6f}" for i, n in off[:5]),
        exchange=exchange,
    )


@pytest.mark.requirement("embed.vector.deterministic")
def test_same_input_gives_same_vector(client: Client, model_for: ModelFor) -> None:
    model = model_for("embedding")
    first = vectors_of(embed(client, model, TEXT))
    second_exchange = embed(client, model, TEXT)
    second = vectors_of(second_exchange)
    assume(len(first) == 1 and len(second) == 1, "not one vector (judged by embed.input.single)")
    similarity = cosine(first[0], second[0])
    check(
        similarity >= 0.9999,
        expected="the same vector both times (cosine similarity >= 0.9999)",
        actual=f"cosine similarity {similarity:.6f}",
        exchange=second_exchange,
    )


@pytest.mark.requirement("embed.input.empty")
@pytest.mark.parametrize("input_", [[], ""], ids=["empty-list", "empty-string"])
def test_empty_input_gives_no_vectors(client: Client, model_for: ModelFor, input_: object) -> None:
    exchange = embed(client, model_for("embedding"), input_)
    expect_status(exchange, 200)
    body = expect_json_object(exchange)
    check(
        body.get("embeddings") == [],
        expected='"embeddings": [] (no input, no vectors)',
        actual=f"embeddings {body.get('embeddings')!r}"[:200],
        exchange=exchange,
    )


@pytest.mark.requirement("embed.truncate.default")
def test_overlong_input_is_truncated_by_default(client: Client, model_for: ModelFor) -> None:
    model = model_for("embedding")
    exchange = embed(client, model, too_long_input(client, model), options={"num_ctx": SMALL_CTX})
    expect_status(exchange, 200)
    vectors = vectors_of(exchange)
    check(
        len(vectors) == 1 and len(vectors[0]) > 0,
        expected="one non-empty vector",
        actual=f"{len(vectors)} vectors",
        exchange=exchange,
    )


@pytest.mark.requirement("embed.vector.dimensions")
def test_dimensions_shortens_and_renormalises(client: Client, model_for: ModelFor) -> None:
    model = model_for("embedding")
    full = vectors_of(embed(client, model, "abc"))
    assume(len(full) == 1 and len(full[0]) >= 2, "no vector of length 2 or more to shorten")
    wanted = len(full[0]) // 2
    exchange = embed(client, model, "abc", dimensions=wanted)
    expect_status(exchange, 200)
    vectors = vectors_of(exchange)
    lengths = [len(v) for v in vectors]
    check(
        lengths == [wanted],
        expected=f"one vector of length {wanted} (full length {len(full[0])})",
        actual=f"vector lengths {lengths}",
        exchange=exchange,
    )
    norm = l2_norm(vectors[0])
    check(
        norm == 0.0 or abs(norm - 1.0) <= NORM_TOLERANCE,
        expected=f"the shortened vector re-normalised (L2 norm 1 +- {NORM_TOLERANCE}, or zero)",
        actual=f"L2 norm {norm:.6f}",
        exchange=exchange,
    )


@pytest.mark.requirement("embed.request.keep-alive")
@pytest.mark.parametrize("keep_alive", ["5m", 300], ids=["duration-string", "seconds-number"])
def test_keep_alive_forms_are_accepted(
    client: Client, model_for: ModelFor, keep_alive: object
) -> None:
    exchange = embed(client, model_for("embedding"), TEXT, keep_alive=keep_alive)
    expect_status(exchange, 200)
