"""Helpers for tests and benchmarks that need real components (a Kafka-protocol broker)."""
