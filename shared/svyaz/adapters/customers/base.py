"""The customer directory port: the journal's read side (totals, the customer list, search).

The store port (``adapters.store.base``) is shaped for the write path: one customer at a time.
The journal asks questions over all customers; this port answers them without streaming every
profile per page view. Both implementations (``memory.MemoryDirectory``,
``firestore.FirestoreDirectory``) pass the same contract suite (``tests/contract``).

What counts, for a period (customers whose first touch falls in it, a cohort):

* with orders: at least one order that counts (cancelled and refunded ones do not);
* with leads: at least one lead form, call or message (``LEAD_TYPES``);
* returning: two or more orders (they came back to buy again);
* average LTV: revenue per customer with orders; average orders: per customer with orders;
* average days to the first order: from the first touch to the first order placed;
* average chain length: events per customer; average span: days from first to last touch.
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime

from svyaz.domain.merge import LEAD_TYPES
from svyaz.domain.model import Identifier, Profile, to_ms

DAY_MS = 86_400_000
TOP_CUSTOMERS = 3
NAME_TRAITS = ("first_name", "last_name", "name")
MAX_PAGE = 100


@dataclass(frozen=True)
class Period:
    """``start <= first touch < end``; either end open."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class CustomerFilter:
    """Equality on the first touch's source / medium / campaign / channel, only customers with
    orders (``has_orders``; "without" cannot be asked of Firestore: customers without orders
    have no ``orders`` counter at all), and the last activity within ``[active_from, active_to)``."""

    source: str | None = None
    medium: str | None = None
    campaign: str | None = None
    channel: str | None = None
    has_orders: bool = False
    active_from: datetime | None = None
    active_to: datetime | None = None

    def first_touch_equalities(self) -> dict[str, str]:
        """Profile document field -> wanted value."""
        fields = {
            "first_touch.attribution.source": self.source,
            "first_touch.attribution.medium": self.medium,
            "first_touch.attribution.campaign": self.campaign,
            "first_touch.channel": self.channel,
        }
        return {name: value for name, value in fields.items() if value}


@dataclass(frozen=True)
class Cursor:
    """Where a page of the list ends: (last activity, profile id), newest first."""

    last_seen_ms: int
    profile_id: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.last_seen_ms}:{self.profile_id}".encode()).decode()

    @classmethod
    def decode(cls, text: str | None) -> Cursor | None:
        if not text:
            return None
        try:
            ms, _, pid = base64.urlsafe_b64decode(text.encode()).decode().partition(":")
            return cls(int(ms), pid) if pid and len(pid) <= 64 else None
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return None


@dataclass
class CustomerPage:
    customers: list[Profile]
    next: Cursor | None = None


@dataclass
class Aggregates:
    """The raw numbers of a period, as aggregation queries give them (averages are None over no
    customers). ``Totals`` derives what the journal shows from these."""

    customers: int = 0
    with_orders: int = 0
    with_leads: int = 0
    both: int = 0  # orders and leads
    returning: int = 0
    revenue: float = 0.0
    avg_events: float | None = None
    avg_first_seen_ms: float | None = None
    avg_last_seen_ms: float | None = None
    avg_orders: float | None = None
    # Over customers who placed an order (kept if it was cancelled later): both averages over
    # the same customers, so their difference is the average time to the first order.
    avg_first_order_ms: float | None = None
    avg_first_seen_with_orders_ms: float | None = None


@dataclass
class Totals:
    customers: int
    with_orders: int
    with_leads: int
    with_neither: int
    returning: int
    revenue: float
    average_ltv: float | None
    average_days_to_first_order: float | None
    average_orders: float | None
    average_chain: float | None
    average_span_days: float | None
    top: list[Profile] = field(default_factory=list)

    @classmethod
    def from_aggregates(cls, a: Aggregates, top: list[Profile]) -> Totals:
        def days(later: float | None, earlier: float | None) -> float | None:
            return None if later is None or earlier is None else max(0.0, (later - earlier) / DAY_MS)

        return cls(
            customers=a.customers,
            with_orders=a.with_orders,
            with_leads=a.with_leads,
            with_neither=a.customers - (a.with_orders + a.with_leads - a.both),
            returning=a.returning,
            revenue=round(a.revenue, 2),
            average_ltv=round(a.revenue / a.with_orders, 2) if a.with_orders else None,
            average_days_to_first_order=days(a.avg_first_order_ms, a.avg_first_seen_with_orders_ms),
            average_orders=a.avg_orders,
            average_chain=a.avg_events,
            average_span_days=days(a.avg_last_seen_ms, a.avg_first_seen_ms),
            top=top,
        )


@dataclass(frozen=True)
class Search:
    """What a person typed, already normalized: the identifiers it may be (one per kind it
    normalizes as), the spellings of a name it may be, and a profile id."""

    identifiers: tuple[Identifier, ...] = ()
    names: tuple[str, ...] = ()
    profile_id: str | None = None


class CustomerDirectory(ABC):
    """The journal's questions over all customers. ``reads`` counts the billed document reads
    (Firestore: an aggregation query is one read per 1,000 index entries it matches, at least
    one; a query one per document returned, at least one), so each page can say what it cost."""

    def __init__(self) -> None:
        self.reads = 0

    @abstractmethod
    def totals(self, period: Period) -> Totals: ...

    @abstractmethod
    def customers(self, filters: CustomerFilter, limit: int, after: Cursor | None = None) -> CustomerPage:
        """Active customers, newest activity first."""

    @abstractmethod
    def touches_before(self, profile_ids: list[str], at: datetime) -> int:
        """How many touchpoints these profiles (a customer and the profiles merged into it)
        have before ``at`` (the card's touches before the first order)."""

    @abstractmethod
    def search(self, search: Search, limit: int = 20) -> list[Profile]:
        """Active customers holding one of the identifiers, named one of the names, or with
        that profile id (a merged id finds its survivor), newest activity first."""


def newest_first(profile: Profile) -> tuple[int, tuple[int, ...]]:
    """The list's order: latest activity first, then profile id descending (as Firestore's
    ``__name__ DESCENDING``), so pages never overlap."""
    return (-to_ms(profile.last_seen), tuple(-ord(c) for c in profile.profile_id))


def name_spellings(text: str) -> tuple[str, ...]:
    """A name as people type it and as it is usually stored: exact, Capitalized, lower."""
    text = " ".join(text.split())
    if not text or len(text) > 100:
        return ()
    return tuple(dict.fromkeys([text, text[:1].upper() + text[1:].lower(), text.title(), text.lower()]))


def has_leads(counters: dict[str, float]) -> bool:
    return counters.get("leads", 0) >= 1


__all__ = ["LEAD_TYPES"]
