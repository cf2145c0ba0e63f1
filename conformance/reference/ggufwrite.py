"""A minimal GGUF v3 writer for the built-in catalogue, written without numpy.

The catalogue's model files are written at every start; importing numpy and the ``gguf`` package
for that would cost a good part of the 2 s start-up budget, and the files are tiny and fixed. The
layout is the public GGUF format: magic, version, tensor and key/value counts, typed key/values,
tensor descriptors, then tensor data aligned to ``general.alignment`` (32 bytes).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

ALIGNMENT = 32

# GGUF value type codes.
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY = range(10)
_UINT64, _INT64, _FLOAT64 = 10, 11, 12

_GGML_F32 = 0


@dataclass(frozen=True)
class U32:
    """A value to store as GGUF UINT32 (the type llama.cpp expects for counts and ids)."""

    value: int


@dataclass(frozen=True)
class F32Value:
    """A value to store as GGUF FLOAT32."""

    value: float


@dataclass(frozen=True)
class Tensor:
    """An all-zero F32 tensor; ``shape`` is in ggml order (fastest dimension first)."""

    name: str
    shape: tuple[int, ...]

    @property
    def elements(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count


def _string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _typed(value: Any) -> tuple[int, bytes]:
    if isinstance(value, U32):
        return _UINT32, struct.pack("<I", value.value)
    if isinstance(value, F32Value):
        return _FLOAT32, struct.pack("<f", value.value)
    if isinstance(value, bool):
        return _BOOL, struct.pack("<?", value)
    if isinstance(value, int):
        return _INT32, struct.pack("<i", value)
    if isinstance(value, float):
        return _FLOAT32, struct.pack("<f", value)
    if isinstance(value, str):
        return _STRING, _string(value)
    if isinstance(value, Sequence):
        items = list(value)
        if not items or all(isinstance(i, str) for i in items):
            body = b"".join(_string(i) for i in items)
            return _ARRAY, struct.pack("<IQ", _STRING, len(items)) + body
        if all(isinstance(i, int) and not isinstance(i, bool) for i in items):
            body = b"".join(struct.pack("<i", i) for i in items)
            return _ARRAY, struct.pack("<IQ", _INT32, len(items)) + body
    raise TypeError(f"cannot store {value!r} in GGUF metadata")


def gguf_bytes(metadata: Mapping[str, Any], tensors: Sequence[Tensor]) -> bytes:
    """A complete GGUF file: ``metadata`` in order, then zero-filled F32 ``tensors``."""
    out = bytearray(b"GGUF")
    out += struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for key, value in metadata.items():
        code, payload = _typed(value)
        out += _string(key) + struct.pack("<I", code) + payload
    offset = 0
    for tensor in tensors:
        out += _string(tensor.name) + struct.pack("<I", len(tensor.shape))
        out += b"".join(struct.pack("<Q", d) for d in tensor.shape)
        out += struct.pack("<IQ", _GGML_F32, offset)
        offset += _aligned(tensor.elements * 4)
    out += b"\x00" * (_aligned(len(out)) - len(out))
    for tensor in tensors:
        size = tensor.elements * 4
        out += b"\x00" * _aligned(size)
    return bytes(out)


def _aligned(size: int) -> int:
    return (size + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
