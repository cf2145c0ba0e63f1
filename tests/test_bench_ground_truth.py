"""Ground truth: on a reference server with a known token rate and load time, the bench must
recover them: decode rate within 1% from the server counters and within 3% from the client
clock, at concurrency 1 and 4, with cold and warm runs kept apart.

Output is 64 tokens: the reference answers the bench's prompt (which asks for a long story) with
at least 72 tokens, so every request ends at ``num_predict`` with ``done_reason: "length"``.

The reference server runs in a child process (as ``bench`` without ``--target`` runs it): in this
process its event loop would compete for the GIL with the four client threads and wake up late.

Timing needs a CPU. When a timing check fails while this process got less than
``SATURATED_SHARE`` of a core (measured around the run: other jobs on a shared machine), the
test is skipped with both numbers rather than failed: a starved server paces late, and that says
nothing about the bench. On a quiet machine every check is strict.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conformance.bench.embedded import embedded_reference
from conformance.bench.results import load_result, write_result
from conformance.bench.runner import BenchParams, run_bench

pytest.importorskip("conformance.reference.server")

TOKEN_RATE = 200.0
LOAD_TIME = 0.12
PROMPT_RATE = 2000.0
OUTPUT_TOKENS = 64
MODEL = "tiny-completion"
#: Below this share of a core, timing failures are blamed on the machine (see the docstring).
SATURATED_SHARE = 0.8


def cpu_share(duration: float = 0.15) -> float:
    """The fraction of wall time this thread actually ran while it wanted the CPU."""
    wall0, cpu0 = time.perf_counter(), time.thread_time()
    x = 0
    while time.perf_counter() - wall0 < duration:
        for i in range(1000):
            x += i
    return (time.thread_time() - cpu0) / (time.perf_counter() - wall0)


@dataclass
class Truth:
    """A bench result and how much CPU the machine gave while it was measured."""

    result: dict[str, Any]
    cpu_share: float

    def run(self, phase: str, concurrency: int) -> dict[str, Any]:
        return next(
            r
            for r in self.result["runs"]
            if r["phase"] == phase and r["concurrency"] == concurrency
        )

    def check(self, ok: bool, what: str) -> None:
        """Assert ``ok``; on a saturated machine, skip instead of failing."""
        if ok:
            return
        if self.cpu_share < SATURATED_SHARE:
            pytest.skip(
                f"{what}, but the machine was saturated (this process got"
                f" {self.cpu_share:.0%} of a core): timing ground truth needs an idle core"
            )
        pytest.fail(what)

    def close(self, value: float, truth: float, rel: float, what: str) -> None:
        self.check(
            value == pytest.approx(truth, rel=rel),
            f"{what}: {value:.2f}, expected {truth:g} ± {rel:.0%}",
        )


@pytest.fixture(scope="module")
def reference_url() -> Iterator[str]:
    settings = {"token_rate": TOKEN_RATE, "load_time": LOAD_TIME, "prompt_rate": PROMPT_RATE}
    with embedded_reference(settings) as url:
        yield url


@pytest.fixture(scope="module")
def truth(reference_url: str) -> Truth:
    params = BenchParams(
        model=MODEL,
        prompt_tokens=64,
        output_tokens=OUTPUT_TOKENS,
        concurrency=(1, 4),
        repetitions=4,
        warmup=1,
        num_ctx=512,
        cold=True,
    )
    before = cpu_share()
    # Late in a full test run this process holds a large heap, and a cyclic collection pausing the
    # reader threads for ~10 ms mis-stamps line arrivals by more than the 3% client-clock bound.
    # That pause is the harness's, not the bench's, so no collection runs while it measures.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        result = run_bench(reference_url, params)
    finally:
        gc.enable()
        gc.unfreeze()
    return Truth(result, min(before, cpu_share()))


def test_every_sample_is_valid(truth: Truth) -> None:
    validity = truth.result["validity"]
    assert validity["samples"] == 2 * 4 * (1 + 4)
    truth.check(validity["invalid"] == 0, f"invalid samples: {validity['reasons']}")


@pytest.mark.parametrize("phase", ["warm", "cold"])
@pytest.mark.parametrize("concurrency", [1, 4])
def test_decode_rate_recovered(truth: Truth, phase: str, concurrency: int) -> None:
    summary = truth.run(phase, concurrency)["summary"]
    where = f"{phase} c={concurrency}"
    truth.close(summary["decode_tps"]["mean"], TOKEN_RATE, 0.01, f"{where} server decode rate")
    truth.close(
        summary["client_decode_tps"]["mean"], TOKEN_RATE, 0.03, f"{where} client decode rate"
    )


@pytest.mark.parametrize("concurrency", [1, 4])
def test_load_time_only_in_cold_runs(truth: Truth, concurrency: int) -> None:
    cold = truth.run("cold", concurrency)["summary"]
    warm = truth.run("warm", concurrency)["summary"]
    # One request of a cold repetition pays the load; the others wait for it (shared load).
    truth.close(cold["load_s"]["max"], LOAD_TIME, 0.15, f"cold c={concurrency} load_duration")
    truth.check(warm["load_s"]["max"] < 0.01, f"warm load_duration {warm['load_s']['max']:.4f}")
    extra = cold["ttft_s"]["p50"] - warm["ttft_s"]["p50"]
    truth.close(extra, LOAD_TIME, 0.25, f"c={concurrency} cold minus warm time to first token")


def test_prefill_rate_and_throughput(truth: Truth) -> None:
    one, four = truth.run("warm", 1)["summary"], truth.run("warm", 4)["summary"]
    truth.close(one["prefill_tps"]["mean"], PROMPT_RATE, 0.1, "prefill rate")
    # The reference runs concurrent requests in parallel: four at once decode ~4x the tokens.
    truth.close(
        four["aggregate_tps"]["mean"],
        4 * one["aggregate_tps"]["mean"],
        0.2,
        "aggregate decode rate at c=4",
    )
    assert one["requests_per_s"]["n"] == 4


def test_fingerprint_and_file_round_trip(truth: Truth, tmp_path: Path) -> None:
    model = truth.result["fingerprint"]["model"]
    assert model["digest"] and model["quantization"] and model["parameter_size"]
    assert model["placement"] == "gpu"  # the reference reports size_vram == size
    assert truth.result["parameters"]["num_ctx"] == 512
    path = write_result(tmp_path / "truth.json", truth.result)
    assert load_result(path)["runs"][0]["samples"][0]["nonce"]
