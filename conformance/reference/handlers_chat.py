"""``POST /api/chat`` in Ollama's order of checks (reference facts §8.3).

Differences from generate: an empty model is ``400 model is required``; since v0.12.0-rc0 a
missing model is ``404 model 'x' not found`` (before that the scheduler said ``model "x" not found,
try pulling it first``); ``tools`` require the ``tools`` capability; empty ``messages`` means load.
Roles are never validated (they were lower-cased while binding).
"""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from . import engine
from .checks import capability_error, required_caps, resolve_think, think_string_error
from .common import bind_request, clean_name, now_ns, spelled_as_stored, state_of
from .completion import (
    NO_INPUT,
    Job,
    debug_response,
    load_response,
    renders_to_nothing,
    respond,
    runner_error,
)
from .gojson import go_quote
from .gotemplate import TemplateExecError
from .names import parse_name
from .options import (
    FormatError,
    OptionError,
    is_zero_keep_alive,
    parse_format,
    parse_options,
    think_enabled,
)
from .render import chat_prompt
from .responses import error_response


def _plan(
    model: Any, text: str, req: dict[str, Any], options: Any, think: bool, fmt: Any, config: Any
) -> engine.Plan:
    messages: list[dict[str, Any]] = req["messages"] or []
    last = messages[-1] if messages else {}
    tools = req["tools"] or []
    key = model.model_digest
    if tools and model.has("tools") and last.get("role") == "user":
        plan = engine.plan_tool_calls(
            key,
            text,
            options,
            tools,
            str(last.get("content") or ""),
            # ids from v0.12.10; function.index always written from v0.12.6 (git tag scan,
            # schemas/generations.toml), omitted while 0 before that.
            with_ids=config.at_least("0.12.10-rc0"),
            with_index=config.at_least("0.12.6-rc0"),
        )
        if plan is not None:
            return plan
    if last.get("role") == "tool":
        return engine.plan_tool_answer(key, text, options, str(last.get("content") or ""))
    return engine.plan_text(key, text, options, think=think, fmt=fmt)


async def chat(request: Request) -> Response:
    started = now_ns()
    state = state_of(request)
    config = state.config
    req = await bind_request(request, "chat")
    if isinstance(req, Response):
        return req
    if config.at_least("0.12.11") and not 0 <= req.get("top_logprobs", 0) <= 20:
        return error_response("top_logprobs must be between 0 and 20", 400)
    raw_model: str = req["model"]
    messages: list[dict[str, Any]] = req["messages"] or []
    keep_alive = req["keep_alive"]
    name_text = clean_name(raw_model, config)
    name = parse_name(name_text)
    # The lookup before scheduling came with v0.12.0-rc0 (git tag scan: 0.11.x still let the
    # scheduler say "not found, try pulling it first"). Until v0.15.5-rc5 it read the manifest
    # by the name as sent, so a differently-cased name of an installed model was "not found"
    # (real 0.12.11) although generate accepts it; from then on it uses the resolved name.
    early_lookup = config.at_least("0.12.0-rc0")
    exact_case = not config.at_least("0.15.5-rc5")
    # Before that the unload check came first and looked the model up by itself, also by the
    # name as sent.
    if not early_lookup and not messages and is_zero_keep_alive(config, keep_alive, chat=True):
        found = state.find(name) if name.valid else None
        if found is None or not spelled_as_stored(name, found.name):
            return error_response(f"model '{raw_model}' not found", 404)
        state.scheduler.unload(found)
        return load_response("chat", raw_model, "unload", config)
    if not name_text.strip():
        return error_response("model is required", 400)
    if not name.valid:
        message = "invalid model name" if config.at_least("0.17.8-rc0") else "model is required"
        return error_response(message, 400)
    model = state.find(name)
    if model is not None and early_lookup and exact_case:
        model = model if spelled_as_stored(name, model.name) else None
    if model is None:
        if early_lookup:
            return error_response(f"model '{name_text}' not found", 404)
        return error_response(f"model {go_quote(raw_model)} not found, try pulling it first", 404)
    if early_lookup and not messages and is_zero_keep_alive(config, keep_alive, chat=True):
        state.scheduler.unload(model)
        return load_response("chat", raw_model, "unload", config)
    think = req.get("think")
    think, refused = resolve_think(config, model, think, raw_model)
    if refused is not None:
        return refused
    extra = ["tools"] if req["tools"] else []
    refused = capability_error(model, name, required_caps(config, think, *extra), raw_model, "chat")
    if refused is not None:
        return refused
    try:
        options = parse_options(config, model.parameters, req["options"])
    except OptionError as exc:
        return error_response(str(exc), 500)
    loaded = await state.scheduler.acquire(
        model, options.num_ctx, config.load_time_for(model.name.shortest, raw_model)
    )
    tiny = await state.runtime(model)
    loaded_at = now_ns()
    if not messages:
        state.scheduler.release(loaded, keep_alive)
        return load_response("chat", raw_model, "load", config)
    stream = req["stream"] is not False
    try:
        text = chat_prompt(
            template_text=model.template,
            messages=messages,
            system=model.system,
            model_messages=model.messages,
            tools=req["tools"],
            think=think,
            merge_tools=not config.at_least("0.9.6-rc0"),
            mark_images=not model.config.get("renderer"),
        )
    except TemplateExecError as exc:
        state.scheduler.release(loaded, keep_alive)
        return error_response(str(exc), 500)
    # Debug rendering (v0.11.5-rc3+) answers the prompt instead of running it.
    if req.get("_debug_render_only"):
        state.scheduler.release(loaded, keep_alive)
        count = sum(len(m.get("images") or []) for m in messages)
        return debug_response("chat", raw_model, text, count)
    # Chat refuses a think level string only now, after rendering (0.11 to 0.17.6); generate
    # does it before looking at the model at all.
    refused = think_string_error(config, req.get("think"))
    if refused is not None:
        state.scheduler.release(loaded, keep_alive)
        return refused
    # format is the runner's to validate, after all of the above.
    try:
        fmt = parse_format(req["format"])
    except FormatError as exc:
        state.scheduler.release(loaded, keep_alive)
        return await runner_error(str(exc), stream, state)
    if tiny is not None:
        prompt_ids = tiny.encode(text)
        if renders_to_nothing(config, prompt_ids):
            state.scheduler.release(loaded, keep_alive)
            return await runner_error(NO_INPUT, stream, state)
        plan = engine.plan_weights(tiny, prompt_ids, options, loaded.num_ctx)
    else:
        prompt_ids = engine.prompt_tokens(text)
        thinking = model.has("thinking") and think_enabled(think)
        if model.has("vision"):
            images = [i for m in messages for i in (m.get("images") or [])]
            text += "".join(hashlib.sha256(i).hexdigest()[:16] for i in images)
        plan = _plan(model, text, req, options, thinking, fmt, config)
    job = Job(
        state=state,
        endpoint="chat",
        request_model=raw_model,
        loaded=loaded,
        options=options,
        keep_alive_ns=keep_alive,
        stream=stream,
        started_ns=started,
        loaded_ns=loaded_at,
        plan=plan,
        prompt_ids=prompt_ids,
        rate=config.token_rate_for(model.name.shortest, raw_model),
        shift=req.get("shift"),
        logprobs=bool(req.get("logprobs")),
        top_logprobs=int(req.get("top_logprobs") or 0),
    )
    return await respond(job)
