"""The bot's NATS errors are counted by kind (gordon_bot_errors_total), not only logged."""

from __future__ import annotations

from gordon_manager.botrunner.bus import Bus
from tests.infra.net import free_port


async def test_a_bus_that_cannot_reach_nats_counts_the_error():
    errors: list[str] = []
    bus = Bus(url=f"nats://127.0.0.1:{free_port()}", bot_id=1, live=True, on_report=lambda: None,
              on_breaker=lambda event: None, on_error=errors.append, timeout_s=0.2)
    try:
        assert await bus.connect() is False  # nothing listens there
    finally:
        await bus.close()
    assert errors == ["nats_connect"]


async def test_an_invalid_breaker_event_is_counted():
    errors: list[str] = []
    bus = Bus(url="nats://unused", bot_id=1, live=False, on_report=lambda: None, on_breaker=lambda event: None,
              on_error=errors.append)

    class Message:
        data = b'{"not": "a breaker event"}'
        subject = "risk.events.breaker"

    await bus._breaker_message(Message())
    assert errors == ["bad_breaker_event"]
