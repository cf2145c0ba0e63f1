"""``POST /api/embeddings``: the legacy single-prompt endpoint, still used by older clients.

It answers ``{"embedding": [numbers]}`` (singular key, flat list) for one ``prompt``. Unlike
``/api/embed`` the server does not normalise this vector (the runner's raw output is returned
before v0.30), so no check here looks at its length; the vector is compared with ``/api/embed``'s
by direction only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.suite.bad_inputs import all_finite, cosine, vector_of, vectors_of
from conformance.verdict import (
    assume,
    assume_status,
    check,
    expect_json_object,
    expect_status,
    expect_valid,
)

TEXT = "Why is the sky blue?"
OTHER = "Grass is green"

ModelFor = Callable[[str], str]


def embeddings(client: Client, model: str, prompt: str, **fields: Any) -> Exchange:
    """One ``/api/embeddings`` request."""
    return client.post("/api/embeddings", json={"model": model, "prompt": prompt, **fields})


@pytest.mark.requirement("embeddings.response.shape")
def test_embeddings_answers_a_flat_vector(
    client: Client, model_for: ModelFor, api_version: str
) -> None:
    exchange = embeddings(client, model_for("embedding"), TEXT)
    expect_status(exchange, 200)
    body = expect_json_object(exchange)
    check(
        isinstance(body.get("embedding"), list),
        expected='a field "embedding" (singular) holding an array',
        actual=f"fields {sorted(body)}"
        if "embedding" not in body
        else f"embedding {body['embedding']!r}"[:200],
        exchange=exchange,
    )
    expect_valid("embeddings.response", body, api_version, exchange)


@pytest.mark.requirement("embeddings.vector.nonempty")
def test_prompt_gives_nonempty_finite_vector(client: Client, model_for: ModelFor) -> None:
    exchange = embeddings(client, model_for("embedding"), TEXT)
    assume_status(exchange, 200)
    _, error = exchange.json()
    check(
        error is None or "non-standard JSON constant" not in error,
        expected="a vector of finite JSON numbers",
        actual=f"the body is {error}",
        exchange=exchange,
    )
    vector = vector_of(exchange, numbers=False)
    bad = [x for x in vector if not all_finite([x])]
    check(
        bool(vector) and not bad,
        expected="a non-empty vector of finite numbers",
        actual=f"{len(bad)} non-finite components, e.g. {bad[:3]!r}" if vector else "[]",
        exchange=exchange,
    )


@pytest.mark.requirement("embeddings.vector.same-length")
def test_prompts_give_vectors_of_one_length(client: Client, model_for: ModelFor) -> None:
    model = model_for("embedding")
    first = vector_of(embeddings(client, model, TEXT))
    second_exchange = embeddings(client, model, OTHER)
    second = vector_of(second_exchange)
    check(
        len(first) == len(second),
        expected="two vectors of the same length",
        actual=f"lengths {len(first)} ({TEXT!r}) and {len(second)} ({OTHER!r})",
        exchange=second_exchange,
    )


@pytest.mark.requirement("embeddings.prompt.empty")
def test_empty_prompt_gives_empty_vector(client: Client, model_for: ModelFor) -> None:
    exchange = embeddings(client, model_for("embedding"), "")
    expect_status(exchange, 200)
    body = expect_json_object(exchange)
    check(
        body.get("embedding") == [],
        expected='{"embedding": []}',
        actual=f"{body!r}"[:200],
        exchange=exchange,
    )


@pytest.mark.requirement("embeddings.vector.deterministic")
def test_same_prompt_gives_same_vector(client: Client, model_for: ModelFor) -> None:
    model = model_for("embedding")
    first = vector_of(embeddings(client, model, TEXT))
    second_exchange = embeddings(client, model, TEXT)
    second = vector_of(second_exchange)
    similarity = cosine(first, second)
    check(
        similarity >= 0.9999,
        expected="the same vector both times (cosine similarity >= 0.9999)",
        actual=f"cosine similarity {similarity:.6f} (lengths {len(first)} and {len(second)})",
        exchange=second_exchange,
    )


@pytest.mark.requirement("embeddings.vector.matches-embed")
def test_legacy_vector_points_like_embed(client: Client, model_for: ModelFor) -> None:
    model = model_for("embedding")
    legacy_exchange = embeddings(client, model, TEXT)
    legacy = vector_of(legacy_exchange)
    embed_exchange = client.post("/api/embed", json={"model": model, "input": TEXT})
    vectors = vectors_of(embed_exchange)
    assume(len(vectors) == 1, "/api/embed gave not one vector (judged by embed.input.single)")
    similarity = cosine(legacy, vectors[0])
    check(
        similarity >= 0.99,
        expected="/api/embeddings and /api/embed vectors for the same text point the same way "
        "(cosine similarity >= 0.99)",
        actual=f"cosine similarity {similarity:.6f} (lengths {len(legacy)} and {len(vectors[0])})",
        exchange=legacy_exchange,
    )


@pytest.mark.requirement("embeddings.request.keep-alive")
def test_keep_alive_duration_is_accepted(client: Client, model_for: ModelFor) -> None:
    exchange = embeddings(client, model_for("embedding"), TEXT, keep_alive="5m")
    expect_status(exchange, 200)
