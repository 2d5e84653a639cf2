-- Green/blue bot deploys (with the lease the deploy controller renews), their recorded
-- divergences, service deploys, and the audit of operator actions proxied to gordon-risk.
CREATE TABLE trading.bot_deploys (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    bot_id             bigint      NOT NULL REFERENCES trading.bot_configs (id),
    candidate_bot_id   bigint      REFERENCES trading.bot_configs (id),
    state              text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'shadowing', 'comparing', 'swapping', 'promoted', 'aborted', 'failed')),
    from_version       integer     NOT NULL,
    to_version         integer,
    candidate          jsonb       NOT NULL,
    compare_window     integer     NOT NULL CHECK (compare_window > 0),
    match_threshold    double precision NOT NULL CHECK (match_threshold BETWEEN 0 AND 1),
    lease_ttl_s        double precision NOT NULL CHECK (lease_ttl_s > 0),
    lease_owner        text,
    lease_expires_at   timestamptz,
    bars_compared      integer     NOT NULL DEFAULT 0,
    matches            integer     NOT NULL DEFAULT 0,
    divergences        integer     NOT NULL DEFAULT 0,
    reason             text,
    actor              text        NOT NULL,
    started_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    finished_at        timestamptz
);
-- One deploy in flight per bot, enforced by the database.
CREATE UNIQUE INDEX bot_deploys_one_active ON trading.bot_deploys (bot_id)
    WHERE state IN ('pending', 'shadowing', 'comparing', 'swapping');
CREATE INDEX bot_deploys_bot ON trading.bot_deploys (bot_id, id DESC);

CREATE TABLE trading.deploy_divergences (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    deploy_id           bigint      NOT NULL REFERENCES trading.bot_deploys (id) ON DELETE CASCADE,
    bar_at              timestamptz NOT NULL,
    live_decision       jsonb,
    candidate_decision  jsonb,
    at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deploy_divergences_deploy ON trading.deploy_divergences (deploy_id, id);

CREATE TABLE trading.service_deploys (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service             text        NOT NULL CHECK (service ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
    old_image           text,
    new_image           text        NOT NULL,
    old_container_id    text,
    new_container_id    text,
    health_check        jsonb       NOT NULL DEFAULT '{}'::jsonb,
    state               text        NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'starting', 'health_checking', 'swapping', 'done', 'aborted', 'failed')),
    reason              text,
    actor               text        NOT NULL,
    started_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz
);
CREATE UNIQUE INDEX service_deploys_one_active ON trading.service_deploys (service)
    WHERE state IN ('pending', 'starting', 'health_checking', 'swapping');

CREATE TABLE trading.operator_audit (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    actor        text        NOT NULL,
    action       text        NOT NULL,
    target       text,
    outcome      text        NOT NULL,
    status_code  integer,
    detail       jsonb       NOT NULL DEFAULT '{}'::jsonb,
    request_id   text,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operator_audit_at ON trading.operator_audit (id DESC);
