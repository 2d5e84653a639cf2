"""Liveness, readiness, metrics and the redacted config dump."""
