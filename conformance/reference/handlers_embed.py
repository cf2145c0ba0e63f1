"""``POST /api/embed`` (§9) and the legacy ``POST /api/embeddings`` (§10).

Neither endpoint checks capabilities. Up to 0.20 a completion model embeds too (its last-token
state); from 0.30 Ollama runs llama-server with ``--embedding`` only for GGUFs with
``<arch>.pooling_type``, so embedding with a generate-only model fails with llama-server's 501,
passed through (§9, marked upstream in the facts).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import embedder
from .common import bind_request, clean_name, now_ns, spelled_as_stored, state_of
from .completion import NO_INPUT
from .config import ReferenceConfig
from .gojson import F32, go_quote
from .model import Model
from .names import parse_name
from .options import OptionError, parse_options
from .responses import error_response, json_response

NO_EMBEDDINGS = "This server does not support embeddings. Start it with `--embeddings`"


def _too_long_message(config: ReferenceConfig) -> str:
    """``truncate: false`` overflow wording; ranges from the git trees (requirements catalogue).

    From v0.13.3-rc0 the handler passes the runner's message on; from v0.12.0-rc1 to v0.13.2 the
    server said it itself, in two wordings over time.
    """
    if config.at_least("0.13.3-rc0"):
        return "the input length exceeds the context length"
    if config.at_least("0.12.0-rc1"):
        return "input exceeds maximum context length"
    return "input length exceeds maximum context length"


def _no_input_error(config: ReferenceConfig) -> Response:
    """The runner's refusal of an input without tokens, as the embed handler reports it.

    Real 0.12.11 and 0.24.0 answer ``input: [""]`` this way: the tiny GGUF adds no BOS token.

    Up to v0.6.0 the handler put the Go error value itself into ``gin.H``, which marshals as
    ``{}``; from v0.6.1-rc0 it sends the runner's text (trimmed of http.Error's newline).
    """
    if not config.at_least("0.6.1-rc0"):
        return json_response({"error": {}}, 500)
    return error_response(NO_INPUT, 500)


def _inputs(value: Any) -> list[str] | None:
    """``input``: a string or an array of strings; ``""``/``[]``/``null`` are no input (§9.2)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _no_tokens(unit: Any, tiny: Any) -> bool:
    """Whether an input tokenizes to nothing.

    A tiny GGUF is tokenized for real (its tokenizer adds no BOS). The catalogue's GGUFs declare
    a gpt2-style tokenizer without ``add_bos_token``, for which llama.cpp adds no BOS either, so
    there only the empty text has no tokens.
    """
    if tiny is not None:
        return len(unit) == 0
    return unit == ""


def _not_found(raw: str) -> Response:
    return error_response(f"model {go_quote(raw)} not found, try pulling it first", 404)


def _refuses_embedding(model: Model, config: ReferenceConfig) -> bool:
    return config.at_least("0.30.0") and not model.has("embedding")


async def embed(request: Request) -> Response:
    started = now_ns()
    state = state_of(request)
    config = state.config
    req = await bind_request(request, "embed")
    if isinstance(req, Response):
        return req
    raw_model: str = req["model"]
    name_text = clean_name(raw_model, config)
    name = parse_name(name_text)
    if config.at_least("0.17.8-rc0"):
        if not name_text:
            return error_response("model '' not found", 404)
        if not name.valid:
            return error_response("invalid model name", 400)
    inputs = _inputs(req["input"])
    if inputs is None:
        return error_response("invalid input type", 400)
    model = state.find(name) if name.valid else None
    if model is None:
        return _not_found(raw_model)
    try:
        options = parse_options(config, model.parameters, req["options"])
    except OptionError as exc:
        return error_response(str(exc), 500)
    loaded = await state.scheduler.acquire(
        model, options.num_ctx, config.load_time_for(model.name.shortest, raw_model)
    )
    tiny = await state.runtime(model)
    loaded_at = now_ns()
    try:
        if not inputs:
            return json_response({"model": raw_model, "embeddings": []})
        limit = loaded.num_ctx
        truncate = req["truncate"] is not False
        units: list[Any] = []
        count = 0
        for text in inputs:
            unit: Any = tiny.encode(text) if tiny is not None else text
            tokens = len(unit) if tiny is not None else embedder.count_tokens(text)
            if tokens > limit:
                if not truncate:
                    return error_response(_too_long_message(config), 400)
                if tiny is not None:
                    unit = unit[:limit]
                else:
                    unit = embedder.truncate_tokens(text, limit - 1)
                tokens = min(tokens, limit)
            units.append(unit)
            count += tokens
        if _refuses_embedding(model, config):
            return error_response(NO_EMBEDDINGS, 501)
        if not config.at_least("0.30.0") and any(_no_tokens(unit, tiny) for unit in units):
            # The llamarunner (before 0.30) cannot start a sequence without tokens. From 0.30
            # llama-server embeds; what it answers for an empty text was not observed, so the
            # reference keeps embedding it there.
            return _no_input_error(config)
        if config.prompt_rate > 0:
            await asyncio.sleep(count / config.prompt_rate)
        width = model.embedding_length
        dimensions = int(req.get("dimensions") or 0)
        vectors = []
        for unit in units:
            raw = (
                tiny.embed(unit)
                if tiny is not None
                else embedder.raw_vector(model.model_digest, unit, width)
            )
            vector = embedder.normalize(raw)
            if 0 < dimensions < len(vector):
                vector = embedder.normalize(vector[:dimensions])
            vectors.append([F32(x) for x in vector])
        end = now_ns()
        return json_response(
            {
                "model": raw_model,
                "embeddings": vectors,
                "total_duration": end - started,
                "load_duration": max(loaded_at - started, 1),
                "prompt_eval_count": count,
            }
        )
    finally:
        state.scheduler.release(loaded, req["keep_alive"])


async def embeddings(request: Request) -> Response:
    state = state_of(request)
    config = state.config
    req = await bind_request(request, "embeddings")
    if isinstance(req, Response):
        return req
    raw_model: str = req["model"]
    name_text = clean_name(raw_model, config)
    name = parse_name(name_text)
    if not name_text:
        return error_response("model is required", 400)
    if not name.valid:
        message = "invalid model name" if config.at_least("0.17.8-rc0") else "model is required"
        return error_response(message, 400)
    model = state.find(name)
    # The legacy endpoint never resolves the name case-insensitively: its manifest lookup uses
    # the name as sent (seen in every release's handler, v0.5.2 to v0.32.15).
    if model is None or not spelled_as_stored(name, model.name):
        return _not_found(raw_model)
    try:
        options = parse_options(config, model.parameters, req["options"])
    except OptionError as exc:
        return error_response(str(exc), 500)
    loaded = await state.scheduler.acquire(
        model, options.num_ctx, config.load_time_for(model.name.shortest, raw_model)
    )
    tiny = await state.runtime(model)
    try:
        prompt: str = req["prompt"]
        if prompt == "":
            return json_response({"embedding": []})
        if _refuses_embedding(model, config):
            return error_response(NO_EMBEDDINGS, 501)
        if config.prompt_rate > 0:
            await asyncio.sleep(embedder.count_tokens(prompt) / config.prompt_rate)
        if tiny is not None:
            vector = tiny.embed(tiny.encode(prompt)[: loaded.num_ctx])
        else:
            vector = embedder.raw_vector(model.model_digest, prompt, model.embedding_length)
        if config.at_least("0.30.0"):
            vector = embedder.normalize(vector)  # llama-server normalises /v1/embeddings
        # []float64 on the wire: float32 values widened, printed with float64 precision.
        return json_response({"embedding": [float(x) for x in vector]})
    finally:
        state.scheduler.release(loaded, req["keep_alive"])
