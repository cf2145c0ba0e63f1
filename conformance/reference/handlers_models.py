"""Model management: ``/``, version, tags, ps, show, copy, delete (reference facts §2-6, §12-13)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .common import bind_request, clean_name, state_of
from .config import ReferenceConfig
from .gojson import dumps, format_float_v, go_quote
from .gotime import rfc3339_local
from .model import Model
from .names import parse_name
from .render import DEFAULT_TEMPLATE
from .responses import TEXT_UTF8, empty_response, error_response, json_response
from .state import ReferenceState
from .store import MEDIA_MODEL, MEDIA_PROJECTOR

ROOT_TEXT = b"Ollama is running"


async def root(request: Request) -> Response:
    """``GET``/``HEAD /``: the liveness text; HEAD keeps ``Content-Length: 17`` (§2)."""
    body = b"" if request.method == "HEAD" else ROOT_TEXT
    response = Response(body, headers={"Content-Type": TEXT_UTF8})
    response.headers["content-length"] = str(len(ROOT_TEXT))
    return response


async def version(request: Request) -> Response:
    return _maybe_head(request, {"version": state_of(request).config.version})


def _maybe_head(request: Request, value: Any) -> Response:
    """The JSON answer, or for HEAD its headers alone (net/http counts the dropped body)."""
    if request.method == "HEAD":
        response = json_response({})
        response.body = b""
        response.headers["content-length"] = str(len(dumps(value)))
        return response
    return json_response(value)


def _tags_entry(state: ReferenceState, model: Model) -> dict[str, Any]:
    newer = state.config.at_least("0.30.0")
    shortest = model.name.shortest
    entry: dict[str, Any] = {
        "name": shortest,
        "model": shortest,
        "modified_at": rfc3339_local(model.stored.modified_ns),
        "size": model.size,
        "digest": model.digest_hex,
        # The list only names a parent from 0.32.15, whose model list cache reads the layers.
        "details": model.details(with_lengths=newer, parent=state.config.at_least("0.32.15-rc0")),
    }
    if newer and model.capabilities:
        entry["capabilities"] = model.capabilities
    return entry


async def tags(request: Request) -> Response:
    """Every local model, newest first; ``{"models":[]}`` when there are none (§4)."""
    state = state_of(request)
    models = []
    for stored in sorted(state.store.all(), key=lambda s: s.modified_ns, reverse=True):
        model = state.find(stored.name)
        if model is not None:
            models.append(_tags_entry(state, model))
    return _maybe_head(request, {"models": models})


async def ps(request: Request) -> Response:
    """Loaded models, longest remaining keep-alive first (§5)."""
    state = state_of(request)
    entries = []
    for loaded in state.scheduler.running():
        model = loaded.model
        details = model.details(parent=False)
        entry: dict[str, Any] = {
            "name": model.name.shortest,
            "model": model.name.shortest,
            "size": model.size,
            "digest": model.digest_hex,
            "details": details,
            "expires_at": rfc3339_local(loaded.expires_ns),
            "size_vram": model.size,
        }
        if state.config.at_least("0.9.7-rc0"):  # not omitempty from v0.9.7-rc0 (git tag scan)
            actual = state.config.at_least("0.15.5-rc0")  # configured size before (git tag scan)
            entry["context_length"] = loaded.num_ctx if actual else loaded.reported_ctx
        entries.append(entry)
    return json_response({"models": entries})


def _go_v(value: Any) -> str:
    """Go's ``%#v`` for the parameter values Ollama prints in ``/api/show``."""
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return format_float_v(float(value))  # JSON numbers are float64 in a Go map
    if isinstance(value, float):
        return format_float_v(value)
    return str(value)


def _parameters_text(params: dict[str, Any]) -> str:
    lines = []
    for key in sorted(params):
        value = params[key]
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{key:<30} {_go_v(item)}")
    return "\n".join(lines)


def _modelfile_value(text: str) -> str:
    """How ``ollama show`` writes a Modelfile argument: bare unless it needs quoting.

    Only text with a newline or a leading or trailing space is quoted; it gets triple quotes when
    it holds a double quote itself, plain ones otherwise (real 0.24.0 prints
    ``TEMPLATE {{ range .Messages }}{{ .Content }}{{ end }}`` without any).
    """
    if "\n" in text or text.startswith(" ") or text.endswith(" "):
        return f'"""{text}"""' if '"' in text else f'"{text}"'
    return text


def _go_plain(value: Any) -> str:
    """Go's ``%v`` of a JSON value held in a map (strings bare, numbers as float64)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return format_float_v(float(value))
    return str(value)


def show_template(model: Model, config: ReferenceConfig) -> str:
    """The template ``/api/show`` reports: the model's, else what Ollama would run it with.

    A model created without a template runs with the default ``{{ .Prompt }}`` (real 0.12.11
    and 0.24.0 show it); from 0.30 a GGUF chat template is shown instead when there is one.
    """
    if model.template:
        return model.template
    facts = model.facts
    if config.at_least("0.30.0") and facts is not None and facts.chat_template:
        return facts.chat_template
    return DEFAULT_TEMPLATE if config.at_least("0.1.49-rc4") else ""  # first tag with it


def _modelfile(
    state: ReferenceState, model: Model, system: str, params: dict[str, Any], template: str
) -> str:
    """The ``modelfile`` text of ``/api/show``, in the order ``ollama show`` writes it."""
    manifest = model.stored.manifest
    layer = manifest.layer(MEDIA_MODEL)
    source = str(state.store.blob_path(layer.digest)) if layer else model.name.shortest
    lines = [
        '# Modelfile generated by "ollama show"',
        "# To build a new Modelfile based on this, replace FROM with:",
        f"# FROM {model.name.shortest}",
        "",
        f"FROM {source}",
    ]
    lines += [f"ADAPTER {_modelfile_value(str(state.store.blob_path(d)))}" for d in model.adapters]
    lines += [
        f"FROM {state.store.blob_path(item.digest)}"
        for item in manifest.layers
        if item.media_type == MEDIA_PROJECTOR
    ]
    if template:
        lines.append(f"TEMPLATE {_modelfile_value(template)}")
    if system:
        lines.append(f"SYSTEM {_modelfile_value(system)}")
    for key in ("renderer", "parser"):
        value = model.config.get(key)
        if isinstance(value, str) and value:
            lines.append(f"{key.upper()} {_modelfile_value(value)}")
    for key in sorted(params):  # Ollama walks a Go map here: any order is faithful
        value = params[key]
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"PARAMETER {key} {_modelfile_value(_go_plain(item))}")
    for text in model.license:
        lines.append(f"LICENSE {_modelfile_value(text)}")
    for message in model.messages:
        role, content = message.get("role", ""), str(message.get("content", ""))
        lines.append(f"MESSAGE {role} {_modelfile_value(content)}")
    return "\n".join(lines) + "\n"


async def show(request: Request) -> Response:
    state = state_of(request)
    config = state.config
    req = await bind_request(request, "show")
    if isinstance(req, Response):
        return req
    raw_model = req["model"] or req["name"]
    name_text = clean_name(raw_model, config)
    # The modelref parsing (v0.17.8-rc0) trims the name and answers a bad one with a 400.
    modelref = config.at_least("0.17.8-rc0")
    if not name_text or (modelref and not name_text.strip()):
        return error_response("model is required", 400)
    name = parse_name(name_text)
    if not name.valid:
        if modelref:
            return error_response("invalid model name", 400)
        return error_response("invalid model path", 500)
    model = state.find(name)
    if model is None:
        shown = name.shortest if config.at_least("0.30.0") else name_text
        return error_response(f"model '{shown}' not found", 404)
    system = req["system"] or model.system
    params = dict(model.parameters)
    if isinstance(req["options"], dict):
        params.update({k: v for k, v in req["options"].items() if v is not None})
    body: dict[str, Any] = {}
    if model.license:
        body["license"] = "\n".join(model.license)
    template = show_template(model, config)
    body["modelfile"] = _modelfile(state, model, system, params, template)
    text = _parameters_text(params)
    if text:
        body["parameters"] = text
    if template:
        body["template"] = template
    if system:
        body["system"] = system
    body["details"] = model.details()
    if model.messages:
        body["messages"] = model.messages
    facts = model.facts
    verbose = bool(req["verbose"])
    if facts is not None:
        info = facts.model_info(verbose=verbose, keep_arrays=not config.at_least("0.9.0"))
        if info or config.at_least("0.14.3"):
            body["model_info"] = info
    elif config.at_least("0.14.3"):
        body["model_info"] = {}
    if config.at_least("0.6.1-rc0") and facts is not None and facts.tensors:  # first tag
        body["tensors"] = facts.tensor_list()
    if config.at_least("0.6.4-rc0") and model.capabilities:  # the field's first tag
        body["capabilities"] = model.capabilities
    body["modified_at"] = rfc3339_local(model.stored.modified_ns)
    return json_response(body)


async def copy(request: Request) -> Response:
    state = state_of(request)
    config = state.config
    req = await bind_request(request, "copy")
    if isinstance(req, Response):
        return req
    source_text, dest_text = req["source"], req["destination"]
    source = parse_name(clean_name(source_text, config))
    if not source.valid:
        return error_response(f"source {go_quote(source_text)} is invalid", 400)
    dest = parse_name(clean_name(dest_text, config))
    if not dest.valid:
        return error_response(f"destination {go_quote(dest_text)} is invalid", 400)
    async with state.store_lock:
        if source.key == dest.key:
            return empty_response(200)  # same path: success without looking (§12)
        stored = state.store.get(source)
        if stored is None:
            return error_response(f"model {go_quote(source_text)} not found", 404)
        existing = state.store.resolve(dest)
        state.store.put(existing or dest, stored.manifest)
        state.scheduler.forget(dest.key)
    return empty_response(200)


async def delete(request: Request) -> Response:
    state = state_of(request)
    config = state.config
    req = await bind_request(request, "delete")
    if isinstance(req, Response):
        return req
    raw_model = req["model"] or req["name"]
    name_text = clean_name(raw_model, config)
    if config.at_least("0.17.8-rc0") and not name_text:
        return error_response("model is required", 400)
    name = parse_name(name_text)
    if not name.valid:
        return error_response(f"name {go_quote(raw_model)} is invalid", 400)
    async with state.store_lock:
        stored = state.store.resolve(name)
        if stored is None or not state.store.delete(name):
            return error_response(f"model '{raw_model}' not found", 404)
        state.scheduler.forget(name.key)
    return empty_response(200)
