-- A long backtest's equity points written over other connections, each in its own transaction,
-- while the run's own transaction writes the rollups and round trips and then ends the run.
--
-- Why: one session COPYing a million points is one backend on one core: about 2 s of heap, WAL
-- and primary-key work, most of a 1M-bar run through the API. Two sessions each COPY half the
-- points at once and the run's session writes the rollups and round trips meanwhile: the
-- database's part of the write runs on both cores.
--
-- Protocol (gordon_manager/backtests/writer.py, PointWriters; backtests/job.py):
-- * Each points writer, on its own connection: BEGIN; `SELECT trading.equity_points_copy_begin(run)`
--   (false: the run is not a running backtest any more, stop); the writer setting of 0027; ONE
--   COPY of its slice of the points; COMMIT. One statement, so the statement trigger's per-run
--   lock (0014, held to commit) is taken once, at the end: two writers do not wait on each other
--   but for that last moment.
-- * The run's transaction writes the rollups of all the points (0028) and the round trips, waits
--   for every points writer to commit, and only then marks the run done. A run is never done
--   without all its points.
-- * equity_points_copy_begin locks the run FOR SHARE until the writer commits. Ending the run
--   (failed or cancelled, by its worker, a stopping manager or the stale-run recovery) updates
--   the row, so it waits for every writer in flight to commit or roll back. Then:
-- * runs_drop_unfinished_results: a backtest that goes from running to failed or cancelled keeps
--   no results. Its committed points, and any rollups and round trips, are deleted in the same
--   transaction that ends it. Before this migration the single write transaction gave the same
--   outcome by rolling back.
CREATE FUNCTION trading.equity_points_copy_begin(p_run bigint) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
BEGIN
    PERFORM 1 FROM trading.runs WHERE id = p_run AND kind = 'backtest' AND status = 'running' FOR SHARE;
    RETURN FOUND;
END
$$;
REVOKE ALL ON FUNCTION trading.equity_points_copy_begin(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading.equity_points_copy_begin(bigint) TO gordon_manager;

CREATE FUNCTION trading.runs_drop_unfinished_results() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
BEGIN
    DELETE FROM trading.equity_points WHERE run_id = NEW.id;
    DELETE FROM trading.equity_rollups WHERE run_id = NEW.id;
    DELETE FROM trading.roundtrips WHERE run_id = NEW.id;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION trading.runs_drop_unfinished_results() FROM PUBLIC;
CREATE TRIGGER runs_drop_unfinished_results AFTER UPDATE OF status ON trading.runs
    FOR EACH ROW
    WHEN (NEW.kind = 'backtest' AND OLD.status = 'running' AND NEW.status IN ('failed', 'cancelled'))
    EXECUTE FUNCTION trading.runs_drop_unfinished_results();
