"""Benchmarks of Ollama-API servers: metrics, the validity gate, statistics, comparison, plots.

Modules, one job each:

* :mod:`~conformance.bench.metrics`: what one request measured (:class:`Sample`).
* :mod:`~conformance.bench.validity`: which samples count, and why not.
* :mod:`~conformance.bench.stats`: percentiles, t intervals, bootstrap ratios (no scipy).
* :mod:`~conformance.bench.summary`: aggregates of one run.
* :mod:`~conformance.bench.runner`: phases, concurrency levels, repetitions.
* :mod:`~conformance.bench.results`: the schema-versioned result file.
* :mod:`~conformance.bench.compare` and :mod:`~conformance.bench.plot`: B against A.
* :mod:`~conformance.bench.cli`: ``ollama-conformance bench [compare]``.
"""

from conformance.bench.metrics import Sample
from conformance.bench.results import FORMAT, load_result, write_result
from conformance.bench.runner import BenchError, BenchParams, run_bench

__all__ = [
    "FORMAT",
    "BenchError",
    "BenchParams",
    "Sample",
    "load_result",
    "run_bench",
    "write_result",
]
