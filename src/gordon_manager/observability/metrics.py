"""Every Prometheus metric of the service, defined here and nowhere else.

The seed's 28 ``gordon_manager_*`` names plus ``gordon_errors_total``; a test checks that each is
exported with HELP text. Label values are bounded sets (route templates, never raw paths).
"""

from __future__ import annotations

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY: CollectorRegistry = DEFAULT_REGISTRY

_LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# -- service ---------------------------------------------------------------------------------------
UP = Gauge("gordon_manager_up", "1 while the manager process is serving.")
REQUESTS = Counter("gordon_manager_requests_total", "HTTP requests by method, route template and status.",
                   ["method", "route", "status"])
EQUITY_POINTS_COMPACTED = Counter("gordon_manager_equity_points_compacted_total",
                                  "Equity points packed into blocks for the page reads (migration 0014).")
REQUEST_DURATION = Histogram("gordon_manager_request_duration_seconds", "HTTP request duration by route template.",
                             ["method", "route"], buckets=_LATENCY)

# -- embedded PostgreSQL (db/supervisor.py; in the serve process that started it) -------------------
EMBEDDED_DB_UP = Gauge("gordon_manager_embedded_db_up",
                       "1 while the embedded PostgreSQL's postmaster is running, 0 while it is down.")
EMBEDDED_DB_DEATHS = Counter("gordon_manager_embedded_db_deaths_total",
                             "Times the embedded PostgreSQL's postmaster was found gone.")
EMBEDDED_DB_RESTARTS = Counter("gordon_manager_embedded_db_restarts_total",
                               "Restart attempts of the embedded PostgreSQL by outcome (ok, failed, blocked: "
                               "processes of the dead server still running).", ["outcome"])

# -- reconciler ------------------------------------------------------------------------------------
RECONCILE_TICKS = Counter("gordon_manager_reconcile_ticks_total", "Reconcile passes by what woke the reconciler.",
                          ["trigger"])
RECONCILE_DURATION = Histogram("gordon_manager_reconcile_duration_seconds", "Duration of one reconcile pass.",
                               buckets=_LATENCY)
RECONCILE_ACTIONS = Counter("gordon_manager_reconcile_actions_total", "Runtime actions taken by the reconciler.",
                            ["action"])
RECONCILE_REQUEUES = Counter("gordon_manager_reconcile_requeues_total",
                             "Bots decided again because their status row moved on while the reconciler acted "
                             "(a generation conflict), or their worker failed.")
BOT_STATE = Gauge("gordon_manager_bot_state", "Bots by observed state.", ["state"])
DOCKER_SOCKET_ERRORS = Counter("gordon_manager_docker_socket_errors_total",
                               "Errors talking to the Docker Engine API through docker-socket-proxy.", ["kind"])
BOT_QUARANTINES = Counter("gordon_manager_bot_quarantines_total", "Bots quarantined for crash-looping.")

# -- deploys ---------------------------------------------------------------------------------------
DEPLOYS = Counter("gordon_manager_deploys_total", "Finished deploys by kind (bot|service) and outcome.",
                  ["kind", "outcome"])
SHADOW_MATCHES = Counter("gordon_manager_deploy_shadow_compare_matches_total",
                         "Bars on which the shadow candidate decided like the live bot.")
SHADOW_DIVERGENCES = Counter("gordon_manager_deploy_shadow_compare_divergences_total",
                             "Bars on which the shadow candidate decided differently from the live bot.")
DEPLOY_DURATION = Histogram("gordon_manager_deploy_duration_seconds", "Deploy duration by kind.", ["kind"],
                            buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600))

# -- BFF and ops glue ------------------------------------------------------------------------------
BFF_READS = Counter("gordon_manager_bff_reads_total", "Console reads by endpoint.", ["endpoint"])
BFF_READ_DURATION = Histogram("gordon_manager_bff_read_duration_seconds", "Console read duration by endpoint.",
                              ["endpoint"], buckets=_LATENCY)
OPERATOR_FLATTEN_REQUESTS = Counter("gordon_manager_operator_flatten_requests_total",
                                    "Emergency-flatten requests by outcome.", ["outcome"])
FILE_SD_UPDATES = Counter("gordon_manager_file_sd_updates_total", "Rewrites of the Prometheus file-SD JSON.")
FILE_SD_WRITE_DURATION = Histogram("gordon_manager_file_sd_write_duration_seconds",
                                   "Time to write the file-SD JSON.", buckets=_LATENCY)
NOTIFY_PAYLOADS = Counter("gordon_manager_notify_payloads_received_total",
                          "Postgres NOTIFY payloads received by channel.", ["channel"])
PORTFOLIO_DRIFT = Counter("gordon_manager_portfolio_drift_total",
                          "Portfolio mismatches between bots' ledgers and trading.portfolio_state.")
RUNS_ABANDONED = Counter("gordon_manager_runs_abandoned_total",
                         "Bot runs marked abandoned because their bot stopped heartbeating.")
INTENTS_RELAYED = Counter("gordon_manager_intents_relayed_total",
                          "Committed order intents the manager relayed to JetStream at commit time, by outcome "
                          "(published first, duplicate of the bot's own publish, dropped, skipped: too large).",
                          ["outcome"])
HINTS = Counter("gordon_manager_bot_hints_total",
                "Wake-up hints for bots (new bars, risk changes) relayed from NOTIFY to NATS, by outcome.",
                ["outcome"])

# -- websocket -------------------------------------------------------------------------------------
WS_ACTIVE = Gauge("gordon_manager_ws_active_connections", "Open /ws connections.")
WS_MESSAGES_SENT = Counter("gordon_manager_ws_messages_sent_total", "Events sent to WS clients by channel.",
                           ["channel"])
WS_OVERFLOW = Counter("gordon_manager_ws_overflow_total", "WS subscribers that fell behind and were resynced.")
WS_REPLAY_ROWS = Counter("gordon_manager_ws_replay_rows_total", "Outbox rows replayed to WS clients.")
WS_BATCHES_SENT = Counter("gordon_manager_ws_batches_sent_total", "WS batch frames sent.")
WS_BATCH_SIZE = Histogram("gordon_manager_ws_batch_size", "Events per WS batch frame.",
                          buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000))

# -- stack health ----------------------------------------------------------------------------------
STACK_HEALTH_PROBES = Counter("gordon_manager_stack_health_probes_total", "Peer probes by peer and outcome.",
                              ["peer", "outcome"])
STACK_HEALTH_TRANSITIONS = Counter("gordon_manager_stack_health_transitions_total",
                                   "Peer up/down transitions.", ["peer", "to"])
STACK_HEALTH_PEER_UP = Gauge("gordon_manager_stack_health_peer_up",
                             "1 while a peer passes its probe, 0 while it is down.", ["peer"])

# -- shared across Gordon services -----------------------------------------------------------------
ERRORS = Counter("gordon_errors_total", "Errors by component and kind.", ["component", "kind"])
OPERATOR_AUTH_FAILURES = Counter("gordon_manager_operator_auth_failures_total",
                                 "Mutations refused for a missing (401) or wrong (403) operator token.", ["status"])
REFUSALS = Counter("gordon_manager_refusals_total",
                   "Requests and /ws connections refused at the edge before any work, by the limit or check "
                   "(host, origin, headers, head_size, read_timeout, read_token, operator_token, body_size, "
                   "ws_connections, ws_connections_per_client, ws_idle, ws_replay_bytes, label_size, params_size).",
                   ["reason"])

SEED_METRIC_NAMES: tuple[str, ...] = (
    "gordon_manager_up", "gordon_manager_requests_total", "gordon_manager_request_duration_seconds",
    "gordon_manager_reconcile_ticks_total", "gordon_manager_reconcile_duration_seconds",
    "gordon_manager_reconcile_actions_total", "gordon_manager_bot_state",
    "gordon_manager_docker_socket_errors_total", "gordon_manager_bot_quarantines_total",
    "gordon_manager_deploys_total", "gordon_manager_deploy_shadow_compare_matches_total",
    "gordon_manager_deploy_shadow_compare_divergences_total", "gordon_manager_deploy_duration_seconds",
    "gordon_manager_bff_reads_total", "gordon_manager_bff_read_duration_seconds",
    "gordon_manager_operator_flatten_requests_total", "gordon_manager_file_sd_updates_total",
    "gordon_manager_file_sd_write_duration_seconds", "gordon_manager_notify_payloads_received_total",
    "gordon_manager_portfolio_drift_total", "gordon_manager_ws_active_connections",
    "gordon_manager_ws_messages_sent_total", "gordon_manager_ws_overflow_total",
    "gordon_manager_ws_replay_rows_total", "gordon_manager_ws_batches_sent_total", "gordon_manager_ws_batch_size",
    "gordon_manager_stack_health_probes_total", "gordon_manager_stack_health_transitions_total",
    "gordon_errors_total",
)
