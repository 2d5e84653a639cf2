"""asyncapi.yaml's executor contract is what the bots send and accept (payloads validated against it)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest
from pydantic import ValidationError

from gordon_manager.botrunner import contract
from gordon_manager.botrunner.book import OrderBook
from gordon_manager.execution import ExecutionConfig, ExecutionModel, OrderReason, OrderType, Side
from tests.events.test_asyncapi import DOC, SCHEMAS, message_schema, validate

AT = datetime(2024, 3, 1, tzinfo=UTC)


def live_book() -> OrderBook:
    model = ExecutionModel(ExecutionConfig(qty_step=Decimal("0.00000001")))
    book = OrderBook(bot_id=42, symbol="BTCUSDT", mode="live", model=model)
    book.run_id = 7
    return book


def test_the_intents_a_live_bot_sends_match_the_document():
    book = live_book()
    model = book.model
    entry = model.submit(side=Side.BUY, order_type=OrderType.MARKET, qty=Decimal("0.00000001"), ts=1709251560000,
                         reason=OrderReason.ENTRY, stop_loss=Decimal("39900.4"), take_profit=Decimal("46000"))
    book.sync(1709251560000, ref_price=42000.5)
    model.submit(side=Side.SELL, order_type=OrderType.LIMIT, qty=Decimal("1.5"), ts=1709251620000,
                 price=Decimal("43000.25"), reason=OrderReason.EXIT, reduce_only=True)
    book.sync(1709251620000)
    model.cancel(entry.id)
    book.sync(1709251680000, cancel_reason="stop")
    intents = book.take().intents
    assert [i.kind for i in intents] == ["new", "new", "cancel"]
    new, limit, cancel = (orjson.loads(i.payload) for i in intents)
    assert validate(new, message_schema("newOrder")) == []
    assert validate(limit, message_schema("newOrder")) == []
    assert validate(cancel, message_schema("cancelOrder")) == []
    assert new["qty"] == "0.00000001" and new["refPrice"] == "42000.5" and new["price"] is None
    assert new["clientOrderId"] == "gb42-1709251560000-0" and new["barAt"] == "2024-03-01T00:06:00Z"
    assert cancel["origClientOrderId"] == new["clientOrderId"] and cancel["clientOrderId"] == new["clientOrderId"] + "-x"
    assert all(len(i.client_order_id) <= 36 for i in intents)


def test_the_documented_examples_are_what_the_bot_accepts_and_sends():
    for name in ("newOrder", "fill"):
        for example in DOC["components"]["messages"][name]["examples"]:
            assert validate(example["payload"], message_schema(name)) == []
    fill = DOC["components"]["messages"]["fill"]["examples"][0]["payload"]
    parsed = contract.parse_report(orjson.dumps(fill))
    assert parsed.qty == Decimal("0.23741") and parsed.fill_id == "bn-8812731"
    status = {"type": "status", "clientOrderId": "gb1-2-0", "status": "rejected", "reason": "no balance",
              "ts": "2024-03-01T00:00:00Z"}
    assert validate(status, message_schema("orderStatus")) == []
    assert contract.parse_report(orjson.dumps(status)).status == "rejected"


@pytest.mark.parametrize("report", [
    {"type": "fill", "fillId": "f", "clientOrderId": "gb1-2-0", "qty": "0", "price": "1", "fee": "0",
     "ts": "2024-03-01T00:00:00Z"},
    {"type": "fill", "fillId": "f", "clientOrderId": "bad id!", "qty": "1", "price": "1", "fee": "0",
     "ts": "2024-03-01T00:00:00Z"},
    {"type": "status", "clientOrderId": "gb1-2-0", "status": "lost", "ts": "2024-03-01T00:00:00Z"},
    {"type": "fill", "fillId": "f", "clientOrderId": "gb1-2-0", "qty": "1", "price": "1", "fee": "0",
     "ts": "2024-03-01T00:00:00"},
])
def test_reports_outside_the_contract_are_refused_by_both(report):
    with pytest.raises(ValidationError):
        contract.parse_report(orjson.dumps(report))
    schema = message_schema("fill" if report["type"] == "fill" else "orderStatus")
    assert validate(report, schema) != [] or "ts" in report and not report["ts"].endswith("Z")


def test_vocabularies_are_the_code_s():
    new = SCHEMAS["NewOrderIntent"]["properties"]
    assert new["reason"]["enum"] == list(contract.NewOrderIntent.model_fields["reason"].annotation.__args__)
    assert SCHEMAS["CancelIntent"]["properties"]["reason"]["enum"] == \
        list(contract.CancelIntent.model_fields["reason"].annotation.__args__)
    assert SCHEMAS["StatusReport"]["properties"]["status"]["enum"] == \
        list(contract.StatusReport.model_fields["status"].annotation.__args__)
    assert SCHEMAS["ClientOrderId"]["pattern"] == contract.ID_PATTERN
    assert DOC["channels"]["orderIntents"]["address"] == "orders.intents.{botId}"
    assert contract.intents_subject(5) == "orders.intents.5" and contract.reports_subject(5) == "orders.fills.5"
    assert DOC["channels"]["executorReports"]["address"] == "orders.fills.{botId}"


def test_the_hint_subjects_are_the_documented_addresses():
    channels = DOC["channels"]
    address = channels["klinesHints"]["address"]
    assert contract.klines_hint_subject("BTCUSDT", "1m") == address.format(symbol="BTCUSDT", interval="1m")
    assert channels["riskHints"]["address"] == contract.HINT_RISK_SUBJECT
