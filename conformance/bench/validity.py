"""The validity gate: which samples may enter aggregates and comparisons, and why not.

A benchmark number is only as good as the request behind it. A request that failed, stopped
early, or whose server counters contradict the client's clock would silently skew a mean, so it
is flagged instead: kept in the result file with its reasons, left out of every statistic.

Reasons are strings ``"<kind>: <detail>"``; the kind is stable (reports count by it), the detail
says what was seen. The kinds:

``request-failed``
    transport error, a bound of the client hit, a non-200 status, or an ``error`` line.
``no-final``
    the stream had no ``done: true`` object, so there are no counters.
``no-eval-count`` / ``no-eval-duration``
    the counter is missing or 0. Old Ollama (0.6) rounds durations to whole milliseconds and
    omits zeros for tiny models, and 0.20 omits ``eval_duration`` for a one-token answer;
    no decode rate can be derived from such a sample.
``short-output``
    ``eval_count`` below the requested ``num_predict``: the model stopped early (EOS, a stop
    string), so the sample decoded a different amount of work than the others.
``client-rate-undefined``
    fewer than two text lines arrived, so there is no interval to time on the client.
``rate-mismatch``
    the server's rate (``eval_count / eval_duration``) and the client's rate
    (``(n - 1) / (t_last - t_first)``) differ by more than the tolerance, measured as
    ``|client - server| / server``. The default tolerance, 25%, leaves room for network jitter
    and for servers that batch a few tokens per line, but catches counters in the wrong unit or
    a server that sleeps outside ``eval_duration``.
``partly-offloaded``
    ``/api/ps`` reports ``0 < size_vram < size``: part of the model runs on the CPU, so the
    numbers describe neither the GPU nor the CPU. Every sample of the run gets this reason.
    ``size_vram == 0`` is a CPU-only server, which is a valid configuration and is only
    recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from conformance.bench.metrics import Sample

__all__ = [
    "DEFAULT_TOLERANCE",
    "Placement",
    "apply_placement",
    "check_sample",
    "count_reasons",
    "normalise_model_name",
    "placement_from_ps",
]

DEFAULT_TOLERANCE: Final = 0.25

PlacementStatus = Literal["gpu", "cpu-only", "partly-offloaded", "not-loaded", "unknown"]


def check_sample(sample: Sample, *, requested_tokens: int, tolerance: float) -> Sample:
    """Apply the per-request rules to ``sample`` (in place) and return it."""
    if sample.error is not None:
        sample.invalidate(f"request-failed: {sample.error}")
    if not sample.has_final:
        sample.invalidate("no-final: the stream had no done:true object with counters")
        return sample
    if not sample.eval_count:
        sample.invalidate(f"no-eval-count: eval_count is {_shown(sample.eval_count)}")
    if not sample.eval_duration:
        sample.invalidate(f"no-eval-duration: eval_duration is {_shown(sample.eval_duration)}")
    if sample.eval_count and sample.eval_count < requested_tokens:
        sample.invalidate(
            f"short-output: eval_count {sample.eval_count} < num_predict {requested_tokens}"
            f" (done_reason {sample.done_reason!r})"
        )
    if sample.client_decode_tps is None:
        sample.invalidate(
            f"client-rate-undefined: {sample.content_lines} text line(s), need at least 2"
        )
    elif sample.decode_tps is not None:
        gap = abs(sample.client_decode_tps - sample.decode_tps) / sample.decode_tps
        if gap > tolerance:
            sample.invalidate(
                f"rate-mismatch: server {sample.decode_tps:.1f} tokens/s vs client"
                f" {sample.client_decode_tps:.1f} tokens/s ({gap:.0%} apart,"
                f" tolerance {tolerance:.0%})"
            )
    return sample


def _shown(value: int | None) -> str:
    return "missing" if value is None else str(value)


@dataclass(frozen=True)
class Placement:
    """Where the model sat when it was measured, as ``/api/ps`` reported it."""

    status: PlacementStatus
    size: int | None = None
    size_vram: int | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form for the result file."""
        return {
            "status": self.status,
            "size": self.size,
            "size_vram": self.size_vram,
            "detail": self.detail,
        }


def normalise_model_name(name: str) -> str:
    """``Llama3.2`` and ``llama3.2:latest`` name the same model (Ollama matches case-insensitively
    and defaults the tag to ``latest``)."""
    name = name.strip().lower()
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else name + ":latest"


def placement_from_ps(ps_body: object, model: str) -> Placement:
    """Judge the ``/api/ps`` answer for ``model``."""
    if not isinstance(ps_body, dict) or not isinstance(ps_body.get("models"), list):
        return Placement("unknown", detail="/api/ps gave no models list")
    wanted = normalise_model_name(model)
    for entry in ps_body["models"]:
        if not isinstance(entry, dict):
            continue
        names = {normalise_model_name(str(entry.get(k, ""))) for k in ("name", "model")}
        if wanted not in names:
            continue
        size, vram = entry.get("size"), entry.get("size_vram")
        if not isinstance(size, int) or not isinstance(vram, int) or size <= 0:
            return Placement("unknown", None, None, f"size={size!r} size_vram={vram!r}")
        if vram == 0:
            return Placement("cpu-only", size, vram, "size_vram 0: CPU-only, not offloaded")
        if vram < size:
            return Placement(
                "partly-offloaded",
                size,
                vram,
                f"size_vram {vram} < size {size} ({vram / size:.0%} in VRAM)",
            )
        return Placement("gpu", size, vram, "fully in VRAM")
    return Placement("not-loaded", detail=f"{model} not listed by /api/ps")


def apply_placement(samples: Iterable[Sample], placements: Iterable[Placement]) -> bool:
    """Flag every sample when any reading says partly offloaded; True if it did."""
    partial = [p for p in placements if p.status == "partly-offloaded"]
    if not partial:
        return False
    for sample in samples:
        sample.invalidate(f"partly-offloaded: {partial[0].detail}")
    return True


def count_reasons(samples: Iterable[Sample]) -> dict[str, int]:
    """How many invalid samples carry each reason kind."""
    counts: Counter[str] = Counter()
    for sample in samples:
        for kind in {reason.split(":", 1)[0] for reason in sample.invalid_reasons}:
            counts[kind] += 1
    return dict(sorted(counts.items()))
