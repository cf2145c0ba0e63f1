"""The tiny GGUF test models: deterministic, small, shaped as llama.cpp needs, and predictable.

A real server's answers are checked against ``expected_completion``; these tests pin the file
layout that makes those predictions hold (the facts in shared/reference/tiny-gguf.md) and the
predictor itself, without needing any server.
"""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType

from conformance.models import tiny_gguf
from conformance.models.tiny_gguf import (
    BOS_ID,
    EOS_ID,
    VARIANTS,
    build_model,
    byte_tokens,
    expected_completion,
    expected_embedding,
    model_bytes,
    model_digest,
    render_chat,
    successor,
)

REPO = Path(__file__).resolve().parents[1]

EXPECTED_TENSORS = {
    "token_embd.weight": [64, 258],
    "output_norm.weight": [64],
    "output.weight": [64, 258],
    "blk.0.attn_norm.weight": [64],
    "blk.0.attn_q.weight": [64, 64],
    "blk.0.attn_k.weight": [64, 64],
    "blk.0.attn_v.weight": [64, 64],
    "blk.0.attn_output.weight": [64, 64],
    "blk.0.ffn_norm.weight": [64],
    "blk.0.ffn_gate.weight": [64, 128],
    "blk.0.ffn_up.weight": [64, 128],
    "blk.0.ffn_down.weight": [128, 64],
}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    variant = request.param
    return build_model(variant, tmp_path_factory.mktemp(variant) / f"{variant}.gguf")


def _reader(path: Path) -> GGUFReader:
    return GGUFReader(str(path))


def _scalar(reader: GGUFReader, key: str) -> object:
    field = reader.fields[key]
    value = field.parts[field.data[0]]
    if field.types[0] == GGUFValueType.STRING:
        return bytes(value).decode()
    return value.tolist()[0]


# --- the file -------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_bytes_are_deterministic_across_builds_and_processes(variant: str, tmp_path: Path) -> None:
    first = model_bytes(variant)
    model_bytes.cache_clear()
    second = model_bytes(variant)
    assert first == second
    # A fresh interpreter must produce the same digest: blobs are addressed by it.
    code = (
        "import hashlib; from conformance.models.tiny_gguf import model_bytes; "
        f"print(hashlib.sha256(model_bytes({variant!r})).hexdigest())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.strip() == hashlib.sha256(first).hexdigest()
    assert model_digest(variant) == "sha256:" + hashlib.sha256(first).hexdigest()
    path = build_model(variant, tmp_path / "sub" / "m.gguf")
    assert path.read_bytes() == first


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_files_are_small(variant: str) -> None:
    size = len(model_bytes(variant))
    assert 250_000 < size < 1_000_000


def test_variants_differ_and_context_length_changes_the_bytes() -> None:
    digests = {model_digest(v) for v in VARIANTS}
    assert len(digests) == len(VARIANTS)
    assert model_bytes("stop", context_length=512) != model_bytes("stop")
    with pytest.raises(ValueError, match="context_length"):
        model_bytes("stop", context_length=0)
    with pytest.raises(ValueError, match="unknown tiny model variant"):
        model_bytes("nope")


def test_metadata_keys_and_types(built: Path) -> None:
    reader = _reader(built)
    variant = built.stem
    u32 = GGUFValueType.UINT32
    expected_types = {
        "general.architecture": GGUFValueType.STRING,
        "general.file_type": u32,
        "llama.block_count": u32,
        "llama.context_length": u32,
        "llama.embedding_length": u32,
        "llama.feed_forward_length": u32,
        "llama.attention.head_count": u32,
        "llama.attention.head_count_kv": u32,
        "llama.rope.dimension_count": u32,
        "llama.rope.freq_base": GGUFValueType.FLOAT32,
        "llama.attention.layer_norm_rms_epsilon": GGUFValueType.FLOAT32,
        "tokenizer.ggml.model": GGUFValueType.STRING,
        "tokenizer.ggml.pre": GGUFValueType.STRING,
        "tokenizer.ggml.bos_token_id": u32,
        "tokenizer.ggml.eos_token_id": u32,
        "tokenizer.ggml.add_bos_token": GGUFValueType.BOOL,
    }
    for key, vtype in expected_types.items():
        assert reader.fields[key].types[0] == vtype, key
    assert _scalar(reader, "general.architecture") == "llama"
    assert _scalar(reader, "general.file_type") == 0
    assert _scalar(reader, "llama.block_count") == 1
    assert _scalar(reader, "llama.context_length") == 2048
    assert _scalar(reader, "llama.embedding_length") == 64
    assert _scalar(reader, "llama.attention.head_count") == 4
    # llama.cpp: rope dimensions must equal n_embd / n_head, or it refuses the model.
    assert _scalar(reader, "llama.rope.dimension_count") == 16
    assert _scalar(reader, "tokenizer.ggml.model") == "gpt2"
    assert _scalar(reader, "tokenizer.ggml.pre") == "default"
    assert _scalar(reader, "tokenizer.ggml.bos_token_id") == BOS_ID
    assert _scalar(reader, "tokenizer.ggml.eos_token_id") == EOS_ID
    # Ollama treats a pooling type as "embedding only": it must be in embed and nowhere else.
    assert ("llama.pooling_type" in reader.fields) == (variant == "embed")
    if variant == "embed":
        assert _scalar(reader, "llama.pooling_type") == 3


def test_vocabulary(built: Path) -> None:
    reader = _reader(built)
    tokens = reader.fields["tokenizer.ggml.tokens"]
    assert tokens.types == [GGUFValueType.ARRAY, GGUFValueType.STRING]
    texts = [bytes(tokens.parts[i]).decode() for i in tokens.data]
    assert len(texts) == 258
    assert texts[:256] == byte_tokens()
    assert texts[BOS_ID] == "<|bos|>"
    # llama.cpp recognises this EOS text as end-of-generation without a warning.
    assert texts[EOS_ID] == "<|endoftext|>"
    types = reader.fields["tokenizer.ggml.token_type"]
    values = [int(types.parts[i][0]) for i in types.data]
    assert values == [1] * 256 + [3, 3]


def test_merges_is_an_empty_string_array(built: Path) -> None:
    # GGUFReader does not report the item type of an empty array, so read the raw bytes:
    # after the key come value type ARRAY (9), item type STRING (8) and count 0.
    data = built.read_bytes()
    key = b"tokenizer.ggml.merges"
    start = data.index(key) + len(key)
    assert struct.unpack("<IIQ", data[start : start + 16]) == (9, 8, 0)
    assert len(_reader(built).fields["tokenizer.ggml.merges"].data) == 0


def test_byte_tokens_are_the_gpt2_byte_alphabet() -> None:
    tokens = byte_tokens()
    assert len(set(tokens)) == 256
    assert tokens[ord("a")] == "a"
    assert tokens[ord(" ")] == "Ġ"  # the well-known GPT-2 spelling of a space
    assert tokens[ord("\n")] == "Ċ"


def test_tensors(built: Path) -> None:
    reader = _reader(built)
    shapes = {t.name: t.shape.tolist() for t in reader.tensors}
    assert shapes == EXPECTED_TENSORS
    assert {t.tensor_type.name for t in reader.tensors} == {"F32"}
    by_name = {t.name: np.asarray(t.data) for t in reader.tensors}
    for name in ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"):
        assert not by_name[f"blk.0.{name}.weight"].any(), name
    embd = by_name["token_embd.weight"]
    assert embd.shape == (258, 64)
    assert (embd.sum(axis=1) == 1.0).all()  # one-hot rows
    assert embd[ord("a"), 0] == 1.0 and embd[ord("z"), 25] == 1.0 and embd[ord(" "), 26] == 1.0


def _greedy_next(output: np.ndarray, embd: np.ndarray, token: int) -> tuple[int, float]:
    """Run the crafted network for a one-token context: the block adds zero, so only norms."""
    hidden = embd[token] / np.sqrt(np.mean(embd[token] ** 2) + tiny_gguf.RMS_EPSILON)
    logits = output @ hidden
    ranked = np.argsort(logits)[::-1]
    return int(ranked[0]), float(logits[ranked[0]] - logits[ranked[1]])


@pytest.mark.parametrize("variant", ["stop", "cycle"])
def test_weights_predict_the_successor_for_every_token(variant: str, tmp_path: Path) -> None:
    reader = _reader(build_model(variant, tmp_path / "m.gguf"))
    by_name = {t.name: np.asarray(t.data, dtype=np.float64) for t in reader.tensors}
    for token in range(258):
        best, gap = _greedy_next(by_name["output.weight"], by_name["token_embd.weight"], token)
        assert best == successor(token, variant), token
        assert gap > 39.9  # far beyond what any temperature/top-k/top-p could overturn


# --- the predictor --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "prompt", "num_predict", "stop", "expected"),
    [
        ("stop", "a", None, None, ("bcde", "stop")),
        ("stop", "Why is the sky blue?", 30, None, ("abcde", "stop")),
        ("stop", "e", None, None, ("", "stop")),
        ("stop", "z", None, None, ("abcde", "stop")),
        ("stop", "a", 2, None, ("bc", "length")),
        ("stop", "a", None, ["d"], ("bc", "stop")),
        ("cycle", "a", 5, None, ("bcdef", "length")),
        ("cycle", "Why is the sky blue?", 30, None, ("abcdefghijklmnopqrstuvwxyzabcd", "length")),
        ("cycle", "a", 30, ["g"], ("bcdef", "stop")),
        ("cycle", "a", 30, ["zz", "fgh"], ("bcde", "stop")),
        ("cycle", "a", 3, ["g"], ("bcd", "length")),
        ("cycle", "x", None, ["c"], ("yzab", "stop")),
        ("cycle", "héllo wörld", 3, None, ("efg", "length")),  # only the last byte counts
        ("cycle", "é", 2, None, ("ab", "length")),  # a UTF-8 continuation byte is "other"
        ("cycle", b"a\n", 2, None, ("ab", "length")),
    ],
)
def test_expected_completion(
    variant: str,
    prompt: str | bytes,
    num_predict: int | None,
    stop: list[str] | None,
    expected: tuple[str, str],
) -> None:
    assert expected_completion(variant, prompt, num_predict, stop) == expected


def test_expected_completion_refuses_what_it_cannot_predict() -> None:
    with pytest.raises(ValueError, match="never stops"):
        expected_completion("cycle", "a")
    with pytest.raises(ValueError, match="never stops"):
        expected_completion("cycle", "a", stop=["aa"])  # no token follows itself
    with pytest.raises(ValueError, match="empty prompt"):
        expected_completion("stop", "")
    with pytest.raises(ValueError, match="num_predict=0"):
        expected_completion("stop", "a", 0)
    with pytest.raises(ValueError, match="embedding model"):
        expected_completion("embed", "a", 5)


def test_chat_rendering_and_embeddings() -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a"}]
    assert render_chat(messages) == "be briefa"
    assert expected_completion("stop", render_chat(messages)) == ("bcde", "stop")
    assert tiny_gguf.CHAT_TEMPLATE == "{{ range .Messages }}{{ .Content }}{{ end }}"
    vec = expected_embedding("abc")
    assert vec[2] == 1.0 and sum(vec) == 1.0 and len(vec) == 64
    assert expected_embedding("Hello!")[26] == 1.0
    raw = expected_embedding("xyz", normalized=False)
    assert raw[25] == pytest.approx(7.9974, abs=1e-3)


def test_recipes_file_matches_the_code() -> None:
    recipes = tomllib.loads((REPO / "fixtures" / "models" / "recipes.toml").read_text())
    assert set(recipes["variants"]) == set(VARIANTS)
    assert recipes["chat_template"] == tiny_gguf.CHAT_TEMPLATE
    for name, recipe in recipes["variants"].items():
        assert recipe["embedding"] == VARIANTS[name].embedding
        for case in recipe.get("examples", []):
            predicted = expected_completion(
                name, case["prompt"], case.get("num_predict"), case.get("stop")
            )
            assert list(predicted) == [case["text"], case["done_reason"]], case


def test_recorded_digests_match_when_built_with_the_same_gguf() -> None:
    # Digests depend on gguf-py's layout; they are recorded for 0.19 (what the project pins today).
    if version("gguf") != "0.19.0":
        pytest.skip(f"digests recorded for gguf 0.19.0, this is {version('gguf')}")
    recipes = tomllib.loads((REPO / "fixtures" / "models" / "recipes.toml").read_text())
    for name, built_info in recipes["built_with_gguf_0_19"].items():
        data = model_bytes(name)
        assert len(data) == built_info["size"]
        assert hashlib.sha256(data).hexdigest() == built_info["sha256"]
