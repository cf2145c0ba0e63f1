"""What Ollama reads from a GGUF model file: metadata, tensors, details and capabilities.

Used by ``/api/create`` (``files``), ``/api/show`` (``details``, ``model_info``, ``tensors``) and
the engine (embedding width, context length). Uploaded blobs are read with ``gguf.GGUFReader``
(imported lazily: numpy is slow to import and most requests never need it); the built-in
catalogue builds the same facts straight from the metadata it writes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ggufwrite import U32, F32Value, Tensor
from .gojson import F32, GoMap

GGUF_MAGIC = b"GGUF"

#: ``general.file_type`` → the quantization level Ollama displays, for the values every release
#: since 0.6 names the same way. Ollama only trusts a file type above 0: an F32 file (0) or one
#: without the key is "unknown" (``KV.FileType`` tests ``t > 0``), which is what real 0.12.11 and
#: 0.24.0 show for the tiny F32 GGUFs.
_FILE_TYPES = {1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K"}
_FILE_TYPES |= {11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M"}
_FILE_TYPES |= {16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 21: "Q2_K_S", 32: "BF16"}
#: The i-quants, named before the quantizer moved to the Go backend (v0.6.9-rc0) and again once
#: llama-server runs every GGUF (v0.30.0); in between they print as "unknown" (git tag scan).
_IQ_TYPES = {19: "IQ2_XXS", 20: "IQ2_XS", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL"}
_IQ_TYPES |= {26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M"}
#: Names that only some releases know: (value, name, since, until).
_FILE_TYPE_SPANS = (
    (4, "Q4_1_F16", "0.0.0", "0.6.9-rc0"),
    (4, "MXFP4", "0.11.1", "0.30.0"),
    (36, "TQ1_0", "0.30.0", None),
    (37, "TQ2_0", "0.30.0", None),
    (38, "MXFP4_MOE", "0.30.0", None),
    (39, "NVFP4", "0.30.0", None),
    (40, "Q1_0", "0.30.0", None),
)


def file_type_name(file_type: int | None, at_least: Callable[[str], bool] | None = None) -> str:
    """The ``quantization_level`` Ollama derives from ``general.file_type``.

    ``at_least`` is the emulated release's version test; without it the newest naming is used.
    """
    if file_type is None or file_type <= 0:
        return "unknown"

    def since(version: str) -> bool:
        return True if at_least is None else at_least(version)

    name = _FILE_TYPES.get(file_type)
    if name is not None:
        return name
    if file_type in _IQ_TYPES:
        return _IQ_TYPES[file_type] if not since("0.6.9-rc0") or since("0.30.0") else "unknown"
    for value, span_name, first, until in _FILE_TYPE_SPANS:
        if value == file_type and since(first) and (until is None or not since(until)):
            return span_name
    return "unknown"


class NotGGUF(ValueError):
    """No GGUF magic at the start (create: ``supplied file was not in GGUF format``)."""


@dataclass
class GGUFFacts:
    """The model-level facts of one GGUF file."""

    kv: dict[str, Any]
    arrays: set[str] = field(default_factory=set)
    tensors: list[tuple[str, str, list[int]]] = field(default_factory=list)
    parameter_count: int = 0

    @property
    def architecture(self) -> str:
        return str(self.kv.get("general.architecture", ""))

    def arch_key(self, suffix: str) -> Any:
        return self.kv.get(f"{self.architecture}.{suffix}")

    @property
    def file_type(self) -> int | None:
        value = self.kv.get("general.file_type")
        return int(value) if isinstance(value, int) else None

    @property
    def quantization_level(self) -> str:
        """The newest releases' name; :func:`file_type_name` picks one for another release."""
        return file_type_name(self.file_type)

    @property
    def parameter_size(self) -> str:
        return human_number(self.parameter_count)

    @property
    def context_length(self) -> int:
        value = self.arch_key("context_length")
        return int(value) if isinstance(value, int) and value > 0 else 2048

    @property
    def embedding_length(self) -> int:
        value = self.arch_key("embedding_length")
        return int(value) if isinstance(value, int) and value > 0 else 64

    @property
    def has_pooling(self) -> bool:
        """``<arch>.pooling_type`` makes an embedding-only model (§20)."""
        return f"{self.architecture}.pooling_type" in self.kv

    @property
    def has_vision(self) -> bool:
        """``<arch>.vision.block_count`` gives the ``vision`` capability (0.9+, §20)."""
        return f"{self.architecture}.vision.block_count" in self.kv

    @property
    def chat_template(self) -> str:
        value = self.kv.get("tokenizer.chat_template")
        return value if isinstance(value, str) else ""

    def model_info(self, *, verbose: bool, keep_arrays: bool) -> GoMap:
        """``/api/show``'s ``model_info`` (§6): the KV without ``general.name`` and the template.

        Without ``verbose`` (0.9+) Ollama decodes arrays with a size limit of 0, so an array
        longer than that is written as ``null`` while an empty one still fits and stays ``[]``
        (real 0.24.0: ``tokenizer.ggml.merges: []``). ``keep_arrays`` is 0.6's limit of 1024.
        """
        info = GoMap()
        limit = 1024 if keep_arrays else 0
        for key, value in self.kv.items():
            if key in ("general.name", "tokenizer.chat_template"):
                continue
            if key in self.arrays and not verbose:
                info[key] = value if len(value) <= limit else None
            else:
                info[key] = value
        info["general.parameter_count"] = self.parameter_count
        return info

    def tensor_list(self) -> list[dict[str, Any]]:
        return [{"name": n, "type": t, "shape": list(s)} for n, t, s in self.tensors]

    def to_json(self) -> dict[str, Any]:
        """A cacheable form (floats that were float32 keep that marking)."""
        kv = {k: (["f32", float(v)] if isinstance(v, F32) else v) for k, v in self.kv.items()}
        return {
            "kv": kv,
            "arrays": sorted(self.arrays),
            "tensors": self.tensors,
            "parameter_count": self.parameter_count,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GGUFFacts:
        kv: dict[str, Any] = {}
        arrays = set(data.get("arrays", []))
        for key, value in data["kv"].items():
            is_f32 = isinstance(value, list) and len(value) == 2 and value[0] == "f32"
            kv[key] = F32(value[1]) if is_f32 and key not in arrays else value
        tensors = [(n, t, list(s)) for n, t, s in data.get("tensors", [])]
        return cls(kv, arrays, tensors, int(data.get("parameter_count", 0)))


def human_number(count: int, *, legacy: bool = False) -> str:
    """A parameter count the way Ollama's ``format.HumanNumber`` prints it (``parameter_size``).

    Billions keep one decimal and millions two, unless the value is whole; thousands are always
    rounded to a whole number, so the tiny models' 74,176 parameters are ``74K`` (as real 0.12.11
    and 0.24.0 show). ``legacy`` is the rule before v0.1.35: every unit rounded (half away from
    zero) to a whole number, and a unit only for counts strictly above it.
    """
    for scale, unit, decimals in ((10**9, "B", 1), (10**6, "M", 2), (10**3, "K", 0)):
        if legacy:
            if count > scale:
                return f"{math.floor(count / scale + 0.5)}{unit}"
            continue
        if count >= scale:
            value = count / scale
            if value == math.floor(value):
                return f"{value:.0f}{unit}"
            return f"{value:.{decimals}f}{unit}"  # Go's %.Nf rounds like Python's format
    return str(count)


def facts_from_parts(metadata: Mapping[str, Any], tensors: Sequence[Tensor]) -> GGUFFacts:
    """Facts of a file the catalogue writes with :func:`.ggufwrite.gguf_bytes`."""
    kv: dict[str, Any] = {}
    arrays: set[str] = set()
    for key, value in metadata.items():
        if isinstance(value, U32):
            kv[key] = value.value
        elif isinstance(value, F32Value | float):
            kv[key] = F32(value.value if isinstance(value, F32Value) else value)
        elif isinstance(value, list | tuple):
            kv[key] = list(value)
            arrays.add(key)
        else:
            kv[key] = value
    tensor_rows = [(t.name, "F32", list(t.shape)) for t in tensors]
    return GGUFFacts(kv, arrays, tensor_rows, sum(t.elements for t in tensors))


def starts_with_magic(path: Path) -> bool:
    with path.open("rb") as handle:
        return handle.read(4) == GGUF_MAGIC


def read_facts(path: Path) -> GGUFFacts:
    """Read a GGUF file's metadata and tensor table (not its data) with ``gguf.GGUFReader``.

    Raises :class:`NotGGUF` when the magic is missing and ``ValueError`` when the file is
    damaged beyond that.
    """
    if not starts_with_magic(path):
        raise NotGGUF(str(path))
    from gguf import GGUFReader, GGUFValueType  # lazy: pulls in numpy

    try:
        reader = GGUFReader(path)
    except (ValueError, IndexError, OverflowError, TypeError) as exc:
        raise ValueError(f"unexpected EOF ({exc})") from None
    kv: dict[str, Any] = {}
    arrays: set[str] = set()
    for name, item in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        main = item.types[0] if item.types else None
        value = item.contents()
        if main == GGUFValueType.ARRAY:
            arrays.add(name)
            value = list(value)
        elif main == GGUFValueType.FLOAT32:
            value = F32(value)
        elif main == GGUFValueType.BOOL:
            value = bool(value)
        kv[name] = value
    tensors: list[tuple[str, str, list[int]]] = []
    count = 0
    for tensor in reader.tensors:
        tensors.append((tensor.name, tensor.tensor_type.name, [int(d) for d in tensor.shape]))
        count += int(tensor.n_elements)
    del reader  # release the memory map
    return GGUFFacts(kv, arrays, tensors, count)
