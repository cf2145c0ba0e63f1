"""The embedded target: the reference server, started in a child process for a benchmark.

A child process rather than a thread: in the benchmarking process the server's event loop would
compete for the GIL with the client threads, wake up late, and both its counters and the
client's clock would measure that contention instead of the server. A real Ollama is another
process too.

The child is told its settings as JSON on its command line, prints its URL on stdout once it
accepts connections, and serves until its stdin is closed, so it cannot outlive the bench even
if the parent is killed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["EmbeddedStartError", "embedded_reference"]

_CHILD = """
import json, sys
from conformance.reference.config import ReferenceConfig
from conformance.reference.server import start_background
with start_background(ReferenceConfig(**json.loads(sys.argv[1]))) as server:
    print(server.url, flush=True)
    sys.stdin.read()
"""

#: How long to wait for the child to print its URL.
START_TIMEOUT_S = 60.0


class EmbeddedStartError(RuntimeError):
    """The reference server child did not come up; one-line message."""


def _first_line(stream: IO[str], timeout: float) -> str:
    """The first line of ``stream``, or "" after ``timeout`` (a reader thread: pipes cannot be
    polled portably)."""
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0].strip() if lines else ""


@contextmanager
def embedded_reference(settings: dict[str, Any] | None = None) -> Iterator[str]:
    """Run a reference server with ``ReferenceConfig(**settings)`` and yield its URL."""
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps(settings or {})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        url = _first_line(child.stdout, START_TIMEOUT_S)
        if not url.startswith("http"):
            code = child.poll()
            raise EmbeddedStartError(
                "the embedded reference server did not start"
                + (f" (exit code {code})" if code is not None else "")
            )
        yield url
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
