"""The reconciler's pure decision function, branch by branch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gordon_manager.reconcile.policy import Thresholds, backoff_for, decide
from gordon_manager.runtimes.base import Observed

NOW = datetime(2026, 1, 1, tzinfo=UTC)
T = Thresholds(backoff_base_s=10, backoff_max_s=300, backoff_reset_s=600, quarantine_failures=3,
               quarantine_window_s=600)


def cfg(**kw):
    base = {"desired_state": "running", "spec_version": 1, "delete_requested_at": None}
    base.update(kw)
    return base


def st(**kw):
    base = {"observed_state": "pending", "workload_id": None, "observed_version": None, "restarts": 0,
            "failure_times": [], "backoff_s": 0.0, "next_retry_at": None, "running_since": None,
            "quarantined": False, "quarantine_reason": None, "quarantined_at": None, "last_error": None,
            "last_error_at": None, "metrics_port": None, "runtime": None}
    base.update(kw)
    return base


def obs(state="running", version=1, exit_code=None):
    return Observed(bot_id=1, workload_id="pid:1", state=state, config_version=version, exit_code=exit_code)


def test_backoff_sequence():
    assert [backoff_for(n, T) for n in range(1, 8)] == [0, 10, 20, 40, 80, 160, 300]


def test_pending_running_bot_is_started():
    assert decide(cfg(), st(), None, NOW, T).action == "start"


def test_running_current_workload_needs_nothing_once_recorded():
    status = st(observed_state="running", workload_id="pid:1", observed_version=1, running_since=NOW)
    d = decide(cfg(), status, obs(), NOW, T)
    assert d.action == "none" and d.status == {} and d.event is None


def test_running_workload_adopted_records_status():
    d = decide(cfg(), st(observed_state="stopped"), obs(), NOW, T)
    assert d.action == "none"
    assert d.status["observed_state"] == "running" and d.status["running_since"] == NOW
    assert d.status["workload_id"] == "pid:1"


def test_older_spec_version_is_replaced():
    d = decide(cfg(spec_version=2), st(observed_state="running", running_since=NOW), obs(version=1), NOW, T)
    assert d.action == "start"


def test_pause_and_resume_signal():
    running = st(observed_state="running", workload_id="pid:1", observed_version=1, running_since=NOW)
    assert decide(cfg(desired_state="paused"), running, obs(), NOW, T).action == "pause"
    paused = {**running, "observed_state": "paused"}
    assert decide(cfg(desired_state="running"), paused, obs(), NOW, T).action == "resume"
    assert decide(cfg(desired_state="paused"), paused, obs(), NOW, T).action == "none"


def test_desired_stopped():
    assert decide(cfg(desired_state="stopped"), st(observed_state="running"), obs(), NOW, T).action == "stop"
    d = decide(cfg(desired_state="stopped"), st(observed_state="stopping"), None, NOW, T)
    assert d.action == "none" and d.status["observed_state"] == "stopped"
    exited = decide(cfg(desired_state="stopped"), st(observed_state="stopped"), obs(state="exited"), NOW, T)
    assert exited.action == "none" and exited.status == {}


def test_first_death_restarts_at_once_then_backs_off():
    up = st(observed_state="running", running_since=NOW - timedelta(seconds=5))
    first = decide(cfg(), up, obs(state="exited", exit_code=137), NOW, T)
    assert first.action == "start" and first.status.get("backoff_s", 0.0) == 0 and first.status["restarts"] == 1
    assert first.event[0] == "crashed" and "137" in first.event[2]
    second = decide(cfg(), {**up, "failure_times": [NOW - timedelta(seconds=3)], "restarts": 1}, None, NOW, T)
    assert second.action == "none" and second.status["backoff_s"] == 10
    assert second.status["next_retry_at"] == NOW + timedelta(seconds=10)
    assert second.status["observed_state"] == "backoff"


def test_waits_during_backoff_and_retries_after():
    waiting = st(observed_state="backoff", next_retry_at=NOW + timedelta(seconds=5))
    assert decide(cfg(), waiting, None, NOW, T).action == "none"
    assert decide(cfg(), waiting, None, NOW + timedelta(seconds=6), T).action == "start"
    crashed = st(observed_state="stopped", next_retry_at=NOW + timedelta(seconds=5))
    assert decide(cfg(), crashed, None, NOW, T).status == {"observed_state": "backoff"}


def test_n_failures_in_window_quarantine():
    up = st(observed_state="running", failure_times=[NOW - timedelta(seconds=20), NOW - timedelta(seconds=10)],
            restarts=2)
    d = decide(cfg(), up, obs(state="exited", exit_code=3), NOW, T)
    assert d.action == "none"
    assert d.status["quarantined"] is True and d.status["observed_state"] == "quarantined"
    assert "crash-looping: 3 failures" in d.status["quarantine_reason"]
    assert d.event[0] == "quarantined"


def test_failures_outside_the_window_do_not_count():
    old = [NOW - timedelta(seconds=700), NOW - timedelta(seconds=650)]
    d = decide(cfg(), st(observed_state="running", failure_times=old), None, NOW, T)
    assert "quarantined" not in d.status and d.status["failure_times"] == [NOW] and d.action == "start"


def test_quarantined_bot_is_never_started_and_is_stopped_if_alive():
    q = st(observed_state="quarantined", quarantined=True)
    assert decide(cfg(), q, None, NOW, T).action == "none"
    assert decide(cfg(), q, obs(), NOW, T).action == "stop"


def test_healthy_time_resets_backoff():
    s = st(observed_state="running", workload_id="pid:1", observed_version=1,
           running_since=NOW - timedelta(seconds=601), failure_times=[NOW - timedelta(seconds=700)], backoff_s=10.0)
    d = decide(cfg(), s, obs(), NOW, T)
    assert d.status == {"failure_times": [], "backoff_s": 0.0}


def test_terminal_config_error_waits_for_a_new_spec():
    err = st(observed_state="error", observed_version=1)
    assert decide(cfg(), err, None, NOW, T).action == "none"
    assert decide(cfg(spec_version=2), err, None, NOW, T).action == "start"


def test_delete_removes_then_finalises():
    deleting = cfg(desired_state="stopped", delete_requested_at=NOW)
    assert decide(deleting, st(observed_state="running"), obs(), NOW, T).action == "remove"
    assert decide(deleting, st(observed_state="stopped"), obs(state="exited"), NOW, T).action == "remove"
    d = decide(deleting, st(observed_state="stopped"), None, NOW, T)
    assert d.action == "finalize_delete" and d.status["observed_state"] == "removed"
