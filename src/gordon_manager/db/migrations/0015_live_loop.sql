-- The live loop between bots and gordon-executor (botrunner/, README "The live loop").
--
-- bot_orders       every order a bot submitted (paper and shadow: simulated; live: sent to the
--                  executor), keyed by its deterministic clientOrderId, with its last known status.
-- order_intents    the outbox: each message for the executor (a new order or a cancel) is a row
--                  written in the transaction of the decision that caused it, published on JetStream
--                  after the commit and only then marked published. clientOrderId is unique, so the
--                  same decision can never become two intents.
-- bot_fills        every fill applied to a bot's ledger: the executor's (live, idempotent by its fill
--                  id) or the ExecutionModel's (paper, shadow).
-- bot_ledgers      a bot's ledger as of its last committed transaction: position, cash, fees and the
--                  fills of the open round trip; what a restarted bot recovers from.
-- A bot writes all four, each in the transaction of the bar batch or executor report that changed
-- them, so a crash at any instant leaves them consistent with each other.
CREATE TABLE trading.bot_orders (
    client_order_id  text        PRIMARY KEY CHECK (client_order_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    bot_id           bigint      NOT NULL REFERENCES trading.bot_configs (id),
    run_id           bigint      REFERENCES trading.runs (id) ON DELETE SET NULL,
    mode             text        NOT NULL CHECK (mode IN ('paper', 'shadow', 'live')),
    symbol           text        NOT NULL,
    side             text        NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type       text        NOT NULL CHECK (order_type IN ('market', 'limit', 'stop')),
    qty              numeric     NOT NULL CHECK (qty > 0),
    price            numeric     CHECK (price > 0),
    reduce_only      boolean     NOT NULL DEFAULT false,
    oco_group        text,
    reason           text        NOT NULL,
    -- an entry's bracket levels: the stop-loss / take-profit placed (OCO) once it has filled
    stop_loss        numeric     CHECK (stop_loss > 0),
    take_profit      numeric     CHECK (take_profit > 0),
    parent_id        text,
    bar_at           timestamptz,
    status           text        NOT NULL DEFAULT 'new'
        CHECK (status IN ('new', 'accepted', 'partially_filled', 'cancelling', 'filled', 'cancelled', 'rejected',
                          'expired')),
    filled_qty       numeric     NOT NULL DEFAULT 0 CHECK (filled_qty >= 0),
    status_reason    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
-- Open orders (what a restarted bot restores and GET /bots/{id} shows) through a small partial index.
CREATE INDEX bot_orders_open ON trading.bot_orders (bot_id, created_at)
    WHERE status IN ('new', 'accepted', 'partially_filled', 'cancelling');
CREATE INDEX bot_orders_bot ON trading.bot_orders (bot_id, created_at DESC);

CREATE TABLE trading.order_intents (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bot_id           bigint      NOT NULL REFERENCES trading.bot_configs (id),
    client_order_id  text        NOT NULL UNIQUE,
    kind             text        NOT NULL CHECK (kind IN ('new', 'cancel')),
    subject          text        NOT NULL,
    payload          jsonb       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    published_at     timestamptz,
    attempts         integer     NOT NULL DEFAULT 0
);
CREATE INDEX order_intents_unpublished ON trading.order_intents (bot_id, id) WHERE published_at IS NULL;

CREATE TABLE trading.bot_fills (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bot_id           bigint      NOT NULL REFERENCES trading.bot_configs (id),
    fill_id          text        NOT NULL,
    client_order_id  text        NOT NULL,
    run_id           bigint      REFERENCES trading.runs (id) ON DELETE SET NULL,
    source           text        NOT NULL CHECK (source IN ('executor', 'simulated')),
    side             text        NOT NULL CHECK (side IN ('buy', 'sell')),
    qty              numeric     NOT NULL CHECK (qty > 0),
    price            numeric     NOT NULL CHECK (price > 0),
    notional         numeric     NOT NULL,
    fee              numeric     NOT NULL CHECK (fee >= 0),
    liquidity        text,
    reason           text,
    ts               timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bot_id, fill_id)
);
CREATE INDEX bot_fills_order ON trading.bot_fills (client_order_id);

CREATE TABLE trading.bot_ledgers (
    bot_id           bigint      PRIMARY KEY REFERENCES trading.bot_configs (id),
    mode             text        NOT NULL CHECK (mode IN ('paper', 'shadow', 'live')),
    symbol           text        NOT NULL,
    qty              numeric     NOT NULL DEFAULT 0,
    avg_entry_price  numeric,
    cash             numeric     NOT NULL,
    fees_paid        numeric     NOT NULL DEFAULT 0,
    realized_pnl     numeric     NOT NULL DEFAULT 0,
    -- the fills of the open round trip (what the next round trip is computed from)
    trip             jsonb       NOT NULL DEFAULT '[]'::jsonb,
    run_id           bigint      REFERENCES trading.runs (id) ON DELETE SET NULL,
    last_bar_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Which order a decision became (NULL for a decision taken before this migration).
ALTER TABLE trading.bot_decisions ADD COLUMN client_order_id text;

-- 'abandoned': a bot run whose bot stopped heartbeating (killed, host lost); set by the leader's
-- run reaper or by the bot's next start, so nothing stays 'running' forever.
ALTER TABLE trading.runs DROP CONSTRAINT runs_status_check;
ALTER TABLE trading.runs ADD CONSTRAINT runs_status_check
    CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'stopped', 'abandoned'));
CREATE INDEX runs_bots_running ON trading.runs (heartbeat_at)
    WHERE status = 'running' AND kind IN ('paper', 'shadow', 'live');

-- stop / DELETE with ?flatten=true: the bot sells its position (reduce-only market) before it exits.
-- Set by that action, cleared by the next start; the bot reads it when it is told to stop.
ALTER TABLE trading.bot_configs ADD COLUMN flatten_on_stop boolean NOT NULL DEFAULT false;

-- New bars wake the bots that trade them: one NOTIFY 'klines' per (symbol, interval) an insert
-- statement wrote, payload "SYMBOL:INTERVAL" (bots LISTEN instead of polling fast; a slow poll stays
-- as the safety net, e.g. for a pipeline that stores the forming bar and updates it).
CREATE FUNCTION market_data.klines_notify() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, market_data AS $$
BEGIN
    PERFORM pg_notify('klines', k.symbol || ':' || k.interval)
       FROM (SELECT DISTINCT symbol, interval FROM new_rows) k;
    RETURN NULL;
END
$$;
CREATE TRIGGER klines_notify AFTER INSERT ON market_data.klines
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION market_data.klines_notify();

-- Grants. gordon_bot writes its own orders, intents, fills and ledger, and reads the risk state it
-- obeys (halts and breakers). gordon_manager reads them all (default privileges of 0008).
GRANT SELECT, INSERT, UPDATE ON trading.bot_orders, trading.bot_ledgers TO gordon_bot;
GRANT SELECT, INSERT ON trading.bot_fills TO gordon_bot;
GRANT SELECT, INSERT ON trading.order_intents TO gordon_bot;
GRANT UPDATE (published_at, attempts) ON trading.order_intents TO gordon_bot;
GRANT SELECT ON trading.risk_halt, trading.breaker_state TO gordon_bot;
