"""Aggregates of one run (a phase at one concurrency level) over its valid samples.

Two kinds of spread are reported because they answer different questions. Percentiles over all
samples describe what a single request experiences (p99 latency). The confidence interval is
taken over *repetition means*: samples within one repetition share the server's state (caches,
clocks, neighbours) and are not independent, while repetitions are as close to independent as a
benchmark gets, so it is their scatter that says how precisely the mean is known.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np

from conformance.bench.metrics import REPETITION_METRICS, SAMPLE_METRICS, Metric, Sample
from conformance.bench.stats import mean_ci, percentile

__all__ = ["metric_values", "repetition_stats", "summarise_run", "summarise_values"]


def summarise_values(
    metric: Metric, pooled: Sequence[float], repetition_means: Sequence[float]
) -> dict[str, Any]:
    """Percentiles over ``pooled``; mean and 95% t interval over ``repetition_means``."""
    ci = mean_ci(repetition_means)
    arr = np.asarray(pooled, dtype=float)
    return {
        "unit": metric.unit,
        "better": metric.better,
        "n": int(arr.size),
        "p50": percentile(pooled, 50),
        "p90": percentile(pooled, 90),
        "p99": percentile(pooled, 99),
        "min": float(arr.min()) if arr.size else None,
        "max": float(arr.max()) if arr.size else None,
        "mean": ci.mean if ci else None,
        "ci95_low": ci.low if ci else None,
        "ci95_high": ci.high if ci else None,
        "repetitions": ci.n if ci else 0,
    }


def metric_values(samples: Sequence[Sample], name: str) -> list[float]:
    """One value per valid sample for a per-request metric (missing values skipped)."""
    values = []
    for sample in samples:
        if not sample.valid:
            continue
        value = getattr(sample, name)
        if isinstance(value, int | float):
            values.append(float(value))
    return values


def repetition_stats(samples: Sequence[Sample], concurrency: int) -> list[dict[str, Any]]:
    """Throughput of each repetition: its requests taken together over its wall-clock window.

    A repetition with any invalid sample gets no throughput: its window would mix a failed or
    early-stopped request with good ones and under- or over-state the rate.
    """
    by_rep: dict[int, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_rep[sample.repetition].append(sample)
    out = []
    for index in sorted(by_rep):
        group = by_rep[index]
        start = min(s.started_at for s in group)
        window = max(s.ended_at for s in group) - start
        all_valid = all(s.valid for s in group) and len(group) == concurrency
        tokens = sum(s.eval_count or 0 for s in group)
        usable = all_valid and window > 0
        out.append(
            {
                "index": index,
                "started_at": round(start, 6),
                "wall_s": round(window, 6),
                "requests": len(group),
                "valid": sum(1 for s in group if s.valid),
                "eval_tokens": tokens,
                "requests_per_s": len(group) / window if usable else None,
                "aggregate_tps": tokens / window if usable else None,
            }
        )
    return out


def summarise_run(
    samples: Sequence[Sample], repetitions: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Summary of every metric for one run."""
    summary: dict[str, dict[str, Any]] = {}
    valid = [s for s in samples if s.valid]
    by_rep: dict[int, list[Sample]] = defaultdict(list)
    for sample in valid:
        by_rep[sample.repetition].append(sample)
    for metric in SAMPLE_METRICS:
        if metric.name == "itl_s":
            # Percentiles of inter-token latency are over every gap: a p99 over per-request
            # means would hide the stalls it exists to show.
            pooled = [g for s in valid for g in s.itl_gaps_s]
            rep_means = [
                float(np.mean(gaps))
                for group in by_rep.values()
                if (gaps := [g for s in group for g in s.itl_gaps_s])
            ]
        else:
            pooled = metric_values(valid, metric.name)
            rep_means = [
                float(np.mean(vals))
                for group in by_rep.values()
                if (vals := metric_values(group, metric.name))
            ]
        summary[metric.name] = summarise_values(metric, pooled, rep_means)
    for metric in REPETITION_METRICS:
        values = [float(r[metric.name]) for r in repetitions if r.get(metric.name) is not None]
        summary[metric.name] = summarise_values(metric, values, values)
    return summary
