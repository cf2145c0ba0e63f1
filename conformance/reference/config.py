"""Settings of the reference server: the Ollama it emulates, where models live, how fast it is.

The reference server emulates one Ollama release at a time (``version``). Behaviour that changed
between releases (reference facts §25) is chosen by comparing against that version with
:meth:`ReferenceConfig.at_least`, so one code path serves every generation the suite judges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from conformance.versions import NEWEST_KNOWN, Version

#: Ollama's default ``keep_alive`` (``OLLAMA_KEEP_ALIVE``), five minutes (§19.2).
DEFAULT_KEEP_ALIVE_NS = 5 * 60 * 1_000_000_000


@dataclass
class ReferenceConfig:
    """Everything that shapes one reference server instance.

    ``token_rate`` and ``load_time`` are defaults for every model; ``model_token_rates`` and
    ``model_load_times`` override them per model (keys are model names as a client would write
    them, e.g. ``tiny-completion`` or ``tiny-completion:latest``). A rate of 0 means "as fast as
    possible": no pacing sleeps at all.
    """

    #: The Ollama release whose behaviour is emulated; ``/api/version`` reports it.
    version: str = NEWEST_KNOWN
    #: Where blobs and manifests live; ``None`` means a fresh temporary directory removed on exit.
    data_dir: Path | None = None
    #: Validate every request body against the contract and report violations.
    strict: bool = False
    #: Optional JSON-lines file that receives one record per strict-mode violation.
    strict_log: Path | None = None
    #: Generated tokens per second, per request (the engine sleeps to honour it).
    token_rate: float = 500.0
    #: Prompt tokens processed per second (prompt evaluation is simulated too).
    prompt_rate: float = 5000.0
    #: Seconds a model takes to load when it is not loaded yet.
    load_time: float = 0.02
    model_token_rates: dict[str, float] = field(default_factory=dict)
    model_load_times: dict[str, float] = field(default_factory=dict)
    #: Default keep-alive in nanoseconds (``OLLAMA_KEEP_ALIVE``).
    keep_alive_ns: int = DEFAULT_KEEP_ALIVE_NS
    #: Extra allowed CORS origins (``OLLAMA_ORIGINS``), added to Ollama's built-in list (§1.2).
    origins: tuple[str, ...] = ()
    #: The address the server listens on; the Host-header guard only acts on loopback (§1.2).
    listen_host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        # Fail early on a version string that cannot be compared; the CLI turns this into usage.
        Version.parse(self.version)
        if self.data_dir is not None:
            self.data_dir = Path(self.data_dir)
        if self.strict_log is not None:
            self.strict_log = Path(self.strict_log)
        if self.token_rate < 0 or self.prompt_rate < 0 or self.load_time < 0:
            raise ValueError("token_rate, prompt_rate and load_time must not be negative")

    @cached_property
    def parsed_version(self) -> Version:
        """The emulated version, parsed once."""
        return Version.parse(self.version)

    def at_least(self, version: str) -> bool:
        """Whether the emulated release is ``version`` or newer."""
        return self.parsed_version >= Version.parse(version)

    def token_rate_for(self, *names: str) -> float:
        """The token rate of the first of ``names`` that has an override, else the default."""
        return _lookup(self.model_token_rates, names, self.token_rate)

    def load_time_for(self, *names: str) -> float:
        """The load time of the first of ``names`` that has an override, else the default."""
        return _lookup(self.model_load_times, names, self.load_time)


def _lookup(table: dict[str, float], names: tuple[str, ...], default: float) -> float:
    # Names are compared case-insensitively and with or without the default ":latest" tag, the way
    # Ollama itself matches model names (§21).
    folded = {_fold(k): v for k, v in table.items()}
    for name in names:
        value = folded.get(_fold(name))
        if value is not None:
            return value
    return default


def _fold(name: str) -> str:
    name = name.strip().lower()
    return name if ":" in name.rsplit("/", 1)[-1] else name + ":latest"
