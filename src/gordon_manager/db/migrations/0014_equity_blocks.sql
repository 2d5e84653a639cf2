-- Equity blocks: a run's equity points, 96 consecutive points per row, each column packed binary.
--
-- Why: a 500-point page read from equity_points walks 500 index entries and 500 heap tuples and
-- packs each value. That is ~0.36 ms of PostgreSQL CPU per page, the largest part of the
-- console's hottest read. From blocks it is 6-7 rows already packed: ~0.12 ms, measured on the
-- 2-core box. The blocks are a derived, columnar copy (~42 bytes per point). equity_points stay
-- the source of truth, and every other read uses them.
--
-- Invariant: a run's blocks hold exactly its first (96 × number of blocks) points, in time order,
-- without gaps. Every block is full. The points after the last block (the "tail") are read raw.
-- * Writers do nothing. Statement triggers on equity_points delete every block at or after the
--   earliest point a statement inserted, updated or deleted. An append (the only kind of write
--   the bots and backtests make) deletes nothing. Any other change cuts the blocks back to a
--   correct prefix.
-- * trading.equity_compact(run, max_points) appends full blocks after the last one. The manager's
--   background worker calls it for runs whose tail holds at least 96 points (runs/compactor.py).
-- * Both take a per-run transaction advisory lock (0x65716B62 "eqkb", hashint8(run)). A compaction
--   never packs points that a concurrent, uncommitted change is about to cut. The compaction
--   only tries the lock and skips a busy run.
CREATE TABLE trading.equity_blocks (
    run_id              bigint      NOT NULL REFERENCES trading.runs (id) ON DELETE CASCADE,
    last_ts             timestamptz NOT NULL,
    first_ts            timestamptz NOT NULL,
    ts_packed           bytea       NOT NULL,  -- int64 µs since 2000-01-01, big-endian
    equity_packed       bytea       NOT NULL,  -- float8, big-endian
    cash_packed         bytea       NOT NULL,  -- float8, NaN for NULL
    position_qty_packed bytea       NOT NULL,
    price_packed        bytea       NOT NULL,
    PRIMARY KEY (run_id, last_ts)
) WITH (toast_tuple_target = 8160);  -- a 96-point block (~3.9 KB) stays inline and uncompressed, 2 per page

-- How many points each run has in blocks (kept by the compaction; removed when blocks are cut).
CREATE TABLE trading.equity_block_state (
    run_id bigint PRIMARY KEY REFERENCES trading.runs (id) ON DELETE CASCADE,
    points bigint NOT NULL CHECK (points >= 0)
);

-- The one cut rule: under the run's lock, drop every block at or after p_from_ts (called by the
-- triggers below, which run as the owner; callers must lock runs in ascending id order).
CREATE FUNCTION trading.equity_blocks_cut_run(p_run_id bigint, p_from_ts timestamptz) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, trading AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(x'65716b62'::int, hashint8(p_run_id));
    DELETE FROM trading.equity_blocks WHERE run_id = p_run_id AND last_ts >= p_from_ts;
    IF FOUND THEN
        DELETE FROM trading.equity_block_state WHERE run_id = p_run_id;
    END IF;
END
$$;
REVOKE ALL ON FUNCTION trading.equity_blocks_cut_run(bigint, timestamptz) FROM PUBLIC;

CREATE FUNCTION trading.equity_blocks_cut() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT run_id, min(ts) AS from_ts FROM changed_points GROUP BY run_id ORDER BY run_id LOOP
        PERFORM trading.equity_blocks_cut_run(r.run_id, r.from_ts);
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER equity_blocks_cut_update_old AFTER UPDATE ON trading.equity_points
    REFERENCING OLD TABLE AS changed_points FOR EACH STATEMENT EXECUTE FUNCTION trading.equity_blocks_cut();
CREATE TRIGGER equity_blocks_cut_delete AFTER DELETE ON trading.equity_points
    REFERENCING OLD TABLE AS changed_points FOR EACH STATEMENT EXECUTE FUNCTION trading.equity_blocks_cut();

CREATE FUNCTION trading.equity_blocks_truncate() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
BEGIN
    DELETE FROM trading.equity_blocks;
    DELETE FROM trading.equity_block_state;
    RETURN NULL;
END
$$;
-- Inserted and updated (new) points: the statement-level run check of 0012 already reads the
-- transition table, so it also cuts the blocks, in the same single pass. The run is checked and
-- locked once per statement, as before, and it now groups the new rows once instead of twice. A
-- 1M-point COPY pays no extra pass for the blocks.
CREATE OR REPLACE FUNCTION trading.equity_points_check_run() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
DECLARE
    ids bigint[];
    froms timestamptz[];
    missing bigint;
BEGIN
    SELECT array_agg(run_id ORDER BY run_id), array_agg(from_ts ORDER BY run_id) INTO ids, froms
      FROM (SELECT run_id, min(ts) AS from_ts FROM new_points GROUP BY run_id) p;
    IF ids IS NULL THEN
        RETURN NULL;
    END IF;
    PERFORM 1 FROM trading.runs r WHERE r.id = ANY (ids) FOR KEY SHARE OF r;
    SELECT u INTO missing FROM unnest(ids) u WHERE NOT EXISTS (SELECT 1 FROM trading.runs r WHERE r.id = u) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = 'insert or update on table "equity_points" violates foreign key constraint "equity_points_run_id_fkey"',
            DETAIL = format('Key (run_id)=(%s) is not present in table "runs".', missing);
    END IF;
    FOR i IN 1 .. array_length(ids, 1) LOOP
        PERFORM trading.equity_blocks_cut_run(ids[i], froms[i]);
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER equity_blocks_truncate AFTER TRUNCATE ON trading.equity_points
    FOR EACH STATEMENT EXECUTE FUNCTION trading.equity_blocks_truncate();

-- Append full blocks after the run's last block, packing at most p_max_points points; returns the
-- number of points packed (0 when the run is busy or its tail holds fewer than 96 points).
CREATE FUNCTION trading.equity_compact(p_run_id bigint, p_max_points integer) RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
DECLARE
    after_ts timestamptz;
    packed bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(x'65716b62'::int, hashint8(p_run_id)) THEN
        RETURN 0;
    END IF;
    SELECT max(last_ts) INTO after_ts FROM trading.equity_blocks WHERE run_id = p_run_id;
    WITH tail AS (
        SELECT ts, equity, cash, position_qty, price, (row_number() OVER (ORDER BY ts) - 1) / 96 AS block
        FROM (
            SELECT ts, equity, cash, position_qty, price FROM trading.equity_points
            WHERE run_id = p_run_id AND ts > coalesce(after_ts, '-infinity')
            ORDER BY ts LIMIT greatest(p_max_points, 96) / 96 * 96
        ) s
    ), blocks AS (
        INSERT INTO trading.equity_blocks (run_id, last_ts, first_ts, ts_packed, equity_packed, cash_packed,
                                           position_qty_packed, price_packed)
        SELECT p_run_id, max(ts), min(ts),
               string_agg(timestamptz_send(ts), ''::bytea ORDER BY ts),
               string_agg(float8send(equity), ''::bytea ORDER BY ts),
               string_agg(float8send(coalesce(cash, 'NaN')), ''::bytea ORDER BY ts),
               string_agg(float8send(coalesce(position_qty, 'NaN')), ''::bytea ORDER BY ts),
               string_agg(float8send(coalesce(price, 'NaN')), ''::bytea ORDER BY ts)
        FROM tail GROUP BY block HAVING count(*) = 96
        RETURNING 1
    )
    SELECT count(*) * 96 INTO packed FROM blocks;
    INSERT INTO trading.equity_block_state AS s (run_id, points)
    SELECT p_run_id, count(*) * 96 FROM trading.equity_blocks WHERE run_id = p_run_id
    ON CONFLICT (run_id) DO UPDATE SET points = excluded.points;
    RETURN packed;
END
$$;
REVOKE ALL ON FUNCTION trading.equity_compact(bigint, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading.equity_compact(bigint, integer) TO gordon_manager;

-- Runs whose tail (points after their blocks) holds at least one block's worth, from the day rollups.
CREATE VIEW trading.equity_compaction_candidates AS
SELECT t.run_id, t.points - coalesce(s.points, 0) AS tail_points
FROM (SELECT run_id, sum(n) AS points FROM trading.equity_rollups WHERE width_s = 86400 GROUP BY run_id) t
LEFT JOIN trading.equity_block_state s USING (run_id)
WHERE t.points - coalesce(s.points, 0) >= 96;
GRANT SELECT ON trading.equity_compaction_candidates TO gordon_manager;

-- The page read: the blocks that reach past p_after (enough of them for p_limit points), then,
-- when they may not hold p_limit points before p_before, one row with the raw points after the
-- last block. The client concatenates the rows and keeps p_after < ts < p_before and the first
-- p_limit points.
--
-- It is a function with a generic plan. As a prepared statement, PostgreSQL re-planned the page
-- query on every call: the generic plan's estimate, with an unknown LIMIT and unknown time bounds,
-- always looked dearer than a custom plan's, though the plan is the same index scan either way.
-- Planning was about a third of the query's CPU (measured on the raw query: 0.74 → 0.46–0.49 ms
-- per 500-point page). plan_cache_mode is set for this function only. The console's other reads
-- keep custom plans, which their optional filters ("$1 IS NULL OR col = $1") need. The raw tail's
-- aggregates take their input in the subquery's index order (an ORDER BY inside them would sort
-- once per aggregate); the reader checks that order and restores it if a plan ever changed it.
CREATE FUNCTION trading.equity_page(p_run_id bigint, p_after timestamptz, p_before timestamptz, p_limit integer)
    RETURNS TABLE (ts_packed bytea, equity_packed bytea, cash_packed bytea, position_qty_packed bytea,
                   price_packed bytea)
    LANGUAGE plpgsql STABLE
    SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    blocks_end timestamptz;
    returned bigint;
BEGIN
    RETURN QUERY
    SELECT b.ts_packed, b.equity_packed, b.cash_packed, b.position_qty_packed, b.price_packed
    FROM trading.equity_blocks b
    WHERE b.run_id = p_run_id AND b.last_ts > p_after AND b.first_ts < p_before
    ORDER BY b.last_ts LIMIT p_limit / 96 + 2;
    GET DIAGNOSTICS returned = ROW_COUNT;
    -- All but the first returned block lie wholly after p_after: enough points unless p_before cuts them.
    IF returned > 0 AND (returned - 1) * 96 >= p_limit THEN
        RETURN;
    END IF;
    SELECT max(b.last_ts) INTO blocks_end FROM trading.equity_blocks b WHERE b.run_id = p_run_id;
    IF blocks_end IS NOT NULL AND blocks_end >= p_before THEN
        RETURN;
    END IF;
    RETURN QUERY
    SELECT string_agg(timestamptz_send(s.ts), ''::bytea),
           string_agg(float8send(s.equity), ''::bytea),
           string_agg(float8send(coalesce(s.cash, 'NaN')), ''::bytea),
           string_agg(float8send(coalesce(s.position_qty, 'NaN')), ''::bytea),
           string_agg(float8send(coalesce(s.price, 'NaN')), ''::bytea)
    FROM (
        SELECT e.ts, e.equity, e.cash, e.position_qty, e.price FROM trading.equity_points e
        WHERE e.run_id = p_run_id AND e.ts > greatest(p_after, coalesce(blocks_end, '-infinity'))
          AND e.ts < p_before
        ORDER BY e.ts LIMIT p_limit
    ) s;
END
$$;
REVOKE ALL ON FUNCTION trading.equity_page(bigint, timestamptz, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading.equity_page(bigint, timestamptz, timestamptz, integer) TO gordon_manager;
