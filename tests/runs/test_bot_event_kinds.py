"""Every kind of bot event the code writes has a model of its data (runs/bot_events.py), so the API answers it
typed rather than as `unrecognized`. The writers are found in the source: a new writer with a new kind fails
here until its data is modelled."""

from __future__ import annotations

import re
from pathlib import Path

from gordon_manager.botrunner.contract import StatusReport
from gordon_manager.deploys.schemas import DeployState
from gordon_manager.runs.bot_events import BOT_EVENT_DATA, BotEventRead, read_event
from gordon_manager.runs.service import bot_event_read

SRC = Path(__file__).resolve().parents[2] / "src" / "gordon_manager"
WRITES = [
    re.compile(r'(?:insert_bot_event|store\.event)\([^)]*?kind="([a-z_]+)"', re.S),  # direct writers
    re.compile(r'\.note\("([a-z_]+)"'),  # botrunner.book notes
    re.compile(r'd\.event = \("([a-z_]+)"'),  # reconcile policy
    re.compile(r'self\.event\("([a-z_]+)", "(?:info|warning|error)"'),  # botrunner.commit
    re.compile(r'\("([a-z_]+)", "(?:info|warning|error)"\) (?:if|else)'),  # flattened
    re.compile(r'else \("([a-z_]+)", "(?:info|warning|error)"\)'),  # flatten_incomplete
    re.compile(r"SELECT bot_id, id, '([a-z_]+)', '(?:info|warning|error)'"),  # runs.repo (SQL)
    re.compile(r'EVENT_KIND = "([a-z_]+)"'),  # observability.drift
    re.compile(r'_pause_notes\.append\("([a-z_]+)"\)'),
]


def written_kinds() -> set[str]:
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for pattern in WRITES:
            found.update(pattern.findall(text))
    # kinds made from a value: deploy_{state} of an ended deploy, order_{status} of an executor report
    found.update(f"deploy_{s}" for s in DeployState.__args__ if s in ("aborted", "failed", "inconclusive"))
    status = StatusReport.model_fields["status"].annotation
    found.update(f"order_{s}" for s in status.__args__ if s != "accepted")  # accepted: no event
    return found


def test_every_written_kind_is_modelled():
    kinds = written_kinds()
    assert len(kinds) >= 25  # the scan finds the writers (it would pass vacuously otherwise)
    assert kinds - set(BOT_EVENT_DATA) == set()


def test_every_modelled_kind_is_written_somewhere():
    assert set(BOT_EVENT_DATA) - written_kinds() == set()


def test_each_kind_reads_typed_from_its_writers_data():
    row = {"id": 1, "bot_id": 7, "run_id": None, "level": "info", "message": "m", "at": "2026-05-17T10:00:00Z"}
    event = read_event({**row, "kind": "crashed", "data": {"exitCode": None, "backoffS": 0, "failures": 1}})
    assert isinstance(event, BotEventRead) and event.root.kind == "crashed"
    assert event.model_dump(mode="json", by_alias=True)["data"] == {"exitCode": None, "backoffS": 0.0, "failures": 1}
    drift = bot_event_read({**row, "kind": "portfolio_drift", "data": {  # as observability.drift stores it
        "symbol": "BTCUSDT", "mode": "live", "run_id": 4, "implied_qty": 0.015, "portfolio_qty": 0.01,
        "difference": 0.005, "tolerance": 1e-08, "implied_at": "2026-05-17T12:00:00+02:00", "portfolio_at": None}})
    data = drift.model_dump(mode="json", by_alias=True)["data"]
    assert data["impliedQty"] == "0.015" and data["tolerance"] == "0.00000001"  # quantities: decimal strings
    assert data["impliedAt"] == "2026-05-17T10:00:00Z"
