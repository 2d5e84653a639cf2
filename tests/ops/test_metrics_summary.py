"""GET /bff/bots/{bot_id}/metrics-summary against a real Prometheus scraping a real /metrics."""

from __future__ import annotations

import time

import pytest

from gordon_manager.proxies import prometheus
from gordon_manager.proxies.prometheus import BOT_METRICS, SUMMARY_QUERIES
from tests.conftest import wait_for
from tests.ops.conftest import closed_port_url
from tests.ops.peers import start_prometheus

ROUTE = "/bff/bots/{}/metrics-summary"


def test_six_queries_use_the_documented_bot_metrics():
    assert list(SUMMARY_QUERIES) == ["up", "decisions_per_min", "orders_per_min", "errors_per_min", "equity",
                                     "last_bar_age_seconds"]
    rendered = " ".join(q.format(bot_id=42) for q in SUMMARY_QUERIES.values())
    for name in BOT_METRICS:
        assert name in rendered
    assert rendered.count('bot_id="42"') == 9  # the three rates fall back to 0 while the bot is up


async def test_full_summary_of_a_scraped_bot(prom_stack, ops_app, bots):
    bot = await bots.create()
    bot.metrics.equity.set(10234.5)
    bot.metrics.decisions.inc(3)
    async with ops_app(file_sd_path=prom_stack.sd_file,
                       peers={"gordon_prometheus_url": prom_stack.prometheus.url}) as (_app, client):

        async def complete():
            bot.metrics.decisions.inc()
            bot.metrics.orders.inc()
            bot.metrics.last_bar.set(time.time())
            body = (await client.get(ROUTE.format(bot.id))).json()
            # rate() needs two scrapes: until then the counters read 0 (scraped, nothing counted yet)
            return body if body["complete"] and body["decisionsPerMin"] and body["ordersPerMin"] else None

        body = await wait_for(complete, timeout=25, interval=0.5)
        assert body["botId"] == bot.id
        assert body["up"] is True
        assert body["equity"] == "10234.5"
        assert body["decisionsPerMin"] > 0 and body["ordersPerMin"] > 0
        assert body["errorsPerMin"] == 0
        assert 0 <= body["lastBarAgeSeconds"] < 30
        assert body["missing"] == []


async def test_partial_summary_names_what_is_missing(prom_stack, ops_app, bots, monkeypatch):
    bot = await bots.create(metrics=("equity",))
    bot.metrics.equity.set(500.0)
    # A query Prometheus refuses (syntax error) stands for one that fails.
    monkeypatch.setitem(SUMMARY_QUERIES, "orders_per_min", "sum(rate(gordon_bot_orders_total[5m]")
    async with ops_app(file_sd_path=prom_stack.sd_file,
                       peers={"gordon_prometheus_url": prom_stack.prometheus.url}) as (_app, client):

        async def scraped():
            body = (await client.get(ROUTE.format(bot.id))).json()
            # The queries run concurrently: one scrape can land between them, so wait until every
            # query that has data once the bot is scraped has it.
            scraped_fields = ("up", "equity", "decisionsPerMin", "errorsPerMin")
            return body if all(body[name] is not None for name in scraped_fields) else None

        body = await wait_for(scraped, timeout=20, interval=0.5)
        assert body["up"] is True and body["equity"] == "500"
        assert body["complete"] is False
        missing = {m["query"]: m for m in body["missing"]}
        assert missing["orders_per_min"]["reason"] == "error"
        assert "prometheus refused the query (400)" in missing["orders_per_min"]["detail"]
        assert missing["last_bar_age_seconds"]["reason"] == "no_data"
        assert set(missing) == {"orders_per_min", "last_bar_age_seconds"}
        # Counters the bot has not exposed yet read as 0 while it is scraped, not as unknown.
        assert body["decisionsPerMin"] == 0 and body["errorsPerMin"] == 0
        assert body["ordersPerMin"] is None


async def test_timeouts_give_a_partial_answer_never_a_500(prom_stack, ops_app, bots):
    bot = await bots.create(serve_metrics=False)
    async with ops_app(http_timeout_s=0.000001,
                       peers={"gordon_prometheus_url": prom_stack.prometheus.url}) as (_app, client):
        response = await client.get(ROUTE.format(bot.id))
    assert response.status_code == 200
    body = response.json()
    assert body["complete"] is False
    assert {m["reason"] for m in body["missing"]} == {"timeout"}
    assert len(body["missing"]) == 6


async def test_prometheus_down_gives_a_partial_answer(ops_app, bots, tmp_path):
    bot = await bots.create(serve_metrics=False)
    spare = start_prometheus(tmp_path / "spare", config_text="global:\n  scrape_interval: 1s\n")
    try:
        async with ops_app(peers={"gordon_prometheus_url": spare.url}) as (_app, client):
            body = (await client.get(ROUTE.format(bot.id))).json()
            assert {m["reason"] for m in body["missing"]} == {"no_data"}  # reachable, nothing scraped
            spare.stop()
            response = await client.get(ROUTE.format(bot.id))
        assert response.status_code == 200
        body = response.json()
        assert body["complete"] is False and body["up"] is None
        assert {m["reason"] for m in body["missing"]} == {"error"}
        assert all("prometheus is unreachable" in m["detail"] for m in body["missing"])
    finally:
        spare.stop()


async def test_unknown_bot_is_404_and_unconfigured_is_503(ops_app, bots):
    async with ops_app(peers={"gordon_prometheus_url": closed_port_url()}) as (_app, client):
        response = await client.get(ROUTE.format(2**40))
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"
    async with ops_app() as (_app, client):
        response = await client.get(ROUTE.format(1))
    assert response.status_code == 503
    problem = response.json()
    assert problem["type"] == "/problems/peer-not-configured"
    assert prometheus.ENV in problem["detail"]
    assert problem["peer"] == "prometheus"


@pytest.mark.parametrize("bot_id", ["0", "abc"])
async def test_bad_bot_id_is_422(ops_app, bot_id):
    async with ops_app(peers={"gordon_prometheus_url": closed_port_url()}) as (_app, client):
        assert (await client.get(ROUTE.format(bot_id))).status_code == 422
