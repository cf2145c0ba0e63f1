"""Switches the ollama-conformance plugin on when the suite is collected.

The plugin is installed as a pytest11 entry point and so loads in every pytest session of the
environment; it stays inert until this conftest (or ``--target``) activates it, so that unrelated
projects never see its fixtures or summaries.
"""

from __future__ import annotations

import pytest

from conformance.plugin import activate, run_state


def pytest_configure(config: pytest.Config) -> None:
    """Activate the plugin, or explain how to load it when it is missing."""
    if run_state(config) is None:
        raise pytest.UsageError(
            "ollama-conformance: the pytest plugin is not loaded; install the package "
            "(pip install -e .) or pass -p conformance.plugin"
        )
    activate(config)
