-- A long backtest's equity points written over other connections, each in its own transaction,
-- while the run's own transaction writes the rollups and round trips and then ends the run.
--
-- Why: one session COPYing a million points is one backend on one core: about 2 s of heap, WAL
-- and primary-key work, most of a 1M-bar run through the API. With the points on other sessions,
-- the run's session writes the rollups and round trips meanwhile.
--
-- Protocol (gordon_manager/backtests/writer.py, PointWriters; backtests/job.py):
-- * Each points writer, on its own connection (READ COMMITTED): BEGIN;
--   `SELECT trading.equity_points_copy_begin(run)` (false: the run is not a running backtest any
--   more, stop); the writer setting of 0027; ONE COPY of its slice of the points; COMMIT. One
--   statement, so the statement trigger's per-run lock (0014, held to commit) is taken once, at
--   the end: two writers do not wait on each other but for that last moment.
-- * The run's transaction writes the rollups of all the points (0028) and the round trips, waits
--   for every points writer to commit, and only then marks the run done. A run is never done
--   without all its points. It never writes points itself while it waits: it would hold the
--   0014 lock the writers' triggers need.
-- * runs_drop_unfinished_results (BEFORE UPDATE OF status): a backtest that goes from running to
--   failed or cancelled (by its worker, a stopping manager, the stale-run recovery, an operator)
--   keeps no results. Its committed points, and any rollups and round trips, are deleted in the
--   same transaction that ends it (before this migration the single write transaction gave the
--   same outcome by rolling back).
-- * The writers' lock: equity_points_copy_begin takes the run's "btwr" advisory lock SHARED (to
--   the writer's commit), then reads the status. Ending the run takes it EXCLUSIVE before the
--   delete: the end waits for every writer in flight, and a writer that begins after it reads the
--   new status (a fresh snapshot per statement) and stops. Nothing else waits: heartbeats, cancel
--   requests and progress updates lock the row as before. The delete must see the writers'
--   commits, so ending a running backtest in a REPEATABLE READ or SERIALIZABLE transaction is
--   refused.
-- * A worker that dies mid-write leaves its run running with the points that committed, until
--   the stale-run recovery (manager runs) ends it and so deletes them; a CLI run whose process
--   died stays running, as before, now possibly with part of its points.
CREATE FUNCTION trading.equity_points_copy_begin(p_run bigint) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(x'62747772'::int, hashint8(p_run));
    RETURN EXISTS (SELECT 1 FROM trading.runs WHERE id = p_run AND kind = 'backtest' AND status = 'running');
END
$$;
REVOKE ALL ON FUNCTION trading.equity_points_copy_begin(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading.equity_points_copy_begin(bigint) TO gordon_manager;

-- 0010's function, unchanged but for the first statement: the points of a run whose results are
-- all being dropped need no rebuilt rollups (one per day of the run, deleted right after).
CREATE OR REPLACE FUNCTION trading.equity_rollups_recompute_deleted() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
DECLARE
    d record;
BEGIN
    IF current_setting('gordon.equity_rollups', true) = 'dropping' THEN
        RETURN NULL;
    END IF;
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

CREATE FUNCTION trading.runs_drop_unfinished_results() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
DECLARE
    was text := coalesce(current_setting('gordon.equity_rollups', true), '');
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
            MESSAGE = format('run %s: a running backtest is ended in a READ COMMITTED transaction only', NEW.id),
            HINT = 'Its points writers'' commits must be visible to the deletion of its results.';
    END IF;
    PERFORM pg_advisory_xact_lock(x'62747772'::int, hashint8(NEW.id));  -- after every writer in flight
    PERFORM set_config('gordon.equity_rollups', 'dropping', true);
    DELETE FROM trading.equity_points WHERE run_id = NEW.id;
    PERFORM set_config('gordon.equity_rollups', was, true);
    DELETE FROM trading.equity_rollups WHERE run_id = NEW.id;
    DELETE FROM trading.roundtrips WHERE run_id = NEW.id;
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION trading.runs_drop_unfinished_results() FROM PUBLIC;
CREATE TRIGGER runs_drop_unfinished_results BEFORE UPDATE OF status ON trading.runs
    FOR EACH ROW
    WHEN (NEW.kind = 'backtest' AND OLD.status = 'running' AND NEW.status IN ('failed', 'cancelled'))
    EXECUTE FUNCTION trading.runs_drop_unfinished_results();
