"""Runs, their equity curves and round trips, and a bot's runs, equity and events (console reads)."""
