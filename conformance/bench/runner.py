"""Running a benchmark: phases, concurrency levels, repetitions, and the result document.

Order of work, and why:

1. Fingerprint the server and model first (``/api/version``, ``/api/show``, ``/api/tags``), and
   stop with a one-line error if the model is unknown rather than timing a run of 404s.
2. Cold phase (``--cold``): before every repetition the model is unloaded (empty prompt with
   ``keep_alive: 0``) and ``/api/ps`` is polled until it is gone, so each repetition pays the load.
   Cold and warm samples are never pooled: load time dwarfs everything else.
3. Warm phase: ``warmup`` requests (not recorded) load the model and warm caches, then each
   concurrency level runs its repetitions. In a repetition at concurrency c, c threads (each
   with its own :class:`~conformance.client.Client`, so no connection pool is shared) wait on a
   barrier and send one request each at the same moment. Every request opens a fresh
   connection (the client's default), so time to first token includes TCP (and TLS) set-up:
   negligible on loopback or a LAN, one round trip otherwise. Kept-alive connections were
   tried and rejected: on one, a server that does not set ``TCP_NODELAY`` (the reference
   server, at the time of writing; Go's net/http, hence Ollama, does set it) holds its first
   line back for the client's 40 ms delayed ACK and then sends a burst, which the client clock
   reads as a 15% faster decode. A fresh connection starts in quick-ACK mode and avoids that.
4. After each level ``/api/ps`` is read while the model is still loaded; a partly offloaded
   model invalidates every sample of the run (see :mod:`conformance.bench.validity`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from conformance import __version__
from conformance.bench.fingerprint import host_info, server_info, utc_now
from conformance.bench.metrics import Sample, measure
from conformance.bench.progress import Progress
from conformance.bench.prompts import make_nonce, make_prompt, new_run_id
from conformance.bench.results import FORMAT
from conformance.bench.summary import repetition_stats, summarise_run
from conformance.bench.validity import (
    DEFAULT_TOLERANCE,
    Placement,
    apply_placement,
    check_sample,
    count_reasons,
    placement_from_ps,
)
from conformance.client import Bounds, Client

__all__ = ["BenchError", "BenchParams", "run_bench"]

#: How long to wait for ``/api/ps`` to stop listing a model after an unload request. Ollama
#: answers the unload request before the runner has actually exited.
UNLOAD_WAIT_S = 30.0


class BenchError(Exception):
    """The target cannot be benchmarked (unknown model, failing warm-up); one-line message."""


@dataclass(frozen=True)
class BenchParams:
    """Everything that shapes the workload; recorded verbatim in the result file."""

    model: str
    prompt_tokens: int = 256
    output_tokens: int = 128
    concurrency: tuple[int, ...] = (1, 2, 4, 8)
    repetitions: int = 5
    warmup: int = 1
    num_ctx: int = 2048
    seed: int = 42
    cold: bool = False
    tolerance: float = DEFAULT_TOLERANCE
    timeout_s: float = 600.0

    def problems(self) -> list[str]:
        """What is wrong with these parameters, as messages naming the CLI option."""
        out = []
        if not self.model.strip():
            out.append("--model must not be empty")
        if self.prompt_tokens < 1:
            out.append(f"--prompt-tokens must be at least 1, got {self.prompt_tokens}")
        if self.output_tokens < 2:
            # One token gives no decode interval (and Ollama 0.20 omits eval_duration for it).
            out.append(f"--output-tokens must be at least 2, got {self.output_tokens}")
        if not self.concurrency or any(c < 1 for c in self.concurrency):
            out.append(f"--concurrency levels must be positive, got {list(self.concurrency)}")
        if self.repetitions < 1:
            out.append(f"--repetitions must be at least 1, got {self.repetitions}")
        if self.warmup < 0:
            out.append(f"--warmup must be 0 or more, got {self.warmup}")
        if self.num_ctx < self.prompt_tokens + self.output_tokens:
            out.append(
                f"--num-ctx {self.num_ctx} is smaller than --prompt-tokens + --output-tokens"
                f" ({self.prompt_tokens + self.output_tokens}); the server would truncate"
                " the prompt or shift the context"
            )
        if not 0 < self.tolerance < 1:
            out.append(f"--tolerance must be between 0 and 1, got {self.tolerance}")
        if self.timeout_s <= 0:
            out.append(f"--timeout must be positive, got {self.timeout_s}")
        return out

    def total_requests(self) -> int:
        """Requests the run will send (for the progress bar)."""
        per_phase = sum(self.concurrency) * self.repetitions
        return per_phase * (2 if self.cold else 1) + self.warmup

    def request_body(self, prompt: str) -> dict[str, Any]:
        """The ``/api/generate`` body. ``keep_alive`` is left to the server's default, since
        a bench of the default configuration is what users compare."""
        options = {
            "num_predict": self.output_tokens,
            "num_ctx": self.num_ctx,
            "seed": self.seed,
            "temperature": 0,
        }
        return {"model": self.model, "prompt": prompt, "stream": True, "options": options}


@dataclass
class _Run:
    phase: str
    concurrency: int
    samples: list[Sample] = field(default_factory=list)


class _Bench:
    """State of one benchmark run."""

    def __init__(self, url: str, params: BenchParams, progress: Progress) -> None:
        self.url = url
        self.params = params
        self.progress = progress
        self.run_id = new_run_id()
        self.t0 = time.monotonic()
        t = params.timeout_s
        self.bounds = Bounds(
            connect_timeout=min(10.0, t),
            read_timeout=t,
            write_timeout=min(30.0, t),
            first_line_timeout=t,  # a cold load of a large model can take minutes
            max_gap=t,
            total_timeout=t,
        )
        self.warnings: list[str] = []
        #: ``/api/ps`` readings after each level: (phase, concurrency, placement).
        self.placements: list[tuple[str, int, Placement]] = []

    # -- single requests ----------------------------------------------------------------

    def _one(self, client: Client, phase: str, concurrency: int, rep: int, worker: int) -> Sample:
        nonce = make_nonce(self.run_id, phase, concurrency, rep, worker)
        body = self.params.request_body(make_prompt(self.params.prompt_tokens, nonce))
        started = time.monotonic() - self.t0
        exchange = client.request("POST", "/api/generate", json=body, stream=True)
        ended = time.monotonic() - self.t0
        sample = measure(
            exchange,
            phase=phase,
            concurrency=concurrency,
            repetition=rep,
            worker=worker,
            nonce=nonce,
            started_at=round(started, 6),
            ended_at=round(ended, 6),
        )
        self.progress.advance()
        return check_sample(
            sample, requested_tokens=self.params.output_tokens, tolerance=self.params.tolerance
        )

    def warmup(self, client: Client) -> None:
        """Load the model and warm caches; the first failure aborts the run."""
        for i in range(self.params.warmup):
            self.progress.set_label(f"warm-up {i + 1}/{self.params.warmup}")
            sample = self._one(client, "warmup", 1, i, 0)
            if sample.error is not None or not sample.has_final:
                raise BenchError(
                    f"warm-up request failed: {sample.error or 'no done:true object in the stream'}"
                )

    def unload(self, client: Client) -> None:
        """Unload the model and wait until ``/api/ps`` no longer lists it."""
        body = {"model": self.params.model, "prompt": "", "keep_alive": 0, "stream": False}
        exchange = client.request("POST", "/api/generate", json=body)
        if exchange.status != 200:
            self._warn_once(
                f"unload request answered {exchange.status or exchange.problem}:"
                " cold samples may have found the model loaded"
            )
            return
        deadline = time.monotonic() + UNLOAD_WAIT_S
        while time.monotonic() < deadline:
            if self.placement(client).status in ("not-loaded", "unknown"):
                return
            time.sleep(0.05)
        self._warn_once(f"model still listed by /api/ps {UNLOAD_WAIT_S:.0f} s after unloading")

    def placement(self, client: Client) -> Placement:
        exchange = client.request("GET", "/api/ps")
        if exchange.status != 200:
            return Placement("unknown", detail=f"/api/ps answered {exchange.status}")
        value, _ = exchange.json()
        return placement_from_ps(value, self.params.model)

    def _warn_once(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    # -- repetitions and levels ---------------------------------------------------------

    def repetition(self, clients: list[Client], phase: str, rep: int) -> list[Sample]:
        """c simultaneous requests, released together by a barrier."""
        c = len(clients)
        if c == 1:
            return [self._one(clients[0], phase, 1, rep, 0)]
        barrier = threading.Barrier(c)
        results: list[Sample | None] = [None] * c
        failures: list[BaseException] = []

        def work(worker: int) -> None:
            try:
                barrier.wait(timeout=60)
                results[worker] = self._one(clients[worker], phase, c, rep, worker)
            except BaseException as exc:  # re-raised in the main thread: it is our bug
                failures.append(exc)

        threads = [
            threading.Thread(target=work, args=(w,), name=f"bench-c{c}-w{w}", daemon=True)
            for w in range(c)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        return [s for s in results if s is not None]

    def level(self, control: Client, phase: str, concurrency: int) -> _Run:
        run = _Run(phase, concurrency)
        clients = [Client(self.url, bounds=self.bounds) for _ in range(concurrency)]
        try:
            for rep in range(self.params.repetitions):
                if phase == "cold":
                    self.progress.set_label(f"cold c={concurrency}: unloading")
                    self.unload(control)
                self.progress.set_label(
                    f"{phase} c={concurrency} rep {rep + 1}/{self.params.repetitions}"
                )
                run.samples.extend(self.repetition(clients, phase, rep))
        finally:
            for client in clients:
                client.close()
        self.placements.append((phase, concurrency, self.placement(control)))
        return run


def _model_placement(placements: list[Placement]) -> Placement:
    """The reading to show in the fingerprint: a partial offload if any, else the last one
    that saw the model loaded."""
    loaded = [p for p in placements if p.status not in ("not-loaded", "unknown")]
    partial = [p for p in loaded if p.status == "partly-offloaded"]
    if partial:
        return partial[0]
    if loaded:
        return loaded[-1]
    return placements[-1] if placements else Placement("unknown")


def run_bench(
    url: str,
    params: BenchParams,
    *,
    progress: Progress | None = None,
    embedded: bool = False,
    server_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Benchmark ``params.model`` at ``url`` and return the result document (see
    :mod:`conformance.bench.results`). Raises :class:`BenchError` when nothing can be measured.
    """
    problems = params.problems()
    if problems:
        raise ValueError(problems[0])
    progress = progress or Progress(params.total_requests(), enabled=False)
    bench = _Bench(url, params, progress)
    created_at = utc_now()
    runs: list[_Run] = []
    with Client(url, bounds=bench.bounds) as control:
        server, model, problem = server_info(control, params.model)
        if problem is not None:
            raise BenchError(problem)
        phases = ["cold", "warm"] if params.cold else ["warm"]
        for phase in phases:
            if phase == "warm":
                bench.warmup(control)
            for concurrency in params.concurrency:
                runs.append(bench.level(control, phase, concurrency))
    progress.close()

    all_samples = [s for run in runs for s in run.samples]
    readings = [placement for _, _, placement in bench.placements]
    if apply_placement(all_samples, readings):
        bench.warnings.append(
            "the model is partly offloaded to the CPU (/api/ps size_vram < size): every sample"
            " is invalid"
        )
    shown = _model_placement(readings)
    model["size_vram"] = shown.size_vram
    model["placement"] = shown.status
    if shown.size is not None:
        model["size"] = shown.size
    server["embedded"] = embedded
    server.update(server_extra or {})

    run_docs = []
    for run in runs:
        reps = repetition_stats(run.samples, run.concurrency)
        prompt_counts = sorted(s.prompt_eval_count for s in run.samples if s.prompt_eval_count)
        doc = {
            "phase": run.phase,
            "concurrency": run.concurrency,
            "prompt_eval_count_median": prompt_counts[len(prompt_counts) // 2]
            if prompt_counts
            else None,
            "summary": summarise_run(run.samples, reps),
            "repetitions": reps,
            "samples": [s.to_dict() for s in run.samples],
        }
        run_docs.append(doc)
    valid = sum(1 for s in all_samples if s.valid)
    return {
        "format": FORMAT,
        "created_at": created_at,
        "suite_version": __version__,
        "parameters": {
            "target": None if embedded else url,
            "embedded": embedded,
            "run_id": bench.run_id,
            **asdict(params),
            "concurrency": list(params.concurrency),
            "options": params.request_body("")["options"],
            "temperature": 0,
            "keep_alive": None,
        },
        "fingerprint": {"server": server, "model": model, "host": host_info()},
        "placement": [
            {"phase": phase, "concurrency": c, **placement.to_dict()}
            for phase, c, placement in bench.placements
        ],
        "runs": run_docs,
        "validity": {
            "tolerance": params.tolerance,
            "samples": len(all_samples),
            "valid": valid,
            "invalid": len(all_samples) - valid,
            "reasons": count_reasons(all_samples),
        },
        "warnings": bench.warnings,
    }
