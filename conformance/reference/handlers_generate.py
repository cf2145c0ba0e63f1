"""``POST /api/generate`` in Ollama's order of checks (reference facts §7.3, 0.32 order)."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import Response

from . import engine
from .checks import capability_error, required_caps, resolve_think, think_string_error
from .common import bind_request, clean_name, now_ns, state_of
from .completion import (
    NO_INPUT,
    Job,
    debug_response,
    load_response,
    renders_to_nothing,
    respond,
    runner_error,
)
from .config import ReferenceConfig
from .gotemplate import TemplateExecError
from .model import Model
from .names import parse_name
from .options import (
    FormatError,
    OptionError,
    is_zero_keep_alive,
    parse_format,
    parse_options,
    think_enabled,
)
from .render import generate_prompt, parsed_template
from .responses import error_response
from .weights import TinyModel


def _context_prefix(context: list[int] | None, tiny: TinyModel | None) -> str:
    """``context`` tokens are detokenised and put before the prompt (§7.1)."""
    if not context:
        return ""
    if tiny is not None:
        return b"".join(tiny.token_bytes(t) for t in context).decode("utf-8", errors="replace")
    return "".join(f"<{t}>" for t in context)  # synthetic ids only stand for themselves


def _image_style(config: ReferenceConfig, model: Model, own_template: bool) -> str:
    """How the emulated release marks images in the prompt (see ``render.generate_prompt``).

    v0.12.6-rc0 renders a generate like a chat (unless the request brings its own template), and
    a model with a renderer gets no markers at all.
    """
    if not config.at_least("0.12.6-rc0"):
        return "messages"
    return "none" if own_template or model.config.get("renderer") else "tags"


async def generate(request: Request) -> Response:
    started = now_ns()
    state = state_of(request)
    config = state.config
    req = await bind_request(request, "generate")
    if isinstance(req, Response):
        return req
    # 2. top_logprobs range, before the model is even looked at (0.12.11+).
    if config.at_least("0.12.11") and not 0 <= req.get("top_logprobs", 0) <= 20:
        return error_response("top_logprobs must be between 0 and 20", 400)
    # 3-4. Model name and lookup; the error echoes the name as sent.
    raw_model: str = req["model"]
    name_text = clean_name(raw_model, config)
    shown = name_text if config.at_least("0.17.8-rc0") else raw_model
    name = parse_name(name_text)
    if not name_text.strip() or not name.valid:
        if name_text.strip() and config.at_least("0.17.8-rc0"):
            return error_response("invalid model name", 400)
        return error_response(f"model '{shown}' not found", 404)
    model = state.find(name)
    if model is None:
        return error_response(f"model '{shown}' not found", 404)
    keep_alive = req["keep_alive"]
    prompt: str = req["prompt"]
    # 5. Unload: empty prompt and keep_alive 0; the model need not be loaded.
    if prompt == "" and is_zero_keep_alive(config, keep_alive, chat=False):
        state.scheduler.unload(model)
        return load_response("generate", raw_model, "unload", config)
    # 7. raw conflicts.
    if req["raw"] and (req["template"] or req["system"] or req["context"]):
        return error_response("raw mode does not support template, system, or context", 400)
    # 8-9. think.
    think = req.get("think")
    refused = think_string_error(config, think)
    if refused is not None:
        return refused
    think, refused = resolve_think(config, model, think, raw_model)
    if refused is not None:
        return refused
    # 10. Scheduling: capabilities, options, load.
    extra = ["insert"] if req["suffix"] else []
    refused = capability_error(
        model, name, required_caps(config, think, *extra), raw_model, "generate"
    )
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
    # 11. Load only.
    if prompt == "":
        state.scheduler.release(loaded, keep_alive)
        return load_response("generate", raw_model, "load", config)
    # 13. Render the prompt; a template Go cannot parse or run is a 500 (§7.1, §7.3).
    try:
        if req["template"]:
            parsed_template(req["template"])
        text = _context_prefix(req["context"], tiny) + generate_prompt(
            template_text=req["template"] or model.template,
            prompt=prompt,
            system=req["system"] or model.system,
            suffix=req["suffix"],
            model_messages=model.messages,
            has_context=req["context"] is not None,
            raw=req["raw"],
            think=think,
            images=len(req["images"] or []),
            image_style=_image_style(config, model, bool(req["template"])),
            merge_tools=not config.at_least("0.9.6-rc0"),
        )
    except TemplateExecError as exc:
        state.scheduler.release(loaded, keep_alive)
        return error_response(str(exc), 500)
    # 13b. Debug rendering (v0.11.5-rc3+): the prompt is answered instead of being run; the model
    # was loaded all the same, and format is only checked by the runner afterwards.
    if req.get("_debug_render_only"):
        state.scheduler.release(loaded, keep_alive)
        return debug_response("generate", raw_model, text, len(req["images"] or []))
    stream = req["stream"] is not False
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
        images = [hashlib.sha256(i).hexdigest() for i in req["images"] or []]
        extra_key = images if model.has("vision") else []
        thinking = model.has("thinking") and think_enabled(think)
        prompt_ids = engine.prompt_tokens(text)
        plan = engine.plan_text(
            model.model_digest, text, options, think=thinking, fmt=fmt, extra=extra_key
        )
    job = Job(
        state=state,
        endpoint="generate",
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
        want_context=not req["raw"],
        context_of=(lambda t: tiny.encode(t, add_special=False)) if tiny is not None else None,
        prompt_text=text,
        shift=req.get("shift"),
        logprobs=bool(req.get("logprobs")),
        top_logprobs=int(req.get("top_logprobs") or 0),
    )
    return await respond(job)
