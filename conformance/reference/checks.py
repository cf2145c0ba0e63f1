"""Checks shared by generate and chat: thinking rules and capability errors (§7.3, §8.3, §20).

Order matters and differs by release; each function encodes one step so the handlers can call
them in Ollama's order.
"""

from __future__ import annotations

from starlette.responses import Response

from .config import ReferenceConfig
from .gojson import go_quote
from .model import Model
from .names import ModelName
from .options import think_enabled
from .responses import error_response


def think_string_error(config: ReferenceConfig, think: object) -> Response | None:
    """v0.11.0-rc0 to v0.17.6: a level string on a non-gpt-oss model is refused (§7.3 step 8).

    The range is the one the wording has in Ollama's git trees (the facts sheet says 0.12).
    """
    refused = config.at_least("0.11.0-rc0") and not config.at_least("0.17.7-rc0")
    if isinstance(think, str) and refused:
        return error_response(f"think value {go_quote(think)} is not supported for this model", 400)
    return None


def resolve_think(
    config: ReferenceConfig, model: Model, think: bool | str | None, request_model: str
) -> tuple[bool | str | None, Response | None]:
    """0.12.5+: thinking models default to ``think: true``; others refuse a truthy ``think``."""
    if not config.at_least("0.9.0-rc0"):
        return None, None  # 0.6 has no think field
    if not config.at_least("0.12.5-rc0"):
        return think, None  # checked as a capability at scheduling time (see required_caps)
    if model.has("thinking"):
        return (True if think is None else think), None
    if think_enabled(think):
        return think, error_response(f"{go_quote(request_model)} does not support thinking", 400)
    return think, None


def required_caps(config: ReferenceConfig, think: bool | str | None, *extra: str) -> list[str]:
    caps = ["completion", *extra]
    if config.at_least("0.9.0-rc0") and not config.at_least("0.12.5-rc0") and think_enabled(think):
        caps.append("thinking")
    return caps


def capability_error(
    model: Model, name: ModelName, required: list[str], request_model: str, endpoint: str
) -> Response | None:
    """``CheckCapabilities`` wrapped by ``scheduleRunner`` (§20): 400 in every case.

    A missing ``completion`` is special-cased as ``"<m>" does not support generate|chat``; the
    rest name the full model name: ``registry.ollama.ai/library/m:latest does not support tools``.
    """
    missing = [cap for cap in required if not model.has(cap)]
    if not missing:
        return None
    if "completion" in missing:
        verb = "chat" if endpoint == "chat" else "generate"
        return error_response(f"{go_quote(request_model)} does not support {verb}", 400)
    return error_response(f"{name.full} does not support {chr(10).join(missing)}", 400)
