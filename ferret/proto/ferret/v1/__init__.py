"""Generated stubs of the `ferret.v1` API (regenerate with `make proto`)."""
