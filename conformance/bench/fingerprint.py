"""The fingerprint of a bench run: everything that could explain a difference between two runs.

Two result files only compare meaningfully when they differ in one thing (the server version,
or the model, or the hardware). The fingerprint records enough to tell which things differ, so
``bench compare`` can warn when a speed-up might have come from somewhere else.
"""

from __future__ import annotations

import os
import platform
import socket
from datetime import UTC, datetime
from typing import Any

from conformance import __version__
from conformance.bench.validity import normalise_model_name
from conformance.client import Client

__all__ = ["host_info", "server_info", "utc_now"]


def utc_now() -> str:
    """ISO 8601 UTC time with a ``Z``, second precision."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


#: x86 says "model name"; some ARM kernels only say "Hardware" or "Processor".
_CPU_KEYS = ("model name", "Hardware", "Processor", "cpu model")


def _cpu_model() -> str | None:
    """The CPU model name: /proc/cpuinfo on Linux, the platform module elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() in _CPU_KEYS and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _memory_bytes() -> int | None:
    """Total physical memory."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def host_info() -> dict[str, Any]:
    """The machine running the benchmark client (for the embedded target, also the server)."""
    return {
        "hostname": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "suite_version": __version__,
    }


def _json_body(client: Client, method: str, path: str, body: object = None) -> object | None:
    exchange = (
        client.request(method, path, json=body)
        if body is not None
        else client.request(method, path)
    )
    if exchange.status != 200:
        return None
    value, _ = exchange.json()
    return value


def server_info(client: Client, model: str) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """Server and model facts: ``(server, model_info, problem)``.

    ``problem`` is set when the model cannot be benchmarked at all (``/api/show`` does not know
    it), which the CLI reports as a usage error rather than running a bench of 404s.
    """
    version_body = _json_body(client, "GET", "/api/version")
    version = version_body.get("version") if isinstance(version_body, dict) else None
    server = {"url": client.base_url, "version": version if isinstance(version, str) else None}

    show = client.request("POST", "/api/show", json={"model": model})
    show_body, _ = show.json()
    problem = None
    if show.status != 200 or not isinstance(show_body, dict):
        detail = show_body.get("error") if isinstance(show_body, dict) else show.problem
        problem = f"model {model!r} is not available on {client.base_url}: {show.status} {detail}"
        show_body = {}
    raw_details = show_body.get("details")
    details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
    info: dict[str, Any] = {
        "name": model,
        "digest": None,
        "family": details.get("family"),
        "format": details.get("format"),
        "parameter_size": details.get("parameter_size"),
        "quantization": details.get("quantization_level"),
        "context_length": None,
        "size": None,
    }
    model_info = show_body.get("model_info")
    if isinstance(model_info, dict):
        for key, value in model_info.items():
            if key.endswith(".context_length") and isinstance(value, int):
                info["context_length"] = value

    # /api/show has no digest; /api/tags does, keyed by the same (normalised) name.
    tags = _json_body(client, "GET", "/api/tags")
    wanted = normalise_model_name(model)
    if isinstance(tags, dict) and isinstance(tags.get("models"), list):
        for entry in tags["models"]:
            if not isinstance(entry, dict):
                continue
            names = {normalise_model_name(str(entry.get(k, ""))) for k in ("name", "model")}
            if wanted in names:
                info["digest"] = entry.get("digest")
                info["size"] = entry.get("size")
                break
    return server, info, problem
