"""Request parameters whose semantics Ollama implements itself: options, keep_alive, think, format.

* ``options`` (§19.1): unknown keys are ignored; a wrong type is an error that only surfaces once
  the model has been found (the scheduler builds the runner options), so it becomes HTTP **500**.
  A plain-string ``stop`` is such an error.
* ``keep_alive`` (§19.2): a number of seconds or a Go duration string; negative means forever.
  Its errors happen while binding the body, so they are 400s.
* ``think`` (§19.4): ``bool`` or a level string from 0.12 on; the accepted levels grew over time.
* ``format`` (§19.3): ``"json"``, a JSON Schema object, or unset (``null``/``""``); anything else
  is rejected by the runner after the model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ReferenceConfig
from .gojson import dumps, go_quote
from .gotime import MAX_DURATION_NS, DurationError, parse_go_duration

_INT, _FLOAT, _BOOL, _STR, _STRINGS = "integer", "float32", "boolean", "string", "strings"

#: Recognised option names and their Go kinds, 0.9 onwards (§19.1).
_OPTION_KINDS: dict[str, str] = {
    "num_keep": _INT,
    "seed": _INT,
    "num_predict": _INT,
    "top_k": _INT,
    "top_p": _FLOAT,
    "min_p": _FLOAT,
    "typical_p": _FLOAT,
    "repeat_last_n": _INT,
    "temperature": _FLOAT,
    "repeat_penalty": _FLOAT,
    "presence_penalty": _FLOAT,
    "frequency_penalty": _FLOAT,
    "stop": _STRINGS,
    "num_ctx": _INT,
    "num_batch": _INT,
    "num_gpu": _INT,
    "main_gpu": _INT,
    "use_mmap": _BOOL,
    "num_thread": _INT,
}
#: Options that only 0.6 knew (the mirostat / low_vram family, dropped later).
_OPTION_KINDS_06 = {
    "mirostat": _INT,
    "mirostat_tau": _FLOAT,
    "mirostat_eta": _FLOAT,
    "low_vram": _BOOL,
    "f16_kv": _BOOL,
    "logits_all": _BOOL,
    "vocab_only": _BOOL,
    "use_mlock": _BOOL,
}


class OptionError(ValueError):
    """A wrong option type; Ollama answers 500 with this text."""


@dataclass
class Options:
    """The runner options that matter to the deterministic engine."""

    temperature: float = 0.8
    seed: int = -1
    num_predict: int = -1
    num_ctx: int = 0  # 0: the server default for the emulated version
    stop: tuple[str, ...] = ()
    top_k: int = 40
    top_p: float = 0.9


def option_kinds(config: ReferenceConfig) -> dict[str, str]:
    kinds = dict(_OPTION_KINDS)
    if not config.at_least("0.9.0"):
        kinds.update(_OPTION_KINDS_06)
    if config.at_least("0.32.0"):
        kinds["draft_num_predict"] = _INT
    return kinds


def parse_options(config: ReferenceConfig, *layers: dict[str, Any] | None) -> Options:
    """Merge option maps (model parameters first, request options last) the way FromMap does."""
    kinds = option_kinds(config)
    merged: dict[str, Any] = {}
    for layer in layers:
        if not layer:
            continue
        for key, value in layer.items():
            kind = kinds.get(key)
            if kind is None or value is None:
                continue  # unknown names only log a warning in Ollama; null is skipped
            merged[key] = _check(key, kind, value)
    opts = Options()
    for key in ("temperature", "seed", "num_predict", "num_ctx", "top_k", "top_p"):
        if key in merged:
            setattr(opts, key, merged[key])
    if "stop" in merged:
        opts.stop = tuple(merged["stop"])
    return opts


def _check(key: str, kind: str, value: Any) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == _INT:
        if not number:
            raise OptionError(f'option "{key}" must be of type integer')
        return int(value)  # a float is accepted and truncated
    if kind == _FLOAT:
        if not number:
            raise OptionError(f'option "{key}" must be of type float32')
        return float(value)
    if kind == _BOOL:
        if not isinstance(value, bool):
            raise OptionError(f'option "{key}" must be of type boolean')
        return value
    if kind == _STR:
        if not isinstance(value, str):
            raise OptionError(f'option "{key}" must be of type string')
        return value
    if not isinstance(value, list):
        raise OptionError(f'option "{key}" must be of type array')
    if not all(isinstance(item, str) for item in value):
        raise OptionError(f'option "{key}" must be of an array of strings')
    return value


# --- keep_alive ------------------------------------------------------------------------------


def keep_alive_parser(config: ReferenceConfig) -> Any:
    """The ``Duration.UnmarshalJSON`` of the emulated version, as a bind-time parser."""

    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("Unsupported type: 'bool'")
        if isinstance(value, int | float):
            if value < 0:
                return MAX_DURATION_NS  # negative means "keep loaded forever"
            # 0.6 / 0.9 truncate to whole seconds; 0.12 keeps fractions.
            ns = value * 1_000_000_000 if config.at_least("0.12.0") else int(value) * 1_000_000_000
            return min(int(ns), MAX_DURATION_NS)
        if isinstance(value, str):
            try:
                ns = parse_go_duration(value)
            except DurationError as exc:
                raise ValueError(str(exc)) from None
            return MAX_DURATION_NS if ns < 0 else ns
        go_type = "[]interface {}" if isinstance(value, list) else "map[string]interface {}"
        raise ValueError(f"Unsupported type: '{go_type}'")

    return parse


def is_zero_keep_alive(config: ReferenceConfig, ns: int | None, *, chat: bool) -> bool:
    """Whether an empty prompt with this keep_alive means "unload" (§7.3 step 5, §8.3).

    Older releases test ``int(seconds) == 0``, so "500ms" also unloads there.
    """
    if ns is None:
        return False
    exact = config.at_least("0.12.11") if chat else config.at_least("0.12.0")
    return ns == 0 if exact else int(ns / 1_000_000_000) == 0


# --- think -----------------------------------------------------------------------------------


def think_levels(config: ReferenceConfig) -> tuple[str, ...]:
    return (
        ("high", "medium", "low", "max")
        if config.at_least("0.21.3-rc0")
        else ("high", "medium", "low")
    )


def think_parser(config: ReferenceConfig) -> Any:
    """``ThinkValue.UnmarshalJSON`` (v0.11.0-rc0+): a bool or a level string."""
    levels = think_levels(config)
    listed = ", ".join(f'"{level}"' for level in levels)

    def parse(value: Any) -> bool | str:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            if value in levels:
                return value
            raise ValueError(
                f"invalid think value: {go_quote(value)} (must be {listed}, true, or false)"
            )
        # The type error names true and false too from v0.12.4-rc7 (git tag scan).
        if config.at_least("0.12.4-rc7"):
            raise ValueError(f"think must be a boolean or string ({listed}, true, or false)")
        raise ValueError(f"think must be a boolean or string ({listed})")

    return parse


def think_enabled(value: bool | str | None) -> bool:
    """A level string counts as ``true`` (§19.4)."""
    return value is not None and value is not False


# --- format ----------------------------------------------------------------------------------


class FormatError(ValueError):
    """An unusable ``format``: raised by the runner, so 500 (or an ndjson line on old releases)."""


def parse_format(value: Any) -> str | dict[str, Any] | None:
    """``None`` (unset), ``"json"``, or a JSON Schema object; anything else is a FormatError."""
    if value is None or value == "":
        return None
    if value == "json":
        return "json"
    if isinstance(value, dict):
        return value
    try:
        raw = dumps(value).decode("utf-8")
    except (RecursionError, ValueError):
        raw = "[...]" if isinstance(value, list) else str(value)
    raise FormatError(
        f'invalid format: {go_quote(raw)}; expected "json" or a valid JSON Schema object'
    )
