-- Parameter sweeps (issue 19, item 1): one strategy over one range of bars, many parameter sets.
--
-- A sweep is queued by POST /backtests/sweeps (runner 'manager') or `gordon-manager sweep` (runner
-- 'cli') and executed on a local process pool whose workers hold the bars (loaded once per sweep,
-- shipped once per worker). Trials keep their statistics, never their equity: any trial is re-run
-- as a full backtest (trading.runs) in one call. Every change of a sweep row (status, trials done,
-- best so far) is an outbox event on the 'run_progress' channel (table backtest_sweeps), so /ws
-- carries a sweep's progress next to its runs'. The trials table is not watched (one event per trial
-- would flood the console).
CREATE TABLE trading.backtest_sweeps (
    id               bigserial PRIMARY KEY,
    status           text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    strategy         text NOT NULL,
    symbol           text NOT NULL,
    interval         text NOT NULL,
    range_start      timestamptz NOT NULL,
    range_end        timestamptz NOT NULL,
    config           jsonb NOT NULL,
    method           text NOT NULL CHECK (method IN ('grid', 'random')),
    space            jsonb NOT NULL,
    seed             bigint,
    objective        text NOT NULL,
    min_trades       integer NOT NULL DEFAULT 0 CHECK (min_trades >= 0),
    trials_total     integer NOT NULL CHECK (trials_total >= 0),
    trials_done      integer NOT NULL DEFAULT 0 CHECK (trials_done >= 0),
    best_trial       integer,
    best_value       double precision,
    cancel_requested boolean NOT NULL DEFAULT false,
    error            text,
    runner           text NOT NULL DEFAULT 'manager' CHECK (runner IN ('manager', 'cli')),
    claimed_by       text,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    heartbeat_at     timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK (range_start < range_end)
);
CREATE INDEX backtest_sweeps_queued ON trading.backtest_sweeps (id) WHERE status = 'queued';

-- One parameter set of a sweep: its params, its statistics (the run's stats, no equity), the
-- objective's value, and whether it met the constraints (only feasible trials are ranked).
CREATE TABLE trading.backtest_sweep_trials (
    sweep_id  bigint NOT NULL REFERENCES trading.backtest_sweeps (id) ON DELETE CASCADE,
    n         integer NOT NULL CHECK (n >= 0),
    params    jsonb NOT NULL,
    stats     jsonb,
    value     double precision,
    feasible  boolean NOT NULL DEFAULT false,
    error     text,
    PRIMARY KEY (sweep_id, n)
);
CREATE INDEX backtest_sweep_trials_ranked ON trading.backtest_sweep_trials (sweep_id, value DESC, n)
    WHERE feasible;

GRANT INSERT, UPDATE ON trading.backtest_sweeps, trading.backtest_sweep_trials TO gordon_manager;


CREATE TRIGGER backtest_sweeps_events AFTER INSERT OR UPDATE OR DELETE ON trading.backtest_sweeps
    FOR EACH ROW EXECUTE FUNCTION trading.emit_event('run_progress');
