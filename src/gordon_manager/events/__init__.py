"""Live events: Postgres NOTIFY and NATS JetStream fanned out to console WebSocket clients (GET /ws).

``listener`` (on the process's LISTEN connection, ``db/listen.py``; replay from the outbox after a reconnect) and
``nats_consumer`` (the ``manager-risk`` durable consumer of ``risk.events.>``) feed the ``hub``, which
serialises each event once, batches within a short window and hands the same bytes to every
subscriber's bounded queue; ``session`` is one WebSocket connection (reader + supervised writer).
"""
