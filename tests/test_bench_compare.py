"""``bench compare`` on synthetic result files: verdicts, fingerprint warnings, the CI gate."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conformance.bench import cli as bench_cli
from conformance.bench.compare import compare_results, slower_than
from conformance.bench.metrics import Sample
from conformance.bench.results import FORMAT, ResultError, load_result, write_result
from conformance.bench.summary import repetition_stats, summarise_run


def make_result(
    levels: dict[int, float],
    *,
    spread: float = 2.0,
    per_level: int = 20,
    seed: int = 1,
    version: str = "0.12.11",
    digest: str = "sha256:aaaa",
    cpu: str = "Test CPU 3000",
    reps: int = 5,
) -> dict[str, Any]:
    """A result document whose warm runs have decode rates ~ N(mean, spread) per level."""
    rng = np.random.default_rng(seed)
    runs = []
    for concurrency, mean in levels.items():
        samples = []
        for i in range(per_level):
            rate = float(rng.normal(mean, spread))
            rep = i % reps
            samples.append(
                Sample(
                    phase="warm",
                    concurrency=concurrency,
                    repetition=rep,
                    worker=i // reps,
                    nonce=f"n{i}",
                    started_at=rep * 2.0,
                    ended_at=rep * 2.0 + 128 / rate + 0.1,
                    status=200,
                    has_final=True,
                    eval_count=128,
                    eval_duration=round(128 / rate * 1e9),
                    decode_tps=rate,
                    client_decode_tps=rate,
                    ttft_s=0.1,
                    e2e_s=128 / rate + 0.1,
                    itl_s=1 / rate,
                    itl_gaps_s=[1 / rate] * 3,
                )
            )
        # Synthetic samples per repetition need not match the concurrency; throughput is not
        # under test here, so compute it leniently.
        repetitions = repetition_stats(samples, per_level // reps)
        runs.append(
            {
                "phase": "warm",
                "concurrency": concurrency,
                "summary": summarise_run(samples, repetitions),
                "repetitions": repetitions,
                "samples": [s.to_dict() for s in samples],
            }
        )
    return {
        "format": FORMAT,
        "created_at": "2025-01-01T00:00:00Z",
        "suite_version": "0.1.0",
        "parameters": {
            "target": "http://box:11434",
            "prompt_tokens": 256,
            "output_tokens": 128,
            "num_ctx": 2048,
            "seed": 42,
            "temperature": 0,
        },
        "fingerprint": {
            "server": {"url": "http://box:11434", "version": version},
            "model": {
                "name": "m",
                "digest": digest,
                "quantization": "Q4_0",
                "parameter_size": "1B",
            },
            "host": {
                "cpu_model": cpu,
                "cores": 8,
                "memory_bytes": 2**34,
                "os": "Linux",
                "python": "3.12",
            },
        },
        "runs": runs,
        "validity": {},
        "warnings": [],
    }


def verdict(comparison: Any, metric: str, concurrency: int = 1) -> str:
    for m in comparison.metrics:
        if m.metric.name == metric and m.concurrency == concurrency:
            return str(m.verdict)
    raise AssertionError(f"{metric} not compared")


def test_significantly_slower_decode_rate() -> None:
    a = make_result({1: 100.0, 4: 90.0}, seed=1)
    b = make_result({1: 80.0, 4: 89.5}, seed=2)
    comparison = compare_results(a, b)
    assert verdict(comparison, "decode_tps", 1) == "slower"
    assert verdict(comparison, "e2e_s", 1) == "slower"  # latency: ratio > 1 is slower
    assert verdict(comparison, "decode_tps", 4) == "no significant difference"
    m = next(x for x in comparison.metrics if x.metric.name == "decode_tps" and x.concurrency == 1)
    assert m.ratio == pytest.approx(0.8, abs=0.02)
    assert m.ratio is not None and m.low is not None and m.high is not None
    assert m.low < m.ratio < m.high < 1


def test_faster_and_not_significant() -> None:
    a = make_result({1: 100.0}, seed=3)
    assert verdict(compare_results(a, make_result({1: 120.0}, seed=4)), "decode_tps") == "faster"
    assert verdict(compare_results(a, make_result({1: 120.0}, seed=4)), "itl_s") == "faster"
    same = compare_results(a, make_result({1: 100.3}, seed=5))
    assert verdict(same, "decode_tps") == "no significant difference"


def test_invalid_samples_are_left_out_of_comparisons() -> None:
    a = make_result({1: 100.0}, seed=6)
    b = make_result({1: 100.0}, seed=6)
    for sample in b["runs"][0]["samples"][:10]:
        sample["decode_tps"] = 1.0  # would make B look far slower...
        sample["valid"] = False  # ...but the gate rejected these samples
        sample["invalid_reasons"] = ["rate-mismatch: test"]
    comparison = compare_results(a, b)
    assert verdict(comparison, "decode_tps") == "no significant difference"
    decode = next(m for m in comparison.metrics if m.metric.name == "decode_tps")
    assert (decode.n_a, decode.n_b) == (20, 10)


def test_fail_if_slower_needs_significance_and_size() -> None:
    a = make_result({1: 100.0}, seed=8)
    b = make_result({1: 85.0}, seed=9)
    comparison = compare_results(a, b, name_a="a", name_b="b")
    assert slower_than(comparison, 10)  # 15% slower, limit 10%
    assert not slower_than(comparison, 20)
    same = compare_results(a, make_result({1: 99.8}, seed=10))
    assert not slower_than(same, 0)


def test_one_difference_is_not_warned_about() -> None:
    a = make_result({1: 100.0})
    b = make_result({1: 100.0}, version="0.13.0")
    comparison = compare_results(a, b)
    assert list(comparison.differences) == ["server version"]
    assert comparison.warning is None


def test_fingerprints_differing_in_model_and_hardware_warn() -> None:
    a = make_result({1: 100.0})
    b = make_result({1: 100.0}, digest="sha256:bbbb", cpu="Other CPU")
    comparison = compare_results(a, b)
    assert set(comparison.differences) == {"model", "hardware"}
    assert comparison.warning is not None
    assert "sha256:bbbb" in comparison.warning
    assert "Other CPU" in comparison.warning


def test_runs_only_in_one_file_are_listed_not_compared() -> None:
    comparison = compare_results(make_result({1: 100.0, 8: 50.0}), make_result({1: 100.0}))
    assert comparison.unmatched == ["warm c=8 only in A"]
    assert {m.concurrency for m in comparison.metrics} == {1}


# -- files and the command line -----------------------------------------------------------------


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ollama-conformance")
    bench_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def write(tmp_path: Path, name: str, doc: dict[str, Any]) -> str:
    return str(write_result(tmp_path / name, doc))


def test_compare_cli_prints_verdicts_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path, "a.json", make_result({1: 100.0, 2: 95.0, 4: 80.0}, seed=11))
    b = write(tmp_path, "b.json", make_result({1: 70.0, 2: 66.0, 4: 60.0}, seed=12))
    png = tmp_path / "plot.png"
    assert run_cli(["bench", "compare", a, b, "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "b vs a" in out
    assert "slower" in out
    assert png.read_bytes().startswith(b"\x89PNG")


def test_compare_cli_fail_if_slower_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path, "a.json", make_result({1: 100.0}, seed=13))
    b = write(tmp_path, "b.json", make_result({1: 80.0}, seed=14))
    assert run_cli(["bench", "compare", a, b, "--fail-if-slower", "5"]) == 1
    assert "slower" in capsys.readouterr().err
    assert run_cli(["bench", "compare", a, b, "--fail-if-slower", "50"]) == 0


def test_compare_cli_warns_on_fingerprint_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write(tmp_path, "a.json", make_result({1: 100.0}))
    b = write(tmp_path, "b.json", make_result({1: 100.0}, digest="sha256:cc", version="0.13.0"))
    assert run_cli(["bench", "compare", a, b]) == 0
    assert "warning" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "not JSON"),
        ("[1, 2]", "not a bench result"),
        ('{"format": "something-else/1"}', "not a bench result"),
        ('{"format": "ollama-conformance-bench/9"}', "unsupported result format"),
        ('{"format": "ollama-conformance-bench/1", "parameters": {}}', "malformed"),
    ],
)
def test_compare_cli_bad_file_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, message: str
) -> None:
    good = write(tmp_path, "good.json", make_result({1: 100.0}))
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    assert run_cli(["bench", "compare", good, str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert message in err
    assert "bad.json" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "at least two result files"),
        (["--fail-if-slower", "abc"], "--fail-if-slower must be a number"),
        (["--fail-if-slower", "150"], "--fail-if-slower must be a percentage"),
    ],
)
def test_compare_cli_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    good = write(tmp_path, "good.json", make_result({1: 100.0}))
    files = [good] if not extra else [good, good]
    assert run_cli(["bench", "compare", *files, *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_result_file_round_trip(tmp_path: Path) -> None:
    doc = make_result({1: 100.0})
    path = write(tmp_path, "r.json", doc)
    assert load_result(path) == json.loads(json.dumps(doc))
    broken = copy.deepcopy(doc)
    broken["runs"][0]["samples"][0] = {"phase": "warm"}
    with pytest.raises(ResultError, match=r"samples\[0\]"):
        load_result(write(tmp_path, "broken.json", broken))
