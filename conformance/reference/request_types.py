"""Ollama's request structs (``api/types.go``) as binding descriptors for :mod:`.bodies`.

Field names, Go types and which fields have custom unmarshalers follow the reference facts
(§7.1 generate, §8.1 chat, §9.1 embed, §10 embeddings, §11.1 create, §6 show, §12-15); the struct
names appear in type errors (``Go struct field GenerateRequest.prompt``), so they are Ollama's.
Version differences that change binding (``think`` is absent in 0.6, ``*bool`` in 0.9 and a
``ThinkValue`` from 0.12) are applied per emulated version.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from .bodies import (
    AnyValue,
    Custom,
    GoType,
    Map,
    Pointer,
    Redecoded,
    Scalar,
    Slice,
    Struct,
    _Context,
    json_kind,
)
from .bodies import _TypeError as TypeErr
from .config import ReferenceConfig
from .options import keep_alive_parser, think_parser

STRING = Scalar("string", "string")
BOOL = Scalar("bool", "bool")
INT = Scalar("int", "int")
FLOAT = Scalar("float64", "float")
ANY = AnyValue()
OPTIONS = Map("map[string]interface {}", ANY)
RAW = AnyValue("json.RawMessage")


class CorruptBase64(ValueError):
    """Go's ``base64.CorruptInputError``: ``illegal base64 data at input byte N``."""

    def __init__(self, offset: int) -> None:
        super().__init__(f"illegal base64 data at input byte {offset}")


_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUES = {ch: i for i, ch in enumerate(_B64_ALPHABET)}


def go_base64_decode(text: str) -> bytes:
    """Standard padded base64 with Go's error offsets (newlines are skipped, as Go does)."""
    src = text.encode("utf-8", errors="surrogatepass")
    out = bytearray()
    si = 0
    n = len(src)
    while si < n:
        quantum: list[int] = []
        length = 4
        j = 0
        while j < 4:
            if si == n:
                if j == 0:
                    return bytes(out)
                raise CorruptBase64(si - j)  # padded encoding: a short final quantum is corrupt
            ch = src[si]
            si += 1
            value = _B64_VALUES.get(chr(ch))
            if value is not None:
                quantum.append(value)
                j += 1
                continue
            if ch in (0x0A, 0x0D):
                continue
            if ch != ord("="):
                raise CorruptBase64(si - 1)
            if j in (0, 1):
                raise CorruptBase64(si - 1)
            if j == 2:
                while si < n and src[si] in (0x0A, 0x0D):
                    si += 1
                if si == n:
                    raise CorruptBase64(n)
                if src[si] != ord("="):
                    raise CorruptBase64(si - 1)
                si += 1
            while si < n and src[si] in (0x0A, 0x0D):
                si += 1
            if si < n:
                _append_quantum(out, quantum, j)
                raise CorruptBase64(si)
            length = j
            break
        _append_quantum(out, quantum, length)
    return bytes(out)


def _append_quantum(out: bytearray, quantum: list[int], length: int) -> None:
    values = quantum + [0] * (4 - len(quantum))
    word = (values[0] << 18) | (values[1] << 12) | (values[2] << 6) | values[3]
    chunk = bytes([(word >> 16) & 0xFF, (word >> 8) & 0xFF, word & 0xFF])
    out.extend(chunk[: max(length - 1, 0)])


@dataclass
class ImageData(GoType):
    """``api.ImageData`` (``[]byte``): a base64 string; a bad one is a saved (not fatal) error."""

    name: str = "api.ImageData"

    def bind(self, value: Any, ctx: _Context) -> Any:
        if isinstance(value, str):
            try:
                return go_base64_decode(value)
            except CorruptBase64 as exc:
                ctx.save(str(exc))
                return b""
        if isinstance(value, list) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            return bytes(v & 0xFF for v in value)  # Go fills a []byte from a number array too
        ctx.save(TypeErr(json_kind(value), self.name))
        return b""


IMAGES = Slice("[]api.ImageData", ImageData())


def _lower_role(message: dict[str, Any]) -> dict[str, Any]:
    # Message.UnmarshalJSON lower-cases the role and never validates it (§1.3).
    message["role"] = str(message.get("role") or "").lower()
    return message


TOOL_CALL = Struct(
    "ToolCall",
    {
        "id": STRING,
        "function": Struct(
            "ToolCallFunction",
            {
                "index": INT,
                "name": STRING,
                "arguments": Map("api.ToolCallFunctionArguments", ANY),
            },
        ),
    },
)

MESSAGE = Redecoded(
    Struct(
        "Alias",
        {
            "role": STRING,
            "content": STRING,
            "thinking": STRING,
            "images": IMAGES,
            "tool_calls": Slice("[]api.ToolCall", TOOL_CALL),
            "tool_name": STRING,
            "tool_call_id": STRING,
        },
    ),
    post=_lower_role,
)
MESSAGES = Slice("[]api.Message", MESSAGE)

TOOLS = Slice(
    "api.Tools",
    Struct(
        "Tool",
        {
            "type": STRING,
            "items": ANY,
            "function": Struct(
                "ToolFunction",
                {"name": STRING, "description": STRING, "parameters": ANY},
            ),
        },
    ),
)


def _think_type(config: ReferenceConfig) -> GoType | None:
    if not config.at_least("0.9.0-rc0"):
        return None  # 0.6: no such field, silently ignored
    if not config.at_least("0.11.0-rc0"):  # ThinkValue's first tag (git tag scan)
        return Pointer(BOOL)
    return Custom("api.ThinkValue", think_parser(config))


def _with(fields: dict[str, GoType | None]) -> dict[str, GoType]:
    return {k: v for k, v in fields.items() if v is not None}


@cache
def _structs(version: str) -> dict[str, Struct]:
    config = ReferenceConfig(version=version)
    keep_alive = Custom("api.Duration", keep_alive_parser(config))
    think = _think_type(config)
    newer_1211 = config.at_least("0.12.11")
    sampling = {
        "truncate": Pointer(BOOL) if config.at_least("0.12.6") else None,
        "shift": Pointer(BOOL) if config.at_least("0.12.6") else None,
        "logprobs": BOOL if newer_1211 else None,
        "top_logprobs": INT if newer_1211 else None,
        # v0.11.5-rc3 (git tag scan; the facts sheet says 0.12)
        "_debug_render_only": BOOL if config.at_least("0.11.5-rc3") else None,
    }
    generate = Struct(
        "GenerateRequest",
        _with(
            {
                "model": STRING,
                "prompt": STRING,
                "suffix": STRING,
                "system": STRING,
                "template": STRING,
                "context": Slice("[]int", INT),
                "stream": Pointer(BOOL),
                "raw": BOOL,
                "format": RAW,
                "keep_alive": keep_alive,
                "images": IMAGES,
                "options": OPTIONS,
                "think": think,
                **sampling,
            }
        ),
    )
    chat = Struct(
        "ChatRequest",
        _with(
            {
                "model": STRING,
                "messages": MESSAGES,
                "stream": Pointer(BOOL),
                "format": RAW,
                "keep_alive": keep_alive,
                "tools": TOOLS,
                "options": OPTIONS,
                "think": think,
                **sampling,
            }
        ),
    )
    embed = Struct(
        "EmbedRequest",
        _with(
            {
                "model": STRING,
                "input": ANY,
                "keep_alive": keep_alive,
                "truncate": Pointer(BOOL),
                "dimensions": INT if config.at_least("0.11.11-rc0") else None,  # git tag scan
                "options": OPTIONS,
            }
        ),
    )
    embeddings = Struct(
        "EmbeddingRequest",
        {"model": STRING, "prompt": STRING, "keep_alive": keep_alive, "options": OPTIONS},
    )
    create = Struct(
        "CreateRequest",
        _with(
            {
                "model": STRING,
                "name": STRING,
                "stream": Pointer(BOOL),
                "quantize": STRING,
                "quantization": STRING,
                "from": STRING,
                "files": Map("map[string]string", STRING),
                "adapters": Map("map[string]string", STRING),
                "template": STRING,
                "license": ANY,
                "system": STRING,
                "parameters": OPTIONS,
                "messages": MESSAGES,
                "remote_host": STRING if config.at_least("0.12.0") else None,
                "renderer": STRING if config.at_least("0.12.0") else None,
                "parser": STRING if config.at_least("0.12.0") else None,
                "info": OPTIONS if config.at_least("0.12.0") else None,
                "requires": STRING if config.at_least("0.20.0") else None,
            }
        ),
    )
    transfer = {
        "model": STRING,
        "name": STRING,
        "insecure": BOOL,
        "username": STRING,
        "password": STRING,
        "stream": Pointer(BOOL),
    }
    return {
        "generate": generate,
        "chat": chat,
        "embed": embed,
        "embeddings": embeddings,
        "create": create,
        "copy": Struct("CopyRequest", {"source": STRING, "destination": STRING}),
        "delete": Struct("DeleteRequest", {"model": STRING, "name": STRING}),
        "pull": Struct("PullRequest", dict(transfer)),
        "push": Struct("PushRequest", dict(transfer)),
        "show": Struct(
            "ShowRequest",
            {
                "model": STRING,
                "system": STRING,
                "template": STRING,
                "verbose": BOOL,
                "options": OPTIONS,
                "name": STRING,
            },
        ),
    }


def request_struct(kind: str, config: ReferenceConfig) -> Struct:
    """The request struct of endpoint ``kind`` (``generate``, ``chat`` ...) for this version."""
    return _structs(config.version)[kind]
