"""Metrics, logging, file-SD and the stack-health prober."""
