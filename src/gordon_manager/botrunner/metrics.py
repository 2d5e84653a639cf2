"""The bot's own /metrics (its own registry; the manager scrapes it through file-SD).

Names match what the manager's metrics-summary queries (proxies/prometheus.py).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


class BotMetrics:
    """Metrics of one bot process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.up = Gauge("gordon_bot_up", "1 while the bot runs.", registry=r)
        self.decisions = Counter("gordon_bot_decisions_total", "Strategy decisions taken (one per bar, hold included).",
                                 ["side"], registry=r)
        self.orders = Counter("gordon_bot_orders_total",
                              "Orders placed (paper and shadow: the model's simulated orders; live: new-order intents).",
                              ["side"], registry=r)
        self.fills = Counter("gordon_bot_fills_total", "Fills booked (simulated for paper, the executor's for live).",
                             ["side"], registry=r)
        self.intents = Counter("gordon_bot_intents_published_total",
                               "Order intents (new orders and cancels) acknowledged by JetStream.", registry=r)
        self.intents_pending = Gauge("gordon_bot_intents_pending",
                                     "Committed intents not yet acknowledged by JetStream (the outbox).", registry=r)
        self.reports = Counter("gordon_bot_executor_reports_total",
                               "Executor reports booked, by kind (fill, duplicate, accepted, rejected, cancelled, expired).",
                               ["kind"], registry=r)
        self.blocked = Counter("gordon_bot_entries_blocked_total",
                               "Entries the strategy wanted that were not sent (paused, risk_halt, breaker).", ["reason"],
                               registry=r)
        self.position = Gauge("gordon_bot_position", "Base quantity held, as the bot's ledger books it.", registry=r)
        self.errors = Counter("gordon_bot_errors_total",
                              "Errors the bot survived: nats_connect, intent_publish, report_fetch, report_ack, "
                              "bad_report, bad_breaker_event.", ["kind"], registry=r)
        self.equity = Gauge("gordon_bot_equity", "Mark-to-market equity in quote currency.", registry=r)
        self.last_bar = Gauge("gordon_bot_last_bar_timestamp_seconds", "Unix time at which the bot last processed a bar.",
                              registry=r)
        self.heartbeat = Gauge("gordon_bot_heartbeat_timestamp_seconds", "Unix time of the bot's last heartbeat.",
                               registry=r)
        self.paused = Gauge("gordon_bot_paused", "1 while the bot is paused (not trading).", registry=r)
        self.bars = Counter("gordon_bot_bars_total", "Bars processed.", registry=r)
        self.bars_hinted = Counter("gordon_bot_bars_hinted_total",
                                   "Bars taken from the new-bars hint instead of a query (included in gordon_bot_bars_total).",
                                   registry=r)

    def serve(self, port: int, addr: str) -> None:
        """Expose /metrics on ``addr:port`` (a daemon thread)."""
        start_http_server(port, addr=addr, registry=self.registry)
