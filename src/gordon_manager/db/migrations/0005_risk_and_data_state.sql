-- Tables owned by other Gordon services (gordon-risk, gordon-executor, the data pipeline). They
-- live here so a fresh database is complete; the manager only reads them.
CREATE TABLE trading.breaker_state (
    breaker     text        PRIMARY KEY,
    state       text        NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
    reason      text,
    tripped_at  timestamptz,
    data        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trading.risk_halt (
    scope       text        PRIMARY KEY DEFAULT 'global',
    halted      boolean     NOT NULL DEFAULT false,
    reason      text,
    actor       text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trading.portfolio_state (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bot_id           bigint REFERENCES trading.bot_configs (id),
    symbol           text        NOT NULL,
    qty              numeric     NOT NULL DEFAULT 0,
    avg_entry_price  numeric,
    cash             numeric     NOT NULL DEFAULT 0,
    mark_price       numeric,
    exposure         numeric     NOT NULL DEFAULT 0,
    unrealized_pnl   numeric     NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX portfolio_state_owner_symbol ON trading.portfolio_state (COALESCE(bot_id, 0), symbol);

CREATE TABLE trading.source_freshness (
    source               text        PRIMARY KEY,
    last_update_at       timestamptz,
    last_data_at         timestamptz,
    stale_after_seconds  integer     CHECK (stale_after_seconds > 0),
    detail               jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trading.backfill_jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source        text        NOT NULL,
    symbol        text,
    interval      text,
    range_start   timestamptz,
    range_end     timestamptz,
    status        text        NOT NULL DEFAULT 'queued'
        CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    progress      double precision NOT NULL DEFAULT 0,
    rows_written  bigint      NOT NULL DEFAULT 0,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backfill_jobs_created ON trading.backfill_jobs (id DESC);

CREATE TABLE trading.overlay_decisions (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bot_id    bigint REFERENCES trading.bot_configs (id),
    overlay   text        NOT NULL,
    decision  text        NOT NULL CHECK (decision IN ('allow', 'block', 'scale', 'flatten')),
    reason    text,
    data      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX overlay_decisions_at ON trading.overlay_decisions (at DESC, id DESC);
CREATE INDEX overlay_decisions_bot ON trading.overlay_decisions (bot_id, id DESC);
