"""``ollama-conformance bench``: bad input is one line on stderr and exit code 2."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

import pytest

from conformance.bench import cli as bench_cli


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="ollama-conformance")
    bench_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.handler(args))


def closed_port() -> int:
    """A local port nobody listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--target", "http://127.0.0.1:9"], "--model is required with --target"),
        (["--concurrency", "1,x"], "--concurrency must be an integer, got 'x'"),
        (["--concurrency", "0,2"], "--concurrency must be at least 1"),
        (["--concurrency", ","], "--concurrency must list positive integers"),
        (["--repetitions", "0"], "--repetitions must be at least 1"),
        (["--output-tokens", "1"], "--output-tokens must be at least 2"),
        (["--prompt-tokens", "many"], "--prompt-tokens must be an integer"),
        (["--num-ctx", "100"], "--num-ctx 100 is smaller than --prompt-tokens + --output-tokens"),
        (["--tolerance", "1.5"], "--tolerance must be between 0 and 1"),
        (["--tolerance", "nan"], "--tolerance must be a finite number"),
        (["--timeout", "-1"], "--timeout must be positive"),
        (
            ["--target", "http://127.0.0.1:9", "--model", "m", "--reference-token-rate", "5"],
            "only apply without --target",
        ),
    ],
)
def test_bad_options_are_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert run_cli(["bench", *argv, "--out", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "r.json").exists()


def test_unreachable_target_is_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert run_cli(["bench", "--target", url, "--model", "m", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "not reachable" in err and url in err


def test_out_pointing_at_a_directory_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["bench", "--out", str(tmp_path), "--quiet"]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_argparse_errors_of_bench_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        run_cli(["bench", "--model"])  # option without its value
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "--model" in err


def test_bench_is_wired_into_the_main_command(capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    assert main(["bench", "--concurrency", "x"]) == 2
    assert "--concurrency" in capsys.readouterr().err
    assert main(["bench", "compare", "/nonexistent/a.json", "/nonexistent/b.json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read" in err


def test_bench_without_target_runs_the_embedded_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from conformance.bench.results import load_result

    out = tmp_path / "embedded.json"
    argv = ["bench", "--concurrency", "1,2", "--repetitions", "2", "--output-tokens", "16"]
    argv += ["--prompt-tokens", "32", "--num-ctx", "256", "--reference-token-rate", "1000"]
    assert run_cli([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert "embedded reference" in printed.out
    assert f"wrote {out}" in printed.out
    assert "[" in printed.err  # the progress bar
    result = load_result(out)
    assert result["parameters"]["embedded"] is True
    assert result["parameters"]["target"] is None
    assert result["fingerprint"]["server"]["reference_config"]["token_rate"] == 1000.0
    assert [(r["phase"], r["concurrency"]) for r in result["runs"]] == [("warm", 1), ("warm", 2)]
    assert result["validity"]["samples"] == 6
