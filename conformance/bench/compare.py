"""Comparing bench result files: ratios with confidence intervals, verdicts, fingerprint checks.

The first file is the baseline A; every other file B is compared with it, run by run (same phase
and concurrency) and metric by metric. The ratio is mean(B) / mean(A) over valid samples, with a
95% percentile-bootstrap interval (each side resampled on its own, fixed seed, so the same files
always give the same answer). The verdict follows from the interval alone: if it excludes 1, B is
significantly faster or slower (for latencies a ratio below 1 is faster); otherwise there is no
significant difference. Per-repetition metrics (requests/s, aggregate tokens/s) are bootstrapped
over repetitions, which are few, so their intervals are wide by nature.

Per-request metrics are resampled request by request, as if independent. Requests of one
repetition share the server's state, so on a noisy machine that interval can be narrower than
the truth; the per-repetition intervals in each file's summary are the conservative view, and
more repetitions are the remedy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from conformance.bench.metrics import REPETITION_METRICS, SAMPLE_METRICS, Metric
from conformance.bench.results import run_samples
from conformance.bench.stats import bootstrap_ratio
from conformance.bench.summary import metric_values

__all__ = [
    "FINGERPRINT_GROUPS",
    "Comparison",
    "MetricComparison",
    "compare_results",
    "fingerprint_differences",
    "format_comparison",
    "slower_than",
]

FASTER: Final = "faster"
SLOWER: Final = "slower"
SAME: Final = "no significant difference"
UNKNOWN: Final = "insufficient data"

#: Fingerprint fields by what they stand for. Two files should differ in one group only (the
#: variable under test); the host name is left out on purpose, since containers get a new one
#: on every start.
FINGERPRINT_GROUPS: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "server version": (("fingerprint", "server", "version"),),
    "model": (
        ("fingerprint", "model", "name"),
        ("fingerprint", "model", "digest"),
        ("fingerprint", "model", "quantization"),
        ("fingerprint", "model", "parameter_size"),
    ),
    "hardware": (
        ("parameters", "target"),
        # For the embedded target, the reference server's configured pace stands in for hardware.
        ("fingerprint", "server", "reference_config"),
        ("fingerprint", "host", "cpu_model"),
        ("fingerprint", "host", "cores"),
        ("fingerprint", "host", "memory_bytes"),
        ("fingerprint", "host", "machine"),
        ("fingerprint", "model", "placement"),
        ("fingerprint", "model", "size_vram"),
    ),
    "workload": (
        ("parameters", "prompt_tokens"),
        ("parameters", "output_tokens"),
        ("parameters", "num_ctx"),
        ("parameters", "seed"),
        ("parameters", "temperature"),
    ),
}

#: Differences worth showing but too common to count as a second variable.
NOTE_FIELDS: Final = (
    ("fingerprint", "host", "os"),
    ("fingerprint", "host", "python"),
    ("suite_version",),
)


def _get(doc: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = doc
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def fingerprint_differences(
    a: dict[str, Any], b: dict[str, Any]
) -> tuple[dict[str, list[str]], list[str]]:
    """``({group: ["field a → b", ...]}, notes)`` for the fields that differ."""
    groups: dict[str, list[str]] = {}
    for group, paths in FINGERPRINT_GROUPS.items():
        for path in paths:
            va, vb = _get(a, path), _get(b, path)
            if va != vb:
                groups.setdefault(group, []).append(f"{path[-1]} {va!r} → {vb!r}")
    notes = [
        f"{path[-1]} {_get(a, path)!r} → {_get(b, path)!r}"
        for path in NOTE_FIELDS
        if _get(a, path) != _get(b, path)
    ]
    return groups, notes


@dataclass(frozen=True)
class MetricComparison:
    """One metric of one run, B against A."""

    phase: str
    concurrency: int
    metric: Metric
    n_a: int
    n_b: int
    mean_a: float | None
    mean_b: float | None
    ratio: float | None
    low: float | None
    high: float | None
    verdict: str


@dataclass
class Comparison:
    """B against A: every metric of every run both files have, and the fingerprint check."""

    name_a: str
    name_b: str
    metrics: list[MetricComparison] = field(default_factory=list)
    differences: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)

    @property
    def warning(self) -> str | None:
        """Set when the files differ in more than one respect."""
        if len(self.differences) < 2:
            return None
        parts = "; ".join(f"{g}: {', '.join(d)}" for g, d in self.differences.items())
        return (
            f"fingerprints differ in more than the variable compared ({parts}):"
            " a difference cannot be attributed to any one of them"
        )


def _verdict(metric: Metric, low: float, high: float) -> str:
    if low > 1.0:
        return FASTER if metric.better == "higher" else SLOWER
    if high < 1.0:
        return SLOWER if metric.better == "higher" else FASTER
    return SAME


def _values(run: dict[str, Any], metric: Metric) -> list[float]:
    if metric in REPETITION_METRICS:
        reps = run.get("repetitions") or []
        return [float(r[metric.name]) for r in reps if r.get(metric.name) is not None]
    return metric_values(run_samples(run), metric.name)


def _compare_metric(
    phase: str, concurrency: int, metric: Metric, run_a: dict[str, Any], run_b: dict[str, Any]
) -> MetricComparison:
    va, vb = _values(run_a, metric), _values(run_b, metric)
    mean_a = sum(va) / len(va) if va else None
    mean_b = sum(vb) / len(vb) if vb else None
    ci = bootstrap_ratio(va, vb)
    if ci is None:
        ratio = mean_b / mean_a if mean_a and mean_b is not None else None
        return MetricComparison(
            phase, concurrency, metric, len(va), len(vb), mean_a, mean_b, ratio, None, None, UNKNOWN
        )
    return MetricComparison(
        phase,
        concurrency,
        metric,
        len(va),
        len(vb),
        mean_a,
        mean_b,
        ci.ratio,
        ci.low,
        ci.high,
        _verdict(metric, ci.low, ci.high),
    )


def compare_results(
    a: dict[str, Any], b: dict[str, Any], *, name_a: str = "A", name_b: str = "B"
) -> Comparison:
    """Compare two loaded result documents (see :func:`conformance.bench.results.load_result`)."""
    comparison = Comparison(name_a, name_b)
    comparison.differences, comparison.notes = fingerprint_differences(a, b)
    runs_a = {(r["phase"], r["concurrency"]): r for r in a["runs"]}
    runs_b = {(r["phase"], r["concurrency"]): r for r in b["runs"]}
    for key in sorted(runs_a.keys() | runs_b.keys(), key=lambda k: (k[0] != "warm", k[1])):
        if key not in runs_a or key not in runs_b:
            only = name_a if key in runs_a else name_b
            comparison.unmatched.append(f"{key[0]} c={key[1]} only in {only}")
            continue
        for metric in (*SAMPLE_METRICS, *REPETITION_METRICS):
            comparison.metrics.append(_compare_metric(*key, metric, runs_a[key], runs_b[key]))
    return comparison


def slower_than(comparison: Comparison, percent: float, metric: str = "decode_tps") -> list[str]:
    """Runs where ``metric`` is significantly slower *and* the ratio is below 1 - percent/100.

    Both conditions: significance alone fails a CI on a real but negligible slow-down, and the
    point estimate alone fails it on noise.
    """
    limit = 1.0 - percent / 100.0
    out = []
    for m in comparison.metrics:
        if m.metric.name != metric or m.verdict != SLOWER or m.ratio is None:
            continue
        if m.ratio < limit:
            out.append(
                f"{comparison.name_b}: {m.metric.label} {m.phase} c={m.concurrency} is"
                f" {1 - m.ratio:.1%} slower than {comparison.name_a}"
                f" (ratio {m.ratio:.3f}, 95% CI {m.low:.3f}-{m.high:.3f}; limit {percent:g}%)"
            )
    return out


def _num(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:.1f}ms" if value < 10 else f"{value:.1f}s"
    return f"{value:.1f}"


def format_comparison(comparison: Comparison) -> str:
    """A plain-text report of one comparison."""
    lines = [f"{comparison.name_b} vs {comparison.name_a} (ratio B/A, 95% bootstrap CI)"]
    for group, diffs in comparison.differences.items():
        lines.append(f"  differs in {group}: {', '.join(diffs)}")
    for note in comparison.notes:
        lines.append(f"  note: {note}")
    if comparison.warning:
        lines.append(f"  warning: {comparison.warning}")
    for item in comparison.unmatched:
        lines.append(f"  not compared: {item}")
    current: tuple[str, int] | None = None
    for m in comparison.metrics:
        if (m.phase, m.concurrency) != current:
            current = (m.phase, m.concurrency)
            lines.append(f"  {m.phase} c={m.concurrency}")
            lines.append(f"    {'metric':<32}{'A':>10}{'B':>10}{'B/A':>8}  {'95% CI':<15} verdict")
        ci = f"{m.low:.3f}-{m.high:.3f}" if m.low is not None and m.high is not None else "-"
        ratio = f"{m.ratio:.3f}" if m.ratio is not None else "-"
        unit = m.metric.unit
        lines.append(
            f"    {m.metric.label:<32}{_num(m.mean_a, unit):>10}{_num(m.mean_b, unit):>10}"
            f"{ratio:>8}  {ci:<15} {m.verdict}"
        )
    return "\n".join(lines)
