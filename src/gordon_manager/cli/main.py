"""The `gordon-manager` command: serve, migrate, bot, openapi, asyncapi; backtest, sweep and data from their modules."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import sys
import time
from typing import Annotated

import typer

from gordon_manager import __version__
from gordon_manager.cli.backtest import backtest as backtest_command
from gordon_manager.cli.common import admin_database, fail, prepare_database
from gordon_manager.cli.data import app as data_app
from gordon_manager.cli.sweep import sweep as sweep_command
from gordon_manager.errors import GordonError
from gordon_manager.observability.logging import configure_logging
from gordon_manager.settings import Settings, get_settings

# Plain help (click's): options with their metavars (NAME, TIME, …), flags without a type.
app = typer.Typer(help="gordon-manager: Gordon's control plane and console BFF.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"gordon-manager {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """gordon-manager: Gordon's control plane and console BFF."""


def check_port_free(host: str, port: int) -> None:
    """Fail clearly when another process already listens on the bind address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                fail(f"port {port} on {host} is already in use (is another gordon-manager running? "
                     f"set GORDON_MANAGER_BIND_ADDR to use another address)")
            fail(f"cannot bind {host}:{port}: {exc.strerror}")


@app.command()
def serve(
    bind: Annotated[str | None, typer.Option("--bind", metavar="HOST:PORT",
                                             help="Address to listen on (overrides GORDON_MANAGER_BIND_ADDR; "
                                                  "default :8083).")] = None,
) -> None:
    """Start the HTTP/WS service (embedded PostgreSQL when GORDON_DATABASE_URL is unset)."""
    started = time.perf_counter()
    if bind is not None:
        os.environ["GORDON_MANAGER_BIND_ADDR"] = bind  # the settings (and worker processes) read it
    try:
        settings = get_settings()
    except ValueError as exc:
        fail(f"invalid configuration: {exc}")
    configure_logging(settings.log_level, fmt=settings.log_format)
    host, port = settings.host_port
    check_port_free(host, port)
    embedded = settings.database_url is None
    try:
        settings = prepare_database(settings)
    except GordonError as exc:
        fail(exc.detail)
    typer.echo(f"gordon-manager: database ready in {time.perf_counter() - started:.1f}s; "
               f"serving on http://{host}:{port}", err=True)
    stop_bots = None
    if embedded:
        # The process that started the embedded server restarts it when it dies (with several workers
        # too: they only connect to it). Its supervisor stops at exit before the server is stopped.
        start_supervisor(settings)
        if settings.runtime == "process":
            stop_bots = process_bots_stopper(settings)
    stop_cleanly_on_sigterm()
    try:
        _serve(settings, host, port)
    finally:
        # Here, not in an exit hook: the embedded database (stopped by one) is still up, and the
        # runtime can still run work on threads (none can be started once the interpreter is exiting).
        if stop_bots is not None:
            stop_bots()


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from gordon_manager.app import create_app

    if settings.workers > 1:
        _serve_workers(settings, host, port)
        return
    try:
        application = create_app(settings)
    except GordonError as exc:
        fail(exc.detail)
    config = uvicorn.Config(application, host=host, port=port, log_config=None, access_log=False,
                            proxy_headers=False, server_header=False, lifespan="on", **server_limits(settings))
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(1)


def stop_cleanly_on_sigterm() -> None:
    """Make SIGTERM (docker stop, systemd) end ``serve`` like Ctrl-C does: through the exit hooks.

    uvicorn shuts down gracefully on SIGTERM, then raises the signal again with the handler that was
    installed before it; with the default action the process would die right there, skipping the
    atexit hooks that stop the embedded PostgreSQL (and its supervisor). Exiting with 143 (128 +
    SIGTERM) keeps the conventional status.
    """
    def exit_143(signum, frame) -> None:  # noqa: ARG001
        raise SystemExit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, exit_143)


def process_bots_stopper(settings: Settings, *, timeout_s: float = 10.0):
    """With the embedded database, ``serve`` stopping (Ctrl-C, SIGTERM) stops the bots it ran as local
    processes too: their database is about to stop. Each gets SIGTERM (it commits its batch and exits;
    the reconciler starts it again with the next ``serve``), SIGKILL after ``timeout_s``. With a database
    of its own (``GORDON_DATABASE_URL``) a manager leaves its bots running and adopts them when it comes
    back. Returns the function that does it (``serve`` calls it once it stopped serving)."""
    from gordon_manager.runtimes.process import ProcessRuntime

    state_dir = settings.data_dir / "process-runtime"

    def stop_bots() -> None:
        async def stop_all() -> list[int]:
            runtime = ProcessRuntime(state_dir=state_dir)
            running = [bot_id for bot_id, seen in (await runtime.observe()).items() if seen.state == "running"]
            results = await asyncio.gather(*(runtime.stop(bot_id, timeout_s=timeout_s) for bot_id in running),
                                           return_exceptions=True)
            await runtime.close()
            return [bot_id for bot_id, result in zip(running, results, strict=True) if result is None]

        if state_dir.exists():
            stopped = asyncio.run(stop_all())
            if stopped:
                typer.echo(f"gordon-manager: stopped {len(stopped)} bot process(es) with the embedded database",
                           err=True)

    return stop_bots


def start_supervisor(settings: Settings):
    """Watch the embedded PostgreSQL of ``settings.data_dir`` and restart it when it dies (db/supervisor.py)."""
    from gordon_manager.db.embedded import embedded_server
    from gordon_manager.db.supervisor import SupervisorPolicy, supervise_embedded

    policy = SupervisorPolicy(check_interval_s=settings.embedded_db_check_interval_s,
                              backoff_base_s=settings.embedded_db_backoff_base_s,
                              backoff_max_s=settings.embedded_db_backoff_max_s,
                              backoff_reset_s=settings.embedded_db_backoff_reset_s)
    return supervise_embedded(embedded_server(settings.data_dir), policy)


def _serve_workers(settings: Settings, host: str, port: int) -> None:
    """Several uvicorn worker processes sharing the socket; they read their settings from the environment."""
    import uvicorn

    # The workers must reach the database this process prepared (embedded or not) without migrating again.
    assert settings.database_url is not None  # prepare_database ran
    os.environ["GORDON_DATABASE_URL"] = settings.database_url.get_secret_value()
    os.environ["GORDON_MANAGER_MIGRATE_ON_START"] = "false"
    os.environ["GORDON_MANAGER_DATA_DIR"] = str(settings.data_dir)
    uvicorn.run("gordon_manager.app:serve_app", factory=True, workers=settings.workers, host=host, port=port,
                log_config=None, access_log=False, proxy_headers=False, server_header=False, lifespan="on",
                **server_limits(settings, by_name=True))


def server_limits(settings: Settings, *, by_name: bool = False) -> dict:
    """uvicorn options enforcing the limits of the head (http/protocol.py) and of /ws frames."""
    from gordon_manager.http.protocol import GuardedHttpProtocol

    GuardedHttpProtocol.configure(settings)  # worker processes configure it again in serve_app()
    http = "gordon_manager.http.protocol:GuardedHttpProtocol" if by_name else GuardedHttpProtocol
    return {"http": http, "ws_max_size": settings.ws_max_frame_bytes}


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply pending migrations with GORDON_DATABASE_ADMIN_URL (or GORDON_DATABASE_URL)."""
    from gordon_manager.db.migrate import migrate

    settings = get_settings()
    configure_logging(settings.log_level, fmt=settings.log_format)
    url = admin_database(settings, migrate_embedded=False)  # migrated right below
    try:
        applied = asyncio.run(migrate(url, timeout=settings.db_connect_timeout_s))
    except GordonError as exc:
        fail(exc.detail)
    typer.echo(f"applied {len(applied)} migration(s): {applied}" if applied else "database is up to date")


@app.command()
def bot() -> None:
    """Run one bot (the process inside a bot container): reads GORDON_BOT_ID and GORDON_DATABASE_URL."""
    import uvloop

    from gordon_manager.botrunner.main import BotEnv, run_bot

    configure_logging(os.environ.get("GORDON_MANAGER_LOG_LEVEL", "INFO"))
    try:
        env = BotEnv.from_environ()
        # uvloop: the bot's event loop wakes on every hint, report and query answer; its C loop costs less
        # CPU per wakeup than asyncio's, and a hundred bots share the host's cores (bench/live_loop.py).
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            code = runner.run(run_bot(env))
    except GordonError as exc:
        fail(exc.detail)
    raise typer.Exit(code)


@app.command()
def openapi() -> None:
    """Print the OpenAPI document as YAML (this is what openapi.yaml must contain)."""
    from gordon_manager.app import create_app

    typer.echo(render_openapi(create_app(get_settings())), nl=False)


def render_openapi(application) -> str:
    """The app's OpenAPI document as stable YAML."""
    from gordon_manager.http.openapi import to_yaml

    return to_yaml(application.openapi())


@app.command()
def asyncapi() -> None:
    """Print the AsyncAPI document of /ws and the bus as YAML (this is what asyncapi.yaml must contain)."""
    from gordon_manager.events.asyncapi import render

    typer.echo(render(), nl=False)


app.command("backtest")(backtest_command)
app.command("sweep")(sweep_command)
app.add_typer(data_app, name="data")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
