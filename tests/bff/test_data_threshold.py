"""The default stale threshold comes from settings (GORDON_MANAGER_SOURCE_STALE_AFTER_S)."""

from __future__ import annotations

import pytest


@pytest.fixture
def reads_settings_overrides() -> dict:
    return {"source_stale_after_s": 1000.0}


async def test_default_threshold_is_the_setting(api, admin):
    await admin.execute("TRUNCATE trading.source_freshness")
    await admin.execute("INSERT INTO trading.source_freshness (source, last_update_at) VALUES"
                        " ('macro', now() - interval '400 seconds'), ('old', now() - interval '1200 seconds')")
    by = {s["source"]: s for s in (await api.get("/source-health")).json()["sources"]}
    assert by["macro"]["stale"] is False and by["macro"]["staleAfterSeconds"] == 1000.0
    assert by["old"]["stale"] is True and by["old"]["threshold"] == "default"
