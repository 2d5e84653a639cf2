-- Shadow-compare on actions (deploys/compare.py): a bar where neither bot acts is skipped, not a
-- match. A deploy promotes only with at least min_actions compared action bars agreeing at or above
-- its threshold; without that evidence its window extends up to max_window bars, then it ends
-- 'inconclusive' (terminal, not promoted). An operator may promote an inconclusive deploy with an
-- explicit force (forced_by names them; audited).
--
-- matches / divergences now count action bars only; idle_skipped counts the bars skipped.
ALTER TABLE trading.bot_deploys DROP CONSTRAINT IF EXISTS bot_deploys_state_check;
ALTER TABLE trading.bot_deploys ADD CONSTRAINT bot_deploys_state_check
    CHECK (state IN ('pending', 'shadowing', 'comparing', 'swapping', 'promoted', 'aborted', 'failed',
                     'inconclusive'));
ALTER TABLE trading.bot_deploys
    ADD COLUMN min_actions  integer NOT NULL DEFAULT 5 CHECK (min_actions >= 1),
    ADD COLUMN max_window   integer,
    ADD COLUMN idle_skipped integer NOT NULL DEFAULT 0,
    ADD COLUMN forced_by    text;
-- max_window NULL (rows written by other tools, and deploys from before this migration) = compare_window.
ALTER TABLE trading.bot_deploys ADD CONSTRAINT bot_deploys_max_window_check
    CHECK (max_window IS NULL OR max_window >= compare_window);
-- Where the compare started (just before the live run's first traded bar): the window of outcomes.
ALTER TABLE trading.bot_deploys ADD COLUMN compare_from timestamptz;
