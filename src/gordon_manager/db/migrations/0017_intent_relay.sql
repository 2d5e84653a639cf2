-- The manager's intent relay (events/intent_relay.py): each committed outbox row is announced by
-- NOTIFY 'order_intents' with the message itself, so the relay publishes it to JetStream the moment
-- the bot's transaction commits, independently of the bot (which publishes it too: the same
-- Nats-Msg-Id, so JetStream stores one copy, the first). A payload too large for NOTIFY is announced
-- without its message: the bot's own publish carries it.
CREATE FUNCTION trading.order_intents_notify() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, trading AS $$
DECLARE
    note text := json_build_object('botId', NEW.bot_id, 'clientOrderId', NEW.client_order_id,
                                   'subject', NEW.subject, 'payload', NEW.payload)::text;
BEGIN
    IF octet_length(note) > 7900 THEN
        note := json_build_object('botId', NEW.bot_id, 'clientOrderId', NEW.client_order_id)::text;
    END IF;
    PERFORM pg_notify('order_intents', note);
    RETURN NULL;
END
$$;
CREATE TRIGGER order_intents_notify AFTER INSERT ON trading.order_intents
    FOR EACH ROW EXECUTE FUNCTION trading.order_intents_notify();
