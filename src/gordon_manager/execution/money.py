"""Decimal helpers for the ledger: one explicit context, explicit rounding, no drift.

Money and quantities are ``decimal.Decimal``. Fills are sparse events, so exact arithmetic costs
nothing measurable, and every cash movement is quantized once, with a rounding chosen against the
trader, after which sums are exact. Floats appear only at the edges: bar prices arrive as float64
and are converted through their shortest repr (``100.1`` becomes ``Decimal('100.1')``, not the
binary expansion), and mark-to-market equity is a float derived from the exact ledger.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import (
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    ROUND_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
)

# 60 significant digits keep the product of an 8-dp price and an 8-dp quantity of any realistic
# size exact until we quantize it ourselves; the traps turn a silent NaN or infinity into an error.
CTX = Context(prec=60, rounding=ROUND_HALF_EVEN, traps=[InvalidOperation, DivisionByZero, Overflow])

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10_000)

__all__ = ["BPS", "CTX", "ONE", "ROUND_DOWN", "ROUND_HALF_EVEN", "ROUND_UP", "ZERO", "dec", "quantize", "quantizer"]


def dec(x: float) -> Decimal:
    """Exact Decimal of a float's shortest repr (``dec(100.1) == Decimal('100.1')``)."""
    f = float(x)
    if not math.isfinite(f):
        raise ValueError(f"not a finite number: {x!r}")
    return Decimal(repr(f))


def quantizer(step: Decimal) -> Callable[[Decimal, str], Decimal]:
    """A function rounding to multiples of ``step`` with an explicit rounding mode."""
    if step <= 0:
        raise ValueError("step must be > 0")
    if step.as_tuple().digits == (1,):
        # A power of ten: Decimal.quantize does it in one C call.
        def to_power_of_ten(x: Decimal, rounding: str) -> Decimal:
            return x.quantize(step, rounding, CTX)

        return to_power_of_ten

    # Ticks such as 0.5 are not powers of ten: count whole steps, then scale back (exact in CTX).
    def to_step(x: Decimal, rounding: str) -> Decimal:
        return CTX.multiply(CTX.divide(x, step).to_integral_value(rounding, CTX), step)

    return to_step


def quantize(x: Decimal, step: Decimal, rounding: str) -> Decimal:
    """Round ``x`` to a multiple of ``step`` with an explicit rounding mode."""
    return quantizer(step)(x, rounding)
