"""HTTP routes of the strategy registry: GET /strategies and GET /bff/bot-defaults."""

from __future__ import annotations

from fastapi import APIRouter, Request

from gordon_manager.execution.config import ExecutionConfig
from gordon_manager.execution.schemas import ExecutionRead
from gordon_manager.http.casing import camelize
from gordon_manager.strategies import StrategySpec, get_strategy, list_strategies
from gordon_manager.strategies.schemas import BotDefaults, StrategyList, StrategyRead, camel_schema

router = APIRouter()

DEFAULT_STRATEGY = "sma_crossover"
DEFAULT_SYMBOL = "BTCUSDT"
DEFAULT_INTERVAL = "1m"


def strategy_read(spec: StrategySpec) -> StrategyRead:
    """API model of a registered strategy."""
    defaults = spec.default_params()
    return StrategyRead(name=spec.name, description=spec.description, params_schema=camel_schema(spec.params_schema()),
                        default_params=camelize(defaults.model_dump(mode="json")), warmup_bars=spec.warmup(defaults),
                        examples=[camelize(dict(e)) for e in spec.examples])


@router.get("/strategies", response_model=StrategyList, tags=["strategies"], summary="Available strategies")
async def get_strategies() -> StrategyList:
    """Every strategy a bot or backtest can run, with its parameter schema and defaults."""
    return StrategyList(items=[strategy_read(spec) for spec in list_strategies()], next_cursor=None)


@router.get("/bff/bot-defaults", response_model=BotDefaults, tags=["bff"], summary="Default bot config values")
async def get_bot_defaults(request: Request) -> BotDefaults:
    """What the console pre-fills in a new bot form."""
    specs = list_strategies()
    names = [s.name for s in specs]
    spec = get_strategy(DEFAULT_STRATEGY if DEFAULT_STRATEGY in names else names[0])
    return BotDefaults(strategy=spec.name, params=camelize(spec.default_params().model_dump(mode="json")),
                       execution=ExecutionRead.model_validate(ExecutionConfig().model_dump()), mode="paper",
                       symbol=DEFAULT_SYMBOL, interval=DEFAULT_INTERVAL,
                       image=request.app.state.ctx.settings.bot_image, desired_state="stopped", strategies=names)
