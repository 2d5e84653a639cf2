"""The ``data`` of a /ws event: a watched table's row, as the HTTP API shows the same entity.

The outbox trigger (migrations 0007, 0020) captures whole rows as ``to_jsonb`` wrote them: snake_case
columns, times in the writer's time zone, numeric columns as exact text. Each table's row is read
through the pydantic model — and the shaping function — of the HTTP read of that entity where one
exists, so a value has one representation on both (README "Value representation"):

==================  =============================================  =====================================
table               model (``ROW_MODELS``)                         read over HTTP
==================  =============================================  =====================================
risk_halt           ``RiskHaltRow``                                (not read over HTTP)
breaker_state       ``BreakerStateRow`` (also the snapshot's)      (not read over HTTP)
portfolio_state     ``PortfolioStateRow`` = PositionRead + ids     GET /portfolio ``bots[].positions[]``
source_freshness    ``SourceFreshnessRow``                         GET /source-health ``sources[]``
backfill_jobs       ``BackfillJobRead``                            GET /data/backfill/jobs
bot_configs         ``BotConfigRow`` = BotRead − status/position   GET /bots/{id}
bot_status          ``BotStatusRow`` = BotStatusRead + botId, …    GET /bots/{id} ``status``
bot_events          ``BotEventRead``                               GET /bots/{id}/events
bot_deploys         ``DeployRead``                                 GET /bots/{id}/deploys
service_deploys     ``ServiceDeployRead``                          GET /deploys/service/{id}/status
runs                ``RunRow`` = RunDetail − equity + runner       GET /runs/{id}
backtest_sweeps     ``SweepRead``                                  GET /backtests/sweeps (items)
==================  =============================================  =====================================

asyncapi.yaml's payload schemas are generated from these models (events/asyncapi.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from copy import copy
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from gordon_manager.backtests.sweep_schemas import SweepRead, sweep_read_fields
from gordon_manager.bff.schemas import BackfillJobRead, PositionRead
from gordon_manager.bots.schemas import BotRead, BotStatusRead
from gordon_manager.bots.service import config_fields
from gordon_manager.deploys.schemas import DeployRead, ServiceDeployRead
from gordon_manager.deploys.service import deploy_read
from gordon_manager.deploys.service_deploys import service_deploy_read
from gordon_manager.events.breaker import BreakerStateName
from gordon_manager.http.casing import to_camel
from gordon_manager.http.models import CamelModel
from gordon_manager.http.values import iso_utc, utc_text
from gordon_manager.observability import metrics
from gordon_manager.runs.schemas import BotEventRead, RunDetail
from gordon_manager.runs.service import bot_event_read, run_detail_fields

logger = logging.getLogger(__name__)


class _Row(CamelModel):
    """A row as the console gets it; columns this model does not know are left out."""

    model_config = ConfigDict(extra="ignore")


def _derived(name: str, model: type[BaseModel], doc: str, *, drop: tuple[str, ...] = (),
             add: dict[str, Any] | None = None) -> type[BaseModel]:
    """A row model made of ``model``'s fields (the very definitions the HTTP API uses), minus ``drop``,
    plus ``add``."""
    fields: dict[str, Any] = {n: (f.annotation, copy(f)) for n, f in model.model_fields.items() if n not in drop}
    fields.update(add or {})
    return create_model(name, __base__=_Row, __doc__=doc, __module__=__name__, **fields)


class RiskHaltRow(_Row):
    """A ``trading.risk_halt`` row: whether gordon-risk halted trading, for a scope."""

    scope: str = Field(examples=["global"], description="What is halted: global, a symbol or a bot.")
    halted: bool = Field(examples=[True])
    reason: str | None = Field(None, examples=["daily loss limit"])
    actor: str | None = Field(None, examples=["gordon-risk"])
    updated_at: datetime = Field(examples=["2026-05-17T10:00:00Z"])


class BreakerStateRow(_Row):
    """A ``trading.breaker_state`` row: one of gordon-risk's circuit breakers."""

    breaker: str = Field(examples=["daily_loss"])
    state: BreakerStateName = Field(examples=["open"])
    reason: str | None = Field(None, examples=["loss 2.5% > 2%"])
    tripped_at: datetime | None = Field(None, examples=["2026-05-17T10:00:00Z"])
    data: dict[str, Any] = Field(default_factory=dict, examples=[{"loss_pct": 2.5}],
                                 description="Breaker-specific figures, keys as gordon-risk wrote them.")
    updated_at: datetime = Field(examples=["2026-05-17T10:00:00Z"])


class SourceFreshnessRow(_Row):
    """A ``trading.source_freshness`` row: when a data source last ran (GET /source-health applies the
    stale threshold to it)."""

    source: str = Field(examples=["binance_klines"])
    last_update_at: datetime | None = Field(None, examples=["2026-05-17T10:00:00Z"])
    last_data_at: datetime | None = Field(None, examples=["2026-05-17T09:59:00Z"])
    stale_after_seconds: int | None = Field(None, examples=[300], description=(
        "The source's own stale threshold (null: GORDON_MANAGER_SOURCE_STALE_AFTER_S applies)."))
    detail: dict[str, Any] = Field(default_factory=dict, examples=[{"symbols": 12}],
                                   description="The source's own figures, keys as it wrote them.")
    updated_at: datetime = Field(examples=["2026-05-17T10:00:00Z"])


PortfolioStateRow = _derived(
    "PortfolioStateRow", PositionRead, "A ``trading.portfolio_state`` row: a symbol held by a bot (or, "
    "botId null, the account); decimals are exact strings, as in GET /portfolio.",
    add={"id": (int, Field(examples=[3])),
         "bot_id": (int | None, Field(None, examples=[7], description="Null: held by the account."))})

BotConfigRow = _derived(
    "BotConfigRow", BotRead, "A ``trading.bot_configs`` row (the bot's spec), as GET /bots/{id} shows it "
    "without its status and position.", drop=("status", "position"))


class BotStatusRow(BotStatusRead):
    """A ``trading.bot_status`` row: what the reconciler last observed of a bot (GET /bots/{id} ``status``)."""

    bot_id: int = Field(examples=[7])
    failure_times: list[datetime] = Field(default_factory=list, description=(
        "Recent failures the restart backoff and quarantine count."))


RunRow = _derived(
    "RunRow", RunDetail, "A ``trading.runs`` row (a backtest or a bot's run: status and progress), as "
    "GET /runs/{id} shows it without the equity summary.", drop=("equity",),
    add={"runner": (Literal["manager", "cli"] | None, Field(None, description=(
        "Who executes a backtest: the manager's worker pool or the `gordon-manager backtest` command.")))})


def _only(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k in model.model_fields}


# table → (channel, the model of its rows, row → model instance)
ROW_MODELS: dict[str, tuple[str, type[BaseModel], Callable[[dict[str, Any]], BaseModel]]] = {
    "risk_halt": ("risk_halt_changed", RiskHaltRow, RiskHaltRow.model_validate),
    "breaker_state": ("breaker_state", BreakerStateRow, BreakerStateRow.model_validate),
    "portfolio_state": ("portfolio_state", PortfolioStateRow, PortfolioStateRow.model_validate),
    "source_freshness": ("source_freshness", SourceFreshnessRow, SourceFreshnessRow.model_validate),
    "backfill_jobs": ("backfill_jobs", BackfillJobRead,
                      lambda row: BackfillJobRead.model_validate(_only(BackfillJobRead, row))),
    "bot_configs": ("bot_config_changed", BotConfigRow,
                    lambda row: BotConfigRow.model_validate(config_fields(row))),
    "bot_status": ("bot_status", BotStatusRow, BotStatusRow.model_validate),
    "bot_events": ("bot_events", BotEventRead, bot_event_read),
    "bot_deploys": ("deploy_progress", DeployRead, deploy_read),
    "service_deploys": ("deploy_progress", ServiceDeployRead, service_deploy_read),
    "runs": ("run_progress", RunRow, lambda row: RunRow.model_validate(run_detail_fields(row))),
    "backtest_sweeps": ("run_progress", SweepRead, lambda row: SweepRead.model_validate(sweep_read_fields(row))),
}

_warned: set[str | None] = set()


def _utc_columns(row: dict[str, Any]) -> dict[str, Any]:
    """Timestamp columns (and timestamp arrays) as UTC ``…Z`` text; JSON columns are left to the models."""
    out = {}
    for key, value in row.items():
        if isinstance(value, str):
            value = utc_text(value)
        elif isinstance(value, datetime):
            value = iso_utc(value)
        elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            value = [utc_text(v) for v in value]
        out[key] = value
    return out


def row_data(table: str | None, row: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``data`` of an outbox event: the row through its table's model (camelCase, exact decimals,
    UTC times, user keys untouched). A row its model refuses still goes out, with its columns camelCase
    and nothing else changed (counted in gordon_errors_total{component="ws",kind="row_shape"})."""
    if row is None:
        return None
    row = _utc_columns(row)
    entry = ROW_MODELS.get(table or "")
    if entry is not None:
        try:
            return entry[2](row).model_dump(mode="json", by_alias=True)
        except (ValidationError, KeyError, TypeError, ValueError) as exc:
            metrics.ERRORS.labels(component="ws", kind="row_shape").inc()
            if table not in _warned:
                _warned.add(table)
                logger.warning("a row does not fit its /ws model; sent with its columns camelCase",
                               extra={"table": table, "error": str(exc)[:500]})
    return {to_camel(k): v for k, v in row.items()}


def breaker_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The snapshot's ``items``: trading.breaker_state rows (from asyncpg) as BreakerStateRow."""
    return [BreakerStateRow.model_validate(_utc_columns(row)).model_dump(mode="json", by_alias=True) for row in rows]
