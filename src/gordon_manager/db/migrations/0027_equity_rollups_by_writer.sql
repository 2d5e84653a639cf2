-- Equity rollups a bulk writer computes itself: no per-row aggregation inside a backtest's COPY.
--
-- Why: the statement-level rollup trigger (0010) builds four arrays and a date_bin per new point;
-- at a million points that is ~2/3 of a backtest's write (6 of 10 s measured, 3.2 s without it).
-- A backtest writer already holds the points, sorted, as arrays: it reduces them with numpy to
-- the buckets of every level (count, first, last, lowest and highest equity with their times) and
-- hands those to trading.equity_rollups_put, which merges them into the rollups exactly as the
-- trigger merges its aggregate (no array is built per point or per bucket).
--
-- Protocol: inside one transaction, `SELECT set_config('gordon.equity_rollups', 'writer', true)`,
-- then COPY the points, then equity_rollups_put for those very points. The setting is
-- transaction-local and only the session that sets it skips the trigger's aggregation, for the
-- statements it runs; everyone else (a live bot's one-point INSERTs included) keeps the trigger.
-- Updates and deletes always recompute from the raw points. tests/backtests/test_rollups_put.py
-- holds the put rollups equal to a rebuild from the raw points.
-- 0010's trigger function, unchanged but for the first statement.
CREATE OR REPLACE FUNCTION trading.equity_rollups_merge() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
BEGIN
    IF current_setting('gordon.equity_rollups', true) = 'writer' THEN
        RETURN NULL;  -- this transaction's writer puts its rollups itself (equity_rollups_put)
    END IF;
    -- Arrays compare element by element: min(ARRAY[equity, epoch]) is the lowest equity with its
    -- time (earliest on ties), in one pass and without sorting.
    WITH l1 AS (
        SELECT run_id, date_bin('300 seconds', ts, timestamptz '1970-01-01 00:00:00+00') AS bucket_at,
               count(*) AS n, min(ts) AS first_at, max(ts) AS last_at,
               min(ARRAY[date_part('epoch', ts), equity]) AS f, max(ARRAY[date_part('epoch', ts), equity]) AS l,
               min(ARRAY[equity, date_part('epoch', ts)]) AS lo,
               max(ARRAY[equity, -date_part('epoch', ts)]) AS hi
        FROM new_points GROUP BY 1, 2
    ), l2 AS (
        SELECT run_id, date_bin('3600 seconds', bucket_at, timestamptz '1970-01-01 00:00:00+00') AS bucket_at,
               sum(n)::bigint AS n, min(first_at) AS first_at, max(last_at) AS last_at,
               min(f) AS f, max(l) AS l, min(lo) AS lo, max(hi) AS hi
        FROM l1 GROUP BY 1, 2
    ), l3 AS (
        SELECT run_id, date_bin('86400 seconds', bucket_at, timestamptz '1970-01-01 00:00:00+00') AS bucket_at,
               sum(n)::bigint AS n, min(first_at) AS first_at, max(last_at) AS last_at,
               min(f) AS f, max(l) AS l, min(lo) AS lo, max(hi) AS hi
        FROM l2 GROUP BY 1, 2
    ), levels AS (
        SELECT 300 AS width_s, * FROM l1
        UNION ALL SELECT 3600, * FROM l2
        UNION ALL SELECT 86400, * FROM l3
    )
    INSERT INTO trading.equity_rollups AS r
        (run_id, width_s, bucket_at, n, first_at, first_equity, last_at, last_equity,
         min_at, min_equity, max_at, max_equity)
    SELECT run_id, width_s, bucket_at, n, first_at, f[2], last_at, l[2],
           to_timestamp(lo[2]), lo[1], to_timestamp(-hi[2]), hi[1]
    FROM levels
    ORDER BY run_id, width_s, bucket_at  -- one lock order for concurrent writers of one run
    ON CONFLICT (run_id, width_s, bucket_at) DO UPDATE SET
        n = r.n + excluded.n,
        first_equity = CASE WHEN excluded.first_at < r.first_at THEN excluded.first_equity ELSE r.first_equity END,
        first_at = LEAST(r.first_at, excluded.first_at),
        last_equity = CASE WHEN excluded.last_at >= r.last_at THEN excluded.last_equity ELSE r.last_equity END,
        last_at = GREATEST(r.last_at, excluded.last_at),
        min_at = CASE WHEN excluded.min_equity < r.min_equity THEN excluded.min_at ELSE r.min_at END,
        min_equity = LEAST(r.min_equity, excluded.min_equity),
        max_at = CASE WHEN excluded.max_equity > r.max_equity THEN excluded.max_at ELSE r.max_at END,
        max_equity = GREATEST(r.max_equity, excluded.max_equity);
    RETURN NULL;
END
$$;

-- The writer's entry point: one run's buckets of every level (width_s 300, 3600, 86400), times as
-- Unix microseconds (exact: no float on the way), merged into the rollups exactly as the trigger
-- merges its aggregate. The run is locked FOR KEY SHARE first, as the points' run check does.
-- Only the manager (the backtest writer) may put rollups.
CREATE FUNCTION trading.equity_rollups_put(
    p_run bigint, p_width integer[], p_bucket_us bigint[], p_n bigint[], p_first_us bigint[],
    p_first_equity double precision[], p_last_us bigint[], p_last_equity double precision[], p_min_us bigint[],
    p_min_equity double precision[], p_max_us bigint[], p_max_equity double precision[])
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
BEGIN
    PERFORM 1 FROM trading.runs WHERE id = p_run FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = format('run %s does not exist', p_run);
    END IF;
    INSERT INTO trading.equity_rollups AS r
        (run_id, width_s, bucket_at, n, first_at, first_equity, last_at, last_equity,
         min_at, min_equity, max_at, max_equity)
    SELECT p_run, w,
           timestamptz 'epoch' + (b / 1000000) * interval '1 second' + (b % 1000000) * interval '1 microsecond',
           n,
           timestamptz 'epoch' + (f / 1000000) * interval '1 second' + (f % 1000000) * interval '1 microsecond', fe,
           timestamptz 'epoch' + (l / 1000000) * interval '1 second' + (l % 1000000) * interval '1 microsecond', le,
           timestamptz 'epoch' + (lo / 1000000) * interval '1 second' + (lo % 1000000) * interval '1 microsecond', loe,
           timestamptz 'epoch' + (hi / 1000000) * interval '1 second' + (hi % 1000000) * interval '1 microsecond', hie
    FROM unnest(p_width, p_bucket_us, p_n, p_first_us, p_first_equity, p_last_us, p_last_equity, p_min_us,
                p_min_equity, p_max_us, p_max_equity) AS u(w, b, n, f, fe, l, le, lo, loe, hi, hie)
    ORDER BY w, b  -- one lock order for concurrent writers of one run (the trigger's)
    ON CONFLICT (run_id, width_s, bucket_at) DO UPDATE SET
        n = r.n + excluded.n,
        first_equity = CASE WHEN excluded.first_at < r.first_at THEN excluded.first_equity ELSE r.first_equity END,
        first_at = LEAST(r.first_at, excluded.first_at),
        last_equity = CASE WHEN excluded.last_at >= r.last_at THEN excluded.last_equity ELSE r.last_equity END,
        last_at = GREATEST(r.last_at, excluded.last_at),
        min_at = CASE WHEN excluded.min_equity < r.min_equity THEN excluded.min_at ELSE r.min_at END,
        min_equity = LEAST(r.min_equity, excluded.min_equity),
        max_at = CASE WHEN excluded.max_equity > r.max_equity THEN excluded.max_at ELSE r.max_at END,
        max_equity = GREATEST(r.max_equity, excluded.max_equity);
END
$$;
REVOKE ALL ON FUNCTION trading.equity_rollups_put(bigint, integer[], bigint[], bigint[], bigint[],
    double precision[], bigint[], double precision[], bigint[], double precision[], bigint[], double precision[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading.equity_rollups_put(bigint, integer[], bigint[], bigint[], bigint[],
    double precision[], bigint[], double precision[], bigint[], double precision[], bigint[], double precision[])
    TO gordon_manager;

-- equity_rollups.run_id: the row-level foreign key becomes checks by the only writers, as 0012 did
-- for equity_points. PostgreSQL checked it once per rollup row (a lookup and a row lock on the run):
-- ~40% of putting a million points' 217k rollup rows. Every row is written by a SECURITY DEFINER
-- function whose run is locked FOR KEY SHARE first: equity_rollups_put itself; the insert trigger
-- after equity_points_run_exists_insert (triggers fire in name order, and that one raises 23503 for
-- a missing run); the update/delete recompute only for runs that exist. Deleting runs deletes their
-- rollups (ON DELETE CASCADE before); truncating runs truncates the points, whose trigger empties
-- the rollups.
ALTER TABLE trading.equity_rollups DROP CONSTRAINT equity_rollups_run_id_fkey;

CREATE FUNCTION trading.runs_delete_equity_rollups() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
BEGIN
    DELETE FROM trading.equity_rollups r USING old_runs o WHERE r.run_id = o.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER runs_delete_equity_rollups AFTER DELETE ON trading.runs
    REFERENCING OLD TABLE AS old_runs FOR EACH STATEMENT EXECUTE FUNCTION trading.runs_delete_equity_rollups();
