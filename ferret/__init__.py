"""Ferret: a gRPC retrieval and embedding server."""

__version__ = "0.1.0"
