"""What every `gordon-manager` command shares: failing with one line, reading the settings, and "the
database for this command" (written once: the embedded server when no URL is set, migrated), plus
the option parsing of the research commands (JSON options, validated models, execution overrides).

Domain packages never import the CLI: the commands import them (``cli/`` is the top layer).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer
from pydantic import BaseModel, SecretStr, ValidationError

from gordon_manager.errors import GordonError
from gordon_manager.observability.logging import configure_logging
from gordon_manager.settings import Settings, get_settings


def fail(message: str, code: int = 2) -> None:
    """Print one line to stderr and exit (no traceback for expected failures)."""
    typer.echo(f"gordon-manager: error: {message}", err=True)
    raise typer.Exit(code)


def command_settings(*, quiet: bool = False) -> Settings:
    """The settings (exit 2 naming what is invalid), logging configured (``quiet``: INFO becomes WARNING,
    so a command's own output is not interleaved with log lines)."""
    try:
        settings = get_settings()
    except ValueError as exc:
        fail(f"invalid configuration: {exc}")
    level = "WARNING" if quiet and settings.log_level.upper() == "INFO" else settings.log_level
    configure_logging(level, fmt=settings.log_format)
    return settings


def admin_database(settings: Settings, *, migrate_embedded: bool = True) -> str:
    """The admin URL: the configured one, else the embedded server's (started, and migrated)."""
    from gordon_manager.db.embedded import start_embedded
    from gordon_manager.db.migrate import migrate

    url = settings.admin_url()
    if url is None:
        url = start_embedded(settings.data_dir)
        if migrate_embedded:
            asyncio.run(migrate(url, timeout=settings.db_connect_timeout_s))
    return url


def prepare_database(settings: Settings) -> Settings:
    """Embedded server (when no URL), migrations as admin, and a connectivity check; returns settings to serve with."""
    from gordon_manager.db.connect import connect
    from gordon_manager.db.migrate import migrate
    from gordon_manager.db.urls import with_user

    if settings.database_url is None:
        admin_url = admin_database(settings)
        settings = settings.model_copy(update={"database_url": SecretStr(with_user(admin_url, "gordon_manager"))})
    elif settings.migrate_on_start and settings.database_admin_url is not None:
        asyncio.run(migrate(settings.database_admin_url.get_secret_value(), timeout=settings.db_connect_timeout_s))

    async def ping() -> None:
        assert settings.database_url is not None
        conn = await connect(settings.database_url.get_secret_value(), timeout=settings.db_connect_timeout_s)
        await conn.close()

    asyncio.run(ping())
    return settings


def command_database(*, admin: bool = False) -> tuple[Settings, str]:
    """(settings, database URL) for a command that works in this process, exit 2 on any failure.

    ``admin=False``: the manager's URL, the database prepared as ``serve`` does (``prepare_database``),
    logs quiet. ``admin=True`` (imports): the admin URL, the embedded server migrated when it is used.
    """
    settings = command_settings(quiet=not admin)
    try:
        if admin:
            return settings, admin_database(settings)
        settings = prepare_database(settings)
    except GordonError as exc:
        fail(exc.detail)
    assert settings.database_url is not None
    return settings, settings.database_url.get_secret_value()


def json_object(option: str, text: str, *, example: str = "") -> dict[str, Any]:
    """The JSON object an option holds, or a clear exit (2) naming the option."""
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{option} is not valid JSON: {exc}")
    if not isinstance(parsed, dict):
        fail(f"{option} must be a JSON object" + (f", e.g. '{example}'" if example else ""))
    return parsed


def validated(model: type[BaseModel], raw: dict[str, Any], what: str) -> Any:
    """``model`` validated from ``raw``, or an exit (2) listing every refused field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}"
                            for e in exc.errors(include_url=False))
        fail(f"invalid {what}: {reasons}")


def execution_overrides(*, fee_bps: float | None, slippage_bps: float | None,
                        initial_cash: float | None = None) -> dict[str, Any]:
    """The execution settings the options give (the rest take their defaults)."""
    execution: dict[str, Any] = {}
    if fee_bps is not None:
        execution.update(taker_fee_bps=str(fee_bps), maker_fee_bps=str(fee_bps))
    if slippage_bps is not None:
        execution["slippage_bps"] = str(slippage_bps)
    if initial_cash is not None:
        execution["initial_cash"] = str(initial_cash)
    return execution
