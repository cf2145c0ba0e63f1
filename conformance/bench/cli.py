"""``ollama-conformance bench`` and ``ollama-conformance bench compare``.

Exit codes (the same scheme as the other sub-commands):

* ``bench``: 0 the run completed with at least one valid sample; 1 every sample was invalid
  (nothing was measured; see the reasons printed); 2 bad input, unknown model or unreachable
  target.
* ``bench compare``: 0 compared; 1 ``--fail-if-slower`` tripped; 2 bad input (e.g. a file that
  is missing or not a bench result).

Every usage problem is reported as one line on stderr; numeric options are parsed here rather
than by argparse so that their errors are one line too.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from conformance.bench.compare import compare_results, format_comparison, slower_than
from conformance.bench.embedded import EmbeddedStartError
from conformance.bench.progress import Progress
from conformance.bench.results import ResultError, load_result, write_result
from conformance.bench.runner import BenchError, BenchParams, run_bench
from conformance.bench.validity import DEFAULT_TOLERANCE

__all__ = ["format_summary", "register"]

PROG = "ollama-conformance"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: The model of the embedded reference server that the bench uses when no target is given.
EMBEDDED_MODEL = "tiny-completion"
DEFAULT_OUTPUT_TOKENS = 128
#: The reference engine answers a prompt asking for a long story with 12-14 sentences of 6-15
#: tokens each; asking for more than it always writes would make samples "short-output".
EMBEDDED_OUTPUT_TOKENS = 64


class _Usage(Exception):
    """Bad input: printed as one line, exit code 2."""


def _one_line_error(parser: argparse.ArgumentParser) -> Callable[[str], NoReturn]:
    def error(message: str) -> NoReturn:
        print(
            f"{PROG}: error: {parser.prog.removeprefix(PROG).strip()}: {message}", file=sys.stderr
        )
        raise SystemExit(EXIT_USAGE)

    return error


def register(subparsers: Any) -> None:
    """Add ``bench`` (with its ``compare`` sub-command) to the top-level parser."""
    bench = subparsers.add_parser(
        "bench",
        help="measure decode/prefill rates and latencies of a target (or compare results)",
        description=(
            "Benchmark /api/generate on a target: decode and prefill tokens/s from the server"
            " counters, time to first token, inter-token latency and decode rate from the client"
            " clock, at several concurrency levels. Samples failing the validity gate are kept"
            " in the result file but left out of every statistic. Without --target the embedded"
            " reference server is started and benchmarked."
        ),
    )
    bench.error = _one_line_error(bench)  # type: ignore[method-assign]
    bench.add_argument(
        "--target", metavar="URL", help="server to benchmark (default: embedded reference server)"
    )
    bench.add_argument(
        "--model",
        metavar="M",
        help=f"model to run (required with --target; embedded default {EMBEDDED_MODEL})",
    )
    bench.add_argument(
        "--prompt-tokens",
        metavar="N",
        default="256",
        help="approximate prompt length in tokens (default: %(default)s)",
    )
    bench.add_argument(
        "--output-tokens",
        metavar="N",
        help=(
            f"tokens to generate per request, as num_predict (default: {DEFAULT_OUTPUT_TOKENS};"
            f" {EMBEDDED_OUTPUT_TOKENS} on the embedded server, whose long answers are at least"
            " 72 tokens)"
        ),
    )
    bench.add_argument(
        "--concurrency",
        metavar="LIST",
        default="1,2,4,8",
        help="comma-separated concurrency levels (default: %(default)s)",
    )
    bench.add_argument(
        "--repetitions",
        metavar="R",
        default="5",
        help="repetitions per level; the 95%% CI is over these (default: %(default)s)",
    )
    bench.add_argument(
        "--warmup",
        metavar="W",
        default="1",
        help="unrecorded requests before the warm phase (default: %(default)s)",
    )
    bench.add_argument(
        "--num-ctx",
        metavar="C",
        default="2048",
        help="options.num_ctx, pinned so every run uses the same context (default: %(default)s)",
    )
    bench.add_argument(
        "--seed",
        metavar="S",
        default="42",
        help="options.seed (temperature is always 0) (default: %(default)s)",
    )
    bench.add_argument(
        "--out", metavar="FILE", help="result file (default: bench-<model>-<UTC time>.json)"
    )
    bench.add_argument(
        "--cold",
        action="store_true",
        help="also run a cold phase: unload the model (keep_alive 0) before every repetition",
    )
    bench.add_argument(
        "--tolerance",
        metavar="FRACTION",
        default=str(DEFAULT_TOLERANCE),
        help=(
            "largest accepted |client - server| / server decode-rate difference before a sample"
            " is invalid (default: %(default)s)"
        ),
    )
    bench.add_argument(
        "--timeout",
        metavar="SECONDS",
        default="600",
        help="limit per request, including a cold load (default: %(default)s)",
    )
    bench.add_argument(
        "--reference-token-rate",
        metavar="TOKENS_PER_S",
        help="embedded server only: its decode rate (default: the reference default)",
    )
    bench.add_argument(
        "--reference-load-time", metavar="SECONDS", help="embedded server only: its model load time"
    )
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.set_defaults(handler=run_command)

    nested = bench.add_subparsers(dest="bench_command", metavar="{compare}")
    compare = nested.add_parser(
        "compare",
        help="compare result files: ratio B/A per metric with a 95%% CI and a verdict",
        description=(
            "Compare bench result files with the first one (A). For each run (phase and"
            " concurrency) and metric: the ratio mean(B)/mean(A) over valid samples, a 95%%"
            " percentile-bootstrap interval (fixed seed) and a verdict: faster, slower or no"
            " significant difference. Warns when the fingerprints differ in more than one"
            " respect (server version, model, hardware, workload)."
        ),
    )
    compare.error = _one_line_error(compare)  # type: ignore[method-assign]
    compare.add_argument(
        "files", nargs="*", metavar="FILE", help="result files; the first is the baseline"
    )
    compare.add_argument(
        "--plot", metavar="PNG", help="write a plot of decode rate against concurrency"
    )
    compare.add_argument(
        "--fail-if-slower",
        metavar="PCT",
        help=(
            "exit 1 when decode tokens/s (server counters) of a file is significantly slower"
            " than the baseline (95%% CI below 1) and by more than PCT percent"
        ),
    )
    compare.set_defaults(handler=compare_command)


# -- parsing helpers ----------------------------------------------------------------------------


def _int(value: str, option: str, minimum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _Usage(f"{option} must be an integer, got {value!r}") from None
    if number < minimum:
        raise _Usage(f"{option} must be at least {minimum}, got {number}")
    return number


def _float(value: str, option: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _Usage(f"{option} must be a number, got {value!r}") from None
    if not number == number or number in (float("inf"), float("-inf")):
        raise _Usage(f"{option} must be a finite number, got {value!r}")
    return number


def _levels(value: str) -> tuple[int, ...]:
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        raise _Usage(f"--concurrency must list positive integers like 1,2,4, got {value!r}")
    levels = tuple(_int(p, "--concurrency", 1) for p in parts)
    return tuple(dict.fromkeys(levels))  # keep order, drop repeats


def params_from_args(args: argparse.Namespace, model: str) -> BenchParams:
    """The workload described by the command line; raises _Usage on bad values."""
    output_tokens = args.output_tokens
    if output_tokens is None:
        embedded = args.target is None
        output_tokens = str(EMBEDDED_OUTPUT_TOKENS if embedded else DEFAULT_OUTPUT_TOKENS)
    params = BenchParams(
        model=model,
        prompt_tokens=_int(args.prompt_tokens, "--prompt-tokens", 1),
        output_tokens=_int(output_tokens, "--output-tokens", 2),
        concurrency=_levels(args.concurrency),
        repetitions=_int(args.repetitions, "--repetitions", 1),
        warmup=_int(args.warmup, "--warmup", 0),
        num_ctx=_int(args.num_ctx, "--num-ctx", 1),
        seed=_int(args.seed, "--seed", -(2**63)),
        cold=args.cold,
        tolerance=_float(args.tolerance, "--tolerance"),
        timeout_s=_float(args.timeout, "--timeout"),
    )
    problems = params.problems()
    if problems:
        raise _Usage(problems[0])
    return params


# -- bench --------------------------------------------------------------------------------------


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"


def format_summary(result: dict[str, Any]) -> str:
    """The table printed after a run: one line per phase and concurrency level."""
    fp = result["fingerprint"]
    server, model = fp["server"], fp["model"]
    where = "embedded reference" if server.get("embedded") else server.get("url")
    p = result["parameters"]
    lines = [
        f"model {model.get('name')} ({model.get('parameter_size') or '?'}"
        f" {model.get('quantization') or '?'}, placement {model.get('placement')})"
        f" on {where}, server {server.get('version') or '?'}",
        f"prompt ~{p['prompt_tokens']} tokens, output {p['output_tokens']} tokens,"
        f" num_ctx {p['num_ctx']}, {p['repetitions']} repetitions, run {p['run_id']}",
        "",
        f"{'phase':<6}{'c':>3}{'valid':>8}  {'decode tok/s [95% CI]':<26}{'client tok/s':>13}"
        f"{'prefill tok/s':>15}{'TTFT p50/p99 ms':>18}{'ITL p50/p99 ms':>17}{'e2e p50 ms':>12}"
        f"{'req/s':>8}{'agg tok/s':>11}",
    ]
    for run in result["runs"]:
        s = run["summary"]
        d = s["decode_tps"]
        ci = (
            f"[{_fmt(d['ci95_low'])}, {_fmt(d['ci95_high'])}]"
            if d.get("ci95_low") is not None
            else ""
        )
        valid = sum(1 for x in run["samples"] if x["valid"])
        counts = f"{valid}/{len(run['samples'])}"
        decode = f"{_fmt(d['mean'])} {ci}"
        lines.append(
            f"{run['phase']:<6}{run['concurrency']:>3}{counts:>8}  {decode:<26}"
            f"{_fmt(s['client_decode_tps']['mean']):>13}"
            f"{_fmt(s['prefill_tps']['mean']):>15}"
            f"{_fmt(s['ttft_s']['p50'], 1000) + '/' + _fmt(s['ttft_s']['p99'], 1000):>18}"
            f"{_fmt(s['itl_s']['p50'], 1000, 2) + '/' + _fmt(s['itl_s']['p99'], 1000, 2):>17}"
            f"{_fmt(s['e2e_s']['p50'], 1000):>12}"
            f"{_fmt(s['requests_per_s']['mean'], 1, 2):>8}"
            f"{_fmt(s['aggregate_tps']['mean']):>11}"
        )
    v = result["validity"]
    lines.append("")
    lines.append(
        f"samples: {v['valid']} valid, {v['invalid']} invalid"
        + (
            " (" + ", ".join(f"{k} {n}" for k, n in v["reasons"].items()) + ")"
            if v["reasons"]
            else ""
        )
        + f"; rate tolerance {v['tolerance']:.0%}"
    )
    lines.extend(f"warning: {w}" for w in result.get("warnings", []))
    return "\n".join(lines)


def _default_out(model: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)
    return Path(f"bench-{safe}-{stamp}.json")


def _reference_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The embedded server's settings from the command line, checked here (in the parent) so a
    bad value is a one-line usage error rather than a child that fails to start."""
    from conformance.reference.config import ReferenceConfig

    settings: dict[str, Any] = {}
    if args.reference_token_rate is not None:
        settings["token_rate"] = _float(args.reference_token_rate, "--reference-token-rate")
    if args.reference_load_time is not None:
        settings["load_time"] = _float(args.reference_load_time, "--reference-load-time")
    try:
        config = ReferenceConfig(**settings)
    except ValueError as exc:
        raise _Usage(str(exc)) from None
    keys = ("version", "token_rate", "prompt_rate", "load_time")
    return {k: getattr(config, k) for k in keys}


def _bench(args: argparse.Namespace, out: TextIO) -> int:
    if args.target is None:
        model = args.model or EMBEDDED_MODEL
    else:
        if args.model is None:
            raise _Usage("--model is required with --target (name a model the target has)")
        if args.reference_token_rate is not None or args.reference_load_time is not None:
            raise _Usage("--reference-token-rate/--reference-load-time only apply without --target")
        model = args.model
    params = params_from_args(args, model)
    out_path = Path(args.out) if args.out else _default_out(model)
    if out_path.is_dir():
        raise _Usage(f"--out {out_path} is a directory; give a file name")
    progress = Progress(params.total_requests(), enabled=not args.quiet)

    if args.target is not None:
        from conformance.client import check_reachable

        problem = check_reachable(args.target)
        if problem is not None:
            raise _Usage(f"target {args.target} is not reachable: {problem}")
        result = run_bench(args.target, params, progress=progress)
    else:
        from conformance.bench.embedded import embedded_reference

        settings = _reference_settings(args)
        with embedded_reference(settings) as url:
            result = run_bench(
                url,
                params,
                progress=progress,
                embedded=True,
                server_extra={"reference_config": settings},
            )
    write_result(out_path, result)
    print(format_summary(result), file=out)
    print(f"wrote {out_path}", file=out)
    return EXIT_OK if result["validity"]["valid"] else EXIT_FAILED


def run_command(args: argparse.Namespace) -> int:
    """Handler of ``bench``."""
    try:
        return _bench(args, sys.stdout)
    except (_Usage, BenchError, ResultError, EmbeddedStartError) as exc:
        print(f"{PROG}: error: bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:  # BenchParams/ReferenceConfig validation
        print(f"{PROG}: error: bench: {exc}", file=sys.stderr)
        return EXIT_USAGE


# -- compare ------------------------------------------------------------------------------------


def _compare(args: argparse.Namespace, out: TextIO) -> int:
    if len(args.files) < 2:
        raise _Usage(f"compare needs at least two result files, got {len(args.files)}")
    percent = None
    if args.fail_if_slower is not None:
        percent = _float(args.fail_if_slower, "--fail-if-slower")
        if not 0 <= percent < 100:
            raise _Usage(
                f"--fail-if-slower must be a percentage in 0..100, got {args.fail_if_slower}"
            )
    loaded = [(Path(name).stem, load_result(name)) for name in args.files]
    labels = [
        f"{label} [{i}]" if [x for x, _ in loaded].count(label) > 1 else label
        for i, (label, _) in enumerate(loaded)
    ]
    (name_a, a) = (labels[0], loaded[0][1])
    failures: list[str] = []
    for label, (_, b) in zip(labels[1:], loaded[1:], strict=True):
        comparison = compare_results(a, b, name_a=name_a, name_b=label)
        print(format_comparison(comparison), file=out)
        print(file=out)
        if comparison.warning:
            print(f"{PROG}: warning: {label} vs {name_a}: {comparison.warning}", file=sys.stderr)
        if percent is not None:
            failures.extend(slower_than(comparison, percent))
    if args.plot:
        from conformance.bench.plot import plot_decode_rates

        path = plot_decode_rates(list(zip(labels, (d for _, d in loaded), strict=True)), args.plot)
        print(f"wrote {path}", file=out)
    for failure in failures:
        print(f"{PROG}: slower: {failure}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def compare_command(args: argparse.Namespace) -> int:
    """Handler of ``bench compare``."""
    try:
        return _compare(args, sys.stdout)
    except (_Usage, ResultError) as exc:
        print(f"{PROG}: error: bench compare: {exc}", file=sys.stderr)
        return EXIT_USAGE
