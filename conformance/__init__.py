"""ollama-conformance: contract tests, conformance suite and benchmarks for Ollama-API servers."""

__version__ = "0.1.0"
