"""The executor contract: the order intents bots publish and the reports gordon-executor sends back.

Written down for both sides in ``asyncapi.yaml`` (channels ``orderIntents`` and ``executorReports``)
and in the README ("The live loop"); a test validates these models' JSON against that document.

* Intents: JetStream stream ``ORDER_INTENTS``, subject ``orders.intents.<bot_id>``. A new order or a
  cancel, each with its own deterministic ``clientOrderId``, which is also the ``Nats-Msg-Id``
  header (JetStream drops a republished copy within ``DEDUP_WINDOW_S``; the executor must be
  idempotent by ``clientOrderId`` beyond it).
* Reports: stream ``ORDER_REPORTS``, subject ``orders.fills.<bot_id>``: fills (executor fill id,
  quantity, price, fee) and order statuses (accepted, rejected, cancelled, expired), read by the bot
  through its durable consumer ``bot-<bot_id>``.

Client order ids (at most 36 characters of ``[A-Za-z0-9-]`` for bot ids below 10^9, as exchanges
such as Binance accept):

* ``gb<bot>-<bar open ms>-<seq>``: the ``seq``-th order decided at that bar;
* ``<entry>-sl<n>`` / ``<entry>-tp<n>``: the n-th bracket (stop loss / take profit, OCO group
  ``<entry>-oco<n>``) of an entry: n = 0 when the entry fills, 1, 2… when a restarted bot re-arms it;
* ``gb<bot>-v<config version>-flat``: the reduce-only exit of ``stop``/``DELETE ?flatten=true``;
* ``<order>-x``: the cancel of an order.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, TypeAdapter
from pydantic.alias_generators import to_camel

INTENTS_STREAM = "ORDER_INTENTS"
INTENTS_SUBJECTS = "orders.intents.>"
REPORTS_STREAM = "ORDER_REPORTS"
REPORTS_SUBJECTS = "orders.fills.>"
DEDUP_WINDOW_S = 900.0
MAX_AGE_S = 7 * 86400.0

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"


# Wake-up hints the manager relays from PostgreSQL NOTIFY (core NATS, may be lost: bots poll and
# re-read the risk gate at every heartbeat anyway; a klines hint's body is the bar it may carry). They spare PostgreSQL a listening
# backend per bot: every NOTIFY signals every listening backend of the database, whatever its
# channel, so N listening bots made each NOTIFY cost O(N) (bench/live_loop.py measured it).
HINT_RISK_SUBJECT = "gordon.hints.risk"
_TOKEN_BAD = frozenset(" .*>\t\r\n")


def klines_hint_subject(symbol: str, interval: str) -> str | None:
    """The hint subject of new closed bars of (symbol, interval); None when not a valid NATS subject."""
    if not symbol or not interval or any(c in _TOKEN_BAD for c in symbol + interval):
        return None
    return f"gordon.hints.klines.{symbol}.{interval}"


def split_klines_notify(payload: str) -> tuple[str, str, str]:
    """``(symbol, interval, bar)`` of a NOTIFY 'klines' payload (migration 0030); ``bar`` is "" when it
    carries none, else "PREV_TS [bar]" as ``botrunner/hinted.py`` reads it."""
    market, _, bar = payload.partition(" ")
    symbol, _, interval = market.partition(":")
    return symbol, interval, bar


def intents_subject(bot_id: int) -> str:
    return f"orders.intents.{bot_id}"


def reports_subject(bot_id: int) -> str:
    return f"orders.fills.{bot_id}"


def consumer_name(bot_id: int) -> str:
    """The bot's durable consumer of its reports."""
    return f"bot-{bot_id}"


def order_id(bot_id: int, bar_ts: int, seq: int) -> str:
    """The ``seq``-th order the bot decided at the bar opening at ``bar_ts`` (epoch ms)."""
    return f"gb{bot_id}-{bar_ts}-{seq}"


def leg_id(entry: str, leg: Literal["sl", "tp"], generation: int) -> str:
    return f"{entry}-{leg}{generation}"


def oco_group(entry: str, generation: int) -> str:
    return f"{entry}-oco{generation}"


def flatten_id(bot_id: int, config_version: int) -> str:
    return f"gb{bot_id}-v{config_version}-flat"


def cancel_id(target: str) -> str:
    return f"{target}-x"


# Exact decimals travel as plain strings ("0.00000001", never "1E-8" nor a float).
DecimalString = Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")]
Utc = Annotated[datetime, PlainSerializer(lambda d: d.isoformat().replace("+00:00", "Z"), return_type=str,
                                          when_used="json")]


class _Message(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    def wire(self) -> bytes:
        """The JSON published on the bus (camelCase)."""
        return self.model_dump_json(by_alias=True).encode()


class NewOrderIntent(_Message):
    """Place an order. ``price`` is the limit price (limit) or the trigger price (stop); none for market."""

    type: Literal["new"] = "new"
    client_order_id: str = Field(pattern=ID_PATTERN)
    bot_id: int
    run_id: int | None = None
    symbol: str
    side: Literal["buy", "sell"]
    order_type: Literal["market", "limit", "stop"]
    qty: DecimalString = Field(gt=0)
    price: DecimalString | None = Field(None, gt=0)
    reduce_only: bool = False
    oco_group: str | None = Field(None, description="Orders sharing a group are one-cancels-other.")
    reason: Literal["entry", "exit", "stop_loss", "take_profit", "flatten", "manual"]
    bar_at: Utc | None = Field(None, description="Open time of the bar whose close decided it.")
    ref_price: DecimalString | None = Field(None, description="The decision bar's close.")
    created_at: Utc


class CancelIntent(_Message):
    """Cancel an order; ``clientOrderId`` is the cancel's own id, ``origClientOrderId`` the order's."""

    type: Literal["cancel"] = "cancel"
    client_order_id: str = Field(pattern=ID_PATTERN)
    orig_client_order_id: str = Field(pattern=ID_PATTERN)
    bot_id: int
    symbol: str
    reason: Literal["exit", "stop", "flatten", "bracket", "shutdown"]
    created_at: Utc


class FillReport(_Message):
    """An execution: ``fee`` is in the quote currency; ``fillId`` is unique per bot (idempotency key)."""

    type: Literal["fill"]
    fill_id: str = Field(min_length=1, max_length=128)
    client_order_id: str = Field(pattern=ID_PATTERN)
    qty: Decimal = Field(gt=0)
    price: Decimal = Field(gt=0)
    fee: Decimal = Field(ge=0)
    liquidity: Literal["maker", "taker"] | None = None
    ts: AwareDatetime


class StatusReport(_Message):
    """An order's state changed at the executor (``reason`` explains a reject, cancel or expiry)."""

    type: Literal["status"]
    client_order_id: str = Field(pattern=ID_PATTERN)
    status: Literal["accepted", "rejected", "cancelled", "expired"]
    reason: str | None = Field(None, max_length=500)
    ts: AwareDatetime


Report = Annotated[FillReport | StatusReport, Field(discriminator="type")]
_REPORT = TypeAdapter(Report)


def parse_report(data: bytes) -> FillReport | StatusReport:
    """Validate one executor report (raises pydantic.ValidationError)."""
    return _REPORT.validate_json(data)
