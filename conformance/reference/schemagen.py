"""A deterministic JSON instance for a JSON Schema: what the engine "generates" for ``format``.

Real Ollama constrains sampling with a grammar built from the schema (§19.3), so a
structured-output answer always parses and validates. The engine does the same from the other
end: it builds an instance straight from the schema, picking values from the prompt where that is
plausible (the first number in the prompt for an integer, a capitalised word for a string) so the
answers look related to the question, and falls back to values from a seeded RNG.

Covered keywords: ``type`` (incl. lists), ``enum``, ``const``, ``properties``, ``required``,
``items``, ``prefixItems``, ``minItems``/``maxItems``, ``minLength``/``maxLength``, ``pattern``
(best effort), ``format`` (date, date-time, time, email, uri, uuid, ipv4), ``minimum``/``maximum``
and their exclusive forms, ``multipleOf``, ``anyOf``/``oneOf``/``allOf``, local ``$ref``
(``#/$defs/...``, ``#/definitions/...``), ``additionalProperties``, ``minProperties``.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

_MAX_DEPTH = 8
#: Caps on sizes a schema may ask for; a client-supplied schema must never make the server hang.
_MAX_ITEMS = 64
_MAX_LENGTH = 4096

_WORDS = [
    "alpha",
    "river",
    "stone",
    "maple",
    "cloud",
    "ember",
    "harbor",
    "lumen",
    "quartz",
    "cedar",
]


class InstanceGenerator:
    """Builds one instance per call; ``hints`` are words and numbers taken from the prompt."""

    def __init__(self, rng: random.Random, prompt: str = "") -> None:
        self.rng = rng
        self.numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", prompt)]
        words = re.findall(r"[A-Za-z][A-Za-z'-]+", prompt)
        # Names are the likeliest argument values ("Paris" in "weather in Paris?"): capitalised
        # words after the first come first, then the rest in order.
        capitalised = [w for w in words[1:] if w[0].isupper()]
        rest = [w for w in words if w not in capitalised]
        self.words = list(dict.fromkeys(capitalised + rest))
        self._next_word = 0
        self.root: dict[str, Any] = {}

    def generate(self, schema: Any) -> Any:
        self.root = schema if isinstance(schema, dict) else {}
        return self._value(schema, 0)

    # --- dispatch ----------------------------------------------------------------------------

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 16:
            ref = str(schema["$ref"])
            target: Any = self.root if ref.startswith("#") else {}
            for part in ref.lstrip("#").strip("/").split("/"):
                if not part:
                    continue
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part, {}) if isinstance(target, dict) else {}
            merged = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**(target if isinstance(target, dict) else {}), **merged}
            seen += 1
        return schema

    def _value(self, schema: Any, depth: int) -> Any:
        if schema is True or schema is None or not isinstance(schema, dict):
            return self._word() if depth == 0 else None
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        if "allOf" in schema and isinstance(schema["allOf"], list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self._resolve(part) if isinstance(part, dict) else {}
                for key, value in part.items():
                    if key == "properties" and isinstance(value, dict):
                        merged.setdefault("properties", {}).update(value)
                    elif key == "required" and isinstance(value, list):
                        merged["required"] = [*merged.get("required", []), *value]
                    else:
                        merged.setdefault(key, value)
            return self._value(merged, depth)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                rest = {k: v for k, v in schema.items() if k != key}
                first = options[0] if isinstance(options[0], dict) else {}
                return self._value({**rest, **first}, depth)
        kind = self._type_of(schema)
        if depth >= _MAX_DEPTH and kind in ("object", "array"):
            return {} if kind == "object" else []
        return getattr(self, f"_{kind}")(schema, depth)

    @staticmethod
    def _type_of(schema: dict[str, Any]) -> str:
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"] or ["null"]
            kind = kinds[0]
        if isinstance(kind, str) and kind in (
            "object", "array", "string", "integer", "number", "boolean", "null",
        ):  # fmt: skip
            return kind
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "multipleOf")):
            return "number"
        return "string"

    # --- per type ----------------------------------------------------------------------------

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for key, sub in properties.items():
                result[key] = self._value(sub, depth + 1)
        for key in schema.get("required", []) or []:
            if isinstance(key, str) and key not in result:
                extra = schema.get("additionalProperties")
                result[key] = self._value(extra if isinstance(extra, dict) else {}, depth + 1)
        minimum = schema.get("minProperties")
        extra_schema = schema.get("additionalProperties", True)
        if isinstance(minimum, int) and extra_schema is not False:
            index = 0
            while len(result) < min(minimum, _MAX_ITEMS):
                key = f"{_WORDS[index % len(_WORDS)]}{index // len(_WORDS) or ''}"
                if key not in result:
                    sub = extra_schema if isinstance(extra_schema, dict) else {}
                    result[key] = self._value(sub, depth + 1)
                index += 1
        return result

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        minimum = schema.get("minItems", 1)
        maximum = schema.get("maxItems")
        count = min(max(int(minimum) if isinstance(minimum, int) else 1, 1), _MAX_ITEMS)
        if isinstance(maximum, int):
            count = min(count, maximum)
        prefix = schema.get("prefixItems")
        items = schema.get("items", {})
        result: list[Any] = []
        if isinstance(prefix, list):
            result = [self._value(p, depth + 1) for p in prefix]
            count = max(count, len(result))
        while len(result) < count:
            result.append(self._value(items if isinstance(items, dict) else {}, depth + 1))
        if schema.get("uniqueItems") and len(result) > 1:
            result = result[:1]
        return result

    def _string(self, schema: dict[str, Any], depth: int) -> str:
        fmt = schema.get("format")
        formats = {
            "date": "2024-05-17",
            "date-time": "2024-05-17T12:30:00Z",
            "time": "12:30:00Z",
            "email": "someone@example.com",
            "uri": "https://example.com/",
            "uuid": "0b4f8c1e-5d1a-4f0e-9c3b-2a7d6e5f4a31",
            "ipv4": "192.0.2.1",
        }
        text = formats.get(fmt) if isinstance(fmt, str) else None
        if text is None:
            text = self._word()
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            text = self._matching(pattern, text)
        min_length = schema.get("minLength")
        max_length = schema.get("maxLength")
        if isinstance(min_length, int):
            while len(text) < min(min_length, _MAX_LENGTH):
                text = f"{text} {self._word()}" if text else self._word()
        if isinstance(max_length, int) and len(text) > max_length:
            text = text[:max_length]
        return text

    def _matching(self, pattern: str, fallback: str) -> str:
        candidates = [fallback, fallback.lower(), "A1", "abc", "123", "a", "0", "ABC-123", "a1b2c3"]
        for candidate in candidates:
            try:
                if re.search(pattern, candidate):
                    return candidate
            except re.error:
                return fallback
        return fallback

    def _number(self, schema: dict[str, Any], depth: int) -> float | int:
        return self._numeric(schema, integer=False)

    def _integer(self, schema: dict[str, Any], depth: int) -> int:
        return int(self._numeric(schema, integer=True))

    def _numeric(self, schema: dict[str, Any], *, integer: bool) -> float | int:
        low = schema.get("minimum")
        high = schema.get("maximum")
        ex_low = schema.get("exclusiveMinimum")
        ex_high = schema.get("exclusiveMaximum")
        lo = -math.inf if not isinstance(low, int | float) else float(low)
        hi = math.inf if not isinstance(high, int | float) else float(high)
        if isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
            lo = max(lo, float(ex_low) + (1 if integer else 1e-6))
        if isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
            hi = min(hi, float(ex_high) - (1 if integer else 1e-6))
        step = schema.get("multipleOf")

        def fits(x: float) -> bool:
            if not lo <= x <= hi:
                return False
            if isinstance(step, int | float) and step > 0:
                ratio = x / step
                return abs(ratio - round(ratio)) < 1e-9
            return True

        candidates = [n for n in self.numbers if not integer or n == int(n)]
        candidates += [float(self.rng.randint(1, 100)), 0.0, lo, hi]
        if isinstance(step, int | float) and step > 0 and lo > -math.inf:
            candidates.append(math.ceil(lo / step) * step)
        for value in candidates:
            if math.isfinite(value) and fits(value):
                return int(value) if integer or value == int(value) else round(value, 6)
        return int(lo) if integer and math.isfinite(lo) else 0

    def _boolean(self, schema: dict[str, Any], depth: int) -> bool:
        return self.rng.random() < 0.5

    def _null(self, schema: dict[str, Any], depth: int) -> None:
        return None

    def _word(self) -> str:
        if self.words:
            word = self.words[self._next_word % len(self.words)]
            self._next_word += 1
            return word
        return _WORDS[self.rng.randrange(len(_WORDS))]


def instance_for(schema: Any, rng: random.Random, prompt: str = "") -> Any:
    """A JSON value that validates against ``schema`` (for the keywords this module knows).

    Pathological schemas (nesting deeper than Python's recursion limit) get ``{}``.
    """
    try:
        return InstanceGenerator(rng, prompt).generate(schema)
    except (RecursionError, TypeError, ValueError, OverflowError):
        return {}
