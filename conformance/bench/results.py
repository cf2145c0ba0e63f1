"""Bench result files: the schema-versioned JSON document a run writes and ``compare`` reads.

The ``format`` key names the layout and its major version (``ollama-conformance-bench/1``). A
reader refuses other formats with a one-line reason instead of misreading them; fields may be
added within a major version, so readers ignore keys they do not know.

Layout (``format`` 1)::

    format, created_at (UTC ISO 8601), suite_version
    parameters   {target, embedded, model, prompt_tokens, output_tokens, concurrency[],
                  repetitions, warmup, num_ctx, seed, temperature, keep_alive, cold,
                  tolerance, timeout_s, run_id, options (the generate options sent)}
    fingerprint  {server {url, version, embedded, reference_config?},
                  model {name, digest, family, format, parameter_size, quantization,
                         context_length, size, size_vram, placement},
                  host {hostname, cpu_model, cores, memory_bytes, machine, os, python,
                        suite_version}}
    placement[]  {phase, concurrency, status, size, size_vram, detail}   (/api/ps readings)
    runs[]       {phase ("cold"|"warm"), concurrency, prompt_eval_count_median,
                  summary {metric: {unit, better, n, p50, p90, p99, min, max,
                                    mean, ci95_low, ci95_high, repetitions}},
                  repetitions[] {index, started_at, wall_s, requests, valid, eval_tokens,
                                 requests_per_s, aggregate_tps},
                  samples[] (see conformance.bench.metrics.Sample)}
    validity     {tolerance, samples, valid, invalid, reasons {kind: count}}
    warnings[]   strings
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Final

from conformance.bench.metrics import Sample

__all__ = ["FORMAT", "ResultError", "load_result", "run_samples", "write_result"]

FORMAT: Final = "ollama-conformance-bench/1"
_FORMAT_PREFIX: Final = "ollama-conformance-bench/"


class ResultError(ValueError):
    """A file that is not a readable bench result; the message is one line naming the file."""


def write_result(path: str | os.PathLike[str], result: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename), so an interrupted run never leaves half a file
    that a later ``compare`` would reject or, worse, half-read."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1, allow_nan=False)
            handle.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a result file; raise :class:`ResultError` with a one-line reason."""
    name = os.fspath(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultError(f"{name}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ResultError(f"{name}: not UTF-8 text, not a bench result") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultError(f"{name}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ResultError(f"{name}: not a bench result (top level is not an object)")
    fmt = data.get("format")
    if not isinstance(fmt, str) or not fmt.startswith(_FORMAT_PREFIX):
        raise ResultError(f"{name}: not a bench result (format {fmt!r}, expected {FORMAT!r})")
    if fmt != FORMAT:
        raise ResultError(f"{name}: unsupported result format {fmt!r} (this tool reads {FORMAT!r})")
    for key, kind in (("parameters", dict), ("fingerprint", dict), ("runs", list)):
        if not isinstance(data.get(key), kind):
            raise ResultError(
                f"{name}: malformed bench result: {key!r} missing or not a {kind.__name__}"
            )
    for i, run in enumerate(data["runs"]):
        if (
            not isinstance(run, dict)
            or not isinstance(run.get("concurrency"), int)
            or run.get("phase") not in ("cold", "warm")
            or not isinstance(run.get("samples"), list)
        ):
            raise ResultError(
                f"{name}: malformed bench result: runs[{i}] lacks phase/concurrency/samples"
            )
        for j, sample in enumerate(run["samples"]):
            try:
                Sample.from_dict(sample)
            except (TypeError, AttributeError):
                raise ResultError(
                    f"{name}: malformed bench result: runs[{i}].samples[{j}]"
                ) from None
    return data


def run_samples(run: dict[str, Any]) -> list[Sample]:
    """The samples of one run of a loaded result."""
    return [Sample.from_dict(s) for s in run["samples"] if isinstance(s, dict)]
