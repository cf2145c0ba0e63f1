"""The part of ``/api/generate`` and ``/api/chat`` after validation: run, stream, account.

Both endpoints load the model, evaluate the prompt, emit one token per chunk and finish with a
``done: true`` object that alone carries ``done_reason`` and the metrics (§18.5). Durations are
measured here with ``time.perf_counter_ns`` (§19.6): ``load_duration`` from handler entry to the
model being ready, ``prompt_eval_duration`` around the prompt step, ``eval_duration`` from the
engine, ``total_duration`` from handler entry to the final chunk — so it is always at least the
sum of the parts. Zero-valued metrics are left out, as Go's ``omitempty`` does.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.responses import Response

from . import engine
from .common import now_ns
from .gotime import rfc3339_utc
from .options import Options
from .responses import Event, StreamError, error_response, json_response, ndjson_stream
from .scheduler import Loaded
from .state import ReferenceState


@dataclass
class Job:
    """One validated generate/chat request, ready to run."""

    state: ReferenceState
    endpoint: str  # "generate" | "chat"
    request_model: str  # echoed exactly as sent (§7.2)
    loaded: Loaded
    options: Options
    keep_alive_ns: int | None
    stream: bool
    started_ns: int
    loaded_ns: int
    plan: engine.Plan
    prompt_ids: list[int]
    rate: float
    want_context: bool = False
    #: Set for a model that is tokenized for real: ``context`` is then what Ollama sends, the
    #: server's tokenization of the rendered prompt plus the emitted text (so no EOS, and a cut
    #: stop string is not in it either). Otherwise prompt and output ids are joined.
    context_of: Callable[[str], list[int]] | None = None
    prompt_text: str = ""
    shift: bool | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    released: bool = field(default=False, init=False)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.state.scheduler.release(self.loaded, self.keep_alive_ns)


def _metrics(values: dict[str, int]) -> dict[str, int]:
    return {k: v for k, v in values.items() if v}


def _logprob_entry(piece: str, top: int) -> dict[str, Any]:
    # A deterministic, plausible log-probability (always <= 0) and alternatives sorted best first.
    base = -((engine.token_id(piece) % 997) / 997.0) * 0.5
    entry: dict[str, Any] = {
        "token": piece,
        "logprob": round(base, 6),
        "bytes": list(piece.encode("utf-8")),
    }
    if top > 0:
        alternatives = [{"token": piece, "logprob": round(base, 6), "bytes": list(piece.encode())}]
        for rank in range(1, top):
            alt = f"{piece.strip() or '_'}{rank}"
            value = round(base - rank * 1.25 - math.log1p(rank), 6)
            alternatives.append({"token": alt, "logprob": value, "bytes": list(alt.encode())})
        entry["top_logprobs"] = alternatives
    return entry


class ChunkShapes:
    """Builds the endpoint-specific objects (generate: ``response``; chat: ``message``)."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.chat = job.endpoint == "chat"
        self.old_order = not job.state.config.at_least("0.12.0")

    def chunk(self, emission: engine.Emission) -> dict[str, Any]:
        job = self.job
        out: dict[str, Any] = {"model": job.request_model, "created_at": rfc3339_utc()}
        content = emission.text if emission.kind == "content" else ""
        thinking = emission.text if emission.kind == "thinking" else ""
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            if emission.tool_calls:
                message["tool_calls"] = emission.tool_calls
            out["message"] = message
        else:
            out["response"] = content
            if thinking:
                out["thinking"] = thinking
            if emission.tool_calls:
                out["tool_calls"] = emission.tool_calls
        out["done"] = False
        if job.logprobs and emission.kind == "content" and emission.text:
            out["logprobs"] = [_logprob_entry(emission.text, job.top_logprobs)]
        return out

    def final(
        self, done_reason: str, metrics: dict[str, int], context: list[int] | None
    ) -> dict[str, Any]:
        job = self.job
        out: dict[str, Any] = {"model": job.request_model, "created_at": rfc3339_utc()}
        if self.chat:
            out["message"] = {"role": "assistant", "content": ""}
            if self.old_order:
                out["done_reason"] = done_reason  # 0.6/0.9 put done_reason before done (§8.2)
                out["done"] = True
            else:
                out["done"] = True
                out["done_reason"] = done_reason
        else:
            out["response"] = ""
            out["done"] = True
            out["done_reason"] = done_reason
            if context is not None:
                out["context"] = context
        out.update(_metrics(metrics))
        return out


async def _events(job: Job, shapes: ChunkShapes) -> AsyncGenerator[dict[str, Any], None]:
    state = job.state
    config = state.config
    try:
        prompt_start = now_ns()
        prompt_count = len(job.prompt_ids)
        num_ctx = job.loaded.num_ctx
        if config.prompt_rate > 0:
            await asyncio.sleep(min(prompt_count, num_ctx) / config.prompt_rate)
        prompt_end = now_ns()
        limit = job.options.num_predict
        if limit <= 0:
            limit = 10 * num_ctx  # an unbounded num_predict is capped at 10 x num_ctx (§19.1)
        if job.shift is False:
            limit = min(limit, max(num_ctx - prompt_count, 0))
        stats = engine.RunStats()
        emitted: list[str] = []
        async for emission in engine.run(
            job.plan, job.options, rate=job.rate, limit=limit, stats=stats
        ):
            if emission.kind == "content":
                emitted.append(emission.text)
            yield shapes.chunk(emission)
        if stats.aborted:
            return  # the repeat guard: no done:true object at all (§18.5)
        end = now_ns()
        metrics = {
            "total_duration": end - job.started_ns,
            "load_duration": max(job.loaded_ns - job.started_ns, 1),
            "prompt_eval_count": min(prompt_count, num_ctx),
            "prompt_eval_duration": max(prompt_end - prompt_start, 1),
            "eval_count": stats.eval_count,
            "eval_duration": stats.eval_duration_ns if stats.eval_count else 0,
        }
        context: list[int] | None = None
        if job.want_context and job.context_of is not None:
            context = job.context_of(job.prompt_text + "".join(emitted))
        elif job.want_context:
            context = job.prompt_ids + stats.output_ids
        yield shapes.final(stats.done_reason, metrics, context)
    finally:
        job.release()


async def respond(job: Job) -> Response:
    """Run ``job`` and answer as a stream or, for ``stream: false``, one aggregated object."""
    shapes = ChunkShapes(job)
    events = _events(job, shapes)
    if job.stream:
        return await ndjson_stream(_as_events(events), job.state.config)
    return await _aggregate(events, shapes)


async def _as_events(source: AsyncGenerator[dict[str, Any], None]) -> AsyncGenerator[Event, None]:
    try:
        async for item in source:
            yield item
    finally:
        await source.aclose()


async def _aggregate(events: AsyncGenerator[dict[str, Any], None], shapes: ChunkShapes) -> Response:
    """``stream: false``: the final object with all text (and tool calls, logprobs) joined."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[dict[str, Any]] = []
    logprobs: list[Any] = []
    final: dict[str, Any] = {}
    try:
        async for item in events:
            final = item  # without a done:true object the last chunk is the answer (§18.5)
            if item.get("done"):
                break
            part = item.get("message", item)
            texts.append(part.get("content", part.get("response", "")) or "")
            thoughts.append(part.get("thinking", "") or "")
            calls.extend(part.get("tool_calls") or [])
            logprobs.extend(item.get("logprobs") or [])
    finally:
        await events.aclose()
    thinking = "".join(thoughts)
    text = "".join(texts)
    result = dict(final)
    if shapes.chat:
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if thinking:
            message["thinking"] = thinking
        if calls:
            message["tool_calls"] = calls
        result["message"] = message
    else:
        ordered: dict[str, Any] = {}
        for key, value in result.items():
            ordered[key] = value
            if key == "response":
                ordered["response"] = text
                if thinking:
                    ordered["thinking"] = thinking
        result = ordered
    if logprobs:
        result["logprobs"] = logprobs
    return json_response(result)


async def runner_error(message: str, stream: bool, state: ReferenceState) -> Response:
    """An error raised inside the runner after loading, e.g. an invalid ``format`` (§19.3).

    ``stream: false`` → 500; streaming → a real 500 from 0.12.6, an NDJSON error line before.
    """
    if not stream:
        return error_response(message, 500)

    async def one() -> AsyncGenerator[Event, None]:
        yield StreamError(message)

    return await ndjson_stream(one(), state.config)


#: The llama.cpp runner's refusal of a prompt or embedding input that tokenizes to nothing (before
#: 0.30); the server passes its status (500) and text on.
NO_INPUT = "Failed to create new sequence: no input provided"


def renders_to_nothing(config: Any, prompt_ids: list[int]) -> bool:
    """Whether the runner refuses a tiny GGUF's rendered prompt for having no tokens.

    Only the tiny GGUFs are tokenized for real (their tokenizer adds no BOS), and they are what
    real Ollama was seen refusing with; the synthetic engine counts at least one token for any
    prompt. What llama-server (0.30+) does with an empty prompt was not observed: it runs.
    """
    return not config.at_least("0.30.0") and not prompt_ids


def debug_response(endpoint: str, request_model: str, rendered: str, images: int) -> Response:
    """The ``_debug_render_only`` answer: the rendered prompt, without running the model.

    Ollama answers with an otherwise empty response object: ``done`` is false, there is no
    ``done_reason`` and no metric, and chat's ``message`` is the zero ``Message`` (both fields
    empty, since neither is omitempty). ``image_count`` only appears when images were sent.
    The answer is one JSON object even when streaming was asked for.
    """
    out: dict[str, Any] = {"model": request_model, "created_at": rfc3339_utc()}
    if endpoint == "chat":
        out["message"] = {"role": "", "content": ""}
    else:
        out["response"] = ""
    out["done"] = False
    info: dict[str, Any] = {"rendered_template": rendered}
    if images:
        info["image_count"] = images
    out["_debug_info"] = info
    return json_response(out)


def load_response(endpoint: str, request_model: str, reason: str, config: Any) -> Response:
    """The ``done_reason: "load"`` / ``"unload"`` answer to an empty prompt (§7.3, §8.3)."""
    out: dict[str, Any] = {"model": request_model, "created_at": rfc3339_utc()}
    if endpoint == "chat":
        out["message"] = {"role": "assistant", "content": ""}
        if not config.at_least("0.12.0"):
            out["done_reason"] = reason
            out["done"] = True
            return json_response(out)
    else:
        out["response"] = ""
    out["done"] = True
    out["done_reason"] = reason
    return json_response(out)
