"""What Ollama reads from a GGUF model file: metadata, tensors, details and capabilities.

Used by ``/api/create`` (``files``), ``/api/show`` (``details``, ``model_info``, ``tensors``) and
the engine (embedding width, context length). Uploaded blobs are read with ``gguf.GGUFReader``
(imported lazily: numpy is slow to import and most requests never need it); the built-in
catalogue builds the same facts straight from the metadata it writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ggufwrite import U32, F32Value, Tensor
from .gojson import F32, GoMap

GGUF_MAGIC = b"GGUF"

#: ``general.file_type`` → the quantization name Ollama displays (subset without the gguf import).
_FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 14: "Q4_K_S", 15: "Q4_K_M"}
_FILE_TYPES |= {
    8: "Q5_0",
    9: "Q5_1",
    10: "Q2_K",
    16: "Q5_K_S",
    17: "Q5_K_M",
    18: "Q6_K",
    32: "BF16",
}


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
        file_type = self.file_type
        if file_type is None:
            return ""
        return _FILE_TYPES.get(file_type) or _gguf_file_type_name(file_type)

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

        Without ``verbose``, array values are written as ``null`` (0.9+); ``keep_arrays`` keeps
        them, which is what 0.6 did for arrays up to 1024 items.
        """
        info = GoMap()
        for key, value in self.kv.items():
            if key in ("general.name", "tokenizer.chat_template"):
                continue
            if key in self.arrays and not verbose:
                info[key] = value if keep_arrays and len(value) <= 1024 else None
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


def human_number(count: int) -> str:
    """A parameter count as Ollama shows it: ``8.0B``, ``1.24M``, ``74.18K``, ``812``."""
    for scale, unit, decimals in ((1e9, "B", 1), (1e6, "M", 2), (1e3, "K", 2)):
        if count >= scale:
            value = count / scale
            if value == int(value):
                return f"{int(value)}{unit}"
            return f"{value:.{decimals}f}{unit}"
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


def _gguf_file_type_name(file_type: int) -> str:
    try:
        from gguf import LlamaFileType
    except ImportError:  # pragma: no cover - gguf is a dependency
        return "unknown"
    try:
        name = LlamaFileType(file_type).name
    except ValueError:
        return "unknown"
    return "F32" if name == "ALL_F32" else name.removeprefix("MOSTLY_")
