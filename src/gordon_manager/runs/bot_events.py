"""Bot events, typed by kind: what each kind's ``data`` holds (GET /bots/{id}/events and /ws ``bot_events``).

``trading.bot_events`` is written by the reconciler (``reconcile.policy``, ``reconcile.reconciler``), the
bot runner (``botrunner.main``, ``botrunner.store``, ``botrunner.book``), deploys (``deploys.service``,
``deploys.swap``), the bots API (``bots.service``), the drift checker (``observability.drift``) and the
run reaper (``runs.repo``). ``BOT_EVENT_DATA`` says, per kind, the members its ``data`` has; the API
answers an event as the variant of its kind (``BotEventRead``, a union told apart by ``kind``), so a typed
client narrows on ``kind`` and reads ``data`` typed (``if (e.kind === "crashed") e.data.exitCode``).

Members are sparse (``SparseModel``): a member an older writer did not record is absent, not null, and a
member not modelled is dropped. A row whose kind is not modelled here, or whose data does not fit its
kind, is answered as kind ``unrecognized`` with its ``originalKind`` and its data as recorded (counted in
``gordon_errors_total{component="events",kind="bot_event_shape"}``): typed, and nothing is hidden.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, Field, RootModel, ValidationError, create_model

from gordon_manager.http.models import CamelModel, JsonMembers, SparseModel
from gordon_manager.http.values import DecimalStr, FloatDecimalStr
from gordon_manager.observability import metrics

logger = logging.getLogger(__name__)

_TS = "2026-05-17T10:00:00Z"
_DEPLOY_ID = Field(description="The green/blue deploy.", examples=[12])
_COID = Field(None, description="The order's clientOrderId (what the executor knows it by).",
              examples=["gb7-1715940000000-0"])


class NoData(SparseModel):
    """This kind carries no details (its message says it all)."""


# -- the reconciler ------------------------------------------------------------------------------------
class QuarantinedData(SparseModel):
    failures: int = Field(description="Failures within the quarantine window.", examples=[5])
    exit_code: int | None = Field(None, description="The last exit code, when the runtime knew it.", examples=[1])


class CrashedData(SparseModel):
    exit_code: int | None = Field(None, description="The exit code, when the runtime knew it.", examples=[1])
    backoff_s: float = Field(description="Seconds before the restart (0: at once).", examples=[2.0])
    failures: int = Field(description="Failures within the quarantine window so far.", examples=[2])


class ConfigErrorData(SparseModel):
    action: str | None = Field(None, description="The reconciler's action the runtime refused (absent when the "
                                                 "bot itself refused its configuration).", examples=["start"])


# -- the bot runner ------------------------------------------------------------------------------------
class StartedData(SparseModel):
    spec_version: int = Field(description="The bot's spec version the run started with.", examples=[3])
    paused: bool = Field(description="Whether it started paused.", examples=[False])
    abandoned_runs: list[int] = Field(description="Its earlier runs it found still marked running.",
                                      examples=[[41]])


class RecoveredData(SparseModel):
    qty: DecimalStr = Field(description="The position recovered from the ledger (base quantity).", examples=["0.015"])
    cash: DecimalStr = Field(description="The quote balance recovered.", examples=["9012.5"])
    open_orders: list[str] = Field(description="clientOrderIds of the open orders recovered.",
                                   examples=[["gb7-1715940000000-1"]])


class FlattenData(SparseModel):
    client_order_id: str | None = _COID
    qty: DecimalStr = Field(description="The position to sell.", examples=["0.015"])
    remaining: DecimalStr = Field(description="What is still held.", examples=["0"])


class FillData(SparseModel):
    order_id: int | None = Field(None, description="The model's order id.", examples=[3])
    client_order_id: str | None = _COID
    side: Literal["buy", "sell"] | None = Field(None, examples=["buy"])
    qty: DecimalStr | None = Field(None, examples=["0.015"])
    price: DecimalStr | None = Field(None, examples=["66000.5"])
    fee: DecimalStr | None = Field(None, examples=["0.99"])
    ts: datetime | None = Field(None, description="When it filled.", examples=[_TS])
    reason: str | None = Field(None, description="Why the order was placed (signal, stop_loss, take_profit…).",
                               examples=["signal"])


class OrderEndedData(SparseModel):
    """An order ended without filling: rejected (by the model or the executor), cancelled or expired."""

    order_id: int | None = Field(None, description="The model's order id (orders the model rejected).", examples=[3])
    client_order_id: str | None = _COID
    ts: datetime | None = Field(None, examples=[_TS])
    reason: str | None = Field(None, description="The executor's reason, when it gave one.",
                               examples=["insufficient balance"])
    side: Literal["buy", "sell"] | None = Field(None, examples=["buy"])
    qty: DecimalStr | None = Field(None, examples=["0.015"])


class EntryBlockedData(SparseModel):
    reason: str = Field(description="What blocked it: `risk_halt:<scope>` or `breaker:<name>`.",
                        examples=["risk_halt:global"])
    bar_at: datetime = Field(description="The bar whose entry was blocked.", examples=[_TS])


class BracketRearmedData(SparseModel):
    stop_loss: DecimalStr | None = Field(None, examples=["64000"])
    take_profit: DecimalStr | None = Field(None, examples=["70000"])
    entry: str | None = Field(None, description="clientOrderId of the bracket's entry order.",
                              examples=["gb7-1715940000000-0"])


class UnknownOrderReportData(SparseModel):
    client_order_id: str = Field(description="The clientOrderId the executor reported.", examples=["gb7-1-0"])
    fill_id: str | None = Field(None, description="The executor's fill id (fills).", examples=["f-1"])
    status: str | None = Field(None, description="The reported status (status reports).", examples=["cancelled"])


class OversoldData(SparseModel):
    client_order_id: str = Field(description="The order whose fills sold more than the position held.",
                                 examples=["gb7-1715940000000-2"])


class BadReportData(SparseModel):
    subject: str = Field(description="The NATS subject of the report it could not read.",
                         examples=["orders.fills.7"])


class OrdersCancelledData(SparseModel):
    count: int = Field(description="Open orders cancelled.", examples=[2])


# -- deploys, drift, the reaper ------------------------------------------------------------------------
class DeployStartedData(SparseModel):
    deploy_id: int = _DEPLOY_ID
    candidate_bot_id: int = Field(description="The shadow bot running the new version.", examples=[31])


class DeployEndedData(SparseModel):
    deploy_id: int = _DEPLOY_ID
    reason: str = Field(description="Why it ended.", examples=["lease lost"])


class DeployPromotedData(SparseModel):
    deploy_id: int = _DEPLOY_ID
    candidate_bot_id: int | None = Field(None, description="The candidate swapped in (absent when forced).",
                                         examples=[31])
    from_version: int = Field(examples=[4])
    to_version: int = Field(examples=[5])
    spec_version: int | None = Field(None, examples=[3])
    forced_by: str | None = Field(None, description="The operator who forced it without enough evidence.",
                                  examples=["alice"])


class PortfolioDriftData(SparseModel):
    symbol: str = Field(examples=["BTCUSDT"])
    mode: str = Field(description="The run's kind.", examples=["live"])
    run_id: int = Field(examples=[42])
    implied_qty: FloatDecimalStr = Field(description="What the bot's ledger holds.", examples=["0.015"])
    portfolio_qty: FloatDecimalStr = Field(description="What trading.portfolio_state holds.", examples=["0.01"])
    difference: FloatDecimalStr = Field(examples=["0.005"])
    tolerance: FloatDecimalStr = Field(examples=["0.00000001"])
    implied_at: datetime = Field(examples=[_TS])
    portfolio_at: datetime | None = Field(None, examples=[_TS])


class RunAbandonedData(SparseModel):
    last_heartbeat_at: datetime = Field(description="The run's last sign of life.", examples=[_TS])


class UnrecognizedData(CamelModel):
    """An event this version does not model (an older or newer writer): its kind and data as recorded."""

    original_kind: str = Field(examples=["something_new"])
    recorded: JsonMembers = Field(description="The data as recorded.", examples=[{"detail": 1}])


BOT_EVENT_DATA: dict[str, tuple[type[BaseModel], str]] = {
    # kind: (data, when)
    "quarantined": (QuarantinedData, "The reconciler quarantined the bot (too many failures in the window)."),
    "crashed": (CrashedData, "The bot's workload died; the reconciler restarts it after a backoff."),
    "config_error": (ConfigErrorData, "The runtime or the bot refused its configuration."),
    "quarantine_cleared": (NoData, "An operator cleared the quarantine."),
    "started": (StartedData, "The bot started a run."),
    "recovered": (RecoveredData, "The bot recovered a position or open orders from its ledger."),
    "stopped": (NoData, "The bot stopped (its run is stopped)."),
    "error": (NoData, "The bot failed (its run is failed; the message says why)."),
    "paused": (NoData, "The bot paused (no new entries)."),
    "resumed": (NoData, "The bot resumed."),
    "flattened": (FlattenData, "The bot sold its position on stop."),
    "flatten_incomplete": (FlattenData, "The bot could not sell all of its position on stop."),
    "fill": (FillData, "An order filled (simulated, or reported by the executor)."),
    "order_rejected": (OrderEndedData, "An order was rejected (by the model or the executor)."),
    "order_cancelled": (OrderEndedData, "The executor cancelled an order."),
    "order_expired": (OrderEndedData, "An order expired at the executor."),
    "entry_blocked": (EntryBlockedData, "A risk halt or an open breaker blocked an entry."),
    "bracket_rearmed": (BracketRearmedData, "The bot re-armed a bracket's stop-loss and take-profit."),
    "unknown_order_report": (UnknownOrderReportData, "The executor reported an order the bot does not know."),
    "oversold": (OversoldData, "Fills sold more than the position held."),
    "bad_report": (BadReportData, "An executor report could not be read."),
    "orders_cancelled": (OrdersCancelledData, "The bot cancelled its open orders on stop."),
    "deploy_started": (DeployStartedData, "A green/blue deploy of the bot started."),
    "deploy_aborted": (DeployEndedData, "A deploy was aborted."),
    "deploy_failed": (DeployEndedData, "A deploy failed."),
    "deploy_inconclusive": (DeployEndedData, "A deploy ended without enough evidence to promote."),
    "deploy_promoted": (DeployPromotedData, "A deploy swapped the new version in."),
    "portfolio_drift": (PortfolioDriftData, "The bot's ledger and trading.portfolio_state disagree."),
    "run_abandoned": (RunAbandonedData, "The bot's run stopped heartbeating and was marked abandoned."),
}
UNRECOGNIZED = "unrecognized"


def _variant_name(kind: str) -> str:
    return "BotEvent" + "".join(part.capitalize() for part in kind.split("_"))


def _variant(kind: str, data: type[BaseModel], doc: str) -> type[BaseModel]:
    # Field definitions built at run time (a Literal of this kind): typed as what create_model takes
    fields: dict[str, Any] = dict(
        id=(int, Field(examples=[9001])),
        bot_id=(int, Field(examples=[7])),
        run_id=(int | None, Field(None, examples=[42])),
        kind=(Literal[kind], Field(examples=[kind])),
        level=(Literal["debug", "info", "warning", "error"], Field(examples=["info"])),
        message=(str, Field(examples=["bot died (exit code 1); restart in 2s"])),
        data=(data, Field(description="Details of the event, typed by its kind.")),
        at=(datetime, Field(examples=[_TS])),
    )
    return create_model(_variant_name(kind), __base__=CamelModel, __doc__=doc, __module__=__name__, **fields)


VARIANTS: dict[str, type[BaseModel]] = {kind: _variant(kind, data, doc) for kind, (data, doc) in BOT_EVENT_DATA.items()}
VARIANTS[UNRECOGNIZED] = _variant(UNRECOGNIZED, UnrecognizedData,
                                  "An event of a kind this version does not model, or whose data does not fit it.")
KINDS = tuple(VARIANTS)

_Union = Union[tuple(VARIANTS.values())]  # type: ignore[valid-type]  # noqa: UP007 (built at run time)


class BotEventRead(RootModel[Annotated[_Union, Field(discriminator="kind")]]):  # type: ignore[valid-type]
    """Something that happened to a bot (lifecycle, quarantine, orders, deploy, drift…): one variant per
    ``kind``, each with its ``data`` typed."""


COLUMNS = ("id", "bot_id", "run_id", "kind", "level", "message", "data", "at")
_warned: set[str] = set()


def read_event(row: dict[str, Any]) -> BotEventRead:
    """The API model of a bot event (``row``: its columns, ``data`` already camelCase with UTC times)."""
    fields = {column: row.get(column) for column in COLUMNS}
    if fields["kind"] in BOT_EVENT_DATA:
        try:
            return BotEventRead.model_validate(fields)
        except ValidationError as exc:
            problem = str(exc)[:300]
    else:
        problem = "a kind this version does not model"
    metrics.ERRORS.labels(component="events", kind="bot_event_shape").inc()
    if fields["kind"] not in _warned:
        _warned.add(str(fields["kind"]))
        logger.warning("a bot event does not fit its kind's model; answered as `unrecognized`",
                       extra={"kind": fields["kind"], "error": problem})
    fields["data"] = {"originalKind": fields["kind"], "recorded": fields["data"] or {}}
    fields["kind"] = UNRECOGNIZED
    return BotEventRead.model_validate(fields)
