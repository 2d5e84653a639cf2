"""Sweep trials on a Dask distributed cluster, and the one factory a sweep opens its trial pool with.

``open_pool(bars, strategy, config, workers=, log_level=, dask_address=)`` gives a local
``sweep.TrialPool`` ('spawn' worker processes) when no address is set, else a ``DaskTrialPool`` on the
cluster whose scheduler listens there (``GORDON_MANAGER_SWEEP_DASK_ADDRESS``). Both are a ``TrialRunner``:
``workers``, ``chunk_size(trials)``, ``submit(chunk)`` → a ``concurrent.futures.Future`` of the chunk's
outcomes, ``close(cancel=)``, ``terminate()``, and a context manager; the sweep service drives either the
same way.

On Dask, the bars (with the strategy's name and the execution config: one ``SweepCargo``) go to each
worker once, in a ``WorkerPlugin`` registered for the pool's life (``sweep_cluster_worker``: also to a
worker that joins later); every chunk task carries only the pool's token and its (n, params).

Stop and failure, as the local pool: ``terminate`` (a cancel, a stopping manager, an error) releases the
chunks queued and in flight without waiting for them — a worker notices its running chunk was released
between two trials and returns early, since a Dask worker's thread cannot be killed; ``close`` waits for
the chunks submitted. An unreachable scheduler, a cluster without workers (``WORKERS_TIMEOUT_S``), a chunk
lost with the scheduler connection or a worker that keeps dying (Dask's ``KilledWorker``) is an error
naming the address: the sweep ends ``failed`` with it. The cluster's workers need gordon-manager (the same
version) and the same Dask installed.
"""

from __future__ import annotations

import math
import threading
import uuid
from concurrent.futures import Future
from typing import Any, Protocol

from gordon_manager.backtests.sweep import TrialOutcome, TrialPool
from gordon_manager.execution import Bars, ExecutionConfig
from gordon_manager.strategies import get_strategy

__all__ = ["CLOSE_TIMEOUT_S", "CONNECT_TIMEOUT_S", "WORKERS_TIMEOUT_S", "DaskTrialPool", "DaskUnavailable", "TrialRunner",
           "open_pool"]

CONNECT_TIMEOUT_S = 10.0
"""How long a sweep tries to reach the Dask scheduler before it fails."""
WORKERS_TIMEOUT_S = 10.0
"""How long a sweep waits for the cluster to have a worker before it fails."""
CLOSE_TIMEOUT_S = 5.0
"""How long closing the pool's client may take (a lost scheduler is not waited for)."""


class TrialRunner(Protocol):
    """What the sweep service runs trials on: the local pool or a Dask cluster."""

    workers: int

    def chunk_size(self, trials: int) -> int: ...
    def submit(self, chunk: list[tuple[int, dict[str, Any]]]) -> Future[list[TrialOutcome]]: ...
    def close(self, *, cancel: bool = False) -> None: ...
    def terminate(self) -> None: ...


def open_pool(bars: Bars, strategy: str, config: ExecutionConfig, *, workers: int, log_level: str = "WARNING",
              dask_address: str | None = None) -> TrialRunner:
    """A Dask pool on the cluster at ``dask_address`` when set (``workers`` is then the cluster's threads),
    else a local ``TrialPool`` of ``workers`` processes (0: in the calling thread)."""
    if dask_address:
        return DaskTrialPool(bars, strategy, config, address=dask_address)
    return TrialPool(bars, strategy, config, workers=workers, log_level=log_level)


class DaskUnavailable(RuntimeError):
    """The Dask cluster cannot run the sweep (unreachable, no workers, a chunk lost); names the address."""


# -- the client side -------------------------------------------------------------------------------
class DaskTrialPool:
    """The trial pool on a Dask cluster; the same interface as ``sweep.TrialPool``."""

    def __init__(self, bars: Bars, strategy: str, config: ExecutionConfig, *, address: str,
                 connect_timeout_s: float | None = None, workers_timeout_s: float | None = None) -> None:
        get_strategy(strategy)
        self.bars, self.strategy, self.config, self.address = bars, strategy, config, address
        try:
            from distributed import Client

            from gordon_manager.backtests.sweep_cluster_worker import SweepCargo, SweepPlugin
        except ImportError as exc:  # a dependency; only a broken install lacks it
            raise DaskUnavailable(f"sweeps on the Dask cluster at {address} need `distributed` "
                                  f"(pip install -e .): {exc}") from None
        timeout = CONNECT_TIMEOUT_S if connect_timeout_s is None else connect_timeout_s
        try:
            self._client = Client(address, timeout=timeout, set_as_default=False)
        except Exception as exc:
            raise DaskUnavailable(f"cannot reach the Dask scheduler at {address} (waited {timeout:g} s): "
                                  f"{type(exc).__name__}: {exc}") from None
        self._lock = threading.Lock()
        self._futures: dict[str, Any] = {}  # key -> dask future, until its chunk finished
        self._closed = False
        try:
            wait = WORKERS_TIMEOUT_S if workers_timeout_s is None else workers_timeout_s
            try:
                self._client.wait_for_workers(1, timeout=wait)
            except TimeoutError:
                raise DaskUnavailable(f"the Dask cluster at {address} has no worker (waited {wait:g} s)") from None
            self.workers = max(1, sum(self._client.nthreads().values()))
            self._token = f"gordon-sweep-{uuid.uuid4().hex}"
            try:
                self._client.register_plugin(SweepPlugin(self._token, SweepCargo(bars, strategy, config)),
                                             name=self._token)
            except Exception as exc:  # e.g. a worker without gordon-manager cannot unpickle the plugin
                raise DaskUnavailable(f"the workers of the Dask cluster at {address} could not take the sweep's "
                                      f"bars (gordon-manager must be installed there): {type(exc).__name__}: "
                                      f"{exc}") from None
        except BaseException:
            self._client.close()
            raise

    def chunk_size(self, trials: int) -> int:
        """Trials per task: about 8 tasks per worker thread, at most 64 (as the local pool)."""
        return max(1, min(64, math.ceil(trials / max(1, self.workers * 8))))

    def submit(self, chunk: list[tuple[int, dict[str, Any]]]) -> Future[list[TrialOutcome]]:
        """Run a chunk of (n, params) on a cluster worker; the future is a ``concurrent.futures.Future``."""
        result: Future[list[TrialOutcome]] = Future()
        if self._closed:
            raise RuntimeError("the Dask trial pool is closed")
        from gordon_manager.backtests.sweep_cluster_worker import run_chunk

        key = f"{self._token}-chunk-{uuid.uuid4().hex}"
        task = self._client.submit(run_chunk, self._token, chunk, key=key, pure=False, retries=0)
        with self._lock:
            self._futures[key] = task
        task.add_done_callback(lambda t: self._settle(t, result))
        return result

    def _settle(self, task: Any, result: Future[list[TrialOutcome]]) -> None:
        """Runs on a Dask client thread when a chunk's task ends: hand its outcome to ``result``."""
        with self._lock:
            self._futures.pop(task.key, None)
        if result.done():
            return
        try:
            if task.status == "finished":
                result.set_result(task.result())
            elif task.status == "error":
                exc = task.exception()
                result.set_exception(DaskUnavailable(f"a chunk failed on the Dask cluster at {self.address}: "
                                                     f"{type(exc).__name__}: {exc}"))
            else:  # cancelled: by us (terminate) or by a lost scheduler connection
                reason = "the pool was stopped" if self._closed else "the scheduler connection was lost"
                result.set_exception(DaskUnavailable(f"a chunk was lost on the Dask cluster at {self.address} "
                                                     f"({reason})"))
        except Exception as exc:  # a result that cannot be read is the chunk's failure
            if not result.done():
                result.set_exception(DaskUnavailable(f"a chunk's result was lost on the Dask cluster at "
                                                     f"{self.address}: {type(exc).__name__}: {exc}"))

    def close(self, *, cancel: bool = False) -> None:
        """Wait for the chunks submitted (``cancel``: release them instead), then drop the bars and
        disconnect."""
        if self._closed:
            return
        with self._lock:
            pending = list(self._futures.values())
        if pending and not cancel:
            from distributed import wait

            wait(pending)
        self._shutdown()

    def terminate(self) -> None:
        """Stop at once: release the chunks queued and in flight (their results are dropped), disconnect."""
        if not self._closed:
            self._shutdown()

    def _shutdown(self) -> None:
        self._closed = True
        with self._lock:
            pending = list(self._futures.values())
        try:
            if self._client.status == "running":  # else the scheduler is lost: nothing left to release
                if pending:
                    self._client.cancel(pending, force=True)
                self._client.unregister_worker_plugin(self._token)  # the workers drop the bars
        except Exception:  # lost meanwhile
            pass
        finally:
            self._client.close(timeout=CLOSE_TIMEOUT_S)

    def __enter__(self) -> DaskTrialPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(cancel=True)
