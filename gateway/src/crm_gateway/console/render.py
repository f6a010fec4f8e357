"""How the view definitions' formats and the dashboard's charts are drawn, server side."""

from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "CNY": "¥", "JPY": "¥"}


def money(amount: Any, currency: str | None) -> str:
    if amount in (None, ""):
        return ""
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        return str(amount)
    # The currency code always shows: $ alone would not tell USD from other dollars.
    return f"{value:,.2f} {currency or ''}".strip()


def fmt(value: Any, kind: str | None, *, currency: str | None = None) -> str:
    """A value as a column or card field of `kind` (the definition's `type`) shows it."""
    if value is None or value == "":
        return ""
    if kind == "currency":
        return money(value, currency)
    if kind == "percentage":
        return f"{value}%"
    if kind in ("datetime", "date"):
        try:
            parsed = (
                datetime.fromisoformat(str(value)) if kind == "datetime" else date.fromisoformat(str(value))
            )
        except ValueError:
            return str(value)
        return parsed.strftime("%Y-%m-%d")
    return str(value)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(value: Any, time_zone: str | None = None) -> str:
    """An RFC 3339 instant as the user's wall-clock time (`2026-12-07 09:30`)."""
    if not value:
        return ""
    try:
        instant = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if instant.tzinfo is None:
        return instant.strftime("%Y-%m-%d %H:%M")
    return instant.astimezone(zone(time_zone)).strftime("%Y-%m-%d %H:%M")


def funnel_svg(stages: list[dict[str, Any]], *, width: int = 560, bar_height: int = 28) -> dict[str, Any]:
    """Geometry for the funnel: one centred bar per stage, its width by the number of opportunities."""
    biggest = max([s["count"] for s in stages] + [1])
    rows = []
    for i, stage in enumerate(stages):
        w = max(4, int((width - 200) * stage["count"] / biggest))
        rows.append(
            {
                **stage,
                "x": 140 + ((width - 200) - w) // 2,
                "y": i * (bar_height + 8),
                "w": w,
                "h": bar_height,
                "amounts": ", ".join(money(t["amount"], t["currency"]) for t in stage.get("totals", [])),
            }
        )
    return {"width": width, "height": max(1, len(stages)) * (bar_height + 8), "rows": rows}


def revenue_svg(
    won: list[dict[str, Any]], stages: list[dict[str, Any]], *, width: int = 360
) -> list[dict[str, Any]]:
    """One small chart per currency (amounts in different currencies are never drawn on one scale):
    won revenue beside the open pipeline in that currency."""
    open_by_currency: dict[str, Decimal] = {}
    for stage in stages:
        if stage.get("isWon") or stage.get("isLost"):
            continue
        for total in stage.get("totals", []):
            open_by_currency[total["currency"]] = open_by_currency.get(
                total["currency"], Decimal(0)
            ) + Decimal(total["amount"])
    won_by_currency = {t["currency"]: Decimal(t["amount"]) for t in won}
    charts = []
    for currency in sorted(set(won_by_currency) | set(open_by_currency)):
        bars = [
            ("Won", won_by_currency.get(currency, Decimal(0))),
            ("Open", open_by_currency.get(currency, Decimal(0))),
        ]
        top = max([v for _, v in bars] + [Decimal(1)])
        charts.append(
            {
                "currency": currency,
                "width": width,
                "bars": [
                    {
                        "label": label,
                        "value": money(v, currency),
                        "w": max(2, int((width - 180) * v / top)),
                        "y": i * 34,
                    }
                    for i, (label, v) in enumerate(bars)
                ],
            }
        )
    return charts
