"""The bench runner against a small scripted Ollama look-alike (phases, placement, prompts).

The reference server is the ground truth for rates (see test_bench_ground_truth.py); this fake
exists to script what the reference server does not do on demand: partial GPU offload, lying
counters, a model that is unknown.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from conformance.bench.runner import BenchError, BenchParams, run_bench


@dataclass
class Script:
    """What the fake server does."""

    rate: float = 200.0
    size: int = 1000
    size_vram: int = 1000
    load_s: float = 0.03
    duration_factor: float = 1.0  # multiplies the reported eval_duration (1 = honest)
    models: tuple[str, ...] = ("m:latest",)
    loaded: bool = False
    bodies: list[dict[str, Any]] = field(default_factory=list)
    unloads: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Handler(BaseHTTPRequestHandler):
    script: Script
    # Go's net/http (Ollama) and uvicorn set TCP_NODELAY; without it, Nagle's algorithm and
    # delayed ACKs on a kept-alive connection hold small lines back by up to 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def send_json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def known(self, name: str) -> bool:
        full = name if ":" in name else name + ":latest"
        return full in self.script.models

    def do_GET(self) -> None:
        s = self.script
        if self.path == "/api/version":
            self.send_json(200, {"version": "0.12.11"})
        elif self.path == "/api/tags":
            self.send_json(
                200,
                {
                    "models": [
                        {"name": m, "model": m, "digest": "ab12", "size": s.size} for m in s.models
                    ]
                },
            )
        elif self.path == "/api/ps":
            models = [
                {"name": "m:latest", "model": "m:latest", "size": s.size, "size_vram": s.size_vram}
            ]
            self.send_json(200, {"models": models if s.loaded else []})
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        s = self.script
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if not self.known(body.get("model", "")):
            self.send_json(404, {"error": f"model '{body.get('model')}' not found"})
            return
        if self.path == "/api/show":
            self.send_json(
                200,
                {
                    "details": {
                        "family": "llama",
                        "parameter_size": "1B",
                        "quantization_level": "Q4_0",
                    }
                },
            )
            return
        if body.get("prompt") == "" and body.get("keep_alive") == 0:
            with s.lock:
                s.loaded = False
                s.unloads += 1
            self.send_json(
                200, {"model": body["model"], "response": "", "done": True, "done_reason": "unload"}
            )
            return
        with s.lock:
            s.bodies.append(body)
            load = 0.0 if s.loaded else s.load_s
            s.loaded = True
        time.sleep(load)
        n = body["options"]["num_predict"]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        start = time.monotonic()
        for i in range(n):
            # Sleep to an absolute schedule so the rate does not drift with scheduling delays.
            delay = start + (i + 1) / s.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.wfile.write(
                json.dumps({"model": "m", "response": f"w{i} ", "done": False}).encode() + b"\n"
            )
            self.wfile.flush()
        final = {
            "model": "m",
            "response": "",
            "done": True,
            "done_reason": "length",
            "eval_count": n,
            "eval_duration": round(n / s.rate * 1e9 * s.duration_factor),
            "prompt_eval_count": len(body["prompt"].split()),
            "prompt_eval_duration": 1_000_000,
            "load_duration": round(load * 1e9) + 1000,
        }
        self.wfile.write(json.dumps(final).encode() + b"\n")


@pytest.fixture
def fake() -> Iterator[tuple[str, Script]]:
    script = Script()
    handler = type("H", (Handler,), {"script": script})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", script
    finally:
        server.shutdown()
        server.server_close()


def params(**overrides: Any) -> BenchParams:
    base: dict[str, Any] = {
        "model": "m",
        "prompt_tokens": 40,
        "output_tokens": 16,
        "concurrency": (1, 2),
        "repetitions": 2,
        "warmup": 1,
        "num_ctx": 512,
    }
    base.update(overrides)
    return BenchParams(**base)


def invalid_reasons(result: dict[str, Any]) -> list[str]:
    return [r for run in result["runs"] for s in run["samples"] for r in s["invalid_reasons"]]


def test_warm_run_records_everything(fake: tuple[str, Script]) -> None:
    url, script = fake
    result = run_bench(url, params(seed=7))
    assert result["format"] == "ollama-conformance-bench/1"
    assert [(r["phase"], r["concurrency"]) for r in result["runs"]] == [("warm", 1), ("warm", 2)]
    assert result["validity"]["invalid"] == 0, invalid_reasons(result)
    assert [len(r["samples"]) for r in result["runs"]] == [2, 4]
    # Options pinned and recorded; keep_alive left to the server.
    for body in script.bodies:
        assert body["options"] == {"num_predict": 16, "num_ctx": 512, "seed": 7, "temperature": 0}
        assert body["stream"] is True and "keep_alive" not in body
    assert result["parameters"]["options"]["num_ctx"] == 512
    fp = result["fingerprint"]
    assert fp["server"]["version"] == "0.12.11"
    expected = {"digest": "ab12", "quantization": "Q4_0", "parameter_size": "1B"}
    assert {k: fp["model"][k] for k in expected} == expected
    assert fp["model"]["placement"] == "gpu"
    assert fp["host"]["cores"] and fp["host"]["python"]
    summary = result["runs"][1]["summary"]
    assert summary["decode_tps"]["mean"] == pytest.approx(200, rel=0.01)
    assert summary["client_decode_tps"]["mean"] == pytest.approx(200, rel=0.1)
    assert summary["requests_per_s"]["n"] == 2
    assert summary["aggregate_tps"]["mean"] > summary["decode_tps"]["mean"]  # two at once


def test_every_prompt_is_different_and_starts_with_its_nonce(fake: tuple[str, Script]) -> None:
    url, script = fake
    result = run_bench(url, params())
    prompts = [b["prompt"] for b in script.bodies]
    assert len(set(prompts)) == len(prompts)
    nonces = [s["nonce"] for r in result["runs"] for s in r["samples"]]
    assert all(any(p.startswith(n) for p in prompts) for n in nonces)
    # ~N tokens: the fake counts words.
    counts = [len(p.split()) for p in prompts]
    assert all(25 <= c <= 55 for c in counts), counts


def test_partly_offloaded_model_invalidates_all_samples(fake: tuple[str, Script]) -> None:
    url, script = fake
    script.size_vram = 400
    result = run_bench(url, params(concurrency=(1,)))
    assert result["validity"]["valid"] == 0
    assert result["validity"]["reasons"] == {"partly-offloaded": 2}
    assert result["fingerprint"]["model"]["placement"] == "partly-offloaded"
    assert any("partly offloaded" in w for w in result["warnings"])
    assert result["runs"][0]["summary"]["decode_tps"]["n"] == 0


def test_cpu_only_server_is_valid_and_recorded(fake: tuple[str, Script]) -> None:
    url, script = fake
    script.size_vram = 0
    result = run_bench(url, params(concurrency=(1,)))
    assert result["validity"]["invalid"] == 0, invalid_reasons(result)
    assert result["fingerprint"]["model"]["placement"] == "cpu-only"
    assert result["fingerprint"]["model"]["size_vram"] == 0


def test_cold_phase_unloads_before_every_repetition(fake: tuple[str, Script]) -> None:
    url, script = fake
    result = run_bench(url, params(cold=True, concurrency=(1, 2), repetitions=2))
    assert script.unloads == 4
    phases = [(r["phase"], r["concurrency"]) for r in result["runs"]]
    assert phases == [("cold", 1), ("cold", 2), ("warm", 1), ("warm", 2)]
    cold = result["runs"][0]["summary"]["load_s"]["mean"]
    warm = result["runs"][2]["summary"]["load_s"]["mean"]
    assert cold == pytest.approx(0.03, abs=0.005)
    assert warm < 0.001
    # At c=2 cold, one request pays the load; both are cold samples, none leak into warm.
    assert all(s["phase"] == "cold" for s in result["runs"][1]["samples"])


def test_counters_that_contradict_the_clock_are_invalid(fake: tuple[str, Script]) -> None:
    url, script = fake
    script.duration_factor = 0.5  # server claims twice the real rate
    result = run_bench(url, params(concurrency=(1,)))
    assert result["validity"]["reasons"] == {"rate-mismatch": 2}
    assert result["runs"][0]["summary"]["decode_tps"]["mean"] is None


def test_unknown_model_is_refused_before_running(fake: tuple[str, Script]) -> None:
    url, script = fake
    with pytest.raises(BenchError, match="'nope' is not available"):
        run_bench(url, params(model="nope"))
    assert script.bodies == []


def test_cli_exits_1_when_no_sample_is_valid(
    fake: tuple[str, Script], tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from conformance.bench import cli as bench_cli

    url, script = fake
    script.size_vram = 400
    parser = argparse.ArgumentParser(prog="ollama-conformance")
    bench_cli.register(parser.add_subparsers(dest="command"))
    argv = ["bench", "--target", url, "--model", "m", "--concurrency", "1", "--repetitions", "2"]
    argv += ["--output-tokens", "8", "--quiet", "--out", str(tmp_path / "r.json")]
    args = parser.parse_args(argv)
    assert args.handler(args) == 1
    out = capsys.readouterr().out
    assert "0 valid, 2 invalid (partly-offloaded 2)" in out
    assert "warning: the model is partly offloaded" in out
