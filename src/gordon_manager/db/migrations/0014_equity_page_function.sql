-- The console's hottest read, one keyset page of a run's equity points, as a function with a
-- generic plan.
--
-- Why: as a prepared statement, PostgreSQL re-planned this query on every execution. The generic
-- plan's estimate, with an unknown LIMIT and unknown time bounds, always looked dearer than a
-- custom plan's. Yet the plan is the same index scan either way. Planning was about a third of the
-- query's CPU (measured: 0.74 → 0.46–0.49 ms per 500-point page on the 2-core box).
-- plan_cache_mode is set for this function only. The console's other reads keep custom plans:
-- their optional filters ("$1 IS NULL OR col = $1") need them.
--
-- Each column comes packed binary: big-endian int64 µs since 2000-01-01, or float8, with NaN for
-- NULL. So the client decodes no per-row records. The aggregates take their input in the
-- subquery's index order; an ORDER BY inside them would add one sort per aggregate. The reader
-- checks that order and restores it if a plan ever changed it. No points: one row of NULLs.
CREATE FUNCTION trading.equity_page(p_run_id bigint, p_after timestamptz, p_before timestamptz, p_limit integer)
    RETURNS TABLE (ts_packed bytea, equity_packed bytea, cash_packed bytea, position_qty_packed bytea,
                   price_packed bytea)
    LANGUAGE plpgsql STABLE
    SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    SELECT string_agg(timestamptz_send(s.ts), ''::bytea),
           string_agg(float8send(s.equity), ''::bytea),
           string_agg(float8send(coalesce(s.cash, 'NaN')), ''::bytea),
           string_agg(float8send(coalesce(s.position_qty, 'NaN')), ''::bytea),
           string_agg(float8send(coalesce(s.price, 'NaN')), ''::bytea)
    FROM (
        SELECT e.ts, e.equity, e.cash, e.position_qty, e.price FROM trading.equity_points e
        WHERE e.run_id = p_run_id AND e.ts > p_after AND e.ts < p_before ORDER BY e.ts LIMIT p_limit
    ) s;
END
$$;

REVOKE ALL ON FUNCTION trading.equity_page(bigint, timestamptz, timestamptz, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION trading.equity_page(bigint, timestamptz, timestamptz, integer) TO gordon_manager;
