"""Binding a request body to a Go-shaped struct, with the errors Go's ``encoding/json`` reports.

A handler describes its request the way Ollama's ``api`` package declares it (field names, Go
types, which fields have their own ``UnmarshalJSON``) and :func:`bind` turns the body into a dict
of those fields, or raises :class:`BindError` carrying the exact 400 text (reference facts §1.3):

* empty body → ``missing request body``; ``null`` → the zero struct;
* syntax errors → Go's scanner messages (see :mod:`.jsonscan`);
* wrong types → ``json: cannot unmarshal number into Go struct field GenerateRequest.prompt of
  type string``; Go keeps decoding after such an error and reports the first one;
* errors from custom unmarshalers (``keep_alive``, ``think``, ``messages``) abort at once and win;
* unknown fields are ignored and field names match case-insensitively, as in Go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .jsonscan import EmptyBody, GoFloat, JSONSyntaxError, decode_first

MISSING_BODY = "missing request body"

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


class BindError(ValueError):
    """A body Ollama answers with 400; ``str()`` is the ``error`` text."""


class _Abort(Exception):
    """An error returned (not saved) by Go's decoder: it ends decoding immediately."""

    def __init__(self, error: _TypeError | str) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _TypeError:
    """Go's ``UnmarshalTypeError`` before and after ``addErrorContext``."""

    value: str
    go_type: str
    struct: str = ""
    field: str = ""

    def __str__(self) -> str:
        if self.struct or self.field:
            return (
                f"json: cannot unmarshal {self.value} into Go struct field "
                f"{self.struct}.{self.field} of type {self.go_type}"
            )
        return f"json: cannot unmarshal {self.value} into Go value of type {self.go_type}"


@dataclass
class _Context:
    """Go's ``errorContext``: the innermost struct and the JSON field path from the root."""

    structs: list[str] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)
    saved: _TypeError | str | None = None

    def save(self, error: _TypeError | str) -> None:
        if self.saved is None:
            self.saved = self._contextualise(error)

    def _contextualise(self, error: _TypeError | str) -> _TypeError | str:
        if isinstance(error, _TypeError) and (self.structs or self.fields):
            error.struct = self.structs[-1] if self.structs else ""
            error.field = ".".join([*self.fields, *([error.field] if error.field else [])])
        return error


class GoType:
    """A Go type as the decoder sees it; ``name`` is what ``reflect.Type.String()`` prints."""

    name: str

    def zero(self) -> Any:
        return None

    def bind(self, value: Any, ctx: _Context) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


def json_kind(value: Any) -> str:
    """How Go names a JSON value in type errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@dataclass
class Scalar(GoType):
    """string, bool, int or float64 (``kind`` selects which)."""

    name: str
    kind: str  # "string" | "bool" | "int" | "float"

    def zero(self) -> Any:
        return {"string": "", "bool": False, "int": 0, "float": 0.0}[self.kind]

    def bind(self, value: Any, ctx: _Context) -> Any:
        kind = self.kind
        if kind == "string" and isinstance(value, str):
            return value
        if kind == "bool" and isinstance(value, bool):
            return value
        if (
            kind in ("int", "float")
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            if kind == "float":
                return float(value)
            if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
                return value
            raw = value.raw if isinstance(value, GoFloat) else str(value)
            ctx.save(_TypeError(f"number {raw}", self.name))
            return 0
        ctx.save(_TypeError(json_kind(value), self.name))
        return self.zero()


@dataclass
class Pointer(GoType):
    """``*T``: absent or ``null`` stays ``None``; errors name ``T``."""

    elem: GoType

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.elem.name

    def zero(self) -> Any:
        return None

    def bind(self, value: Any, ctx: _Context) -> Any:
        return self.elem.bind(value, ctx)


@dataclass
class AnyValue(GoType):
    """``any`` / ``json.RawMessage``: every JSON value is accepted as is."""

    name: str = "interface {}"

    def bind(self, value: Any, ctx: _Context) -> Any:
        return value


@dataclass
class Slice(GoType):
    """``[]T``."""

    name: str
    elem: GoType

    def bind(self, value: Any, ctx: _Context) -> Any:
        if not isinstance(value, list):
            ctx.save(_TypeError(json_kind(value), self.name))
            return None
        return [self.elem.zero() if item is None else self.elem.bind(item, ctx) for item in value]


@dataclass
class Map(GoType):
    """``map[string]T``."""

    name: str
    elem: GoType

    def bind(self, value: Any, ctx: _Context) -> Any:
        if not isinstance(value, dict):
            ctx.save(_TypeError(json_kind(value), self.name))
            return None
        return {k: (None if v is None else self.elem.bind(v, ctx)) for k, v in value.items()}


@dataclass
class Struct(GoType):
    """A Go struct; ``fields`` maps JSON names to types, in declaration order."""

    name: str  # e.g. "GenerateRequest"
    fields: dict[str, GoType]
    package: str = "api"

    @property
    def type_name(self) -> str:
        return f"{self.package}.{self.name}"

    def zero(self) -> Any:
        return {key: t.zero() for key, t in self.fields.items()}

    def _field_for(self, key: str) -> str | None:
        if key in self.fields:
            return key
        folded = key.lower()
        for name in self.fields:
            if name.lower() == folded:
                return name
        return None

    def bind(self, value: Any, ctx: _Context) -> Any:
        if not isinstance(value, dict):
            ctx.save(_TypeError(json_kind(value), self.type_name))
            return self.zero()
        result = self.zero()
        for key, item in value.items():
            name = self._field_for(key)
            if name is None:
                continue  # unknown fields are ignored (§1.3)
            ctx.structs.append(self.name)
            ctx.fields.append(name)
            try:
                ftype = self.fields[name]
                result[name] = ftype.zero() if item is None else ftype.bind(item, ctx)
            finally:
                # On an abort Go leaves the context as it was at the failure; _Abort carries
                # the already-contextualised error, so restoring here is harmless.
                ctx.structs.pop()
                ctx.fields.pop()
        return result

    def present(self, value: Any) -> set[str]:
        """The fields a JSON object sets (non-null), by their declared names."""
        if not isinstance(value, dict):
            return set()
        names = (self._field_for(k) for k, v in value.items() if v is not None)
        return {n for n in names if n is not None}


@dataclass
class Custom(GoType):
    """A type with its own ``UnmarshalJSON``: ``parse`` raises ``ValueError`` with the message.

    ``null`` never reaches it (Go leaves a nil pointer alone), matching every pointer field that
    uses one in Ollama's request types.
    """

    name: str
    parse: Callable[[Any], Any]

    def bind(self, value: Any, ctx: _Context) -> Any:
        try:
            return self.parse(value)
        except ValueError as exc:
            raise _Abort(str(exc)) from None


@dataclass
class Redecoded(GoType):
    """A struct whose ``UnmarshalJSON`` decodes into a local ``Alias`` type (``api.Message``).

    The inner decode starts a fresh error context; its first error is returned to the outer
    decoder, which (Go ≥ 1.20) re-labels it with the outer struct and prefixes the outer path.
    """

    inner: Struct
    post: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.inner.type_name

    def zero(self) -> Any:
        return self.inner.zero()

    def bind(self, value: Any, ctx: _Context) -> Any:
        inner_ctx = _Context()
        result = self.inner.bind(value, inner_ctx)
        if inner_ctx.saved is not None:
            error = inner_ctx.saved
            if isinstance(error, _TypeError):
                error = ctx._contextualise(error)
            raise _Abort(error)
        return self.post(result)


def bind(body: bytes, struct: Struct) -> dict[str, Any]:
    """Decode ``body`` into ``struct`` the way ``c.ShouldBindJSON(&req)`` does.

    Returns a dict with every field (zero values for absent or ``null`` ones); pointer fields
    (``stream``, ``keep_alive``, ``think`` ...) are ``None`` when unset, as in Go.
    """
    try:
        value = decode_first(body)
    except EmptyBody:
        raise BindError(MISSING_BODY) from None
    except JSONSyntaxError as exc:
        raise BindError(str(exc)) from None
    ctx = _Context()
    if value is None:
        result = struct.zero()
    else:
        try:
            result = struct.bind(value, ctx)
        except _Abort as exc:
            raise BindError(str(exc.error)) from None
    if ctx.saved is not None:
        raise BindError(str(ctx.saved))
    return result


def decode_json(body: bytes) -> Any:
    """The first JSON value of ``body`` (strict mode); raises ``BindError`` like :func:`bind`."""
    try:
        return decode_first(body)
    except EmptyBody:
        raise BindError(MISSING_BODY) from None
    except JSONSyntaxError as exc:
        raise BindError(str(exc)) from None
