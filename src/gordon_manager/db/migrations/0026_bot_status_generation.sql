-- Issue 18 (controller habits): each writer of a bot's status row works on the row it read.
-- `generation` counts the writes of the reconciler's columns (and of the operator's clear-quarantine
-- override); a write carries the generation it read and is dropped when the row moved on meanwhile
-- (the reconciler then looks at the bot again with what is there now). The bot's heartbeat
-- (last_heartbeat_at) does not count: it is the bot's own column.
ALTER TABLE trading.bot_status ADD COLUMN generation bigint NOT NULL DEFAULT 0;

-- The bot's heartbeat fills metrics_port in only when none is recorded (coalesce reads the column):
-- the reconciler chose the port when it started the bot, and is that column's writer.
GRANT SELECT (metrics_port) ON trading.bot_status TO gordon_bot;
