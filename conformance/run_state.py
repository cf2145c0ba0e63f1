"""What one conformance run shares: settings, target, client, results; kept in the config stash.

The target is resolved lazily (the embedded reference server starts only when a test needs it),
and the end of the run is closed here: scratch models deleted, stale expectations found, report
files written, client and server released.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest

from conformance import __version__
from conformance.client import Client, check_reachable
from conformance.grading import Grader
from conformance.plugin_options import Settings
from conformance.report import Report, Result, StaleExpectation, write_reports
from conformance.requirement_markers import RequirementLookup
from conformance.requirements import Requirement
from conformance.scratch_models import ScratchModels, ScratchName
from conformance.target import CAPABILITY_OPTIONS, Target, discover

__all__ = [
    "EXIT_UNREACHABLE",
    "ConformanceState",
    "active_state",
    "install",
    "run_state",
    "state_of",
]

#: pytest's code for a usage error is 4; ours (documented for the CLI) is 2. A target that
#: cannot be reached is the user's to fix, so the plugin exits with 2 as the CLI does.
EXIT_UNREACHABLE = 2

_STATE = pytest.StashKey["ConformanceState"]()


class ConformanceState:
    """Everything one run shares: settings, target, client, results. Kept in the config stash."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.active = False
        self.requirements = RequirementLookup()
        self.grader = Grader(self.requirements, settings.expectations)
        self.scratch = ScratchModels(settings.run_id)
        self.started_at = _now()
        self._started_mono = time.monotonic()
        self._finished_mono: float | None = None
        self.finished_at: str | None = None
        self.report_paths: dict[str, Path] = {}
        self.stale: list[StaleExpectation] = []
        self.unused_expectations: list[str] = []
        self.cleanup_notes: list[str] = []
        self._server: Any = None
        self._base_url: str | None = settings.target_url
        self._client: Client | None = None
        self._target: Target | None = None
        self._initial_models: set[str] = set()

    @property
    def results(self) -> dict[str, Result]:
        """One graded Result per test, by node id."""
        return self.grader.results

    # -- target -----------------------------------------------------------------------------

    def base_url(self) -> str:
        """The target's URL, starting the embedded reference server on first use if needed."""
        if self._base_url is None:
            from conformance.reference.config import ReferenceConfig
            from conformance.reference.server import start_background

            self._server = start_background(ReferenceConfig())
            self._base_url = str(self._server.url).rstrip("/")
        return self._base_url

    @property
    def uses_reference(self) -> bool:
        """Whether the target is the embedded reference server this run started."""
        return self._server is not None

    def client(self) -> Client:
        """The session's bounded client (one for discovery, tests and clean-up)."""
        if self._client is None:
            self._client = Client(self.base_url(), bounds=self.settings.bounds())
        return self._client

    def target(self) -> Target:
        """The discovered target; an unreachable one ends the session with exit code 2."""
        if self._target is None:
            url = self.base_url()
            reason = check_reachable(
                url, timeout=min(5.0, self.settings.timeouts["connect_timeout"])
            )
            if reason is not None:
                pytest.exit(
                    f"ollama-conformance: target {url} is unreachable ({reason}); "
                    "start the server or fix --target",
                    returncode=EXIT_UNREACHABLE,
                )
            self._target = discover(url, self.client(), self.settings.overrides)
            self._initial_models = {m.name.lower() for m in self._target.models}
        return self._target

    def missing_need(self, need: str) -> str | None:
        """Why the target cannot judge a requirement that needs ``need``, or None."""
        if need == "create":
            return None  # scratch models are named under the run prefix and deleted afterwards
        if need == "network":
            if self.settings.allow_network:
                return None
            return "needs the target to reach a model registry; pass --allow-network"
        if self.target().model_for(need) is not None:
            return None
        option = CAPABILITY_OPTIONS.get(need, "--model")
        return f"no model with capability '{need}' on the target; pass {option}"

    def reason_to_skip(self, requirement: Requirement) -> str | None:
        """Why the target cannot be judged on ``requirement`` (version or needs), or None."""
        reason = requirement.reason_not_applicable(self.target().effective_version)
        if reason:
            return reason
        for need in requirement.needs:
            missing = self.missing_need(need)
            if missing:
                return missing
        return None

    # -- scratch models ---------------------------------------------------------------------

    @property
    def run_prefix(self) -> str:
        """``conformance-<run id>``; asking arms the end-of-run clean-up."""
        return self.scratch.prefix

    def new_scratch_name(self) -> ScratchName:
        """A unique model name under the run prefix, remembered for clean-up."""
        return self.scratch.new_name()

    def cleanup(self) -> None:
        """Delete the models under the run prefix that this run created; nothing else."""
        if self._client is None or self._target is None:
            return
        self.scratch.delete_created(self._client, self._initial_models, self.cleanup_notes)

    # -- end of run -------------------------------------------------------------------------

    def finish(self) -> None:
        """Close the books: clean up, find stale expectations, write the report files."""
        self.finished_at = _now()
        self._finished_mono = time.monotonic()
        with contextlib.suppress(Exception):  # clean-up must never mask the run's outcome
            self.cleanup()
        self.stale, self.unused_expectations = self.grader.stale_expectations()
        if self.settings.report_dir is not None:
            self.report_paths = write_reports(self.report(), self.settings.report_dir)

    def report(self) -> Report:
        """The run as a :class:`~conformance.report.Report`."""
        target: dict[str, Any] = self._target.to_dict() if self._target else {"url": self._base_url}
        target["reference_server"] = self.uses_reference
        return Report(
            results=list(self.results.values()),
            target=target,
            run={
                "id": self.settings.run_id,
                "started_at": self.started_at,
                "finished_at": self.finished_at,
                "duration": round(
                    (self._finished_mono or time.monotonic()) - self._started_mono, 3
                ),
                "suite_version": __version__,
                "cleanup_notes": list(self.cleanup_notes),
            },
            options=self.settings.to_dict(),
            stale=list(self.stale),
            unused_expectations=list(self.unused_expectations),
        )

    def close(self) -> None:
        """Close the client and stop the reference server, if this run started one."""
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._server is not None:
            with contextlib.suppress(Exception):
                self._server.stop()
            self._server = None


def install(config: pytest.Config) -> ConformanceState:
    """Validate the options and keep a fresh state for this session in the config stash."""
    state = ConformanceState(config, Settings(config))
    config.stash[_STATE] = state
    return state


def run_state(config: pytest.Config) -> ConformanceState | None:
    """The run's state (for the CLI runner, which reads the results after ``pytest.main``)."""
    return config.stash.get(_STATE, None)


def state_of(config: pytest.Config) -> ConformanceState:
    """The run's state where the plugin is known to be loaded (fixtures)."""
    return config.stash[_STATE]


def active_state(config: pytest.Config) -> ConformanceState | None:
    """The run's state when the plugin is switched on for this session, else None."""
    state = config.stash.get(_STATE, None)
    return state if state is not None and state.active else None


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
