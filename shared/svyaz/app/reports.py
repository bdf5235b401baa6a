"""Reports over the touch history. Pure aggregation: the caller reads the touchpoints
(``store.touchpoints_between``) and renders the result.

Attribution of sales: each order touchpoint carries ``credit`` (set by the engine when the order
was applied): ``first_touch`` (the profile's first ad source) and ``last_touch`` (the last
non-direct source before the order, within the policy's look-back window). The report sums
orders and revenue by the credited source / medium / campaign, split between offline sales
(channel ``crm`` or ``store``: the till, the showroom, the sales desk) and online ones.
Cancelled and refunded orders count for nothing, as in the profile's counters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from svyaz.domain.merge import order_value
from svyaz.domain.model import Touchpoint

By = Literal["first_touch", "last_touch"]
BY: tuple[By, ...] = ("first_touch", "last_touch")
OFFLINE_CHANNELS = frozenset({"crm", "store"})
NONE = "(none)"  # no ad source known for the order
CENTS = Decimal("0.01")


@dataclass
class Line:
    """Orders and revenue credited to one source / medium / campaign, in one currency."""

    source: str
    medium: str
    campaign: str
    currency: str
    offline_orders: int = 0
    offline_revenue: Decimal = Decimal("0.00")
    online_orders: int = 0
    online_revenue: Decimal = Decimal("0.00")

    @property
    def orders(self) -> int:
        return self.offline_orders + self.online_orders

    @property
    def revenue(self) -> Decimal:
        return self.offline_revenue + self.online_revenue

    @property
    def label(self) -> str:
        return " / ".join(part for part in (self.source, self.medium, self.campaign) if part)

    def add(self, offline: bool, amount: Decimal) -> None:
        if offline:
            self.offline_orders += 1
            self.offline_revenue += amount
        else:
            self.online_orders += 1
            self.online_revenue += amount

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "medium": self.medium,
            "campaign": self.campaign,
            "currency": self.currency,
            "offline": {"orders": self.offline_orders, "revenue": _money(self.offline_revenue)},
            "online": {"orders": self.online_orders, "revenue": _money(self.online_revenue)},
            "orders": self.orders,
            "revenue": _money(self.revenue),
        }


@dataclass
class AttributionReport:
    by: By
    start: datetime | None
    end: datetime | None
    lines: list[Line] = field(default_factory=list)  # revenue first
    totals: list[Line] = field(default_factory=list)  # one per currency
    uncounted: int = 0  # cancelled / refunded orders in the period

    def as_dict(self) -> dict[str, Any]:
        return {
            "by": self.by,
            "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat() if self.end else None,
            "lines": [line.as_dict() for line in self.lines],
            "totals": [
                {k: v for k, v in t.as_dict().items() if k not in ("source", "medium", "campaign")}
                for t in self.totals
            ],
            "cancelled_or_refunded": self.uncounted,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttributionReport:
        """The report back from ``as_dict()`` (what the profiles function answers)."""

        def line(item: dict[str, Any]) -> Line:
            return Line(
                item.get("source", ""),
                item.get("medium", ""),
                item.get("campaign", ""),
                item["currency"],
                item["offline"]["orders"],
                Decimal(item["offline"]["revenue"]),
                item["online"]["orders"],
                Decimal(item["online"]["revenue"]),
            )

        when = {k: datetime.fromisoformat(data[k]) if data.get(k) else None for k in ("from", "to")}
        return cls(
            data["by"],
            when["from"],
            when["to"],
            [line(item) for item in data.get("lines", [])],
            [line(item) for item in data.get("totals", [])],
            int(data.get("cancelled_or_refunded", 0)),
        )

    def render_text(self, period: str = "") -> str:
        title = f"Revenue by {self.by.replace('_', ' ')} ad source" + (f", {period}" if period else "")
        if not self.lines:
            return f"{title}\n  no orders in this period"
        headers = ("source / medium / campaign", "cur", "offline", "offline rev", "online", "online rev")
        rows = [
            (
                line.label,
                line.currency,
                str(line.offline_orders),
                _money(line.offline_revenue),
                str(line.online_orders),
                _money(line.online_revenue),
            )
            for line in [*self.lines, *self.totals]
        ]
        rows[len(self.lines) :] = [("total", *row[1:]) for row in rows[len(self.lines) :]]
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

        def fmt(row: tuple[str, ...]) -> str:
            cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
            cells += [cell.rjust(widths[i + 2]) for i, cell in enumerate(row[2:])]
            return "  " + "  ".join(cells)

        out = [title, fmt(headers)]
        out += [fmt(row) for row in rows[: len(self.lines)]]
        out.append("  " + "-" * (sum(widths) + 2 * (len(widths) - 1)))
        out += [fmt(row) for row in rows[len(self.lines) :]]
        if self.uncounted:
            out.append(f"  ({self.uncounted} cancelled or refunded orders count for nothing)")
        return "\n".join(out)


def _money(amount: Decimal) -> str:
    return format(amount.quantize(CENTS), "f")


def _amount(properties: dict[str, Any]) -> Decimal:
    try:
        return Decimal(str(properties.get("amount") or 0)).quantize(CENTS)
    except (InvalidOperation, ValueError):
        return Decimal("0.00")


def attribution(
    touchpoints: Iterable[Touchpoint],
    by: By = "first_touch",
    start: datetime | None = None,
    end: datetime | None = None,
) -> AttributionReport:
    """Orders and revenue by the ad source credited with each order (``by``)."""
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}")
    lines: dict[tuple[str, str, str, str], Line] = {}
    totals: dict[str, Line] = {}
    uncounted = 0
    for touchpoint in touchpoints:
        if touchpoint.type != "order":
            continue
        counts, _ = order_value(touchpoint.type, touchpoint.properties)
        if not counts:
            uncounted += 1
            continue
        credit = touchpoint.credit.get(by) or {}
        currency = str(touchpoint.properties.get("currency") or "RUB")
        key = (
            credit.get("source") or NONE,
            credit.get("medium") or ("" if credit.get("source") else NONE),
            credit.get("campaign") or "",
            currency,
        )
        offline = touchpoint.channel in OFFLINE_CHANNELS
        amount = _amount(touchpoint.properties)
        lines.setdefault(key, Line(*key)).add(offline, amount)
        totals.setdefault(currency, Line("", "", "", currency)).add(offline, amount)
    ordered = sorted(lines.values(), key=lambda line: (line.currency, -line.revenue, line.label))
    return AttributionReport(by, start, end, ordered, [totals[c] for c in sorted(totals)], uncounted)


def period(first: date, last: date, tz: tzinfo) -> tuple[datetime, datetime]:
    """``[first 00:00, the day after last 00:00)`` in ``tz``, as UTC times."""
    start = datetime.combine(first, time(), tz).astimezone(UTC)
    end = datetime.combine(last + timedelta(days=1), time(), tz).astimezone(UTC)
    return start, end


def attribution_for_days(store: Any, first: date, last: date, tz: tzinfo, by: By) -> AttributionReport:
    """The attribution report of the orders between two days (inclusive) in ``tz``."""
    start, end = period(first, last, tz)
    return attribution(store.touchpoints_between("order", start, end), by, start, end)
