"""The Dask worker side of a sweep on a cluster (``sweep_cluster.DaskTrialPool``): imported by the workers.

A sweep's bars, strategy and execution config (one ``SweepCargo``) reach each worker once, in a
``SweepPlugin`` (a Dask ``WorkerPlugin``: the scheduler hands it to every worker, and to any worker that
joins later, which unpickles it once); the worker keeps the cargo under the sweep's token until the plugin
is unregistered. A chunk task carries only the token and its (n, params), never the bars. A scattered
future would not do: Dask's active memory manager drops the replicas no queued task needs, and a worker
would fetch (and unpickle) the bars again after every lull.

Each worker process counts what it received (``received()``, read with ``client.run``): the tests prove with
it that the bars arrive once per worker and that the trials ran there.
"""

from __future__ import annotations

import threading
from typing import Any

from distributed import get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from gordon_manager.backtests.sweep import TrialOutcome, run_trial
from gordon_manager.execution import Bars, ExecutionConfig

__all__ = ["SweepCargo", "SweepPlugin", "received", "reset_received", "run_chunk"]

_CARGOS: dict[str, SweepCargo] = {}
_RECEIVED = {"cargo": 0, "chunks": 0, "trials": 0}
_LOCK = threading.Lock()


def _count(what: str, n: int = 1) -> None:
    with _LOCK:
        _RECEIVED[what] += n


def received() -> dict[str, int]:
    """What this worker process received: cargos unpickled (bars), chunks and trials run."""
    with _LOCK:
        return dict(_RECEIVED)


def reset_received() -> None:
    with _LOCK:
        _RECEIVED.update(cargo=0, chunks=0, trials=0)


class SweepCargo:
    """A sweep's bars, strategy and execution config; counts its unpickling on a worker."""

    __slots__ = ("bars", "config", "strategy")

    def __init__(self, bars: Bars, strategy: str, config: ExecutionConfig) -> None:
        self.bars, self.strategy, self.config = bars, strategy, config

    def __getstate__(self) -> tuple[Bars, str, ExecutionConfig]:
        return self.bars, self.strategy, self.config

    def __setstate__(self, state: tuple[Bars, str, ExecutionConfig]) -> None:
        self.bars, self.strategy, self.config = state
        _count("cargo")


class SweepPlugin(WorkerPlugin):
    """Installs one sweep's cargo on a worker (``setup``) and drops it (``teardown``, at unregister)."""

    def __init__(self, token: str, cargo: SweepCargo) -> None:
        self.token, self.cargo = token, cargo

    def setup(self, worker: Any) -> None:
        with _LOCK:
            _CARGOS[self.token] = self.cargo

    def teardown(self, worker: Any) -> None:
        with _LOCK:
            _CARGOS.pop(self.token, None)


def _released() -> bool:
    """Whether the chunk running in this worker thread was released (cancelled) by its client."""
    try:
        worker = get_worker()
        task = worker.state.tasks.get(worker.get_current_task())
        return task is None or task.state in ("cancelled", "released", "forgotten")
    except Exception:  # Dask's internals moved: run the chunk to its end
        return False


def run_chunk(token: str, chunk: list[tuple[int, dict[str, Any]]]) -> list[TrialOutcome]:
    """A chunk of trials on this worker; stops between two trials once the chunk was released."""
    with _LOCK:
        cargo = _CARGOS.get(token)
    if cargo is None:
        raise LookupError(f"this worker has no bars for sweep pool {token} (its plugin is not installed)")
    _count("chunks")
    outcomes: list[TrialOutcome] = []
    for n, params in chunk:
        if outcomes and _released():
            break
        outcomes.append(run_trial(cargo.bars, cargo.strategy, cargo.config, n, params))
        _count("trials")
    return outcomes
