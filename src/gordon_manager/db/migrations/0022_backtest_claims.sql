-- Which backtest runner claimed a run (host:pid:nonce of the manager process whose worker runs it).
-- With it, a stopping manager fails only the runs its own workers run, and a dead one's runs are
-- recovered by lease (a heartbeat older than GORDON_MANAGER_BACKTEST_STALE_AFTER_S), never "all
-- queued or running": a second replica starting no longer fails the first one's backtests.
ALTER TABLE trading.runs ADD COLUMN claimed_by text;
