-- The new-bars NOTIFY carries the bar, so that a bot following the market does not query for it.
--
-- Why: every closed bar of a market wakes all the bots that trade it at the same instant, and each
-- one used to query the bar it was told about (bench/live_loop.py: 100 bots, 100 SELECTs in the
-- first milliseconds of every second, the moment the first decisions commit).
--
-- Payload of NOTIFY 'klines' (still one per (symbol, interval) an insert statement wrote):
--   "SYMBOL:INTERVAL"                       as before: something new, look it up;
--   "SYMBOL:INTERVAL PREV_TS [TS,O,H,L,C,V]" when the statement wrote exactly ONE row of that market
--                                            and the row is a closed bar (close_time < now(), the
--                                            bots' own rule): the bar, and PREV_TS the open time of
--                                            the newest bar before it as this transaction saw it
--                                            (epoch ms; -1 when none). Timestamps are epoch ms.
-- A bot whose last bar is PREV_TS takes the bar from the hint; any other bot (behind, just started,
-- a gap it cannot vouch for) queries as before, so the hint changes where the bar comes from, never
-- which bars a bot sees. Floats are printed with extra_float_digits = 1 whatever the session set:
-- the shortest text that reads back as the same double, the value a query would return.
CREATE OR REPLACE FUNCTION market_data.klines_notify() RETURNS trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, market_data SET extra_float_digits = 1 AS $$
BEGIN
    -- one pass over the statement's rows; for a market with one row, min() of a column is its value
    PERFORM pg_notify('klines', k.symbol || ':' || k.interval || CASE
               WHEN k.n = 1 AND k.closed THEN
                   ' ' || coalesce((SELECT (extract(epoch FROM p.open_time) * 1000)::bigint
                                      FROM market_data.klines p
                                     WHERE p.symbol = k.symbol AND p.interval = k.interval
                                       AND p.open_time < k.open_time
                                     ORDER BY p.open_time DESC LIMIT 1), -1)
                   || ' ' || json_build_array((extract(epoch FROM k.open_time) * 1000)::bigint,
                                              k.o, k.h, k.l, k.c, k.v)::text
               ELSE '' END)
       FROM (SELECT symbol, interval, count(*) AS n, min(open_time) AS open_time,
                    bool_and(close_time < now()) AS closed,
                    min(open) AS o, min(high) AS h, min(low) AS l, min(close) AS c, min(volume) AS v
               FROM new_rows GROUP BY symbol, interval) k;
    RETURN NULL;
END
$$;
