"""Shared pieces of the embed, embeddings and errors tests: bad requests and what they need.

Error checks compare the server's ``error`` string byte for byte with the catalogue statement
(with ``scratch.expect_error``), because client libraries branch on those strings (``"not
found"``, ``"does not support tools"``). This module holds what else those tests share:

* bounded request bodies: anything a lenient server might accept runs for one token at most;
* model picking for capability errors: a check such as "tools on a model without tools" needs a
  model the server *says* lacks the capability (``/api/show`` capabilities), never a guess;
* model names the way Ollama prints them in errors: Go's ``%q``, and the fully qualified form;
* inputs longer than a model's context, and vector arithmetic for the embedding checks (norms,
  cosine similarity, finiteness), with readers that skip when another requirement owns the shape;
* :data:`BODY_SHAPE_CASES`: a spread of failing requests over every JSON endpoint, for the
  requirement that every error body is ``{"error": "<non-empty string>"}``.

It is not a test module (no ``test_`` prefix), so pytest imports it only through the tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.client import Client
from conformance.exchange import Exchange
from conformance.suite.generation import options, same_model
from conformance.suite.scratch import ABSENT_MODEL
from conformance.target import ModelInfo, Target, is_scratch_model
from conformance.verdict import assume_json_object, assume_status

__all__ = [
    "BODY_SHAPE_CASES",
    "BOUNDED",
    "MAX_WORDS",
    "SMALL_CTX",
    "BadRequest",
    "all_finite",
    "bounded_chat",
    "bounded_generate",
    "context_length",
    "cosine",
    "describe_answer",
    "embedding_only_model",
    "fill",
    "go_quote",
    "installed_or_absent",
    "is_number",
    "l2_norm",
    "long_text",
    "model_info",
    "model_without",
    "qualified_name",
    "send_chat",
    "send_generate",
    "too_long_input",
    "vector_of",
    "vectors_of",
]

#: Options for every request that could start a generation on a lenient server: one token at most.
BOUNDED: dict[str, Any] = options(num_predict=1)

#: The context the over-long-input checks ask for (options.num_ctx): small, so cutting is cheap.
SMALL_CTX = 64
#: The longest over-long input built, in words (about 2 MB), whatever the model claims.
MAX_WORDS = 300_000

#: Ordinary words for over-long inputs: every word is at least one token in any tokenizer.
_WORDS = ("the", "sky", "is", "blue", "because", "air", "scatters", "short", "light", "waves")


# --------------------------------------------------------------------------------------------
# Describing an answer


def describe_answer(exchange: Exchange, n: int = 300) -> str:
    """``status 404; body '{"error":...}'``: what came back, for the "actual" of a failure."""
    body = f"body {exchange.text_preview(n)!r}" if exchange.body else "empty body"
    return f"status {exchange.status}; {body}"


# --------------------------------------------------------------------------------------------
# Model names


def go_quote(name: str) -> str:
    """``name`` the way Go's ``%q`` prints it (valid model names need no escapes beyond JSON's)."""
    return json.dumps(name, ensure_ascii=True)


def qualified_name(name: str) -> str:
    """The full name Ollama prints in capability errors: ``host/namespace/model:tag``.

    ``tiny`` becomes ``registry.ollama.ai/library/tiny:latest``; ``me/m:7b`` becomes
    ``registry.ollama.ai/me/m:7b``; a host (which may carry a port) is kept.
    """
    base, _, last = name.rpartition("/")
    model, colon, tag = last.partition(":")
    parts = [*base.split("/"), model] if base else [model]
    if len(parts) == 1:
        parts = ["registry.ollama.ai", "library", *parts]
    elif len(parts) == 2:
        parts = ["registry.ollama.ai", *parts]
    return "/".join(parts) + ":" + (tag if colon and tag else "latest")


def model_info(target: Target, name: str) -> ModelInfo | None:
    """What discovery learnt about the model ``name`` (any case, tag or not), or None."""
    return next((m for m in target.models if same_model(m.name, name)), None)


def model_without(target: Target, has: str, lacks: str) -> str:
    """A model that has capability ``has`` and, by the server's own account, lacks ``lacks``.

    The model chosen for ``has`` (``--model`` for completion) is preferred; then the smallest
    local model that fits. Capabilities *inferred* for a server that reports none are not good
    enough to claim a model lacks something, except the old rule that a BERT-family model only
    embeds. Skips, saying what to pass, when no model fits.
    """
    __tracebackhide__ = True
    candidates: list[tuple[str, ModelInfo]] = []
    chosen = target.model_for(has)
    chosen_info = model_info(target, chosen) if chosen else None
    if chosen and chosen_info is not None:
        candidates.append((chosen, chosen_info))  # the name as the user gave it
    local = [m for m in target.models if not m.is_cloud and not is_scratch_model(m.name)]
    local.sort(key=lambda m: (m.size is None, m.size or 0, m.name))
    candidates += [(m.name, m) for m in local if m is not chosen_info]
    unreported: list[str] = []
    for name, info in candidates:
        if has not in info.capabilities or lacks in info.capabilities:
            continue
        trusted = info.capabilities_from != "inferred" or (has, lacks) == (
            "embedding",
            "completion",
        )
        if trusted:
            return name
        unreported.append(name)
    if unreported:
        pytest.skip(
            f"cannot judge: the target does not report capabilities, so no model is known to "
            f"lack '{lacks}' (candidates: {', '.join(unreported[:3])})"
        )
    pytest.skip(
        f"cannot judge: no model with '{has}' that lacks '{lacks}' on the target; pass one "
        f"with --model (or --embed-model)"
    )


def embedding_only_model(target: Target) -> str:
    """A model that embeds and cannot complete text (generate/chat must refuse it)."""
    __tracebackhide__ = True
    return model_without(target, "embedding", "completion")


def context_length(client: Client, model: str) -> int | None:
    """The model's trained context length from ``/api/show``, or None when it does not say.

    ``model_info["<arch>.context_length"]`` on every version that has model_info; ``details.
    context_length`` from v0.30.
    """
    exchange = client.post("/api/show", json={"model": model})
    value, _ = exchange.json()
    if exchange.status != 200 or not isinstance(value, dict):
        return None
    info = value.get("model_info")
    if isinstance(info, dict):
        arch = info.get("general.architecture")
        found = info.get(f"{arch}.context_length") if isinstance(arch, str) else None
        if found is None:
            found = next((v for k, v in info.items() if k.endswith(".context_length")), None)
        if isinstance(found, int) and not isinstance(found, bool) and found > 0:
            return found
    details = value.get("details")
    if isinstance(details, dict):
        found = details.get("context_length")
        if isinstance(found, int) and not isinstance(found, bool) and found > 0:
            return found
    return None


def long_text(words: int) -> str:
    """``words`` ordinary words separated by spaces: at least that many tokens anywhere."""
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(words))


def too_long_input(client: Client, model: str) -> str:
    """An input longer than the model's whole context, not only than :data:`SMALL_CTX`.

    One word is at least one token, so more words than the trained context length overflow
    whatever context the server settles on: a server that ignores ``num_ctx`` cannot fit it
    either. The checks still ask for ``num_ctx`` :data:`SMALL_CTX`, so that cutting is cheap.
    """
    trained = context_length(client, model) or 4096
    return long_text(min(max(trained, SMALL_CTX) + SMALL_CTX, MAX_WORDS))


# --------------------------------------------------------------------------------------------
# Vectors


def is_number(value: object) -> bool:
    """A JSON number (``true`` is not one, although Python says bool is an int)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def all_finite(vector: Sequence[object]) -> bool:
    """Every component is a finite JSON number."""
    return all(is_number(x) and math.isfinite(float(x)) for x in vector)  # type: ignore[arg-type]


def l2_norm(vector: Sequence[float]) -> float:
    """The Euclidean length of ``vector``."""
    return math.sqrt(math.fsum(float(x) * float(x) for x in vector))


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; two zero vectors count as identical (1.0), one zero vector as 0.0."""
    if len(a) != len(b):
        return 0.0
    na, nb = l2_norm(a), l2_norm(b)
    if na == 0.0 or nb == 0.0:
        return 1.0 if na == nb else 0.0
    return math.fsum(float(x) * float(y) for x, y in zip(a, b, strict=True)) / (na * nb)


def vectors_of(exchange: Exchange, *, numbers: bool = True) -> list[list[Any]]:
    """The ``embeddings`` of a 200 ``/api/embed`` answer, or SKIP (embed.response.shape judges).

    ``numbers=False`` lets non-numbers through, for the check that is about them.
    """
    __tracebackhide__ = True
    assume_status(exchange, 200)
    body = assume_json_object(exchange)
    vectors = body.get("embeddings")
    if not isinstance(vectors, list) or not all(
        isinstance(v, list) and (not numbers or all(map(is_number, v))) for v in vectors
    ):
        pytest.skip(
            "cannot judge: embeddings is not a list of lists of numbers "
            "(judged by embed.response.shape)"
        )
    return vectors


def vector_of(exchange: Exchange, *, numbers: bool = True) -> list[Any]:
    """The ``embedding`` of a 200 ``/api/embeddings`` answer, or SKIP (its shape is judged by
    embeddings.response.shape). ``numbers=False`` as above."""
    __tracebackhide__ = True
    assume_status(exchange, 200)
    body = assume_json_object(exchange)
    vector = body.get("embedding")
    if not isinstance(vector, list) or (numbers and not all(map(is_number, vector))):
        pytest.skip(
            "cannot judge: embedding is not a list of numbers (judged by embeddings.response.shape)"
        )
    return vector


# --------------------------------------------------------------------------------------------
# A spread of failing requests, for errors.body.shape


@dataclass(frozen=True)
class BadRequest:
    """One request every Ollama version refuses with a JSON error body.

    ``json`` is the body (``raw`` wins when set: bytes that are not JSON). ``model`` names what
    the ``"<model>"`` placeholder in the body becomes: ``completion`` or ``embedding`` (a model
    with that capability; the case skips without one). ``scratch`` puts a fresh scratch name in
    place of ``"<scratch>"`` (for copy/create/delete, so nothing real is ever touched).
    """

    label: str
    method: str
    path: str
    json: Mapping[str, Any] | None = None
    raw: bytes | None = None
    model: str | None = None
    scratch: bool = False


def bounded_generate(**fields: Any) -> dict[str, Any]:
    """A bounded, non-streamed generate request; ``fields`` add to or replace its keys."""
    return {"prompt": "hi", "stream": False, "options": BOUNDED, **fields}


def bounded_chat(**fields: Any) -> dict[str, Any]:
    """A bounded, non-streamed chat request with one user message; ``fields`` as above."""
    return {
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "options": BOUNDED,
        **fields,
    }


def send_generate(client: Client, **fields: Any) -> Exchange:
    """POST :func:`bounded_generate` with ``fields`` to ``/api/generate``."""
    return client.post("/api/generate", json=bounded_generate(**fields))


def send_chat(client: Client, **fields: Any) -> Exchange:
    """POST :func:`bounded_chat` with ``fields`` to ``/api/chat``."""
    return client.post("/api/chat", json=bounded_chat(**fields))


def installed_or_absent(target: Target, capability: str) -> str:
    """A model with ``capability`` if the target has one, else :data:`ABSENT_MODEL`.

    For errors raised while the body is read: they must not depend on the model existing, and
    with a real model a check cannot be mistaken for a not-found answer.
    """
    return target.model_for(capability) or ABSENT_MODEL


BODY_SHAPE_CASES: tuple[BadRequest, ...] = (
    BadRequest("generate-empty-body", "POST", "/api/generate", raw=b""),
    BadRequest("generate-truncated-json", "POST", "/api/generate", raw=b'{"model":'),
    BadRequest("generate-not-json", "POST", "/api/generate", raw=b"hello"),
    BadRequest(
        "generate-absent-model", "POST", "/api/generate", bounded_generate(model=ABSENT_MODEL)
    ),
    BadRequest("generate-model-empty", "POST", "/api/generate", bounded_generate(model="")),
    BadRequest(
        "generate-keep-alive-no-unit",
        "POST",
        "/api/generate",
        bounded_generate(model=ABSENT_MODEL, keep_alive="10"),
    ),
    BadRequest(
        "generate-options-string",
        "POST",
        "/api/generate",
        {"model": ABSENT_MODEL, "prompt": "hi", "stream": False, "options": "fast"},
    ),
    BadRequest(
        "generate-images-not-base64",
        "POST",
        "/api/generate",
        bounded_generate(model=ABSENT_MODEL, images=["%%% not base64"]),
    ),
    BadRequest(
        "generate-format-xml",
        "POST",
        "/api/generate",
        bounded_generate(model="<model>", format="xml"),
        model="completion",
    ),
    BadRequest(
        "generate-option-wrong-type",
        "POST",
        "/api/generate",
        bounded_generate(model="<model>", options={**BOUNDED, "top_k": "many"}),
        model="completion",
    ),
    BadRequest("chat-empty-body", "POST", "/api/chat", raw=b""),
    BadRequest("chat-model-missing", "POST", "/api/chat", bounded_chat()),
    BadRequest("chat-absent-model", "POST", "/api/chat", bounded_chat(model=ABSENT_MODEL)),
    BadRequest(
        "chat-messages-string",
        "POST",
        "/api/chat",
        {"model": ABSENT_MODEL, "messages": "hello", "stream": False, "options": BOUNDED},
    ),
    BadRequest("embed-empty-body", "POST", "/api/embed", raw=b""),
    BadRequest("embed-absent-model", "POST", "/api/embed", {"model": ABSENT_MODEL, "input": "hi"}),
    BadRequest(
        "embed-input-number",
        "POST",
        "/api/embed",
        {"model": "<model>", "input": 42},
        model="embedding",
    ),
    BadRequest("embeddings-empty-body", "POST", "/api/embeddings", raw=b""),
    BadRequest("embeddings-model-empty", "POST", "/api/embeddings", {"model": "", "prompt": "hi"}),
    BadRequest(
        "embeddings-absent-model",
        "POST",
        "/api/embeddings",
        {"model": ABSENT_MODEL, "prompt": "hi"},
    ),
    BadRequest("show-empty-body", "POST", "/api/show", raw=b""),
    BadRequest("show-no-model", "POST", "/api/show", {}),
    BadRequest("show-absent-model", "POST", "/api/show", {"model": ABSENT_MODEL}),
    BadRequest(
        "copy-absent-source",
        "POST",
        "/api/copy",
        {"source": ABSENT_MODEL, "destination": "<scratch>"},
        scratch=True,
    ),
    BadRequest(
        "delete-absent-model", "DELETE", "/api/delete", {"model": "<scratch>"}, scratch=True
    ),
    BadRequest(
        "create-without-source",
        "POST",
        "/api/create",
        {"model": "<scratch>", "stream": False},
        scratch=True,
    ),
    BadRequest("blobs-bad-digest", "POST", "/api/blobs/sha256:xyz", raw=b"hello"),
)


def fill(body: object, replacements: Mapping[str, str]) -> object:
    """``body`` with every string equal to a placeholder replaced (recursively)."""
    if isinstance(body, str):
        return replacements.get(body, body)
    if isinstance(body, Mapping):
        return {k: fill(v, replacements) for k, v in body.items()}
    if isinstance(body, list):
        return [fill(v, replacements) for v in body]
    return body
