-- Walk-forward sweeps (issue 19, item 2): the sweep's range split into k train/test folds (rolling or
-- anchored); each fold's in-sample optimum (the sweep's trials run on its train bars) is evaluated
-- out-of-sample on the bars that follow, so the gap between the two is visible.
--
-- backtest_sweeps.walk_forward holds the request's settings (NULL: a plain sweep) and
-- fold_trials_done the trial runs done over the folds (with trials_done, the progress of the whole
-- sweep; it is written with the heartbeat, so a fold's progress is a run_progress event like a
-- trial's). One row per fold, written when its train/test windows are known (execution start) and
-- filled when the fold is done; not watched (GET /backtests/sweeps/{id} reads them).
ALTER TABLE trading.backtest_sweeps
    ADD COLUMN walk_forward     jsonb,
    ADD COLUMN fold_trials_done integer NOT NULL DEFAULT 0 CHECK (fold_trials_done >= 0);

CREATE TABLE trading.backtest_sweep_folds (
    sweep_id        bigint NOT NULL REFERENCES trading.backtest_sweeps (id) ON DELETE CASCADE,
    fold            integer NOT NULL CHECK (fold >= 0),
    train_first     integer NOT NULL CHECK (train_first >= 0),   -- bar indices within the sweep's range
    train_bars      integer NOT NULL CHECK (train_bars > 0),
    test_first      integer NOT NULL CHECK (test_first >= train_first + train_bars),
    test_bars       integer NOT NULL CHECK (test_bars > 0),
    train_from      timestamptz NOT NULL,
    train_to        timestamptz NOT NULL,
    test_from       timestamptz NOT NULL,
    test_to         timestamptz NOT NULL,
    feasible_trials integer,
    best_trial      integer,
    params          jsonb,
    is_value        double precision,
    is_stats        jsonb,
    oos_value       double precision,
    oos_stats       jsonb,
    error           text,
    done            boolean NOT NULL DEFAULT false,
    PRIMARY KEY (sweep_id, fold)
);

GRANT INSERT, UPDATE ON trading.backtest_sweep_folds TO gordon_manager;
