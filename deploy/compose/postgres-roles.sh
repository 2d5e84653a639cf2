#!/bin/sh
# First start of the stack's PostgreSQL: the service roles, with the passwords from the environment.
# The manager's migrations (run by `serve` with GORDON_DATABASE_ADMIN_URL) find them and grant them
# what they need; they never set passwords themselves.
set -eu
psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" \
     -v manager_pw="$GORDON_MANAGER_DB_PASSWORD" -v bot_pw="$GORDON_BOT_DB_PASSWORD" <<'SQL'
CREATE ROLE gordon_manager LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'manager_pw';
CREATE ROLE gordon_bot LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'bot_pw';
SQL
