"""All of the service's settings, read from the environment (pydantic-settings).

Names follow the seed exactly; `__` nests (``GORDON_MANAGER__GORDON_RISK_OPERATOR_TOKEN`` is
``settings.gordon_manager.gordon_risk_operator_token``). Every field is documented in the README's
configuration table, which a test keeps in step with this module.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _alias(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class PeerSettings(BaseModel):
    """Peers of the manager, nested under ``GORDON_MANAGER__``."""

    gordon_risk_operator_token: SecretStr | None = Field(
        None, description="Forward token the manager sends to gordon-risk when proxying resume/flatten."
    )
    gordon_risk_url: str | None = Field(None, description="gordon-risk base URL (resume / emergency flatten).")
    gordon_alertmanager_url: str | None = Field(None, description="AlertManager base URL for /bff/alerts/firing.")
    gordon_prometheus_url: str | None = Field(None, description="Prometheus base URL for metrics-summary.")


class Settings(BaseSettings):
    """The effective configuration of one manager process."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__", extra="ignore", populate_by_name=True, case_sensitive=False
    )

    bind_addr: str = Field(":8083", validation_alias=_alias("GORDON_MANAGER_BIND_ADDR"),
                           description="HTTP bind address, host:port (empty host = all interfaces).")
    database_url: SecretStr | None = Field(None, validation_alias=_alias("GORDON_DATABASE_URL"),
                                           description="Postgres URL the service logs in with (role gordon_manager). Unset: embedded PostgreSQL.")
    database_admin_url: SecretStr | None = Field(None, validation_alias=_alias("GORDON_DATABASE_ADMIN_URL"),
                                                 description="Postgres URL with DDL rights used by `migrate` (falls back to GORDON_DATABASE_URL).")
    bus_nats_url: str | None = Field(None, validation_alias=_alias("GORDON_BUS_NATS_URL"),
                                     description="NATS JetStream URL; enables the manager-risk consumer of risk.events.>.")
    operator_token: SecretStr | None = Field(None, validation_alias=_alias("GORDON_MANAGER_OPERATOR_TOKEN"),
                                             description="Token required (X-Operator-Token) on every mutation. Unset: generated at start into the data dir.")
    docker_socket_proxy_url: str | None = Field(None, validation_alias=_alias("DOCKER_SOCKET_PROXY_URL"),
                                                description="docker-socket-proxy URL for the docker/swarm runtimes.")
    gordon_manager: PeerSettings = Field(default_factory=PeerSettings, validation_alias=_alias("GORDON_MANAGER"))

    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("gordon-manager")),
                           validation_alias=_alias("GORDON_MANAGER_DATA_DIR"),
                           description="Per-user state: embedded PostgreSQL data, generated operator token, process-runtime state.")
    workers: int = Field(1, ge=1, le=32, validation_alias=_alias("GORDON_MANAGER_WORKERS"),
                         description="HTTP worker processes. One of them (elected by a lock in the data dir) runs the background services; every worker serves HTTP and /ws.")
    log_level: str = Field("INFO", validation_alias=_alias("GORDON_MANAGER_LOG_LEVEL"), description="Log level (logs go to stderr).")
    log_format: Literal["auto", "json", "text"] = Field("auto", validation_alias=_alias("GORDON_MANAGER_LOG_FORMAT"), description="`json` (one object per line), `text` (human lines), or `auto`: text on a terminal, JSON otherwise.")
    db_pool_min: int = Field(2, ge=1, validation_alias=_alias("GORDON_MANAGER_DB_POOL_MIN"), description="Minimum pooled connections.")
    db_pool_max: int = Field(10, ge=1, validation_alias=_alias("GORDON_MANAGER_DB_POOL_MAX"), description="Maximum pooled connections.")
    db_connect_timeout_s: float = Field(5.0, gt=0, validation_alias=_alias("GORDON_MANAGER_DB_CONNECT_TIMEOUT_S"), description="Timeout for one database connect.")
    migrate_on_start: bool = Field(True, validation_alias=_alias("GORDON_MANAGER_MIGRATE_ON_START"),
                                   description="`serve` applies pending migrations first (embedded DB, or when an admin URL is set).")
    runtime: str = Field("process", pattern="^(process|docker|swarm)$", validation_alias=_alias("GORDON_MANAGER_RUNTIME"),
                         description="Where bots run: process (local children), docker or swarm (through the socket proxy).")
    file_sd_path: Path | None = Field(None, validation_alias=_alias("GORDON_MANAGER_FILE_SD_PATH"),
                                      description="Prometheus file-SD JSON written with every running bot's /metrics target.")
    exchange_url: str = Field("https://api.binance.com", validation_alias=_alias("GORDON_MANAGER_EXCHANGE_URL"),
                              description="Exchange public REST base URL (ping only; no keys).")
    http_timeout_s: float = Field(5.0, gt=0, validation_alias=_alias("GORDON_MANAGER_HTTP_TIMEOUT_S"), description="Timeout of every outbound HTTP call.")
    cursor_secret: SecretStr | None = Field(None, validation_alias=_alias("GORDON_MANAGER_CURSOR_SECRET"),
                                            description="HMAC key for pagination cursors (shared by replicas). Unset: generated into the data dir.")
    reconcile_enabled: bool = Field(True, validation_alias=_alias("GORDON_MANAGER_RECONCILE_ENABLED"),
                                    description="Run the reconciler in this replica (false: serve HTTP/WS only). Replicas elect one leader anyway.")
    reconcile_interval_s: float = Field(5.0, gt=0, validation_alias=_alias("GORDON_MANAGER_RECONCILE_INTERVAL_S"), description="Reconciler timer (it also wakes on NOTIFY and runtime events).")
    quarantine_failures: int = Field(5, ge=1, validation_alias=_alias("GORDON_MANAGER_QUARANTINE_FAILURES"), description="Failures within the window that quarantine a bot.")
    quarantine_window_s: float = Field(600.0, gt=0, validation_alias=_alias("GORDON_MANAGER_QUARANTINE_WINDOW_S"), description="Window for counting failures.")
    backoff_base_s: float = Field(10.0, gt=0, validation_alias=_alias("GORDON_MANAGER_BACKOFF_BASE_S"), description="First restart delay (doubles per failure).")
    backoff_max_s: float = Field(300.0, gt=0, validation_alias=_alias("GORDON_MANAGER_BACKOFF_MAX_S"), description="Largest restart delay.")
    backoff_reset_s: float = Field(600.0, gt=0, validation_alias=_alias("GORDON_MANAGER_BACKOFF_RESET_S"), description="Healthy time after which the backoff resets.")
    bot_database_url: SecretStr | None = Field(None, validation_alias=_alias("GORDON_BOT_DATABASE_URL"),
                                               description="Postgres URL bots log in with (role gordon_bot). Unset: derived from the service URL with user gordon_bot.")
    bot_command: str = Field("gordon-manager bot", validation_alias=_alias("GORDON_MANAGER_BOT_COMMAND"),
                             description="Command a bot workload runs (split on spaces; the process runtime resolves it next to this interpreter).")
    allowed_images: str = Field("gordon-bot,ghcr.io/dlepaux/", validation_alias=_alias("GORDON_MANAGER_ALLOWED_IMAGES"),
                                description="Comma-separated image repository prefixes a bot may run.")
    bot_image: str = Field("ghcr.io/dlepaux/gordon-manager:3.8.0", validation_alias=_alias("GORDON_MANAGER_BOT_IMAGE"), description="Default bot image.")
    bot_network: str = Field("gordon-bots", validation_alias=_alias("GORDON_MANAGER_BOT_NETWORK"),
                             description="Docker network bot containers (docker) or services (swarm: a swarm-scoped network) join, to reach PostgreSQL, NATS and be scraped. `none`: no network. Never `host`.")
    bot_nats_url: str | None = Field(None, validation_alias=_alias("GORDON_MANAGER_BOT_NATS_URL"),
                                     description="NATS URL bots are given (as seen from their network). Unset: GORDON_BUS_NATS_URL.")
    bot_cgroup: Path | None = Field(None, validation_alias=_alias("GORDON_MANAGER_BOT_CGROUP"),
                                    description="Process runtime: a cgroup directory (v2, or v1's cpu controller; it must exist and its cgroup.procs be writable, e.g. a systemd slice with Delegate=yes) every bot process is moved into, so that the CPU scheduler weighs the bots as one group against PostgreSQL, NATS and the manager (runtimes/cgroup.py; the live loop's p99 depends on it on a shared host). Unset: bots stay in the manager's group.")
    bot_cpu_limit: float = Field(1.0, gt=0, le=256, validation_alias=_alias("GORDON_MANAGER_BOT_CPU_LIMIT"),
                                 description="CPUs a bot container may use, unless the bot's label `resources.cpu` says otherwise (docker/swarm).")
    bot_memory_limit_mb: int = Field(512, ge=6, validation_alias=_alias("GORDON_MANAGER_BOT_MEMORY_LIMIT_MB"),
                                     description="Memory limit (MiB, no swap beyond) of a bot container, unless the bot's label `resources.memory_mb` says otherwise (docker/swarm).")
    bot_stop_timeout_s: int = Field(30, ge=1, le=3600, validation_alias=_alias("GORDON_MANAGER_BOT_STOP_TIMEOUT_S"),
                                    description="Grace between SIGTERM and SIGKILL when a bot container or service stops: time to finish its batch (docker/swarm).")
    bot_metrics_port: int = Field(9100, ge=1, le=65535, validation_alias=_alias("GORDON_MANAGER_BOT_METRICS_PORT"),
                                  description="Port of a bot container's /metrics on its network address (file-SD target `<container IP>:<port>`).")
    ws_queue_size: int = Field(1024, ge=1, validation_alias=_alias("GORDON_MANAGER_WS_QUEUE_SIZE"), description="Per-subscriber bounded queue (frames).")
    ws_batch_window_ms: float = Field(5.0, ge=0, validation_alias=_alias("GORDON_MANAGER_WS_BATCH_WINDOW_MS"), description="Events within this window go out as one batch frame.")
    ws_overflow_threshold: int = Field(10, ge=1, validation_alias=_alias("GORDON_MANAGER_WS_OVERFLOW_THRESHOLD"), description="Overflows per minute that report ws_subscriber_overload.")
    ws_reconnect_storm_per_s: float = Field(1.0, gt=0, validation_alias=_alias("GORDON_MANAGER_WS_RECONNECT_STORM_PER_S"), description="Connects per second that report ws_reconnect_storm.")
    events_retention_s: float = Field(86400.0, gt=0, validation_alias=_alias("GORDON_MANAGER_EVENTS_RETENTION_S"), description="Outbox (trading.events) rows older than this are pruned; a client resuming from before gets a resync.")
    equity_compact_interval_s: float = Field(5.0, gt=0, validation_alias=_alias("GORDON_MANAGER_EQUITY_COMPACT_INTERVAL_S"), description="How often the background worker packs runs' new equity points into blocks (the page reads' fast path).")
    stack_health_interval_s: float = Field(15.0, gt=0, validation_alias=_alias("GORDON_MANAGER_STACK_HEALTH_INTERVAL_S"), description="Interval of the peer prober.")
    source_stale_after_s: float = Field(300.0, gt=0, validation_alias=_alias("GORDON_MANAGER_SOURCE_STALE_AFTER_S"), description="Default freshness threshold of a data source.")
    backtest_stale_after_s: float = Field(30.0, ge=5, validation_alias=_alias("GORDON_MANAGER_BACKTEST_STALE_AFTER_S"), description="A running backtest whose worker has not heartbeaten (every 0.25 s) for this long is marked failed by the leading replica.")
    backtest_prewarm: bool = Field(True, validation_alias=_alias("GORDON_MANAGER_BACKTEST_PREWARM"), description="Start the backtest worker process (and its imports) when the manager starts, so that the first backtest does not wait ~0.4 s for it.")
    sweep_dask_address: str | None = Field(None, validation_alias=_alias("GORDON_MANAGER_SWEEP_DASK_ADDRESS"), description="Dask scheduler address (e.g. `tcp://10.0.0.5:8786`) the sweeps' trials run on; its workers need gordon-manager installed. Unset: a local pool of worker processes (CPUs − 1, 1–4).")
    run_abandon_after_s: float = Field(30.0, ge=10, validation_alias=_alias("GORDON_MANAGER_RUN_ABANDON_AFTER_S"), description="A bot run whose bot has not heartbeaten (every 5 s) for this long is marked abandoned.")
    deploy_compare_window: int = Field(60, ge=1, validation_alias=_alias("GORDON_MANAGER_DEPLOY_COMPARE_WINDOW"), description="Bars a deploy compares before swapping.")
    deploy_match_threshold: float = Field(0.95, ge=0, le=1, validation_alias=_alias("GORDON_MANAGER_DEPLOY_MATCH_THRESHOLD"), description="Match rate of the action bars needed to swap.")
    deploy_min_actions: int = Field(5, ge=1, le=100_000, validation_alias=_alias("GORDON_MANAGER_DEPLOY_MIN_ACTIONS"), description="Action bars (a bar where either bot acts) a deploy needs compared before it may swap.")
    deploy_max_window: int = Field(600, ge=1, le=10_000_000, validation_alias=_alias("GORDON_MANAGER_DEPLOY_MAX_WINDOW"), description="Bars a deploy short of evidence extends to before it ends inconclusive (at least the compare window).")
    deploy_lease_ttl_s: float = Field(30.0, gt=0, validation_alias=_alias("GORDON_MANAGER_DEPLOY_LEASE_TTL_S"), description="Deploy lease time-to-live.")

    # -- the browser boundary and access (http/edge.py) ------------------------------------------
    cors_origins: str = Field("", validation_alias=_alias("GORDON_MANAGER_CORS_ORIGINS"),
                              description="Comma-separated origins (scheme://host[:port]) allowed to call the API and open /ws from a browser. Empty: same origin only.")
    allowed_hosts: str = Field("", validation_alias=_alias("GORDON_MANAGER_ALLOWED_HOSTS"),
                               description="Comma-separated Host names served (against DNS rebinding; `*.example.com` matches subdomains, `*` any). Empty: localhost names, IP literals, the bind host and this machine's hostname.")
    read_token: SecretStr | None = Field(None, validation_alias=_alias("GORDON_MANAGER_READ_TOKEN"),
                                         description="When set, every read and /ws need it (X-Read-Token header, or the WebSocket subprotocol `gordon.read-token.<token>`); an operator token also reads. Unset: reads are open.")
    operator_tokens_file: Path | None = Field(None, validation_alias=_alias("GORDON_MANAGER_OPERATOR_TOKENS_FILE"),
                                              description="File of named operator tokens, one `name:token` per line (# comments); the name is the actor of every audit row. Adds to GORDON_MANAGER_OPERATOR_TOKEN.")
    # -- limits enforced before the work they protect (each refusal counted in gordon_manager_refusals_total)
    max_body_bytes: int = Field(1_048_576, ge=1024, validation_alias=_alias("GORDON_MANAGER_MAX_BODY_BYTES"),
                                description="Largest request body (413 above).")
    max_header_bytes: int = Field(32_768, ge=1024, validation_alias=_alias("GORDON_MANAGER_MAX_HEADER_BYTES"),
                                  description="Largest request head: request line and headers (431 above).")
    max_headers: int = Field(100, ge=8, validation_alias=_alias("GORDON_MANAGER_MAX_HEADERS"),
                             description="Most header fields in a request (431 above).")
    request_read_timeout_s: float = Field(10.0, gt=0, validation_alias=_alias("GORDON_MANAGER_REQUEST_READ_TIMEOUT_S"),
                                          description="Time a client has to send a request's head, and then its body (408 after).")
    max_label_key_bytes: int = Field(63, ge=1, validation_alias=_alias("GORDON_MANAGER_MAX_LABEL_KEY_BYTES"),
                                     description="Largest label key of a bot (UTF-8 bytes; 422 above).")
    max_label_value_bytes: int = Field(256, ge=1, validation_alias=_alias("GORDON_MANAGER_MAX_LABEL_VALUE_BYTES"),
                                       description="Largest label value of a bot (UTF-8 bytes; 422 above).")
    max_params_bytes: int = Field(16_384, ge=64, validation_alias=_alias("GORDON_MANAGER_MAX_PARAMS_BYTES"),
                                  description="Largest strategy `params` (and `execution`) of a bot or backtest, as compact JSON (422 above).")
    ws_max_connections: int = Field(1000, ge=1, validation_alias=_alias("GORDON_MANAGER_WS_MAX_CONNECTIONS"),
                                    description="Open /ws connections per worker process (refused with 503 above).")
    ws_max_connections_per_client: int = Field(32, ge=1, validation_alias=_alias("GORDON_MANAGER_WS_MAX_CONNECTIONS_PER_CLIENT"),
                                               description="Open /ws connections per client address (refused with 429 above).")
    ws_max_frame_bytes: int = Field(65_536, ge=1024, validation_alias=_alias("GORDON_MANAGER_WS_MAX_FRAME_BYTES"),
                                    description="Largest frame a /ws client may send (the connection is closed with 1009 above).")
    ws_replay_max_bytes: int = Field(8_388_608, ge=65_536, validation_alias=_alias("GORDON_MANAGER_WS_REPLAY_MAX_BYTES"),
                                     description="Largest replay a resume may send; beyond it (or 10,000 rows) the client gets a resync.")
    ws_idle_timeout_s: float = Field(60.0, gt=0, validation_alias=_alias("GORDON_MANAGER_WS_IDLE_TIMEOUT_S"),
                                     description="A /ws connection subscribed to nothing for this long is closed (1008).")
    ws_send_timeout_s: float = Field(10.0, gt=0, validation_alias=_alias("GORDON_MANAGER_WS_SEND_TIMEOUT_S"),
                                     description="A /ws client that accepts no frame for this long is dropped (slow client).")
    # -- the embedded PostgreSQL's supervisor (db/supervisor.py) ---------------------------------
    embedded_db_check_interval_s: float = Field(1.0, gt=0, le=60, validation_alias=_alias("GORDON_MANAGER_EMBEDDED_DB_CHECK_INTERVAL_S"),
                                                description="How often `serve` checks that the embedded PostgreSQL's postmaster is alive (pid file + process table, no query).")
    embedded_db_backoff_base_s: float = Field(0.5, gt=0, validation_alias=_alias("GORDON_MANAGER_EMBEDDED_DB_BACKOFF_BASE_S"),
                                              description="Delay before restarting a dead embedded PostgreSQL (doubles per attempt).")
    embedded_db_backoff_max_s: float = Field(30.0, gt=0, validation_alias=_alias("GORDON_MANAGER_EMBEDDED_DB_BACKOFF_MAX_S"),
                                             description="Largest delay between restart attempts of the embedded PostgreSQL.")
    embedded_db_backoff_reset_s: float = Field(60.0, gt=0, validation_alias=_alias("GORDON_MANAGER_EMBEDDED_DB_BACKOFF_RESET_S"),
                                               description="Time the restarted embedded PostgreSQL must stay up before the restart delay is back to the base.")

    @field_validator("bind_addr")
    @classmethod
    def _check_bind(cls, value: str) -> str:
        parse_bind(value)
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        """The bind address as (host, port)."""
        return parse_bind(self.bind_addr)

    def admin_url(self) -> str | None:
        """URL with DDL rights, for migrations."""
        url = self.database_admin_url or self.database_url
        return url.get_secret_value() if url else None


def parse_bind(value: str) -> tuple[str, int]:
    """Parse ``host:port`` / ``:port``; an empty host binds every interface."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bind address must be host:port or :port, got {value!r}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
