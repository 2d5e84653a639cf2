-- Issue 17: a bot container is scraped on its own address on the bots' network (file-SD target
-- <metrics_host>:<metrics_port>); the reconciler records the address it observed. NULL: the manager's
-- host (process runtime, loopback).
ALTER TABLE trading.bot_status ADD COLUMN metrics_host text;
