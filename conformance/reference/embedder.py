"""Deterministic text embeddings from hashed features.

A vector is a function of the model and the text only: each lower-cased word and each character
trigram adds ±1 to a hashed coordinate, plus a constant "start of text" feature (real models
always see a BOS token, so even ``""`` gets a non-zero vector). Texts that share words therefore
point in similar directions, which keeps similarity-based client tests meaningful.

``/api/embed`` always L2-normalises (and re-normalises after ``dimensions``, §9); the legacy
``/api/embeddings`` returns the runner's raw vector, which the server does not normalise before
0.30 (§10).
"""

from __future__ import annotations

import hashlib
import math
import re
import struct

_WORD = re.compile(r"\w+", re.UNICODE)


def count_tokens(text: str) -> int:
    """Token count used for embeddings: whitespace-separated pieces (at least one for BOS)."""
    return len(text.split()) + 1


def truncate_tokens(text: str, limit: int) -> str:
    """Keep the first ``limit`` whitespace tokens of ``text`` (``truncate: true``)."""
    return " ".join(text.split()[: max(limit, 0)])


def _features(text: str) -> list[tuple[str, float]]:
    lowered = text.lower()
    features: list[tuple[str, float]] = [("<s>", 0.5)]
    features += [("w:" + word, 1.0) for word in _WORD.findall(lowered)]
    squashed = " ".join(lowered.split())
    features += [("c:" + squashed[i : i + 3], 0.35) for i in range(max(len(squashed) - 2, 0))]
    return features


def raw_vector(model_key: str, text: str, dimensions: int) -> list[float]:
    """The unnormalised vector (as float32 values) of ``text`` for the model ``model_key``.

    Every feature adds a dense pseudo-random direction (derived from its hash), so any prefix of
    the vector — what ``dimensions`` keeps — still carries information.
    """
    vector = [0.0] * dimensions
    salt = model_key.encode()[:64]
    for feature, weight in _features(text):
        stream = hashlib.shake_256(salt + b"\x00" + feature.encode()).digest(dimensions)
        for index, byte in enumerate(stream):
            vector[index] += weight * (byte - 127.5) / 127.5
    return [_f32(x) for x in vector]


def normalize(vector: list[float]) -> list[float]:
    """L2 normalisation; an all-zero vector stays zero (Ollama divides by max(norm, 1e-12))."""
    norm = math.sqrt(sum(x * x for x in vector))
    return [_f32(x / max(norm, 1e-12)) for x in vector]


def _f32(value: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", value))[0])
