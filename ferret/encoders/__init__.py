"""Encoders hosted in-process: one module per model family behind the interface in `base`."""
