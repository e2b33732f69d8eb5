"""The gRPC server: configuration, start-up, batching and the services."""
