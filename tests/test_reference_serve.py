"""``serve`` as a real process: it must answer ``GET /`` within 2 s and clean up on exit."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conformance.reference.cli import main


def _start(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    return subprocess.Popen(
        [sys.executable, "-m", "conformance.reference.cli", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_serve_answers_within_two_seconds(tmp_path: Path) -> None:
    started = time.monotonic()
    process = _start("--ollama-version", "0.12.11")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, line
        url = match.group(0)
        while True:
            try:
                response = httpx.get(url + "/", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() - started < 2, "serve did not answer in time"
                time.sleep(0.01)
        elapsed = time.monotonic() - started
        assert response.text == "Ollama is running"
        assert elapsed < 2.0, f"serve took {elapsed:.2f}s to answer GET /"
        assert httpx.get(url + "/api/version").json() == {"version": "0.12.11"}
        data_dir = Path(re.search(r"models in (\S+)\)", line).group(1))  # type: ignore[union-attr]
        assert data_dir.is_dir()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert not data_dir.exists()  # the temporary store is removed on exit


def test_serve_with_data_dir_and_strict_log(tmp_path: Path) -> None:
    log = tmp_path / "v.jsonl"
    process = _start("--data-dir", str(tmp_path / "models"), "--strict", "--strict-log", str(log))
    try:
        assert process.stdout is not None
        url = re.search(r"http://\S+:\d+", process.stdout.readline()).group(0)  # type: ignore[union-attr]
        response = httpx.post(url + "/api/generate", json={"prompt": "x"})
        assert response.headers["x-conformance-violations"] == "1"
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
    assert (tmp_path / "models" / "manifests").is_dir()
    assert log.read_text().count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ollama-version", "banana"], "not an Ollama version"),
        (["--strict-log", "x.jsonl"], "--strict-log needs --strict"),
        (["--port", "70000"], "invalid port"),
    ],
)
def test_serve_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_module_is_light() -> None:
    code = (
        "import sys, conformance.reference.cli; "
        "print(sorted(m for m in ('starlette', 'uvicorn', 'numpy', 'gguf') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
