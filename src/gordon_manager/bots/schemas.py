"""Request and response models of the bots API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, PlainSerializer, create_model
from pydantic.alias_generators import to_pascal

from gordon_manager.execution.schemas import ExecutionRead, ExecutionSettings
from gordon_manager.http.models import CamelModel, JsonObject, SparseModel, storable_object

DesiredState = Literal["running", "paused", "stopped"]
Mode = Literal["paper", "shadow", "live"]
ObservedState = Literal["pending", "starting", "running", "paused", "stopping", "stopped", "crashed", "backoff",
                        "quarantined", "error", "removed"]  # trading.bot_status's CHECK (migration 0003)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
SYMBOL_PATTERN = r"^[A-Z0-9]{2,20}$"
INTERVAL_PATTERN = r"^(1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M)$"

_EXAMPLE_PARAMS = {"fast": 10, "slow": 30}


def _as_sent(settings: ExecutionSettings) -> dict[str, Any]:
    return settings.model_dump(mode="json", by_alias=True, exclude_unset=True)


def _as_is(members: dict[str, Any]) -> dict[str, Any]:
    return members


if TYPE_CHECKING:  # the value a model holds is what _as_sent returns
    ExecutionInput: TypeAlias = dict[str, Any]
else:
    ExecutionInput = Annotated[ExecutionSettings, BeforeValidator(storable_object), AfterValidator(_as_sent),
                               PlainSerializer(_as_is)]
"""Execution settings in a request: validated (and documented) as ``ExecutionSettings``, then handed on as the
members that were sent (camelCase, decimals as strings); the service builds the ``ExecutionConfig``."""


class BotSpec(CamelModel):
    """What a bot runs; the fields a PUT replaces."""

    name: str = Field(pattern=NAME_PATTERN, examples=["btc-sma-1m"])
    strategy: str = Field(min_length=1, max_length=64, examples=["sma_crossover"])
    symbol: str = Field(pattern=SYMBOL_PATTERN, examples=["BTCUSDT"])
    interval: str = Field(pattern=INTERVAL_PATTERN, examples=["1m"])
    params: JsonObject = Field(default_factory=dict, examples=[_EXAMPLE_PARAMS],
                                   description="Strategy parameters; validated against the strategy's schema.")
    execution: ExecutionInput = Field(default_factory=dict,
                                      examples=[{"initialCash": "10000", "takerFeeBps": "10"}],
                                      description="Execution settings (fees, slippage, initial cash); defaults apply.")
    mode: Mode = Field("paper", description="paper: simulated fills; shadow: decisions only; live: order intents to NATS.")
    image: str | None = Field(None, max_length=255, description="Container image (docker/swarm); defaults to the configured bot image.")
    labels: dict[str, str] = Field(default_factory=dict, max_length=32)


class BotCreate(BotSpec):
    """POST /bots body."""

    desired_state: DesiredState = Field("stopped", description="Initial desired state.")
    shadow_of: int | None = Field(None, ge=1, le=2**62, description="Live bot this shadow bot mirrors (mode must be shadow).")


class BotUpdate(BotSpec):
    """PUT /bots/{id} body: the full spec (the desired state changes through the lifecycle actions)."""


class BotStatusRead(CamelModel):
    """What the reconciler last observed."""

    model_config = ConfigDict(extra="ignore")

    observed_state: ObservedState = Field(examples=["running"])
    runtime: str | None = None
    workload_id: str | None = None
    observed_version: int | None = None
    restarts: int = 0
    backoff_s: float = 0
    next_retry_at: datetime | None = None
    running_since: datetime | None = None
    quarantined: bool = False
    quarantine_reason: str | None = None
    quarantined_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    metrics_port: int | None = None
    updated_at: datetime | None = None


class OpenOrderRead(CamelModel):
    """An order that may still fill (decimals as exact strings)."""

    model_config = ConfigDict(extra="ignore")

    client_order_id: str = Field(examples=["gb42-1704067260000-0-sl0"])
    side: Literal["buy", "sell"]
    order_type: Literal["market", "limit", "stop"]
    qty: str = Field(examples=["0.125"])
    filled_qty: str = Field(examples=["0"])
    price: str | None = Field(None, description="Limit price or stop trigger; none for a market order.")
    reduce_only: bool
    oco_group: str | None = None
    reason: str = Field(examples=["stop_loss"])
    stop_loss: str | None = Field(None, description="Bracket stop loss of an entry, placed once it fills.")
    take_profit: str | None = Field(None, description="Bracket take profit of an entry, placed once it fills.")
    status: Literal["new", "accepted", "partially_filled", "cancelling"]
    created_at: datetime


class BotPositionRead(CamelModel):
    """The bot's ledger as it last committed it: the executor's fills for live bots, simulated otherwise."""

    model_config = ConfigDict(extra="ignore")

    mode: Mode
    symbol: str
    qty: str = Field(examples=["100.85"], description="Base quantity held.")
    avg_entry_price: str | None = Field(None, examples=["42000.5"], description="Of the open round trip's buys.")
    cash: str = Field(examples=["5873.21"])
    fees_paid: str
    realized_pnl: str = Field(description="Sum of closed round trips' net PnL.")
    updated_at: datetime
    open_orders: list[OpenOrderRead]


class BotRead(CamelModel):
    """A bot config with its observed status."""

    id: int = Field(examples=[42])
    name: str
    strategy: str
    symbol: str
    interval: str
    params: dict[str, Any] = Field(description="Strategy parameters (camelCase; see the strategy's `paramsSchema`).")
    execution: ExecutionRead
    mode: Mode
    image: str
    desired_state: DesiredState
    version: int = Field(description="Optimistic-concurrency version; send it back as If-Match.")
    spec_version: int = Field(description="Bumped when what the workload runs changes.")
    shadow_of: int | None = None
    labels: dict[str, str]
    created_by: str
    created_at: datetime
    updated_at: datetime
    delete_requested_at: datetime | None = None
    deleted_at: datetime | None = None
    flatten_on_stop: bool = Field(False, description="A stop or delete asked the bot to sell its position first.")
    status: BotStatusRead | None = None
    position: BotPositionRead | None = Field(None, description="Null until the bot has run once.")


class BotPage(CamelModel):
    """A page of bots."""

    items: list[BotRead]
    next_cursor: str | None = None


class BotSnapshot(SparseModel):
    """The audited fields of a bot config before or after a change. A change that is not a config write carries
    only what it changes (clear-quarantine: `quarantineReason` before, `quarantined` after); a member absent
    from a snapshot was not recorded (rows written before it existed)."""

    name: str | None = None
    strategy: str | None = None
    symbol: str | None = None
    interval: str | None = None
    params: dict[str, Any] | None = Field(None, description="Strategy parameters.")
    execution: ExecutionRead | None = None
    mode: Mode | None = None
    image: str | None = None
    desired_state: DesiredState | None = None
    labels: dict[str, str] | None = None
    shadow_of: int | None = None
    version: int | None = None
    spec_version: int | None = None
    flatten_on_stop: bool | None = None
    quarantined: bool | None = None
    quarantine_reason: str | None = None


def _change_model(name: str, annotation: Any) -> type[CamelModel]:
    return create_model(f"{to_pascal(name)}Change", __base__=CamelModel,
                        __doc__=f"`{BotSnapshot.model_fields[name].alias}` before and after the change.",
                        before=(annotation, Field(description="Null: unset or not recorded.")),
                        after=(annotation, Field(description="Null: unset or not recorded.")))


_DIFF_FIELDS: dict[str, Any] = {name: (_change_model(name, info.annotation) | None, None)
                                for name, info in BotSnapshot.model_fields.items() if name != "version"}
AuditDiff = create_model(
    "AuditDiff", __base__=SparseModel,
    __doc__="Every audited field that changed, with its value before and after (the version is in `version`).",
    **_DIFF_FIELDS)


class AuditRead(CamelModel):
    """One audited change of a bot config."""

    id: int
    bot_id: int
    actor: str
    action: str = Field(examples=["update"], description="create, update, patch, start, pause, resume, stop, delete, "
                                                         "clear-quarantine, deploy-promote, deploy-retire, …")
    version: int
    before: BotSnapshot | None = None
    after: BotSnapshot | None = None
    diff: AuditDiff = Field(default_factory=AuditDiff,
                            examples=[{"desiredState": {"before": "stopped", "after": "running"}}])
    request_id: str | None = None
    at: datetime


class AuditPage(CamelModel):
    """A page of audit entries, newest first."""

    items: list[AuditRead]
    next_cursor: str | None = None


PositionRead = BotPositionRead  # the name it had (bots.service)
