"""Tiny crafted ``llama`` GGUF models whose greedy output is known in advance.

Real Ollama can only be tested with a real model, and a real model's output cannot be predicted.
These models are built so that it can: one transformer block whose attention and feed-forward
weights are all zero (so they add nothing to the residual stream), one-hot token embeddings, and an
output matrix whose row for token ``j`` points at the embedding of ``j``'s predecessor. The hidden
state at the last position is then the last token's own embedding, and the only non-zero logit
(about 40) belongs to that token's successor. Every byte is one token (empty merges, byte-level
vocabulary), so **the answer depends only on the last byte of the rendered prompt**: a prompt ending
in ``a`` continues ``bcdef...``; any other byte continues ``abcde...``.

Variants (see ``fixtures/models/recipes.toml``):

* ``stop``  -- ``e`` is followed by the end-of-sequence token: every answer ends by itself within
  26 tokens with ``done_reason: "stop"``.
* ``cycle`` -- ``a..z`` repeats forever: answers end at ``num_predict`` (``length``) or at a stop
  string (``stop``). No token ever follows itself, so Ollama's repeat guard never fires.
* ``embed`` -- the cycle weights plus ``llama.pooling_type = 3`` (LAST). Ollama treats a model with
  a pooling type as embedding-only, which is why it is a separate file; the embedding of a text is
  the one-hot vector of its last byte.

Files are built on demand, never committed; the build is byte-deterministic so a digest computed
once (e.g. for ``/api/blobs``) stays valid.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BOS_ID",
    "CHAT_TEMPLATE",
    "DEFAULT_CONTEXT_LENGTH",
    "EMBEDDING_LENGTH",
    "EOS_ID",
    "GGUF_CHAT_TEMPLATE",
    "VARIANTS",
    "VOCAB_SIZE",
    "Variant",
    "build_model",
    "byte_tokens",
    "expected_completion",
    "expected_embedding",
    "model_bytes",
    "model_digest",
    "render_chat",
    "successor",
]

# --- shape of the network -------------------------------------------------------------------
#: Width of the residual stream; one-hot embeddings need at least 27 dimensions (26 letters + one
#: shared "other" direction), 64 keeps head_dim a power of two.
EMBEDDING_LENGTH = 64
HEAD_COUNT = 4
#: llama.cpp checks ``rope.dimension_count == n_embd / n_head`` for arch llama.
ROPE_DIMENSIONS = EMBEDDING_LENGTH // HEAD_COUNT
FEED_FORWARD_LENGTH = 128
BLOCK_COUNT = 1
RMS_EPSILON = 1e-5
#: Logit of the intended successor. RMSNorm scales a one-hot vector by ~8 (sqrt(64)), so each output
#: row holds LOGIT/8; all other logits are exactly 0, which makes any sampler settings irrelevant.
LOGIT = 40.0
#: Default ``llama.context_length``: Ollama clamps ``num_ctx`` to it, so it must be at least what
#: the tests ask for; it costs nothing in file size.
DEFAULT_CONTEXT_LENGTH = 2048

# --- vocabulary -----------------------------------------------------------------------------
#: Token id == byte value for 0..255, then the two specials.
BOS_ID = 256
EOS_ID = 257
VOCAB_SIZE = 258
#: The EOS text matters: llama.cpp decides end-of-generation partly by token text, and
#: ``<|endoftext|>`` is one of the names it recognises (another name logs a warning).
BOS_TEXT = "<|bos|>"
EOS_TEXT = "<|endoftext|>"
_TOKEN_NORMAL = 1
_TOKEN_CONTROL = 3
_POOLING_LAST = 3
_FILE_TYPE_ALL_F32 = 0

#: Go template handed to ``/api/create``: it renders only the message contents, so the rendered
#: chat prompt ends with the last message's last byte and the answer is predictable. It uses
#: ``.Messages`` (not the legacy ``.Prompt``/``.System`` form), so system messages are rendered too.
CHAT_TEMPLATE = "{{ range .Messages }}{{ .Content }}{{ end }}"
#: The same idea as a Jinja template inside the GGUF, for servers that format chat natively from
#: ``tokenizer.chat_template`` (llama-server based Ollama without a Go template, llama.cpp itself).
#: It is far from every template Ollama auto-detects, so Ollama never swaps in one of its own.
GGUF_CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
#: Embedding direction shared by every token that is not a lower-case ASCII letter.
_OTHER_DIM = len(_LETTERS)


@dataclass(frozen=True)
class Variant:
    """One kind of tiny model: which token follows which, and whether it is an embedding model."""

    name: str
    description: str
    #: The letter whose successor is EOS, or None for an endless cycle.
    stop_after: str | None
    #: Embedding-only models carry ``llama.pooling_type``; Ollama then refuses generate/chat.
    embedding: bool


VARIANTS: dict[str, Variant] = {
    "stop": Variant(
        name="stop",
        description="a->b->...->e->EOS: every answer ends by itself ('bcde' after 'a')",
        stop_after="e",
        embedding=False,
    ),
    "cycle": Variant(
        name="cycle",
        description="a->b->...->z->a forever: answers end at num_predict or a stop string",
        stop_after=None,
        embedding=False,
    ),
    "embed": Variant(
        name="embed",
        description="cycle weights + llama.pooling_type=LAST: embedding of a text = one-hot of its "
        "last byte",
        stop_after=None,
        embedding=True,
    ),
}


def _variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        known = ", ".join(VARIANTS)
        raise ValueError(f"unknown tiny model variant {name!r}; known: {known}") from None


def byte_tokens() -> list[str]:
    """The 256 GPT-2 byte-level token strings, index == byte value.

    Printable Latin-1 bytes stand for themselves; the others are shifted to code points 256 and up
    in byte order. This is the convention gpt2-style detokenisers invert, so every byte string
    round-trips and one byte is always one token.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    keep = set(printable)
    shifted = 0
    tokens: list[str] = []
    for byte in range(256):
        if byte in keep:
            tokens.append(chr(byte))
        else:
            tokens.append(chr(256 + shifted))
            shifted += 1
    return tokens


def _direction(token: int) -> int:
    """The embedding dimension a token's one-hot embedding uses."""
    if ord("a") <= token <= ord("z"):
        return token - ord("a")
    return _OTHER_DIM


def _successor_of_direction(direction: int, variant: Variant) -> int:
    """The token predicted after any token embedded along ``direction``."""
    if direction == _OTHER_DIM:
        return ord("a")
    letter = _LETTERS[direction]
    if variant.stop_after == letter:
        return EOS_ID
    return ord(_LETTERS[(direction + 1) % len(_LETTERS)])


def successor(token: int, variant: str) -> int:
    """The token greedy decoding emits after ``token`` (a byte value, BOS_ID or EOS_ID)."""
    return _successor_of_direction(_direction(token), _variant(variant))


def _tensors(variant: Variant) -> list[tuple[str, np.ndarray[Any, Any]]]:
    """All tensors in file order, as numpy arrays in PyTorch ``(out, in)`` layout.

    gguf-py writes numpy shape (rows, cols) as ggml ``ne = [cols, rows]``, which is the layout
    llama.cpp expects for both the Linear weights and the (n_vocab, n_embd) matrices.
    """
    n_embd, n_ff = EMBEDDING_LENGTH, FEED_FORWARD_LENGTH
    token_embd = np.zeros((VOCAB_SIZE, n_embd), dtype=np.float32)
    for token in range(VOCAB_SIZE):
        token_embd[token, _direction(token)] = 1.0
    # Row s of the output matrix scores token s; give it weight along every direction whose
    # successor is s. RMSNorm multiplies the one-hot hidden state by ~sqrt(n_embd) = 8.
    output = np.zeros((VOCAB_SIZE, n_embd), dtype=np.float32)
    for direction in range(_OTHER_DIM + 1):
        output[_successor_of_direction(direction, variant), direction] = LOGIT / 8.0
    ones = np.ones((n_embd,), dtype=np.float32)
    square = np.zeros((n_embd, n_embd), dtype=np.float32)
    return [
        ("token_embd.weight", token_embd),
        ("output_norm.weight", ones),
        ("output.weight", output),
        ("blk.0.attn_norm.weight", ones),
        ("blk.0.attn_q.weight", square),
        ("blk.0.attn_k.weight", square),
        ("blk.0.attn_v.weight", square),
        ("blk.0.attn_output.weight", square),
        ("blk.0.ffn_norm.weight", ones),
        ("blk.0.ffn_gate.weight", np.zeros((n_ff, n_embd), dtype=np.float32)),
        ("blk.0.ffn_up.weight", np.zeros((n_ff, n_embd), dtype=np.float32)),
        ("blk.0.ffn_down.weight", np.zeros((n_embd, n_ff), dtype=np.float32)),
    ]


def _writer_class() -> type[Any]:
    """A GGUFWriter that can write an empty, STRING-typed array.

    llama.cpp refuses a gpt2 vocabulary without ``tokenizer.ggml.merges`` (and current versions
    check the item type), but stock gguf-py drops empty lists in ``add_array`` and refuses them in
    ``_pack_val``. Imported lazily so that importing this module stays cheap.
    """
    from gguf import GGUFValueType, GGUFWriter

    class _EmptyArrayWriter(GGUFWriter):  # type: ignore[misc]
        def _pack_val(
            self,
            val: Any,
            vtype: GGUFValueType,
            add_vtype: bool,
            sub_type: GGUFValueType | None = None,
        ) -> bytes:
            if vtype == GGUFValueType.ARRAY and sub_type is not None and len(val) == 0:
                head = self._pack("I", vtype) if add_vtype else b""
                return head + self._pack("I", sub_type) + self._pack("Q", 0)
            return bytes(super()._pack_val(val, vtype, add_vtype, sub_type))

    return _EmptyArrayWriter


def _write(variant: Variant, path: Path, context_length: int) -> None:
    from gguf import GGUFValueType

    writer = _writer_class()(str(path), "llama")
    u32 = GGUFValueType.UINT32
    f32 = GGUFValueType.FLOAT32
    arr = GGUFValueType.ARRAY
    kv: list[tuple[str, Any, GGUFValueType, GGUFValueType | None]] = [
        ("general.name", f"conformance-tiny-{variant.name}", GGUFValueType.STRING, None),
        ("general.file_type", _FILE_TYPE_ALL_F32, u32, None),
        ("llama.block_count", BLOCK_COUNT, u32, None),
        ("llama.context_length", context_length, u32, None),
        ("llama.embedding_length", EMBEDDING_LENGTH, u32, None),
        ("llama.feed_forward_length", FEED_FORWARD_LENGTH, u32, None),
        ("llama.attention.head_count", HEAD_COUNT, u32, None),
        ("llama.attention.head_count_kv", HEAD_COUNT, u32, None),
        ("llama.rope.dimension_count", ROPE_DIMENSIONS, u32, None),
        ("llama.rope.freq_base", 10000.0, f32, None),
        ("llama.attention.layer_norm_rms_epsilon", RMS_EPSILON, f32, None),
        ("llama.vocab_size", VOCAB_SIZE, u32, None),
    ]
    if variant.embedding:
        kv.append(("llama.pooling_type", _POOLING_LAST, u32, None))
    tokens = [*byte_tokens(), BOS_TEXT, EOS_TEXT]
    token_types = [_TOKEN_NORMAL] * 256 + [_TOKEN_CONTROL] * 2
    kv += [
        ("tokenizer.ggml.model", "gpt2", GGUFValueType.STRING, None),
        # "default" is accepted by every llama.cpp; leaving it out only logs a warning.
        ("tokenizer.ggml.pre", "default", GGUFValueType.STRING, None),
        ("tokenizer.ggml.tokens", tokens, arr, GGUFValueType.STRING),
        ("tokenizer.ggml.token_type", token_types, arr, GGUFValueType.INT32),
        ("tokenizer.ggml.merges", [], arr, GGUFValueType.STRING),
        # Explicit ids: the gpt2 default is 11/11, i.e. byte 0x0B would end generation.
        ("tokenizer.ggml.bos_token_id", BOS_ID, u32, None),
        ("tokenizer.ggml.eos_token_id", EOS_ID, u32, None),
        ("tokenizer.ggml.add_bos_token", False, GGUFValueType.BOOL, None),
        ("tokenizer.ggml.add_eos_token", False, GGUFValueType.BOOL, None),
        ("tokenizer.chat_template", GGUF_CHAT_TEMPLATE, GGUFValueType.STRING, None),
    ]
    for key, value, vtype, sub_type in kv:
        writer.add_key_value(key, value, vtype, sub_type=sub_type)
    for name, tensor in _tensors(variant):
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _check_context_length(context_length: int) -> None:
    if not 1 <= context_length <= 0xFFFFFFFF:
        raise ValueError(f"context_length must be a positive uint32, got {context_length}")


@lru_cache(maxsize=16)
def model_bytes(variant: str, *, context_length: int = DEFAULT_CONTEXT_LENGTH) -> bytes:
    """The complete GGUF file of a variant (about 300 KB), identical on every call and machine."""
    spec = _variant(variant)
    _check_context_length(context_length)
    with tempfile.TemporaryDirectory(prefix="tiny-gguf-") as tmp:
        path = Path(tmp) / f"{variant}.gguf"
        _write(spec, path, context_length)
        return path.read_bytes()


def model_digest(variant: str, *, context_length: int = DEFAULT_CONTEXT_LENGTH) -> str:
    """``sha256:<hex>`` of the variant's bytes: the name Ollama's blob store gives the file."""
    data = model_bytes(variant, context_length=context_length)
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build_model(variant: str, path: Path, *, context_length: int = DEFAULT_CONTEXT_LENGTH) -> Path:
    """Write the variant to ``path`` (atomically, parents created) and return the path."""
    data = model_bytes(variant, context_length=context_length)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write next to the target and rename, so a concurrent reader never sees half a file.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


# --- predictions ----------------------------------------------------------------------------


def render_chat(messages: Iterable[dict[str, Any]]) -> str:
    """What ``CHAT_TEMPLATE`` renders for a chat: the message contents, concatenated in order."""
    return "".join(str(message.get("content") or "") for message in messages)


def expected_completion(
    variant: str,
    rendered_prompt: str | bytes,
    num_predict: int | None = None,
    stop: Sequence[str] | None = None,
) -> tuple[str, str]:
    """The text and ``done_reason`` greedy decoding produces for a prompt, as a server should.

    ``rendered_prompt`` is the exact text the model sees (the ``prompt`` of a raw generate, or
    :func:`render_chat` of the messages). Only its last byte matters. ``num_predict`` of None or a
    negative number means "no limit"; 0 is refused because servers disagree on it (older Ollama
    treats it as no limit, llama-server as zero tokens). Stop strings end the answer *before* the
    first occurrence, the way Ollama trims them, with ``done_reason`` ``"stop"``.

    Raises ValueError for an embedding variant, an empty prompt, or an answer that would never end.
    """
    spec = _variant(variant)
    if spec.embedding:
        raise ValueError(f"variant {variant!r} is an embedding model; it does not generate")
    data = rendered_prompt.encode("utf-8") if isinstance(rendered_prompt, str) else rendered_prompt
    if not data:
        raise ValueError("an empty prompt has no last token to continue (Ollama answers 'load')")
    if num_predict == 0:
        raise ValueError("num_predict=0 means different things on different servers; avoid it")
    stops = [s for s in (stop or []) if s]
    limit = num_predict if num_predict is not None and num_predict > 0 else None
    # Without a limit the answer must end by EOS or a stop string; the cycle has period 26, so if
    # no stop string has appeared after one full period plus the longest stop, none ever will.
    horizon = limit or 26 + 26 + max((len(s) for s in stops), default=0)
    text = ""
    token = data[-1]
    for _ in range(horizon):
        token = _successor_of_direction(_direction(token), spec)
        if token == EOS_ID:
            return text, "stop"
        text += chr(token)
        hits = [text.find(s) for s in stops if s in text]
        if hits:
            return text[: min(hits)], "stop"
    if limit is None:
        raise ValueError(f"variant {variant!r} never stops for this prompt; pass num_predict")
    return text, "length"


def expected_embedding(text: str | bytes, *, normalized: bool = True) -> list[float]:
    """The ``embed`` variant's embedding of a text: the one-hot vector of its last byte's direction.

    ``normalized`` gives the unit vector that ``/api/embed`` returns (Ollama L2-normalises). The raw
    value (``normalized=False``) is the output-normed hidden state, sqrt(n_embd / (1 + n_embd*eps))
    along that direction (7.9974): Ollama 0.12.11 and 0.24.0 return it unnormalised from the legacy
    ``/api/embeddings``; llama-server based versions (0.30+) are documented to normalise there too.
    """
    data = text.encode("utf-8") if isinstance(text, str) else text
    if not data:
        raise ValueError("an empty text has no embedding")
    vector = [0.0] * EMBEDDING_LENGTH
    scale = 1.0
    if not normalized:
        scale = float(1.0 / np.sqrt(np.float32(1.0 / EMBEDDING_LENGTH + RMS_EPSILON)))
    vector[_direction(data[-1])] = scale
    return vector
