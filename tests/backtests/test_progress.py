"""Honest progress and timing of a backtest run (issue 19, item 6): progress covers loading, the engine and
the write, never goes back and ends at 1; startedAt/finishedAt span the whole run; the phases are timed."""

from __future__ import annotations

from datetime import timedelta

from gordon_manager.backtests import writer
from gordon_manager.backtests.job import PHASES, ROUNDTRIPS_AT, RunJob, _Progress, execute_run
from tests.backtests.test_worker import mconn, queued, status_of  # noqa: F401
from tests.conftest import wait_for
from tests.marketdata.fixtures import kadmin, kline_db  # noqa: F401


def test_progress_maps_each_phase_onto_its_share_and_never_goes_back():
    seen = []
    p = _Progress(lambda phase, value: seen.append((phase, value)))
    p.at("load", 1.0)
    p.engine(0.5)
    p.engine(0.25)  # late report from the engine thread: ignored
    p.at("write", 2.0)  # clamped
    low, high = PHASES["engine"]
    assert seen == [("load", PHASES["load"][1]), ("engine", low + (high - low) / 2),
                    ("engine", low + (high - low) / 2), ("write", 1.0)]
    assert p.take() == 1.0 and p.take() is None
    assert PHASES["load"][0] == 0.0 and PHASES["write"][1] == 1.0
    assert PHASES["load"][1] == PHASES["engine"][0] and PHASES["engine"][1] == PHASES["write"][0]


async def test_progress_written_covers_every_phase_never_goes_back_and_ends_at_one(kline_db, kadmin, mconn,
                                                                                 monkeypatch):
    monkeypatch.setattr(writer, "EQUITY_CHUNK_ROWS", 500)  # 3,000 bars: six COPY chunks
    run_id = await queued(mconn, kline_db, runner="cli")
    real_roundtrips = writer.write_roundtrips
    write_clock = []

    async def once_a_beat_wrote_the_equity_progress(conn, **kwargs):
        # The heartbeat (its own connection) records the write phase's progress while the run's
        # transaction is still open.
        equity_done = PHASES["write"][0] + (PHASES["write"][1] - PHASES["write"][0]) * ROUNDTRIPS_AT

        async def written():
            return (await status_of(kadmin, run_id))["progress"] >= equity_done - 1e-9

        await wait_for(written, timeout=20)
        write_clock.append(await kadmin.fetchval("SELECT clock_timestamp()"))
        return await real_roundtrips(conn, **kwargs)

    monkeypatch.setattr(writer, "write_roundtrips", once_a_beat_wrote_the_equity_progress)
    seen: list[tuple[str, float]] = []
    outcome = await execute_run(RunJob(run_id, kline_db.db.manager_url), on_phase=lambda p, v: seen.append((p, v)))
    assert outcome.status == "done", outcome.error

    # What the CLI's bar shows: every phase, in order, never back, to 1.
    values = [v for _, v in seen]
    assert values == sorted(values) and values[0] == 0.0 and values[-1] == 1.0
    phases = [p for p, _ in seen]
    assert phases == sorted(phases, key=["load", "engine", "write", "done"].index)
    writes = [v for p, v in seen if p == "write"]
    assert len(set(writes)) >= 8  # start, six equity chunks, round trips
    assert all(PHASES["write"][0] <= v <= 1.0 for v in writes)

    # What was written (each update of the row is a run_progress event): never back, ends at 1, and some
    # of it during the write.
    events = await kadmin.fetch("SELECT payload FROM trading.events WHERE channel = 'run_progress'"
                                " AND (payload->'row'->>'id')::bigint = $1 ORDER BY id", run_id)
    written = [e["payload"]["row"]["progress"] for e in events]
    assert written == sorted(written) and written[-1] == 1.0
    assert any(PHASES["write"][0] < v < 1.0 for v in written)

    # startedAt .. finishedAt spans the claim to the commit: past the write, and at least every phase timed.
    run = await kadmin.fetchrow("SELECT started_at, finished_at, stats FROM trading.runs WHERE id = $1", run_id)
    timings = run["stats"]["timings"]
    assert run["finished_at"] > write_clock[0] > run["started_at"]
    phases_s = sum(timings[k] for k in ("load_bars_s", "engine_s", "write_equity_s", "write_roundtrips_s"))
    assert timings["total_s"] >= phases_s
    assert run["finished_at"] - run["started_at"] >= timedelta(seconds=timings["total_s"])


async def test_a_late_heartbeat_cannot_lower_progress_or_touch_an_ended_run(kline_db, kadmin, mconn):
    from gordon_manager.backtests import repo

    run_id = await queued(mconn, kline_db, runner="cli")
    assert await repo.claim_run(mconn, run_id=run_id, owner="test") is not None
    assert await repo.heartbeat(mconn, run_id=run_id, progress=0.6) is False
    assert await repo.heartbeat(mconn, run_id=run_id, progress=0.3) is False
    assert (await status_of(kadmin, run_id))["progress"] == 0.6
    assert await repo.finish_run(mconn, run_id=run_id, status="done", stats={})
    assert await repo.heartbeat(mconn, run_id=run_id, progress=0.7) is True  # ended: stop, nothing written
    assert (await status_of(kadmin, run_id))["progress"] == 1.0
