"""Project-test helpers shared by several test modules.

Some tests prove coverage by counting (seed examples checked, negative cases rejected); the counts
belong in the run's closing summary, where a CI log shows them, not in captured output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

_COUNTS = pytest.StashKey[list[str]]()


@pytest.fixture
def report_count(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record one line for the "contract coverage" section of the terminal summary."""
    lines = request.config.stash.setdefault(_COUNTS, [])
    return lines.append


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(_COUNTS, [])
    if lines:
        terminalreporter.section("contract coverage")
        for line in lines:
            terminalreporter.write_line(line)
