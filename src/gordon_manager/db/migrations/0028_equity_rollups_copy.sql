-- Equity rollups of a fresh backtest run written by binary COPY.
--
-- Why: equity_rollups_put (0027) merges the writer's buckets row by row (unnest, five bigint ->
-- timestamptz conversions, ON CONFLICT against the primary key): at a million 1-minute points,
-- ~217k rollup rows, that was about as long as the COPY of the points themselves. A backtest run's
-- rollups are written once, by one writer, for a run that has none yet: nothing to merge. The
-- writer then computes the buckets of all its points at once and COPYs them.
--
-- Protocol (gordon_manager/backtests/writer.py): in the transaction that COPYs the points (with
-- gordon.equity_rollups = writer, 0027), after them, `SELECT trading.equity_rollups_copy_begin(run)`:
-- it locks the run FOR KEY SHARE (as the points' run check does; 23503 when it is missing) and says
-- whether the run has no rollups yet. True: COPY the rollups into trading.equity_rollups. False
-- (the run already has some): equity_rollups_put, which merges. Two writers of one run that both
-- saw none collide on the primary key and one of them rolls back: nothing is ever half-merged.
-- tests/backtests/test_rollups_put.py holds the copied rollups equal to the trigger's and a rebuild.
CREATE FUNCTION trading.equity_rollups_copy_begin(p_run bigint) RETURNS boolean
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, trading AS $$
BEGIN
    PERFORM 1 FROM trading.runs WHERE id = p_run FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation',
            MESSAGE = format('run %s does not exist', p_run);
    END IF;
    RETURN NOT EXISTS (SELECT 1 FROM trading.equity_rollups WHERE run_id = p_run);
END
$$;
REVOKE ALL ON FUNCTION trading.equity_rollups_copy_begin(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading.equity_rollups_copy_begin(bigint) TO gordon_manager;

-- The backtest writer (the manager) is the one role that writes rollups itself; bots never do.
GRANT INSERT ON trading.equity_rollups TO gordon_manager;
