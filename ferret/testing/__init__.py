"""Helpers for tests and benchmarks (no model weights can be downloaded; these build them)."""
