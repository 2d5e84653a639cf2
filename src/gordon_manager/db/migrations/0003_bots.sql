-- Bot configs (the desired state, spec) and bot status (what the reconciler observed), kept
-- apart as in Kubernetes; the audit trail; idempotency keys for creates.
CREATE TABLE trading.bot_configs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text        NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    strategy       text        NOT NULL,
    symbol         text        NOT NULL CHECK (symbol ~ '^[A-Z0-9]{2,20}$'),
    interval       text        NOT NULL CHECK (interval ~ '^[0-9]+[smhdwM]$'),
    params         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    execution      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    mode           text        NOT NULL DEFAULT 'paper' CHECK (mode IN ('paper', 'shadow', 'live')),
    image          text        NOT NULL,
    desired_state  text        NOT NULL DEFAULT 'stopped' CHECK (desired_state IN ('running', 'paused', 'stopped')),
    -- version: bumped by every change (If-Match / optimistic concurrency).
    -- spec_version: bumped only when what the workload runs changes (strategy, params, image…);
    -- workloads are labelled with it, so a start/stop does not recreate a container.
    version        integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    spec_version   integer     NOT NULL DEFAULT 1 CHECK (spec_version >= 1),
    shadow_of      bigint      REFERENCES trading.bot_configs (id),
    labels         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_by     text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- DELETE sets desired_state=stopped and delete_requested_at; the reconciler removes the
    -- workload and then sets deleted_at (soft delete).
    delete_requested_at timestamptz,
    deleted_at     timestamptz,
    CHECK (shadow_of IS NULL OR mode = 'shadow')
);
-- Names are unique among live (not soft-deleted) bots.
CREATE UNIQUE INDEX bot_configs_name_live ON trading.bot_configs (name) WHERE deleted_at IS NULL;
CREATE INDEX bot_configs_desired ON trading.bot_configs (desired_state, id) WHERE deleted_at IS NULL;
CREATE INDEX bot_configs_shadow_of ON trading.bot_configs (shadow_of) WHERE shadow_of IS NOT NULL;

CREATE TABLE trading.bot_status (
    bot_id               bigint      PRIMARY KEY REFERENCES trading.bot_configs (id),
    observed_state       text        NOT NULL DEFAULT 'pending'
        CHECK (observed_state IN ('pending', 'starting', 'running', 'paused', 'stopping', 'stopped',
                                  'crashed', 'backoff', 'quarantined', 'error', 'removed')),
    runtime              text,
    workload_id          text,
    observed_version     integer,
    restarts             integer     NOT NULL DEFAULT 0,
    failure_times        timestamptz[] NOT NULL DEFAULT '{}',
    backoff_s            double precision NOT NULL DEFAULT 0,
    next_retry_at        timestamptz,
    running_since        timestamptz,
    quarantined          boolean     NOT NULL DEFAULT false,
    quarantine_reason    text,
    quarantined_at       timestamptz,
    last_error           text,
    last_error_at        timestamptz,
    last_heartbeat_at    timestamptz,
    metrics_port         integer,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trading.bot_config_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bot_id      bigint      NOT NULL REFERENCES trading.bot_configs (id),
    actor       text        NOT NULL,
    action      text        NOT NULL,
    version     integer     NOT NULL,
    before      jsonb,
    after       jsonb,
    diff        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    request_id  text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bot_config_audit_bot ON trading.bot_config_audit (bot_id, id DESC);

CREATE TABLE trading.idempotency_keys (
    scope         text        NOT NULL,
    key           text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  text        NOT NULL,
    status_code   integer,
    response      jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, key)
);
