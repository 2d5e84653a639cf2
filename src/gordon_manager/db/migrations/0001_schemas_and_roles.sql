-- Schemas and the service roles. Roles are cluster-wide, so they are created only when missing
-- (several databases of one cluster may hold Gordon schemas, e.g. in tests). No passwords here:
-- credentials are set by the operator (ALTER ROLE ... PASSWORD) and never live in migrations.
CREATE SCHEMA IF NOT EXISTS trading;
CREATE SCHEMA IF NOT EXISTS market_data;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gordon_manager') THEN
        CREATE ROLE gordon_manager LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    -- The bot runner (the process inside a bot container) writes its own run, decisions,
    -- events and equity; it gets its own, smaller role.
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'gordon_bot') THEN
        CREATE ROLE gordon_bot LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
END
$$;

-- Nobody but the owner creates objects in our schemas.
REVOKE ALL ON SCHEMA trading FROM PUBLIC;
REVOKE ALL ON SCHEMA market_data FROM PUBLIC;
