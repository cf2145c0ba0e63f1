"""The plugin's command-line options, and :class:`Settings`: the same options, checked.

Every option lives in one group under one prefix-free set of names, each with a metavar and its
default in the help. They are checked once, when pytest configures, so that a mistake stops the
run before any test starts, with a message that says what to pass instead.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest

from conformance.client import Bounds
from conformance.expectations import ExpectationError, Expectations
from conformance.expectations import load as load_expectations
from conformance.target import Overrides
from conformance.versions import Version, VersionError

__all__ = [
    "DEFAULT_EXAMPLES",
    "EXAMPLES_ENV",
    "Settings",
    "add_options",
    "usage_error",
    "validate_url",
]

#: Environment variable with the default number of hypothesis examples per property test.
EXAMPLES_ENV = "OLLAMA_CONFORMANCE_EXAMPLES"
#: Examples per property test when neither the option nor the environment variable says.
DEFAULT_EXAMPLES = 25

_RUN_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,39}$")
_MODEL_OPTIONS = ("model", "embed_model", "tools_model", "thinking_model", "vision_model")
_TIMEOUT_OPTIONS = ("connect_timeout", "read_timeout", "total_timeout")


def add_options(parser: pytest.Parser) -> None:
    """Options of the suite, in one group, each with a metavar and its default in the help."""
    group = parser.getgroup("ollama-conformance", "Ollama API conformance suite")
    group.addoption(
        "--target",
        metavar="URL",
        default=None,
        help="base URL of the server under test, e.g. http://127.0.0.1:11434 "
        "(default: start the embedded reference server on a free 127.0.0.1 port)",
    )
    for option, capability in (
        ("--model", "completion"),
        ("--embed-model", "embedding"),
        ("--tools-model", "tools"),
        ("--thinking-model", "thinking"),
        ("--vision-model", "vision"),
    ):
        group.addoption(
            option,
            metavar="NAME",
            default=None,
            help=f"model to use for tests that need '{capability}' "
            "(default: the smallest local model whose capabilities include it)",
        )
    group.addoption(
        "--api-version",
        metavar="VERSION",
        default=None,
        help="judge the target as this Ollama version, e.g. 0.12.11 (default: the version "
        "/api/version claims; the newest known for dev builds)",
    )
    group.addoption(
        "--expect",
        metavar="FILE",
        default=None,
        help="YAML or TOML file of accepted deviations: requirement or test id -> "
        "{outcome, reason} (default: none)",
    )
    group.addoption(
        "--allow-network",
        action="store_true",
        default=False,
        help="run tests that make the target reach a model registry (pull, push) "
        "(default: skipped)",
    )
    for option, default, what in (
        ("--connect-timeout", 5.0, "connecting to the target"),
        ("--read-timeout", 120.0, "silence while reading an answer (model loads count)"),
        ("--total-timeout", 300.0, "one whole request"),
    ):
        group.addoption(
            option,
            metavar="SECONDS",
            type=float,
            default=default,
            help=f"longest time for {what} (default: {default:g})",
        )
    group.addoption(
        "--run-id",
        metavar="ID",
        default=None,
        help="identifies this run in reports and in scratch model names "
        "conformance-<ID>-N (default: UTC time plus a random suffix)",
    )
    group.addoption(
        "--report-dir",
        metavar="DIR",
        default=None,
        help="write report.json, report.md and junit.xml there (default: no files)",
    )
    group.addoption(
        "--conformance-area",
        metavar="AREA",
        action="append",
        default=[],
        help="run only requirements of this area, e.g. generate; repeatable (default: all)",
    )
    group.addoption(
        "--conformance-examples",
        metavar="N",
        default=None,
        help="hypothesis examples each property test draws; each is one request or more "
        f"(default: ${EXAMPLES_ENV}, else {DEFAULT_EXAMPLES})",
    )


def usage_error(message: str) -> pytest.UsageError:
    """A usage error in the suite's voice: pytest prints it and exits before any test runs."""
    return pytest.UsageError(f"ollama-conformance: {message}")


def validate_url(url: str, option: str = "--target") -> str:
    """The URL without a trailing slash, or a UsageError saying what a good one looks like."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise usage_error(
            f"{option} {url!r} is not an http(s) URL; pass e.g. {option} http://127.0.0.1:11434"
        )
    return url.rstrip("/")


def example_count(value: object) -> int:
    """``--conformance-examples``, else ``$OLLAMA_CONFORMANCE_EXAMPLES``, else 25; at least 1."""
    __tracebackhide__ = True
    if value is not None:
        source, fix, raw = "--conformance-examples", "pass e.g. --conformance-examples 25", value
    else:
        raw = os.environ.get(EXAMPLES_ENV, "").strip()
        if not raw:
            return DEFAULT_EXAMPLES
        source, fix = f"{EXAMPLES_ENV}", f"set e.g. {EXAMPLES_ENV}=25"
    try:
        count = int(str(raw).strip())
    except ValueError:
        raise usage_error(f"{source} {raw!r} is not a whole number; {fix}") from None
    if count < 1:
        raise usage_error(f"{source} must be at least 1, got {count}; {fix}")
    return count


class Settings:
    """The plugin's options, checked once so that mistakes stop the run before it starts."""

    def __init__(self, config: pytest.Config) -> None:
        opt = config.getoption
        target = opt("--target")
        self.target_url: str | None = validate_url(target) if target else None
        api_version = opt("--api-version")
        if api_version:
            try:
                Version.parse(api_version)
            except VersionError:
                raise usage_error(
                    f"--api-version {api_version!r} is not an Ollama version; "
                    "pass e.g. --api-version 0.12.11"
                ) from None
        models: dict[str, str | None] = {}
        for name in _MODEL_OPTIONS:
            value = opt(name)
            if value is not None and not str(value).strip():
                flag = "--" + name.replace("_", "-")
                raise usage_error(f"{flag} is empty; pass a model name such as {flag} llama3.2")
            models[name] = str(value).strip() if value else None
        self.overrides = Overrides(api_version=api_version or None, **models)
        self.timeouts: dict[str, float] = {}
        for name in _TIMEOUT_OPTIONS:
            value = opt(name)
            if not value or value <= 0:
                flag = "--" + name.replace("_", "-")
                raise usage_error(f"{flag} must be a positive number of seconds, got {value!r}")
            self.timeouts[name] = float(value)
        run_id = opt("--run-id")
        if run_id is not None and not _RUN_ID.match(run_id):
            raise usage_error(
                f"--run-id {run_id!r} cannot be part of a model name; use 1-40 lower-case "
                "letters, digits, '.', '_' or '-', starting with a letter or digit"
            )
        self.run_id: str = run_id or _new_run_id()
        self.expect_path: str | None = opt("--expect")
        self.expectations: Expectations | None = None
        if self.expect_path:
            try:
                self.expectations = load_expectations(self.expect_path)
            except ExpectationError as exc:
                raise usage_error(str(exc)) from None
        report_dir = opt("--report-dir")
        self.report_dir: Path | None = Path(report_dir) if report_dir else None
        if (
            self.report_dir is not None
            and self.report_dir.exists()
            and not self.report_dir.is_dir()
        ):
            raise usage_error(f"--report-dir {report_dir!r} is a file; pass a directory")
        self.allow_network: bool = bool(opt("--allow-network"))
        self.areas: list[str] = [a.strip() for a in opt("--conformance-area") or [] if a.strip()]
        self._examples_option: object = opt("--conformance-examples")
        self._examples: int | None = None
        if self._examples_option is not None:
            _ = self.examples  # given on the command line: check it now

    @property
    def examples(self) -> int:
        """Hypothesis examples per property test; UsageError for a bad value.

        ``$OLLAMA_CONFORMANCE_EXAMPLES`` is only read when this is first asked for (the plugin
        does so when it switches on), so a bad value cannot break unrelated pytest sessions that
        merely load the plugin.
        """
        __tracebackhide__ = True
        if self._examples is None:
            self._examples = example_count(self._examples_option)
        return self._examples

    def bounds(self) -> Bounds:
        """Per-request limits for the session client."""
        read = self.timeouts["read_timeout"]
        total = self.timeouts["total_timeout"]
        return Bounds(
            connect_timeout=self.timeouts["connect_timeout"],
            read_timeout=read,
            write_timeout=read,
            first_line_timeout=min(read, total),
            max_gap=min(read, total),
            total_timeout=total,
        )

    def to_dict(self) -> dict[str, Any]:
        """What the report records about how the run was configured."""
        return {
            "target": self.target_url,
            "api_version": self.overrides.api_version,
            "models": {
                k: v
                for k, v in vars(self.overrides).items()
                if k != "api_version" and v is not None
            },
            "expect": self.expect_path,
            "allow_network": self.allow_network,
            "timeouts": dict(self.timeouts),
            "areas": list(self.areas),
            "examples": self.examples,
        }


def _new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dt%H%M%S")
    return f"{stamp}-{secrets.token_hex(2)}"
