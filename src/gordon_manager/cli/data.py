"""`gordon-manager data`: import Binance kline CSVs, generate synthetic klines.

Both write ``market_data.klines`` with the admin URL (``GORDON_DATABASE_ADMIN_URL``, else
``GORDON_DATABASE_URL``), or into the embedded server (migrated first) when neither is set, like
``migrate``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from gordon_manager.cli.common import command_database, fail

app = typer.Typer(help="Market data: import Binance kline CSVs, generate synthetic klines.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)


def parse_start(value: str | None) -> int | None:
    """``--start`` (RFC 3339 or a date; naive means UTC) as epoch milliseconds."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an RFC 3339 time or a date (e.g. 2024-01-01T00:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _progress():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=False)


def _summary(results) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="klines imported")
    counts = ("rows", "new rows", "duplicates", "gaps", "missing bars")
    for column in ("source", "symbol", "interval", *counts):
        table.add_column(column, justify="right" if column in counts else "left")
    for r in results:
        s = r.spacing
        table.add_row(r.source, r.symbol, r.interval, f"{r.rows:,}", f"{r.inserted:,}", f"{s.duplicates:,}",
                      f"{s.gap_count:,}", f"{s.missing_bars:,}")
    console = Console()
    console.print(table)
    for line in spacing_notes(results):
        console.print(line, highlight=False, soft_wrap=True)


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def _count(n: int, word: str) -> str:
    return f"{n:,} {_plural(n, word)}"


def spacing_notes(results) -> list[str]:
    """Where the duplicates and gaps of each file are (the first few), one line per kind."""
    notes = []
    for r in results:
        s = r.spacing
        if s.duplicates:
            more = ", …" if s.duplicates > len(s.duplicate_lines) else ""
            notes.append(f"{r.source}: {_count(s.duplicates, 'duplicate open time')} at "
                         f"{_plural(len(s.duplicate_lines), 'line')} {', '.join(map(str, s.duplicate_lines))}{more} "
                         f"(not imported: the first row of each time is kept; {s.conflicting:,} differ from it)")
        if s.gap_count:
            more = ", …" if s.gap_count > len(s.gaps) else ""
            where = ", ".join(f"{missing:,} before line {line}" for line, missing in s.gaps)
            notes.append(f"{r.source}: {_count(s.gap_count, 'gap')}, {_count(s.missing_bars, 'bar')} missing "
                         f"({where}{more})")
    return notes


@app.command("import-klines")
def import_klines(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Binance kline CSV or zip files (BTCUSDT-1m-2024-01.csv).",
                                                exists=True, dir_okay=False, readable=True)],
    symbol: Annotated[str | None, typer.Option("--symbol", metavar="SYMBOL", help="Symbol (default: from the file name).")] = None,
    interval: Annotated[str | None, typer.Option("--interval", metavar="INTERVAL", help="Interval (default: from the file name).")] = None,
) -> None:
    """Import Binance public-data kline CSVs into market_data.klines (re-imports change nothing)."""
    from gordon_manager.db.connect import connect
    from gordon_manager.errors import GordonError
    from gordon_manager.marketdata.importer import import_file

    settings, url = command_database(admin=True)
    timeout = settings.db_connect_timeout_s
    results, errors = [], []

    async def run() -> None:
        conn = await connect(url, timeout=timeout)
        try:
            with _progress() as progress:
                for path in files:
                    task = progress.add_task(path.name, total=None)

                    def step(done: int, total: int, task=task) -> None:
                        progress.update(task, completed=done, total=total)

                    try:
                        results.append(await import_file(conn, path, symbol=symbol, interval=interval, progress=step))
                    except GordonError as exc:  # this file imports nothing; the others still go in
                        errors.append(exc.detail)
                        progress.update(task, description=f"{path.name} [red]failed[/red]")
        finally:
            await conn.close()

    try:
        asyncio.run(run())
    except GordonError as exc:
        fail(exc.detail)
    if results:
        _summary(results)
    for error in errors:
        typer.echo(f"gordon-manager: error: {error}", err=True)
    if errors:
        raise typer.Exit(1)


@app.command("synth")
def synth(
    symbol: Annotated[str, typer.Option("--symbol", metavar="SYMBOL", help="Symbol to store the klines under.")] = "BTCUSDT",
    interval: Annotated[str, typer.Option("--interval", metavar="INTERVAL", help="Bar interval (1m .. 1d).")] = "1m",
    bars: Annotated[int, typer.Option("--bars", metavar="N", min=1, max=50_000_000, help="Number of bars.")] = 100_000,
    seed: Annotated[int, typer.Option("--seed", metavar="SEED", min=0, help="Random seed: same seed, same klines.")] = 1,
    start: Annotated[str | None, typer.Option("--start", metavar="TIME", help="First open time (default 2024-01-01T00:00:00Z).")] = None,
) -> None:
    """Generate seeded synthetic klines (a stochastic-volatility random walk) into market_data.klines."""
    from gordon_manager.db.connect import connect
    from gordon_manager.errors import GordonError
    from gordon_manager.marketdata.importer import import_synthetic

    start_ts = parse_start(start)
    settings, url = command_database(admin=True)
    timeout = settings.db_connect_timeout_s

    async def run():
        conn = await connect(url, timeout=timeout)
        try:
            with _progress() as progress:
                task = progress.add_task(f"synth {symbol} {interval}", total=bars)
                return await import_synthetic(
                    conn, symbol=symbol, interval=interval, n_bars=bars, seed=seed, start_ts=start_ts,
                    progress=lambda done, total: progress.update(task, completed=done, total=total))
        finally:
            await conn.close()

    try:
        result = asyncio.run(run())
    except GordonError as exc:
        fail(exc.detail)
    _summary([result])
