-- The bot role writes only its own bot's rows (issue 14, item 8).
--
-- Every bot logs in as the one role gordon_bot, so grants alone let any bot rewrite any bot's run,
-- heartbeat, orders, intents, fills and ledger. A setting the bot sets itself (a GUC) would be no
-- better: it is the same credential. Instead each bot proves which bot it is, once per connection:
--
-- * bot_credentials: per bot, the sha256 of a secret token. The manager derives each bot's token
--   (HMAC-SHA256 of the bot id under a key kept in its data dir, botrunner/credentials.py), writes
--   its digest here before it starts the workload and passes the token in GORDON_BOT_TOKEN.
-- * trading.bot_login(bot_id, token) (SECURITY DEFINER, only gordon_bot may call it) checks the
--   token against the digest and binds this backend to the bot: it sets the sequence bot_binding to
--   the bot id (setval). What a backend reads back with currval() is memory of that backend alone:
--   only nextval/setval in that very backend set it, gordon_bot has no right on the sequence (only
--   bot_login, running as the owner, has), and it dies with the backend, so a later backend that
--   gets the same pid is not bound. A binding therefore cannot be forged with set_config(), nor
--   inherited, nor taken over without the other bot's token. The sequence's shared value means
--   nothing; bot_sessions records each binding (pid, bot, time) for people, and is not consulted.
-- * trading.session_bot_id() returns the bot this backend is bound to (NULL when none).
--
-- Row-level security then restricts gordon_bot (and only it) on every table it writes. Each table
-- gets one permissive policy for everyone (USING true: gordon_manager, other services' roles and
-- the migrator behave exactly as before; privileges still come from the grants) and RESTRICTIVE
-- policies TO gordon_bot, AND-ed with it: the row's bot_id must be the bound bot's, and a run_id it
-- carries must be one of that bot's runs (session_owns_run). Policies call session_bot_id() through a
-- sub-select, an initplan evaluated once per statement.
--
-- equity_points and roundtrips are written with COPY (bots' batches, the manager's backtests), which
-- PostgreSQL refuses on any table with row-level security, so those two are checked by a
-- statement-level trigger instead, with the same rule and the same error code (42501).
--
-- Reads: a bot still reads every bot config, the reader views and the risk state; on the tables it
-- writes it sees its own rows, and the runs of the bot it shadows (a shadow bot starts from its
-- live bot's run: bot_id of a shadow's own rows is the shadow bot's own id).

CREATE TABLE trading.bot_credentials (
    bot_id        bigint      PRIMARY KEY REFERENCES trading.bot_configs (id) ON DELETE CASCADE,
    token_sha256  bytea       NOT NULL CHECK (octet_length(token_sha256) = 32),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- The manager registers tokens (and may read the digests, like every trading table); bots nothing.
GRANT INSERT, UPDATE ON trading.bot_credentials TO gordon_manager;
REVOKE ALL ON trading.bot_credentials FROM gordon_bot;

-- The binding's register: nobody but the owner may set it (0008's default privileges would give
-- USAGE and SELECT to both roles).
CREATE SEQUENCE trading.bot_binding AS bigint MINVALUE 1;
REVOKE ALL ON SEQUENCE trading.bot_binding FROM PUBLIC, gordon_manager, gordon_bot;

-- The latest binding of each backend pid (for operators: which connection is which bot).
CREATE TABLE trading.bot_sessions (
    pid       integer     PRIMARY KEY,
    bot_id    bigint      NOT NULL REFERENCES trading.bot_configs (id) ON DELETE CASCADE,
    bound_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON trading.bot_sessions FROM gordon_bot;

CREATE FUNCTION trading.bot_login(p_bot_id bigint, p_token text) RETURNS bigint
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
DECLARE
    stored bytea;
    -- digests are compared, not tokens: the time a comparison takes tells nothing usable
    presented bytea := sha256(convert_to(coalesce(p_token, ''), 'UTF8'));
BEGIN
    SELECT c.token_sha256 INTO stored FROM trading.bot_credentials c WHERE c.bot_id = p_bot_id;
    IF p_token IS NULL OR stored IS NULL OR stored <> presented THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_authorization_specification',
            MESSAGE = format('bot %s: login refused (unknown bot or wrong token)', p_bot_id);
    END IF;
    PERFORM setval('trading.bot_binding', p_bot_id, true);  -- this backend's currval is now the bot id
    INSERT INTO trading.bot_sessions (pid, bot_id) VALUES (pg_backend_pid(), p_bot_id)
        ON CONFLICT (pid) DO UPDATE SET bot_id = EXCLUDED.bot_id, bound_at = now();
    RETURN p_bot_id;
END
$$;
REVOKE ALL ON FUNCTION trading.bot_login(bigint, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading.bot_login(bigint, text) TO gordon_bot;

CREATE FUNCTION trading.session_bot_id() RETURNS bigint
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
BEGIN
    RETURN currval('trading.bot_binding');
EXCEPTION WHEN object_not_in_prerequisite_state THEN  -- this backend never logged in
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION trading.session_bot_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading.session_bot_id() TO gordon_bot;

-- The bot a shadow bot shadows (NULL for any other bot): a shadow reads its live bot's runs.
CREATE FUNCTION trading.session_shadowed_bot_id() RETURNS bigint
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
    SELECT c.shadow_of FROM trading.bot_configs c WHERE c.id = trading.session_bot_id()
$$;
REVOKE ALL ON FUNCTION trading.session_shadowed_bot_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading.session_shadowed_bot_id() TO gordon_bot;

-- Whether a run is one of the bound bot's (the run_id a row carries). Definer: the check reads runs
-- without going through runs' own policies (nested policies cost ~100 µs more per upsert).
CREATE FUNCTION trading.session_owns_run(p_run_id bigint) RETURNS boolean
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
    SELECT EXISTS (SELECT 1 FROM trading.runs r WHERE r.id = p_run_id AND r.bot_id = trading.session_bot_id())
$$;
REVOKE ALL ON FUNCTION trading.session_owns_run(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading.session_owns_run(bigint) TO gordon_bot;

-- Row-level security: a permissive policy for everyone, restrictive ones for gordon_bot.
ALTER TABLE trading.runs ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON trading.runs USING (true) WITH CHECK (true);
CREATE POLICY bot_reads_own_runs ON trading.runs AS RESTRICTIVE FOR SELECT TO gordon_bot
    USING (bot_id = (SELECT trading.session_bot_id()) OR bot_id = (SELECT trading.session_shadowed_bot_id()));
CREATE POLICY bot_inserts_own_runs ON trading.runs AS RESTRICTIVE FOR INSERT TO gordon_bot
    WITH CHECK (bot_id = (SELECT trading.session_bot_id()));
CREATE POLICY bot_updates_own_runs ON trading.runs AS RESTRICTIVE FOR UPDATE TO gordon_bot
    USING (bot_id = (SELECT trading.session_bot_id())) WITH CHECK (bot_id = (SELECT trading.session_bot_id()));
CREATE POLICY bot_deletes_own_runs ON trading.runs AS RESTRICTIVE FOR DELETE TO gordon_bot
    USING (bot_id = (SELECT trading.session_bot_id()));

ALTER TABLE trading.bot_decisions ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON trading.bot_decisions USING (true) WITH CHECK (true);
CREATE POLICY bot_own_rows ON trading.bot_decisions AS RESTRICTIVE TO gordon_bot
    USING (bot_id = (SELECT trading.session_bot_id()))
    WITH CHECK (bot_id = (SELECT trading.session_bot_id())
                AND (run_id IS NULL OR trading.session_owns_run(run_id)));

ALTER TABLE trading.bot_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON trading.bot_events USING (true) WITH CHECK (true);
CREATE POLICY bot_own_rows ON trading.bot_events AS RESTRICTIVE TO gordon_bot
    USING (bot_id = (SELECT trading.session_bot_id()))
    WITH CHECK (bot_id = (SELECT trading.session_bot_id())
                AND (run_id IS NULL OR trading.session_owns_run(run_id)));

ALTER TABLE trading.bot_status ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON trading.bot_status USING (true) WITH CHECK (true);
CREATE POLICY bot_own_rows ON trading.bot_status AS RESTRICTIVE TO gordon_bot
    USING (bot_id = (SELECT trading.session_bot_id())) WITH CHECK (bot_id = (SELECT trading.session_bot_id()));

-- Orders and intents also carry the bot in their client order id (gb<bot>-…, contract.py): the id is
-- the JetStream de-duplication key, so a bot must not take another bot's ids. An intent goes to its
-- own bot's subject, with its own bot id in the message (the manager's intent relay publishes rows).
ALTER TABLE trading.bot_orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON trading.bot_orders USING (true) WITH CHECK (true);
CREATE POLICY bot_own_rows ON trading.bot_orders AS RESTRICTIVE TO gordon_bot
    USING (bot_id = (SELECT trading.session_bot_id()))
    WITH CHECK (bot_id = (SELECT trading.session_bot_id())
                AND client_order_id LIKE 'gb' || bot_id || '-%'
                AND (run_id IS NULL OR trading.session_owns_run(run_id)));

ALTER TABLE trading.order_intents ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON trading.order_intents USING (true) WITH CHECK (true);
CREATE POLICY bot_own_rows ON trading.order_intents AS RESTRICTIVE TO gordon_bot
    USING (bot_id = (SELECT trading.session_bot_id()))
    WITH CHECK (bot_id = (SELECT trading.session_bot_id())
                AND client_order_id LIKE 'gb' || bot_id || '-%'
                AND subject = 'orders.intents.' || bot_id
                AND payload ->> 'botId' = bot_id::text);

ALTER TABLE trading.bot_fills ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON trading.bot_fills USING (true) WITH CHECK (true);
CREATE POLICY bot_own_rows ON trading.bot_fills AS RESTRICTIVE TO gordon_bot
    USING (bot_id = (SELECT trading.session_bot_id()))
    WITH CHECK (bot_id = (SELECT trading.session_bot_id())
                AND (run_id IS NULL OR trading.session_owns_run(run_id)));

ALTER TABLE trading.bot_ledgers ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON trading.bot_ledgers USING (true) WITH CHECK (true);
CREATE POLICY bot_own_rows ON trading.bot_ledgers AS RESTRICTIVE TO gordon_bot
    USING (bot_id = (SELECT trading.session_bot_id()))
    WITH CHECK (bot_id = (SELECT trading.session_bot_id())
                AND (run_id IS NULL OR trading.session_owns_run(run_id)));

-- equity_points and roundtrips (COPY targets): the same rule as a statement-level trigger. It runs
-- as the writer (SECURITY INVOKER), so it knows who writes: the rule applies where the policies
-- above would (gordon_bot and roles that inherit it; not superusers), and costs everyone else one
-- role test per statement (a backtest's million-point COPY included).
CREATE FUNCTION trading.bot_rows_check() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, trading AS $$
DECLARE
    sid bigint;
    bad_run bigint;
    bad_bot boolean := false;
BEGIN
    IF current_setting('is_superuser') = 'on' OR NOT pg_has_role('gordon_bot', 'USAGE') THEN
        RETURN NULL;
    END IF;
    sid := trading.session_bot_id();
    IF TG_TABLE_NAME = 'roundtrips' THEN
        bad_bot := EXISTS (SELECT 1 FROM new_rows n WHERE n.bot_id IS DISTINCT FROM sid);
    END IF;
    SELECT n.run_id INTO bad_run FROM (SELECT DISTINCT run_id FROM new_rows) n
     WHERE sid IS NULL OR NOT trading.session_owns_run(n.run_id)
     LIMIT 1;
    IF bad_bot OR bad_run IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
            MESSAGE = format('new row violates row-level security policy for table "%s"', TG_TABLE_NAME),
            DETAIL = CASE WHEN sid IS NULL THEN 'this session is not logged in as a bot (trading.bot_login)'
                          WHEN bad_bot THEN format('a row names another bot than %s', sid)
                          ELSE format('run %s is not a run of bot %s', bad_run, sid) END;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER bot_rows_check AFTER INSERT ON trading.equity_points
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION trading.bot_rows_check();
CREATE TRIGGER bot_rows_check AFTER INSERT ON trading.roundtrips
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION trading.bot_rows_check();
