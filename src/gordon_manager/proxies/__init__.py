"""Clients and routes for the peers the manager proxies: Prometheus, AlertManager, gordon-risk."""
