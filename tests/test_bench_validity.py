"""Per-request measurement and the validity gate, on synthetic exchanges with known timings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance.bench.metrics import Sample, measure
from conformance.bench.validity import (
    Placement,
    apply_placement,
    check_sample,
    count_reasons,
    placement_from_ps,
)
from conformance.exchange import Exchange, StreamLine


def stream(
    *,
    tokens: int = 50,
    rate: float = 100.0,
    client_rate: float | None = None,
    ttft: float = 0.2,
    final: dict[str, Any] | None = None,
    status: int = 200,
    error: str | None = None,
    thinking: int = 0,
) -> Exchange:
    """An exchange whose n text lines arrive every 1/client_rate s after ``ttft``; the final
    object's counters say ``rate`` unless ``final`` replaces them."""
    client_rate = client_rate or rate
    ex = Exchange(method="POST", url="http://x/api/generate", path="/api/generate", status=status)
    ex.error = error
    at = ttft
    for i in range(tokens):
        key = "thinking" if i < thinking else "response"
        value = {"model": "m", "response": "", "done": False, key: f"t{i} "}
        ex.lines.append(StreamLine(raw=json.dumps(value).encode(), at=at, value=value))
        at += 1.0 / client_rate
    done = {
        "model": "m",
        "response": "",
        "done": True,
        "done_reason": "length",
        "eval_count": tokens,
        "eval_duration": round(tokens / rate * 1e9),
        "prompt_eval_count": 200,
        "prompt_eval_duration": 100_000_000,
        "load_duration": 5_000_000,
        "total_duration": 1_000_000_000,
    }
    if final is not None:
        done = {**done, **final}
        done = {k: v for k, v in done.items() if v is not None}
    ex.lines.append(StreamLine(raw=json.dumps(done).encode(), at=at, value=done))
    ex.finished_after = at + 0.001
    return ex


def gate(ex: Exchange, *, requested: int = 50, tolerance: float = 0.25) -> Sample:
    sample = measure(
        ex,
        phase="warm",
        concurrency=1,
        repetition=0,
        worker=0,
        nonce="n",
        started_at=0.0,
        ended_at=1.0,
    )
    return check_sample(sample, requested_tokens=requested, tolerance=tolerance)


def kinds(sample: Sample) -> list[str]:
    return [r.split(":", 1)[0] for r in sample.invalid_reasons]


def test_measure_recovers_known_rates_and_latencies() -> None:
    sample = gate(stream(tokens=51, rate=100.0, ttft=0.25))
    assert sample.valid, sample.invalid_reasons
    assert sample.decode_tps == pytest.approx(100.0)
    assert sample.client_decode_tps == pytest.approx(100.0)  # 50 intervals over 0.5 s
    assert sample.prefill_tps == pytest.approx(2000.0)
    assert sample.ttft_s == pytest.approx(0.25)
    assert sample.itl_s == pytest.approx(0.01)
    assert len(sample.itl_gaps_s) == 50
    assert sample.load_s == pytest.approx(0.005)
    assert sample.e2e_s == pytest.approx(0.25 + 0.51 + 0.001)
    assert sample.content_lines == 51


def test_thinking_lines_count_as_tokens() -> None:
    sample = gate(stream(tokens=20, thinking=5, rate=50.0), requested=20)
    assert sample.content_lines == 20
    assert sample.valid


@pytest.mark.parametrize(
    ("final", "kind"),
    [
        ({"eval_count": None}, "no-eval-count"),
        ({"eval_count": 0}, "no-eval-count"),
        ({"eval_duration": None}, "no-eval-duration"),
        ({"eval_duration": 0}, "no-eval-duration"),
    ],
)
def test_missing_or_zero_counters_are_invalid(final: dict[str, Any], kind: str) -> None:
    sample = gate(stream(final=final))
    assert not sample.valid
    assert kind in kinds(sample)
    assert sample.decode_tps is None


def test_rate_disagreement_beyond_tolerance_is_invalid() -> None:
    # Server claims 100 tokens/s, the lines arrive at 70/s: 30% apart.
    sample = gate(stream(rate=100.0, client_rate=70.0))
    assert kinds(sample) == ["rate-mismatch"]
    assert "30% apart" in sample.invalid_reasons[0]
    assert "tolerance 25%" in sample.invalid_reasons[0]


def test_rate_disagreement_within_tolerance_is_valid_and_tolerance_is_configurable() -> None:
    ex = stream(rate=100.0, client_rate=85.0)
    assert gate(ex).valid
    assert "rate-mismatch" in kinds(gate(ex, tolerance=0.1))


def test_short_output_is_invalid() -> None:
    sample = gate(stream(tokens=30, final={"done_reason": "stop"}), requested=50)
    assert kinds(sample) == ["short-output"]
    assert "eval_count 30 < num_predict 50" in sample.invalid_reasons[0]


def test_http_error_and_transport_problems_are_invalid() -> None:
    assert "request-failed" in kinds(gate(stream(status=500)))
    assert "request-failed" in kinds(gate(stream(error="connection refused: http://x")))
    ex = stream()
    ex.bound = "max_gap"
    ex.bound_detail = "max_gap: no new line within 30 s after line 3"
    sample = gate(ex)
    assert "request-failed" in kinds(sample)
    assert "max_gap" in sample.invalid_reasons[0]


def test_error_line_in_a_200_stream_is_invalid() -> None:
    ex = stream()
    value = {"error": "model runner crashed"}
    ex.lines.insert(3, StreamLine(raw=json.dumps(value).encode(), at=0.21, value=value))
    sample = gate(ex)
    assert "request-failed" in kinds(sample)
    assert "model runner crashed" in sample.invalid_reasons[0]


def test_stream_without_final_object_is_invalid() -> None:
    ex = stream()
    ex.lines.pop()
    sample = gate(ex)
    assert "no-final" in kinds(sample)


def test_single_text_line_has_no_client_rate() -> None:
    sample = gate(stream(tokens=1), requested=1)
    assert "client-rate-undefined" in kinds(sample)


def test_placement_cpu_only_is_recorded_not_offloaded() -> None:
    ps = {
        "models": [
            {"name": "llama3.2:latest", "model": "llama3.2:latest", "size": 100, "size_vram": 0}
        ]
    }
    placement = placement_from_ps(ps, "Llama3.2")
    assert placement.status == "cpu-only"
    assert placement.size_vram == 0


def test_placement_partial_offload_invalidates_every_sample() -> None:
    ps = {"models": [{"name": "m:q4", "model": "m:q4", "size": 1000, "size_vram": 600}]}
    placement = placement_from_ps(ps, "m:q4")
    assert placement.status == "partly-offloaded"
    samples = [gate(stream()) for _ in range(3)]
    assert apply_placement(samples, [Placement("gpu", 1, 1), placement])
    assert all(not s.valid and kinds(s) == ["partly-offloaded"] for s in samples)
    assert "600 < size 1000" in samples[0].invalid_reasons[0]
    assert count_reasons(samples) == {"partly-offloaded": 3}


def test_placement_gpu_and_absent_models_do_not_invalidate() -> None:
    ps = {"models": [{"name": "m:latest", "size": 1000, "size_vram": 1000}]}
    assert placement_from_ps(ps, "m").status == "gpu"
    assert placement_from_ps(ps, "other").status == "not-loaded"
    assert placement_from_ps({"nope": 1}, "m").status == "unknown"
    samples = [gate(stream())]
    assert not apply_placement(samples, [placement_from_ps(ps, "m"), Placement("cpu-only", 5, 0)])
    assert samples[0].valid


def test_sample_round_trips_through_dict() -> None:
    sample = gate(stream(rate=100.0, client_rate=60.0))
    again = Sample.from_dict({**sample.to_dict(), "future_field": 1})
    assert again.invalid_reasons == sample.invalid_reasons
    assert again.decode_tps == sample.decode_tps
