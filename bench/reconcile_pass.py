"""A reconcile pass over 10,000 bots with nothing to do (target ≤ 100 ms): one fleet query, no
per-bot round trips, and zero writes.

Two fleets: all stopped (observe() returns nothing), and all running (observe() returns one
workload per bot). The runtime here is an in-memory stand-in: 10,000 real processes cannot run on
this machine, and what is measured is the reconciler's own pass (query + decide + record).
Baseline, measured in the same run: the fleet query alone.

    .venv/bin/python bench/reconcile_pass.py [N]
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime

from _common import embedded_postgres, fresh_database, run

from gordon_manager.db.connect import connect, create_pool
from gordon_manager.reconcile import repo
from gordon_manager.reconcile.policy import Thresholds
from gordon_manager.reconcile.reconciler import Reconciler
from gordon_manager.runtimes.base import Observed

N = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
REPEATS = 15


class Leader:
    is_leader = True


class MemoryRuntime:
    """Answers observe() from memory; counts every mutating call."""

    kind = "memory"

    def __init__(self, observed: dict[int, Observed]) -> None:
        self.observed = observed
        self.calls = 0

    async def observe(self):
        return self.observed

    async def start(self, spec):
        self.calls += 1
        raise AssertionError("nothing to do, yet start() was called")

    stop = remove = signal = start


async def seed(admin_url: str, state: str) -> list[int]:
    conn = await connect(admin_url)
    try:
        ids = await conn.fetch(
            "INSERT INTO trading.bot_configs (name, strategy, symbol, interval, image, desired_state, created_by)"
            " SELECT 'bench-' || $2 || '-' || g, 'sma_crossover', 'BTCUSDT', '1m', 'gordon-bot:1', $1, 'bench'"
            " FROM generate_series(1, $3) g RETURNING id", "running" if state == "running" else "stopped", state, N)
        now = datetime.now(UTC)
        await conn.copy_records_to_table(
            "bot_status", schema_name="trading",
            records=[(r["id"], state, f"w{r['id']}", 1, now if state == "running" else None, "memory") for r in ids],
            columns=["bot_id", "observed_state", "workload_id", "observed_version", "running_since", "runtime"])
        return [r["id"] for r in ids]
    finally:
        await conn.close()


async def measure(db, state: str) -> None:
    ids = await seed(db.admin_url, state)
    observed = {}
    if state == "running":
        observed = {i: Observed(bot_id=i, workload_id=f"w{i}", state="running", config_version=1) for i in ids}
    pool = await create_pool(db.manager_url, min_size=1, max_size=2)
    runtime = MemoryRuntime(observed)
    reconciler = Reconciler(pool=pool, runtime=runtime, leader=Leader(), spec_builder=lambda row: None,
                            thresholds=Thresholds(), interval=60)
    passes, queries = [], []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        actions = await reconciler.reconcile()
        passes.append(time.perf_counter() - t0)
        assert not actions, actions
        t0 = time.perf_counter()
        async with pool.acquire() as conn:
            rows = await repo.load_fleet(conn)
        queries.append(time.perf_counter() - t0)
    assert runtime.calls == 0
    fleet = len(rows)
    p_med, q_med = statistics.median(passes), statistics.median(queries)
    print(f"{state:8s} fleet={fleet:6d}  pass median {p_med * 1000:7.1f} ms  best {min(passes) * 1000:7.1f} ms  "
          f"worst {max(passes) * 1000:7.1f} ms | fleet query alone median {q_med * 1000:6.1f} ms  "
          f"(pass/query ratio {p_med / q_med:4.2f})  target <= 100 ms: {'PASS' if p_med <= 0.1 else 'FAIL'}")
    await pool.close()
    conn = await connect(db.admin_url)
    await conn.execute("UPDATE trading.bot_configs SET deleted_at = now() WHERE id = ANY($1)", ids)
    await conn.close()


async def main(server_url: str) -> None:
    db = await fresh_database(server_url)
    print(f"reconcile pass over {N:,} bots with nothing to do ({REPEATS} passes each)")
    await measure(db, "stopped")
    await measure(db, "running")


if __name__ == "__main__":
    with embedded_postgres() as url:
        run(main(url))
