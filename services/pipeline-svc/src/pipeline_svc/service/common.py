"""Helpers shared by the pipeline's domain modules."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
HUNDRED = Decimal("100")


def cents(value: Decimal) -> Decimal:
    """Money is rounded to the cent, half up."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def line_total(quantity: Decimal, unit_price: Decimal, discount: Decimal) -> Decimal:
    return cents(Decimal(quantity) * Decimal(unit_price) * (HUNDRED - Decimal(discount)) / HUNDRED)
