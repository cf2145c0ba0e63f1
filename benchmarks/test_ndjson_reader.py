"""Lines per second of the project's NDJSON reader, against plain ``json.loads`` on the same bytes.

The two benchmarks share one group so pytest-benchmark prints them side by side from the same
run: the gap between them is what the bounded, timestamping reader (and loopback HTTP) costs
over parsing alone. ``extra_info["lines_per_s"]`` holds the rate from the mean round.
"""

from __future__ import annotations

import json
from typing import Any

from conformance.client import Client
from conformance.exchange import StreamLine


def _record_rate(benchmark: Any, lines: int) -> None:
    mean = benchmark.stats.stats.mean
    benchmark.extra_info["lines"] = lines
    benchmark.extra_info["lines_per_s"] = round(lines / mean) if mean else None


def test_project_reader_over_loopback(benchmark: Any, ndjson_server: Any) -> None:
    benchmark.group = "ndjson: 20k generate chunks"
    seen = 0

    def count(line: StreamLine) -> None:
        nonlocal seen
        seen += 1

    with Client(ndjson_server.url) as client:

        def read() -> int:
            exchange = client.request("GET", "/stream", stream=True, on_line=count)
            assert exchange.complete and exchange.status == 200, exchange.problem
            return len(exchange.values)

        parsed = benchmark(read)
    assert parsed == ndjson_server.lines
    assert seen % ndjson_server.lines == 0
    _record_rate(benchmark, ndjson_server.lines)


def test_plain_json_loads_same_bytes(benchmark: Any, ndjson_server: Any) -> None:
    benchmark.group = "ndjson: 20k generate chunks"
    body = ndjson_server.body

    def parse() -> int:
        return len([json.loads(line) for line in body.splitlines() if line])

    assert benchmark(parse) == ndjson_server.lines
    _record_rate(benchmark, ndjson_server.lines)
