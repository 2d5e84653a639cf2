-- Least privilege for the service roles (the seed's migration 0044).
--
-- gordon_manager reads trading.* and, for market data, only the v_*_reader views. It writes:
--   bot_configs, bot_deploys, runs, equity_points   the seed's writer tables
--   bot_status          the reconciler records what it observed
--   bot_config_audit    every config change commits with its audit row
--   idempotency_keys    stored responses of POST /bots with an Idempotency-Key (expired rows deleted)
--   roundtrips          backtest results (the backtest worker logs in as the manager)
--   bot_events          lifecycle events the manager raises on a bot (quarantine, deploy)
--   deploy_divergences  shadow-compare evidence of a deploy
--   service_deploys     the service deploy state machine
--   operator_audit      who asked gordon-risk to resume or flatten, and what it answered
--   events (DELETE)     outbox retention
-- It must not write what other services own: breaker_state, risk_halt, portfolio_state,
-- source_freshness, backfill_jobs, overlay_decisions, bot_decisions, market_data.*.
GRANT USAGE ON SCHEMA trading, market_data TO gordon_manager, gordon_bot;

GRANT SELECT ON ALL TABLES IN SCHEMA trading TO gordon_manager;
ALTER DEFAULT PRIVILEGES IN SCHEMA trading GRANT SELECT ON TABLES TO gordon_manager;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA trading TO gordon_manager, gordon_bot;
ALTER DEFAULT PRIVILEGES IN SCHEMA trading GRANT USAGE, SELECT ON SEQUENCES TO gordon_manager, gordon_bot;

GRANT INSERT, UPDATE ON trading.bot_configs, trading.bot_deploys, trading.runs,
    trading.equity_points, trading.bot_status, trading.bot_config_audit, trading.roundtrips,
    trading.bot_events, trading.deploy_divergences, trading.service_deploys, trading.operator_audit
    TO gordon_manager;
GRANT INSERT, UPDATE, DELETE ON trading.idempotency_keys TO gordon_manager;
GRANT DELETE ON trading.events TO gordon_manager;

GRANT SELECT ON market_data.v_klines_reader, market_data.v_metrics_reader, market_data.v_macro_reader,
    market_data.v_funding_rates_reader, market_data.v_open_interest_reader TO gordon_manager, gordon_bot;

-- gordon_bot: the bot runner reads its config and writes its own run, decisions, events,
-- equity and round trips, and its heartbeat.
GRANT SELECT ON trading.bot_configs, trading.runs, trading.schema_migrations TO gordon_bot;
GRANT INSERT, UPDATE ON trading.runs TO gordon_bot;
GRANT INSERT ON trading.equity_points, trading.roundtrips, trading.bot_decisions, trading.bot_events TO gordon_bot;
GRANT SELECT (bot_id), UPDATE (last_heartbeat_at, metrics_port) ON trading.bot_status TO gordon_bot;
