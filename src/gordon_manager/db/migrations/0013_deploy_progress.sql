-- Green/blue deploy progress (deploys/controller.py) and service deploy bookkeeping.
--
-- bot_deploys: the shadow-compare is incremental. The controller pins the two runs it compares
-- (the live bot's and the candidate's current runs) and keeps a keyset position on bar time, so
-- each tick reads only bars it has not compared yet (one indexed query per tick). The live bot's
-- spec_version at the start tells the controller when someone changed the live bot underneath it.
ALTER TABLE trading.bot_deploys
    ADD COLUMN from_spec_version integer,
    ADD COLUMN live_run_id       bigint REFERENCES trading.runs (id) ON DELETE SET NULL,
    ADD COLUMN candidate_run_id  bigint REFERENCES trading.runs (id) ON DELETE SET NULL,
    ADD COLUMN compared_through  timestamptz;

-- service_deploys: when the health wait gives up, and when the new container of a deploy that
-- did not finish (aborted/failed) has been removed (NULL = cleanup still owed).
ALTER TABLE trading.service_deploys
    ADD COLUMN health_deadline_at timestamptz,
    ADD COLUMN cleaned_up_at      timestamptz;
CREATE INDEX service_deploys_service ON trading.service_deploys (service, id DESC);
