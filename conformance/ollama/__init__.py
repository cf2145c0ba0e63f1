"""Real Ollama as a test target: build a given version, run it isolated, load the tiny models.

The suite's facts about Ollama must be checked against the real thing, at the versions the
requirements name. ``build`` compiles a release from the Go module proxy into a per-version cache,
``process`` runs it on a free loopback port with its own model store and home directory (so the
user's ``~/.ollama`` is never touched), and ``provision`` uploads and registers the tiny GGUF
models through the public HTTP API.
"""

from conformance.ollama.build import BuildError, build_ollama, cached_binary
from conformance.ollama.process import OllamaProcess, StartError, start_ollama, stop_pid
from conformance.ollama.provision import DEFAULT_MODELS, ProvisionedModel, ProvisionError, provision

__all__ = [
    "DEFAULT_MODELS",
    "BuildError",
    "OllamaProcess",
    "ProvisionError",
    "ProvisionedModel",
    "StartError",
    "build_ollama",
    "cached_binary",
    "provision",
    "start_ollama",
    "stop_pid",
]
