"""Running small uploaded GGUF models for real: a numpy llama forward pass and a GPT-2 tokenizer.

A conformance suite can only check that a server runs a model "as its weights dictate" with a
model whose output is known in advance (the project's tiny successor models, DESIGN "Test
models"). So for small ``llama`` GGUFs with F32/F16 tensors and a byte-level ``gpt2`` vocabulary,
the reference server computes the actual network: token embeddings, RMSNorm, rotary attention with
grouped KV heads, the SiLU-gated feed-forward block, the output head, then greedy or seeded
sampling. Anything else (other architectures, quantised tensors, big files, all-zero weights
such as the built-in catalogue's) uses the synthetic engine instead.

Behaviours carried over from Ollama and llama.cpp: special tokens in the prompt text are parsed
(``<|endoftext|>`` becomes its id), ``add_bos_token`` is honoured, control tokens detokenise to
nothing, generation ends at an end-of-generation token (counted in ``eval_count``), and the
repeat guard ends a stream without a final object after 30 identical pieces in a row (§18.5).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .options import Options

#: Largest model (in parameters) the reference server will run for real.
MAX_PARAMETERS = 20_000_000
_EOG_NAMES = {"<|endoftext|>", "</s>", "<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"}
#: GPT-2's pre-tokenizer. Its "neither space, letter nor number" class includes the underscore,
#: which Python's ``\w`` counts as a word character, so it is named explicitly: without it an
#: underscore matched no branch and was silently dropped (real 0.24.0 counted 95 prompt tokens for
#: a 95-byte chat that mentions ``get_weather``; the reference counted 94).
_PRETOKENIZE = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""", re.UNICODE
)
_CONTROL, _USER_DEFINED = 3, 4


@lru_cache(maxsize=1)
def _byte_tables() -> tuple[dict[int, str], dict[str, int]]:
    """GPT-2's reversible byte <-> printable character table."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    encoder: dict[int, str] = {}
    shifted = 0
    for byte in range(256):
        if byte in keep:
            encoder[byte] = chr(byte)
        else:
            encoder[byte] = chr(256 + shifted)
            shifted += 1
    return encoder, {v: k for k, v in encoder.items()}


@dataclass
class TinyModel:
    """A loaded llama-architecture network (numpy arrays, float32)."""

    n_embd: int
    n_head: int
    n_head_kv: int
    n_layer: int
    eps: float
    rope_base: float
    rope_dim: int
    context_length: int
    tokens: list[str]
    token_types: list[int]
    merges: dict[tuple[str, str], int]
    bos: int | None
    eog: set[int]
    add_bos: bool
    pooling: int | None
    weights: dict[str, Any] = field(repr=False)
    vocab: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.vocab = {text: i for i, text in enumerate(self.tokens)}
        self.specials = sorted(
            (
                t
                for i, t in enumerate(self.tokens)
                if self.token_types[i] in (_CONTROL, _USER_DEFINED) and t
            ),
            key=len,
            reverse=True,
        )

    # --- tokenizer --------------------------------------------------------------------------

    def encode(self, text: str, *, add_special: bool = True) -> list[int]:
        """Token ids of ``text`` (special tokens parsed, BOS added when the model asks for it).

        ``add_special=False`` is how Ollama's server tokenizes for ``context``: never a BOS.
        """
        add = add_special and self.add_bos and self.bos is not None
        ids: list[int] = [self.bos] if add and self.bos is not None else []
        for piece, special in self._split_specials(text):
            if special:
                ids.append(self.vocab[piece])
            else:
                ids.extend(self._encode_plain(piece))
        return ids

    def _split_specials(self, text: str) -> Iterator[tuple[str, bool]]:
        if not self.specials:
            yield text, False
            return
        pattern = "|".join(re.escape(s) for s in self.specials)
        pos = 0
        for match in re.finditer(pattern, text):
            if match.start() > pos:
                yield text[pos : match.start()], False
            yield match.group(0), True
            pos = match.end()
        if pos < len(text):
            yield text[pos:], False

    def _encode_plain(self, text: str) -> list[int]:
        encoder, _ = _byte_tables()
        ids: list[int] = []
        for word in _PRETOKENIZE.findall(text):
            symbols = [encoder[b] for b in word.encode("utf-8")]
            symbols = self._bpe(symbols)
            for symbol in symbols:
                if symbol in self.vocab:
                    ids.append(self.vocab[symbol])
                else:
                    ids.extend(self.vocab[ch] for ch in symbol if ch in self.vocab)
        return ids

    def _bpe(self, symbols: list[str]) -> list[str]:
        if not self.merges or len(symbols) < 2:
            return symbols
        while len(symbols) > 1:
            ranked = [
                (self.merges.get((a, b), 1 << 30), i)
                for i, (a, b) in enumerate(itertools.pairwise(symbols))
            ]
            rank, index = min(ranked)
            if rank == 1 << 30:
                break
            symbols = [*symbols[:index], symbols[index] + symbols[index + 1], *symbols[index + 2 :]]
        return symbols

    def token_bytes(self, token: int) -> bytes:
        """What a token contributes to the output text (control tokens: nothing)."""
        if not 0 <= token < len(self.tokens) or self.token_types[token] == _CONTROL:
            return b""
        _, decoder = _byte_tables()
        text = self.tokens[token]
        if all(ch in decoder for ch in text):
            return bytes(decoder[ch] for ch in text)
        return text.encode("utf-8")

    # --- network ----------------------------------------------------------------------------

    def _norm(self, x: Any, weight: Any) -> Any:
        import numpy as np

        scale = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True, dtype=np.float32) + self.eps)
        return (x * scale).astype(np.float32) * weight

    def _rope(self, x: Any, positions: Any) -> Any:
        """Rotary embedding, llama's "normal" mode: adjacent pairs of each head are rotated."""
        import numpy as np

        head_dim = x.shape[-1]
        rot = min(self.rope_dim, head_dim)
        freqs = self.rope_base ** (-np.arange(0, rot, 2, dtype=np.float32) / rot)
        angles = positions[:, None].astype(np.float32) * freqs[None, :]
        cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]
        out = x.copy()
        even, odd = x[..., 0:rot:2], x[..., 1:rot:2]
        out[..., 0:rot:2] = even * cos - odd * sin
        out[..., 1:rot:2] = even * sin + odd * cos
        return out

    def forward(self, tokens: list[int], cache: list[list[Any]], start: int) -> Any:
        """Hidden states (after the output norm) for ``tokens`` at positions ``start...``.

        ``cache`` holds per-layer [keys, values] and grows with every call.
        """
        import numpy as np

        w = self.weights
        x = w["token_embd.weight"][np.asarray(tokens)].astype(np.float32)
        positions = np.arange(start, start + len(tokens))
        head_dim = self.n_embd // self.n_head
        group = self.n_head // self.n_head_kv
        for layer in range(self.n_layer):
            p = f"blk.{layer}."
            h = self._norm(x, w[p + "attn_norm.weight"])
            q = (h @ w[p + "attn_q.weight"].T).reshape(len(tokens), self.n_head, head_dim)
            k = (h @ w[p + "attn_k.weight"].T).reshape(len(tokens), self.n_head_kv, head_dim)
            v = (h @ w[p + "attn_v.weight"].T).reshape(len(tokens), self.n_head_kv, head_dim)
            q, k = self._rope(q, positions), self._rope(k, positions)
            if len(cache) <= layer:
                cache.append([k, v])
            else:
                cache[layer][0] = np.concatenate([cache[layer][0], k])
                cache[layer][1] = np.concatenate([cache[layer][1], v])
            keys = np.repeat(cache[layer][0], group, axis=1)
            values = np.repeat(cache[layer][1], group, axis=1)
            scores = np.einsum("qhd,khd->hqk", q, keys) / np.sqrt(head_dim)
            total = keys.shape[0]
            mask = np.arange(total)[None, :] > (positions[:, None])
            scores = np.where(mask[None, :, :], -np.inf, scores)
            scores = scores - scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            attended = np.einsum("hqk,khd->qhd", probs, values).reshape(len(tokens), self.n_embd)
            x = x + attended @ w[p + "attn_output.weight"].T
            h = self._norm(x, w[p + "ffn_norm.weight"])
            gate = h @ w[p + "ffn_gate.weight"].T
            up = h @ w[p + "ffn_up.weight"].T
            x = x + ((gate / (1.0 + np.exp(-gate))) * up) @ w[p + "ffn_down.weight"].T
        return self._norm(x, w["output_norm.weight"])

    def logits(self, hidden: Any) -> Any:
        head = self.weights.get("output.weight")
        if head is None:
            head = self.weights["token_embd.weight"]
        return hidden @ head.T

    def embed(self, ids: list[int]) -> list[float]:
        """The pooled embedding of a token sequence (pooling: 1 mean, 2 first, else last)."""
        hidden = self.forward(ids or [self.bos or 0], [], 0)
        if self.pooling == 1:
            vector = hidden.mean(axis=0)
        elif self.pooling == 2:
            vector = hidden[0]
        else:
            vector = hidden[-1]
        return [float(x) for x in vector]

    def generate(
        self, prompt: list[int], options: Options, limit: int, num_ctx: int
    ) -> Iterator[int]:
        """Sampled token ids, one at a time, until an end-of-generation token or ``limit``."""
        import numpy as np

        rng = np.random.default_rng(options.seed if options.seed >= 0 else None)
        window = max(num_ctx, 8)
        context = list(prompt[-(window - 1) :]) or [self.bos if self.bos is not None else 0]
        cache: list[list[Any]] = []
        hidden = self.forward(context, cache, 0)
        position = len(context)
        for _ in range(limit):
            token = _sample(self.logits(hidden[-1]), options, rng)
            yield token
            if token in self.eog:
                return
            context.append(token)
            if position >= window:  # context full: keep the newer half and recompute
                context = context[-(window // 2) :]
                cache = []
                hidden = self.forward(context, cache, 0)
                position = len(context)
                continue
            hidden = self.forward([token], cache, position)
            position += 1


def _sample(logits: Any, options: Options, rng: Any) -> int:
    import numpy as np

    if options.temperature <= 0:
        return int(np.argmax(logits))
    scaled = logits.astype(np.float64) / options.temperature
    order = np.argsort(-scaled, kind="stable")
    if options.top_k > 0:
        order = order[: options.top_k]
    kept = scaled[order]
    probs = np.exp(kept - kept.max())
    probs /= probs.sum()
    if 0 < options.top_p < 1:
        cumulative = np.cumsum(probs)
        cut = int(np.searchsorted(cumulative, options.top_p) + 1)
        order, probs = order[:cut], probs[:cut] / probs[:cut].sum()
    return int(order[rng.choice(len(order), p=probs)])


def load(path: Path, kv: dict[str, Any]) -> TinyModel | None:
    """A runnable model from a GGUF file, or ``None`` when the reference should not run it."""
    arch = kv.get("general.architecture")
    if arch != "llama" or kv.get("tokenizer.ggml.model") != "gpt2":
        return None
    tokens = kv.get("tokenizer.ggml.tokens")
    if not isinstance(tokens, list) or not tokens:
        return None
    try:
        import numpy as np
        from gguf import GGMLQuantizationType, GGUFReader

        reader = GGUFReader(path)
        weights: dict[str, Any] = {}
        total = 0
        for tensor in reader.tensors:
            if tensor.tensor_type not in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
                return None
            total += int(tensor.n_elements)
            if total > MAX_PARAMETERS:
                return None
            weights[tensor.name] = np.array(tensor.data, dtype=np.float32)
        del reader
    except Exception:  # unreadable or unusual files fall back to the synthetic engine
        return None
    output = weights.get("output.weight", weights.get("token_embd.weight"))
    if output is None or not np.any(output):
        return None  # all-zero weights (the catalogue): nothing meaningful to compute
    n_embd = int(kv.get("llama.embedding_length", 0))
    n_head = int(kv.get("llama.attention.head_count", 0))
    n_layer = int(kv.get("llama.block_count", 0))
    required = ["token_embd.weight", "output_norm.weight"]
    for layer in range(n_layer):
        required += [f"blk.{layer}.{name}.weight" for name in (
            "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate",
            "ffn_up", "ffn_down",
        )]  # fmt: skip
    if not n_embd or not n_head or n_embd % n_head or any(r not in weights for r in required):
        return None
    types = kv.get("tokenizer.ggml.token_type")
    token_types = [int(t) for t in types] if isinstance(types, list) else [1] * len(tokens)
    merges_list = kv.get("tokenizer.ggml.merges") or []
    merges = {}
    for rank, merge in enumerate(merges_list):
        left, _, right = str(merge).partition(" ")
        merges[(left, right)] = rank
    eos = kv.get("tokenizer.ggml.eos_token_id")
    eog = {int(eos)} if isinstance(eos, int) else set()
    eot = kv.get("tokenizer.ggml.eot_token_id")
    if isinstance(eot, int):
        eog.add(int(eot))
    eog |= {i for i, t in enumerate(tokens) if t in _EOG_NAMES and token_types[i] == _CONTROL}
    bos = kv.get("tokenizer.ggml.bos_token_id")
    n_head_kv = int(kv.get("llama.attention.head_count_kv", n_head))
    pooling = kv.get("llama.pooling_type")
    return TinyModel(
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv or n_head,
        n_layer=n_layer,
        eps=float(kv.get("llama.attention.layer_norm_rms_epsilon", 1e-5)),
        rope_base=float(kv.get("llama.rope.freq_base", 10000.0)),
        rope_dim=int(kv.get("llama.rope.dimension_count", n_embd // n_head)),
        context_length=int(kv.get("llama.context_length", 2048)),
        tokens=[str(t) for t in tokens],
        token_types=token_types + [1] * (len(tokens) - len(token_types)),
        merges=merges,
        bos=int(bos) if isinstance(bos, int) else None,
        eog=eog,
        add_bos=bool(kv.get("tokenizer.ggml.add_bos_token", False)),
        pooling=int(pooling) if isinstance(pooling, int) else None,
        weights=weights,
    )


class Detokenizer:
    """Turns token ids into text pieces without splitting a UTF-8 character across chunks."""

    def __init__(self, model: TinyModel) -> None:
        self.model = model
        self.pending = b""

    def piece(self, token: int) -> str:
        data = self.pending + self.model.token_bytes(token)
        for cut in range(len(data), max(len(data) - 4, -1), -1):
            try:
                text = data[:cut].decode("utf-8")
            except UnicodeDecodeError:
                continue
            self.pending = data[cut:]
            return text
        self.pending = b""
        return data.decode("utf-8", errors="replace")
