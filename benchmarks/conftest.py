"""Fixtures of the benchmark suites (``tox -e bench``; not part of the default test run).

Servers here run in background threads of the benchmark process: what is timed is the client
side, so a loopback server with a canned body is the fairest baseline.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

#: Lines in the canned NDJSON body: enough that per-request overhead is small next to parsing.
NDJSON_LINES = 20_000


def make_ndjson_body(lines: int = NDJSON_LINES) -> bytes:
    """A generate stream as Ollama sends it: token chunks, then one final object."""
    chunk = []
    for i in range(lines - 1):
        value = {
            "model": "tiny-completion",
            "created_at": "2025-01-01T00:00:00.000000Z",
            "response": f"tok{i % 97} ",
            "done": False,
        }
        chunk.append(json.dumps(value, separators=(",", ":")))
    final = {"model": "tiny-completion", "response": "", "done": True, "eval_count": lines - 1}
    chunk.append(json.dumps(final, separators=(",", ":")))
    return ("\n".join(chunk) + "\n").encode()


@dataclass(frozen=True)
class NdjsonServer:
    """A loopback server that answers every GET with the same NDJSON body."""

    url: str
    body: bytes
    lines: int


@pytest.fixture(scope="session")
def ndjson_server() -> Iterator[NdjsonServer]:
    body = make_ndjson_body()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as Go's net/http and uvicorn do

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # Several writes, so the client sees chunk boundaries inside lines as in real life.
            view = memoryview(body)
            for start in range(0, len(body), 16384):
                self.wfile.write(view[start : start + 16384])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield NdjsonServer(f"http://127.0.0.1:{server.server_address[1]}", body, NDJSON_LINES)
    finally:
        server.shutdown()
        server.server_close()
