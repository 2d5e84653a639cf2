-- Exact decimals in the outbox (issue 15, item 3: one representation of every value).
--
-- to_jsonb(numeric) writes a JSON number, and every JSON reader turns a number into a binary float:
-- portfolio_state's cash 1000.10 reached /ws as 1000.1 (and digits beyond a double's were lost)
-- while GET /portfolio says "1000.10". The outbox now carries numeric columns as text, exactly as
-- PostgreSQL prints them (plain notation, the stored scale: "1000.10", "0.00000001"); /ws renders
-- them as the HTTP API does.
--
-- The trigger's arguments after the channel name are the row's numeric columns (a list, not a
-- catalog lookup per row: tables without numerics pay nothing). tests/events/test_outbox_numerics.py
-- checks that every numeric column of a watched table is listed.
CREATE OR REPLACE FUNCTION trading.emit_event() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
DECLARE
    ch       text := TG_ARGV[0];
    row_new  jsonb;
    row_old  jsonb;
    body     jsonb;
    event_id bigint;
    note     text;
    i        integer;
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
    -- Numeric columns as their exact text (NULL stays null).
    FOR i IN 1 .. TG_NARGS - 1 LOOP
        IF jsonb_typeof(row_new -> TG_ARGV[i]) = 'number' THEN
            row_new := jsonb_set(row_new, ARRAY[TG_ARGV[i]], to_jsonb(row_new ->> TG_ARGV[i]));
        END IF;
    END LOOP;
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

DROP TRIGGER portfolio_state_events ON trading.portfolio_state;
CREATE TRIGGER portfolio_state_events AFTER INSERT OR UPDATE OR DELETE ON trading.portfolio_state
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('portfolio_state', 'qty', 'avg_entry_price', 'cash',
                                                     'mark_price', 'exposure', 'unrealized_pnl');
