-- Equity rollups: per run, per fixed UTC time bucket (5 min, 1 h, 1 day), the count and the
-- first, last, lowest and highest equity point with their timestamps.
--
-- Why: a chart of a 10M-point run must be one fast request. Any exact min/max-preserving
-- reduction of the raw points has to read all of them (~1.5-4 s for 10M rows), so the reduction
-- is kept up to date as points are written. The console's downsampled equity reads and
-- GET /performance read these rows; the raw points stay the source of truth.
--
-- Maintained by statement-level triggers with transition tables (one aggregate per statement, so a
-- COPY of a million points costs one pass, and a bot's one-point INSERT three small upserts).
-- Inserts merge into existing buckets (count adds, first/last/min/max combine); updates and deletes
-- recompute the touched days from the raw points. The functions are SECURITY DEFINER: writers of
-- equity_points (gordon_bot, gordon_manager) need no right on the rollup table.
CREATE TABLE trading.equity_rollups (
    run_id        bigint           NOT NULL REFERENCES trading.runs (id) ON DELETE CASCADE,
    width_s       integer          NOT NULL CHECK (width_s IN (300, 3600, 86400)),
    bucket_at     timestamptz      NOT NULL,
    n             bigint           NOT NULL CHECK (n > 0),
    first_at      timestamptz      NOT NULL,
    first_equity  double precision NOT NULL,
    last_at       timestamptz      NOT NULL,
    last_equity   double precision NOT NULL,
    min_at        timestamptz      NOT NULL,
    min_equity    double precision NOT NULL,
    max_at        timestamptz      NOT NULL,
    max_equity    double precision NOT NULL,
    PRIMARY KEY (run_id, width_s, bucket_at)
);

-- The three levels nest inside UTC days (300 and 3600 divide 86400; all are aligned on the epoch),
-- so recomputing whole days keeps every level consistent.
CREATE FUNCTION trading.equity_rollups_merge() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
BEGIN
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

-- Recompute every level of one run over [day_from, day_to) from the raw points.
CREATE FUNCTION trading.equity_rollups_rebuild(p_run bigint, day_from timestamptz, day_to timestamptz)
    RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
BEGIN
    DELETE FROM trading.equity_rollups WHERE run_id = p_run AND bucket_at >= day_from AND bucket_at < day_to;
    WITH l1 AS (
        SELECT run_id, date_bin('300 seconds', ts, timestamptz '1970-01-01 00:00:00+00') AS bucket_at,
               count(*) AS n, min(ts) AS first_at, max(ts) AS last_at,
               min(ARRAY[date_part('epoch', ts), equity]) AS f, max(ARRAY[date_part('epoch', ts), equity]) AS l,
               min(ARRAY[equity, date_part('epoch', ts)]) AS lo,
               max(ARRAY[equity, -date_part('epoch', ts)]) AS hi
        FROM trading.equity_points WHERE run_id = p_run AND ts >= day_from AND ts < day_to GROUP BY 1, 2
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
    INSERT INTO trading.equity_rollups
        (run_id, width_s, bucket_at, n, first_at, first_equity, last_at, last_equity,
         min_at, min_equity, max_at, max_equity)
    SELECT run_id, width_s, bucket_at, n, first_at, f[2], last_at, l[2],
           to_timestamp(lo[2]), lo[1], to_timestamp(-hi[2]), hi[1]
    FROM levels;
END
$$;
REVOKE ALL ON FUNCTION trading.equity_rollups_rebuild(bigint, timestamptz, timestamptz) FROM PUBLIC;

CREATE FUNCTION trading.equity_rollups_recompute() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
DECLARE
    d record;
BEGIN
    FOR d IN
        SELECT DISTINCT run_id, date_bin('86400 seconds', ts, timestamptz '1970-01-01 00:00:00+00') AS day
        FROM (SELECT run_id, ts FROM old_points
              UNION ALL SELECT run_id, ts FROM new_points) touched
        ORDER BY 1, 2
    LOOP
        -- A run being deleted cascades here; its rollups go with it.
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM trading.runs WHERE id = d.run_id);
        PERFORM trading.equity_rollups_rebuild(d.run_id, d.day, d.day + interval '1 day');
    END LOOP;
    RETURN NULL;
END
$$;

CREATE FUNCTION trading.equity_rollups_recompute_deleted() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
DECLARE
    d record;
BEGIN
    FOR d IN
        SELECT DISTINCT run_id, date_bin('86400 seconds', ts, timestamptz '1970-01-01 00:00:00+00') AS day
        FROM old_points ORDER BY 1, 2
    LOOP
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM trading.runs WHERE id = d.run_id);
        PERFORM trading.equity_rollups_rebuild(d.run_id, d.day, d.day + interval '1 day');
    END LOOP;
    RETURN NULL;
END
$$;

CREATE TRIGGER equity_rollups_insert AFTER INSERT ON trading.equity_points
    REFERENCING NEW TABLE AS new_points FOR EACH STATEMENT EXECUTE FUNCTION trading.equity_rollups_merge();
CREATE TRIGGER equity_rollups_update AFTER UPDATE ON trading.equity_points
    REFERENCING OLD TABLE AS old_points NEW TABLE AS new_points
    FOR EACH STATEMENT EXECUTE FUNCTION trading.equity_rollups_recompute();
CREATE TRIGGER equity_rollups_delete AFTER DELETE ON trading.equity_points
    REFERENCING OLD TABLE AS old_points FOR EACH STATEMENT EXECUTE FUNCTION trading.equity_rollups_recompute_deleted();

-- The manager reads the rollups; nobody writes them but the triggers.
GRANT SELECT ON trading.equity_rollups TO gordon_manager;

-- Console reads: a bot's events filtered by kind, newest first; overlay decisions by overlay.
CREATE INDEX bot_events_bot_kind ON trading.bot_events (bot_id, kind, id DESC);
CREATE INDEX overlay_decisions_overlay ON trading.overlay_decisions (overlay, id DESC);

CREATE FUNCTION trading.equity_rollups_truncate() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
BEGIN
    DELETE FROM trading.equity_rollups;
    RETURN NULL;
END
$$;
CREATE TRIGGER equity_rollups_truncate AFTER TRUNCATE ON trading.equity_points
    FOR EACH STATEMENT EXECUTE FUNCTION trading.equity_rollups_truncate();
