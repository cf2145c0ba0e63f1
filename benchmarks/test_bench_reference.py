"""The bench's ground truth as a benchmark: a full bench run against the reference server.

Times the whole run (start-up of the embedded server excluded) and records, per concurrency
level, how far the recovered decode rate is from the configured one, so a drift in the bench's
accuracy shows in ``--benchmark-compare`` as well as its speed. The tolerances are those of
tests/test_bench_ground_truth.py (why 20 tokens/s and 6 tokens is explained there).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from conformance.bench.embedded import embedded_reference
from conformance.bench.runner import BenchParams, run_bench

TOKEN_RATE = 20.0
LOAD_TIME = 0.1
PARAMS = BenchParams(
    model="tiny-completion",
    prompt_tokens=64,
    output_tokens=6,
    concurrency=(1, 4),
    repetitions=3,
    warmup=1,
    num_ctx=512,
)


@pytest.fixture(scope="module")
def reference_url() -> Iterator[str]:
    with embedded_reference({"token_rate": TOKEN_RATE, "load_time": LOAD_TIME}) as url:
        yield url


def test_bench_recovers_reference_rate(benchmark: Any, reference_url: str) -> None:
    benchmark.group = "bench on the reference server"
    results: list[dict[str, Any]] = []
    benchmark.pedantic(
        lambda: results.append(run_bench(reference_url, PARAMS)), rounds=2, iterations=1
    )
    last = results[-1]
    assert last["validity"]["invalid"] == 0, last["validity"]
    for run in last["runs"]:
        summary = run["summary"]
        server, client = summary["decode_tps"]["mean"], summary["client_decode_tps"]["mean"]
        key = f"c{run['concurrency']}"
        benchmark.extra_info[f"{key}_server_rate_error"] = round(server / TOKEN_RATE - 1, 5)
        benchmark.extra_info[f"{key}_client_rate_error"] = round(client / TOKEN_RATE - 1, 5)
        assert server == pytest.approx(TOKEN_RATE, rel=0.01)
        assert client == pytest.approx(TOKEN_RATE, rel=0.03)
