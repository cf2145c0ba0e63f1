"""What one benchmark request measured: server counters and client clock, side by side.

Two independent views of the same generation are kept on purpose. The server's counters
(``eval_count / eval_duration``) are what Ollama users quote, but a server can report them
wrongly (milliseconds rounded to 0 on old versions, wrong units, time spent elsewhere); the
client's clock (arrival times of the streamed lines) cannot be fooled that way but includes the
network. Where both agree the number is trustworthy; where they disagree the sample is flagged
(see :mod:`conformance.bench.validity`).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Final, Literal

from conformance.exchange import Exchange

__all__ = [
    "METRICS",
    "REPETITION_METRICS",
    "SAMPLE_METRICS",
    "Metric",
    "Sample",
    "content_times",
    "measure",
]

NS_PER_S: Final = 1e9


@dataclass(frozen=True)
class Metric:
    """A named measurement, its unit and which direction is an improvement."""

    name: str
    label: str
    unit: str
    better: Literal["higher", "lower"]


#: Per-request metrics: one value per sample (``itl_s`` is the mean gap of the sample; its
#: percentiles are taken over all gaps of all samples).
SAMPLE_METRICS: Final = (
    Metric("decode_tps", "decode rate (server counters)", "tokens/s", "higher"),
    Metric("client_decode_tps", "decode rate (client clock)", "tokens/s", "higher"),
    Metric("prefill_tps", "prefill rate (server counters)", "tokens/s", "higher"),
    Metric("ttft_s", "time to first token", "s", "lower"),
    Metric("itl_s", "inter-token latency", "s", "lower"),
    Metric("e2e_s", "end-to-end latency", "s", "lower"),
    Metric("load_s", "load duration", "s", "lower"),
)

#: Per-repetition metrics: the c concurrent requests of one repetition, taken together.
REPETITION_METRICS: Final = (
    Metric("requests_per_s", "requests per second", "requests/s", "higher"),
    Metric("aggregate_tps", "aggregate decode rate", "tokens/s", "higher"),
)

METRICS: Final = {m.name: m for m in (*SAMPLE_METRICS, *REPETITION_METRICS)}


@dataclass
class Sample:
    """One request of a benchmark run. Times are seconds; ``*_duration`` fields stay raw ns.

    Invalid samples are kept (with ``invalid_reasons``) so a result file shows what went wrong,
    but every aggregate and comparison skips them.
    """

    phase: str
    concurrency: int
    repetition: int
    worker: int
    nonce: str
    started_at: float  # seconds since the run started (monotonic), for the repetition window
    ended_at: float
    status: int | None = None
    error: str | None = None
    has_final: bool = False
    done_reason: str | None = None
    eval_count: int | None = None
    eval_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    load_duration: int | None = None
    total_duration: int | None = None
    content_lines: int = 0
    ttft_s: float | None = None
    e2e_s: float | None = None
    itl_s: float | None = None
    itl_gaps_s: list[float] = field(default_factory=list)
    decode_tps: float | None = None
    client_decode_tps: float | None = None
    prefill_tps: float | None = None
    load_s: float | None = None
    valid: bool = True
    invalid_reasons: list[str] = field(default_factory=list)

    def invalidate(self, reason: str) -> None:
        """Flag the sample; the reasons accumulate so a report shows all of them."""
        self.valid = False
        if reason not in self.invalid_reasons:
            self.invalid_reasons.append(reason)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; gaps are rounded to microseconds to keep result files small."""
        data = asdict(self)
        data["itl_gaps_s"] = [round(g, 6) for g in self.itl_gaps_s]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sample:
        """Inverse of :meth:`to_dict`; unknown keys (from newer writers) are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _int_counter(final: dict[str, Any], key: str) -> int | None:
    """A duration or count from the final object: an int, or None when absent or malformed."""
    value = final.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _is_content(value: object) -> bool:
    """True for a stream object that carries generated text.

    Thinking tokens count as content: the server counts them in ``eval_count``, so leaving them
    out would make the client rate disagree with the server rate for thinking models.
    """
    if not isinstance(value, dict):
        return False
    return any(isinstance(value.get(k), str) and value.get(k) for k in ("response", "thinking"))


def content_times(exchange: Exchange) -> list[float]:
    """Arrival times (seconds since the request was sent) of the lines that carry text."""
    return [
        line.at for line in exchange.lines if line.parse_error is None and _is_content(line.value)
    ]


def _rate(count: int | None, duration_ns: int | None) -> float | None:
    if not count or not duration_ns or duration_ns <= 0:
        return None
    return count / duration_ns * NS_PER_S


def measure(
    exchange: Exchange,
    *,
    phase: str,
    concurrency: int,
    repetition: int,
    worker: int,
    nonce: str,
    started_at: float,
    ended_at: float,
) -> Sample:
    """Turn one streamed ``/api/generate`` exchange into a :class:`Sample` (not yet gated).

    The client decode rate is ``(n - 1) / (t_last - t_first)`` over the n text lines: the first
    line's time includes prefill, so only the n - 1 intervals after it measure decoding.
    """
    sample = Sample(
        phase=phase,
        concurrency=concurrency,
        repetition=repetition,
        worker=worker,
        nonce=nonce,
        started_at=started_at,
        ended_at=ended_at,
        status=exchange.status,
        error=exchange.problem,
    )
    if exchange.error_lines and sample.error is None:
        sample.error = f"error in stream: {exchange.error_lines[0].get('error')!r}"
    if exchange.status is not None and exchange.status != 200 and sample.error is None:
        sample.error = f"HTTP {exchange.status}: {exchange.text_preview(120)}"
    times = content_times(exchange)
    sample.content_lines = len(times)
    if times:
        sample.ttft_s = times[0]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        sample.itl_gaps_s = gaps
        if gaps:
            sample.itl_s = sum(gaps) / len(gaps)
        span = times[-1] - times[0]
        if len(times) >= 2 and span > 0:
            sample.client_decode_tps = (len(times) - 1) / span
    if exchange.lines:
        sample.e2e_s = exchange.finished_after or exchange.lines[-1].at
    final = exchange.final
    if final is not None:
        sample.has_final = True
        done_reason = final.get("done_reason")
        sample.done_reason = done_reason if isinstance(done_reason, str) else None
        sample.eval_count = _int_counter(final, "eval_count")
        sample.eval_duration = _int_counter(final, "eval_duration")
        sample.prompt_eval_count = _int_counter(final, "prompt_eval_count")
        sample.prompt_eval_duration = _int_counter(final, "prompt_eval_duration")
        sample.load_duration = _int_counter(final, "load_duration")
        sample.total_duration = _int_counter(final, "total_duration")
        sample.decode_tps = _rate(sample.eval_count, sample.eval_duration)
        sample.prefill_tps = _rate(sample.prompt_eval_count, sample.prompt_eval_duration)
        if sample.load_duration is not None:
            sample.load_s = sample.load_duration / NS_PER_S
    return sample
