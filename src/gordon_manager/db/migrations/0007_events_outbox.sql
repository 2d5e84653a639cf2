-- The event outbox. Triggers append one row per change and pg_notify(channel, ...) with the
-- outbox id and, when it fits, the payload. NOTIFY is lost while a listener is disconnected and
-- is limited to 8000 bytes, so listeners replay from this table by id after a reconnect and WS
-- clients resume with the last id they saw.
CREATE TABLE trading.events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel  text        NOT NULL,
    payload  jsonb       NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_at ON trading.events (at);
CREATE INDEX events_channel_id ON trading.events (channel, id);

-- SECURITY DEFINER: writers of the watched tables need no right on the outbox itself.
CREATE FUNCTION trading.emit_event() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
DECLARE
    ch       text := TG_ARGV[0];
    row_new  jsonb;
    row_old  jsonb;
    body     jsonb;
    event_id bigint;
    note     text;
    -- Liveness columns change constantly and mean nothing to the console: an update that only
    -- touches them is not an event.
    noise    text[] := ARRAY['updated_at', 'heartbeat_at', 'last_heartbeat_at', 'lease_expires_at'];
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_new := to_jsonb(OLD);
    ELSE
        row_new := to_jsonb(NEW);
    END IF;
    IF TG_OP = 'UPDATE' THEN
        row_old := to_jsonb(OLD);
        IF (row_old - noise) = (row_new - noise) THEN
            RETURN NULL;
        END IF;
    END IF;
    body := jsonb_build_object('op', lower(TG_OP), 'table', TG_TABLE_NAME, 'row', row_new);
    INSERT INTO trading.events (channel, payload) VALUES (ch, body) RETURNING id INTO event_id;
    note := jsonb_build_object('id', event_id, 'channel', ch, 'payload', body)::text;
    IF octet_length(note) > 7900 THEN
        note := jsonb_build_object('id', event_id, 'channel', ch)::text;
    END IF;
    PERFORM pg_notify(ch, note);
    RETURN NULL;
END
$$;

-- The five DirectFromNotify channels of the seed.
CREATE TRIGGER risk_halt_events AFTER INSERT OR UPDATE OR DELETE ON trading.risk_halt
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('risk_halt_changed');
CREATE TRIGGER breaker_state_events AFTER INSERT OR UPDATE OR DELETE ON trading.breaker_state
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('breaker_state');
CREATE TRIGGER portfolio_state_events AFTER INSERT OR UPDATE OR DELETE ON trading.portfolio_state
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('portfolio_state');
CREATE TRIGGER source_freshness_events AFTER INSERT OR UPDATE OR DELETE ON trading.source_freshness
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('source_freshness');
CREATE TRIGGER backfill_jobs_events AFTER INSERT OR UPDATE OR DELETE ON trading.backfill_jobs
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('backfill_jobs');
-- The manager's own channels: config changes wake the reconciler; the rest feed the console.
CREATE TRIGGER bot_configs_events AFTER INSERT OR UPDATE ON trading.bot_configs
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('bot_config_changed');
CREATE TRIGGER bot_status_events AFTER INSERT OR UPDATE ON trading.bot_status
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('bot_status');
CREATE TRIGGER bot_events_events AFTER INSERT ON trading.bot_events
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('bot_events');
CREATE TRIGGER bot_deploys_events AFTER INSERT OR UPDATE ON trading.bot_deploys
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('deploy_progress');
CREATE TRIGGER service_deploys_events AFTER INSERT OR UPDATE ON trading.service_deploys
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('deploy_progress');
CREATE TRIGGER runs_events AFTER INSERT OR UPDATE ON trading.runs
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('run_progress');
