"""The reconciler's decision for one bot, as a pure function of (config, status, observed, now).

Rules (documented in the README too):
- A bot whose deletion was requested: its workload is removed, then the row is soft-deleted.
- A quarantined bot is never started; a live workload of it is stopped.
- desired ``stopped``: a live workload is stopped.
- desired ``running``/``paused``: a live workload of an older spec version is replaced; a live
  current one is told to pause (SIGUSR1) or resume (SIGUSR2) when its observed state differs.
- A workload that was up and is now gone *died*: the failure is recorded. The first failure in the
  window restarts at once (so a killed bot is back within the reconcile wake-up); the next ones
  back off ``base``, ``2·base``, … up to ``max``. ``N`` failures within the window quarantine the
  bot until ``clear-quarantine``. After ``reset`` seconds of healthy running the history clears.
- A terminal configuration error (unknown image, invalid spec) is not retried until the spec
  changes; transient runtime errors are retried after ``base`` seconds without counting towards
  quarantine (a proxy outage is not the bot's fault).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from gordon_manager.runtimes.base import Observed

UP_STATES = frozenset({"running", "paused", "starting"})


@dataclass(frozen=True)
class Thresholds:
    """Backoff and quarantine settings."""

    backoff_base_s: float = 10.0
    backoff_max_s: float = 300.0
    backoff_reset_s: float = 600.0
    quarantine_failures: int = 5
    quarantine_window_s: float = 600.0


@dataclass
class Decision:
    """What to do for one bot, and how its status row changes (only changed fields)."""

    action: str = "none"  # none | start | stop | remove | pause | resume | finalize_delete
    status: dict[str, Any] = field(default_factory=dict)
    event: tuple[str, str, str, dict[str, Any]] | None = None  # kind, level, message, data


def backoff_for(failures: int, t: Thresholds) -> float:
    """Delay before the next restart after ``failures`` failures in the window."""
    if failures <= 1:
        return 0.0
    return min(t.backoff_base_s * 2.0 ** (failures - 2), t.backoff_max_s)


def decide(cfg: Any, st: Any, obs: Observed | None, now: datetime, t: Thresholds) -> Decision:
    """The decision for one bot; ``cfg``/``st`` are mappings of the config and status rows."""
    alive = obs is not None and obs.running
    state = st["observed_state"]
    d = Decision()
    if cfg["delete_requested_at"] is not None:
        if obs is not None:
            d.action = "remove"
            _set(d, st, observed_state="stopping")
        else:
            d.action = "finalize_delete"
            _set(d, st, observed_state="removed", workload_id=None, running_since=None)
        return d
    if st["quarantined"]:
        if alive:
            d.action = "stop"
        _set(d, st, observed_state="quarantined", running_since=None)
        return d
    desired = cfg["desired_state"]
    if desired == "stopped":
        if alive:
            d.action = "stop"
            _set(d, st, observed_state="stopping")
        else:
            _set(d, st, observed_state="stopped", running_since=None, next_retry_at=None, backoff_s=0.0)
        return d
    if alive and obs is not None and obs.config_version == cfg["spec_version"]:  # alive implies obs
        return _keep_running(d, cfg, st, obs, now, t)
    if alive:
        d.action = "start"  # the runtime replaces a workload of an older spec version
        return d
    if state in UP_STATES:
        return _record_failure(d, cfg, st, obs, now, t)
    if state == "error" and st["observed_version"] == cfg["spec_version"]:
        return d  # terminal: wait for a new spec
    retry = st["next_retry_at"]
    if retry is not None and now < retry:
        if state not in ("backoff", "crashed"):
            _set(d, st, observed_state="backoff")
        return d
    d.action = "start"
    return d


def _keep_running(d: Decision, cfg: Any, st: Any, obs: Observed, now: datetime, t: Thresholds) -> Decision:
    desired = cfg["desired_state"]
    state = st["observed_state"]
    if desired == "paused" and state != "paused":
        d.action = "pause"
    elif desired == "running" and state == "paused":
        d.action = "resume"
    elif state not in UP_STATES:
        _set(d, st, observed_state=desired)
    _set(d, st, workload_id=obs.workload_id, observed_version=obs.config_version)
    if st["running_since"] is None:
        _set(d, st, running_since=now)
    elif (st["failure_times"] or st["backoff_s"]) and now - st["running_since"] >= timedelta(seconds=t.backoff_reset_s):
        _set(d, st, failure_times=[], backoff_s=0.0, next_retry_at=None)
    return d


def _record_failure(d: Decision, cfg: Any, st: Any, obs: Observed | None, now: datetime, t: Thresholds) -> Decision:
    window = timedelta(seconds=t.quarantine_window_s)
    failures = [f for f in st["failure_times"] if now - f < window] + [now]
    exit_code = obs.exit_code if obs is not None else None
    detail = f"exit code {exit_code}" if exit_code is not None else "workload gone"
    if len(failures) >= t.quarantine_failures:
        reason = f"crash-looping: {len(failures)} failures within {int(t.quarantine_window_s)}s (last: {detail})"
        _set(d, st, observed_state="quarantined", quarantined=True, quarantine_reason=reason, quarantined_at=now,
             failure_times=failures, running_since=None, last_error=reason, last_error_at=now,
             restarts=st["restarts"] + 1)
        d.event = ("quarantined", "error", reason, {"failures": len(failures), "exitCode": exit_code})
        return d
    backoff = backoff_for(len(failures), t)
    _set(d, st, failure_times=failures, restarts=st["restarts"] + 1, backoff_s=backoff, running_since=None,
         next_retry_at=now + timedelta(seconds=backoff), last_error=f"bot died ({detail})", last_error_at=now,
         observed_state="crashed" if backoff == 0 else "backoff")
    d.event = ("crashed", "warning", f"bot died ({detail}); restart in {backoff:g}s",
               {"exitCode": exit_code, "backoffS": backoff, "failures": len(failures)})
    if backoff == 0:
        d.action = "start"
    return d


def _set(d: Decision, st: Any, **values: Any) -> None:
    for key, value in values.items():
        if st[key] != value:
            d.status[key] = value
