"""The API version the seed documents; reported by /healthz, /config and OpenAPI."""

__version__ = "3.8.0"
