"""The gRPC API: `.proto` files under `ferret/v1/` are the source of truth; `generate` writes the stubs."""
