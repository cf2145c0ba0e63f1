"""Small helpers every handler uses: binding a body, resolving a model name, timing."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .bodies import BindError, bind
from .config import ReferenceConfig
from .names import ModelName, parse_name, strip_source_suffix
from .request_types import request_struct
from .responses import error_response
from .state import ReferenceState


def state_of(request: Request) -> ReferenceState:
    state: ReferenceState = request.app.state.reference
    return state


def now_ns() -> int:
    """Monotonic nanoseconds for durations (honest, measured on the server)."""
    return time.perf_counter_ns()


async def bind_request(request: Request, kind: str) -> dict[str, Any] | Response:
    """Read and bind the body; a 400 response (Go's message) if it cannot be bound (§1.3)."""
    body = await request.body()
    config = state_of(request).config
    try:
        return bind(body, request_struct(kind, config))
    except BindError as exc:
        return error_response(str(exc), 400)


def clean_name(raw: str, config: ReferenceConfig) -> str:
    """v0.17.8-rc0+ trims whitespace and strips ``:local`` before parsing (§21).

    That is where the ``modelref`` parsing first is in Ollama's git trees; the facts sheet's 0.17.6
    was early: the v0.17.6 and v0.17.7 trees still have the old checks.
    """
    return strip_source_suffix(raw) if config.at_least("0.17.8-rc0") else raw


def parsed(raw: str, config: ReferenceConfig) -> ModelName:
    return parse_name(clean_name(raw, config))


def spelled_as_stored(name: ModelName, stored: ModelName) -> bool:
    """Whether ``name`` names the stored model with the exact same case.

    Most handlers resolve a name case-insensitively first (``getExistingName``), but a few look
    the manifest up by the path of the name as sent, which on Linux (where real Ollama was
    recorded) only finds it when every part is spelled as stored.
    """
    return name.parts == stored.parts
