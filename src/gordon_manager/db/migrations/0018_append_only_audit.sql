-- The audit tables are append-only for the manager: it inserts audit rows and reads them, never
-- rewrites history (an UPDATE or DELETE as gordon_manager is refused by PostgreSQL).
REVOKE UPDATE, DELETE, TRUNCATE ON trading.bot_config_audit, trading.operator_audit FROM gordon_manager;
