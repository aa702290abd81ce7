"""Parley's shared kernel: event schemas, topics, channel configuration, settings and infrastructure clients."""
