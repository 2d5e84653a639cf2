-- Runs (backtests and live/paper/shadow bot runs) with their equity points and round trips;
-- bot decisions (shadow-compare input) and bot events.
CREATE TABLE trading.runs (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind              text        NOT NULL CHECK (kind IN ('backtest', 'paper', 'shadow', 'live')),
    bot_id            bigint      REFERENCES trading.bot_configs (id),
    status            text        NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled', 'stopped')),
    strategy          text        NOT NULL,
    params            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    symbol            text        NOT NULL,
    interval          text        NOT NULL,
    range_start       timestamptz,
    range_end         timestamptz,
    config            jsonb       NOT NULL DEFAULT '{}'::jsonb,
    progress          double precision NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    stats             jsonb,
    error             text,
    cancel_requested  boolean     NOT NULL DEFAULT false,
    created_by        text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz,
    heartbeat_at      timestamptz,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX runs_bot ON trading.runs (bot_id, id DESC) WHERE bot_id IS NOT NULL;
CREATE INDEX runs_kind_status ON trading.runs (kind, status, id DESC);

-- Mark-to-market equity is a derived float series (the exact ledger is in the round trips).
CREATE TABLE trading.equity_points (
    run_id        bigint           NOT NULL REFERENCES trading.runs (id) ON DELETE CASCADE,
    ts            timestamptz      NOT NULL,
    equity        double precision NOT NULL,
    cash          double precision,
    position_qty  double precision,
    price         double precision,
    PRIMARY KEY (run_id, ts)
);

CREATE TABLE trading.roundtrips (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id       bigint      NOT NULL REFERENCES trading.runs (id) ON DELETE CASCADE,
    bot_id       bigint      REFERENCES trading.bot_configs (id),
    symbol       text        NOT NULL,
    side         text        NOT NULL CHECK (side IN ('long', 'short')),
    entry_at     timestamptz NOT NULL,
    exit_at      timestamptz NOT NULL,
    entry_price  numeric     NOT NULL,
    exit_price   numeric     NOT NULL,
    qty          numeric     NOT NULL CHECK (qty > 0),
    gross_pnl    numeric     NOT NULL,
    fees         numeric     NOT NULL,
    net_pnl      numeric     NOT NULL,
    duration_s   double precision NOT NULL,
    exit_reason  text
);
CREATE INDEX roundtrips_run ON trading.roundtrips (run_id, id);

CREATE TABLE trading.bot_decisions (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bot_id      bigint      NOT NULL REFERENCES trading.bot_configs (id),
    run_id      bigint      REFERENCES trading.runs (id) ON DELETE CASCADE,
    bar_at      timestamptz NOT NULL,
    side        text        NOT NULL CHECK (side IN ('buy', 'sell', 'hold')),
    qty         numeric     NOT NULL DEFAULT 0,
    order_type  text        NOT NULL DEFAULT 'market' CHECK (order_type IN ('market', 'limit', 'stop', 'none')),
    price       numeric,
    target      double precision,
    reason      text,
    at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bot_id, run_id, bar_at)
);
CREATE INDEX bot_decisions_bot_bar ON trading.bot_decisions (bot_id, bar_at);

CREATE TABLE trading.bot_events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bot_id   bigint      NOT NULL REFERENCES trading.bot_configs (id),
    run_id   bigint      REFERENCES trading.runs (id) ON DELETE SET NULL,
    kind     text        NOT NULL,
    level    text        NOT NULL DEFAULT 'info' CHECK (level IN ('debug', 'info', 'warning', 'error')),
    message  text        NOT NULL DEFAULT '',
    data     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_events_bot ON trading.bot_events (bot_id, id DESC);
