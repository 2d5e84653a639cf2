"""Database access: pool, embedded server, migrations."""
