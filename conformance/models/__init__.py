"""Test models for real servers: tiny crafted GGUF files whose output is known in advance."""
