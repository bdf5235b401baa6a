"""The customer directory over the in-memory store: the same answers as Firestore, computed by
walking the profiles (the embedded default holds few customers)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from statistics import fmean

from svyaz.adapters.customers.base import (
    NAME_TRAITS,
    TOP_CUSTOMERS,
    Aggregates,
    Cursor,
    CustomerDirectory,
    CustomerFilter,
    CustomerPage,
    Period,
    Search,
    Totals,
    has_leads,
    newest_first,
)
from svyaz.adapters.store.base import Store
from svyaz.domain.model import Profile, from_ms, to_ms


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return fmean(values) if values else None


class MemoryDirectory(CustomerDirectory):
    def __init__(self, store: Store) -> None:
        super().__init__()
        self.store = store

    def _active(self) -> list[Profile]:
        return [p for p in self.store.iter_profiles() if p.status == "active"]

    def totals(self, period: Period) -> Totals:
        cohort = [p for p in self._active() if _in(to_ms(p.first_seen), period.start, period.end)]
        buyers = [p for p in cohort if p.counters.get("orders", 0) >= 1]
        leads = [p for p in cohort if has_leads(p.counters)]
        aggregates = Aggregates(
            customers=len(cohort),
            with_orders=len(buyers),
            with_leads=len(leads),
            both=sum(1 for p in buyers if has_leads(p.counters)),
            returning=sum(1 for p in buyers if p.counters.get("orders", 0) >= 2),
            revenue=sum(p.counters.get("revenue", 0) for p in buyers),
            avg_events=_mean(p.counters.get("events", 0) for p in cohort),
            avg_first_seen_ms=_mean(to_ms(p.first_seen) for p in cohort),
            avg_last_seen_ms=_mean(to_ms(p.last_seen) for p in cohort),
            avg_orders=_mean(p.counters["orders"] for p in buyers),
            avg_first_order_ms=_mean(to_ms(p.first_order_at) for p in cohort if p.first_order_at),
            avg_first_seen_with_orders_ms=_mean(to_ms(p.first_seen) for p in cohort if p.first_order_at),
        )
        top = sorted(cohort, key=lambda p: (-p.counters.get("revenue", 0), newest_first(p)))
        top = [p for p in top if p.counters.get("revenue", 0) > 0][:TOP_CUSTOMERS]
        return Totals.from_aggregates(aggregates, top)

    def customers(self, filters: CustomerFilter, limit: int, after: Cursor | None = None) -> CustomerPage:
        wanted = filters.first_touch_equalities()
        found = [
            p
            for p in self._active()
            if _matches(p, filters, wanted)
            and (after is None or newest_first(p) > newest_first(_cursor_profile(after)))
        ]
        found.sort(key=newest_first)
        page = found[:limit]
        more = len(found) > limit
        return CustomerPage(page, Cursor(to_ms(page[-1].last_seen), page[-1].profile_id) if more else None)

    def touches_before(self, profile_ids: list[str], at: datetime) -> int:
        return sum(1 for t in self.store.touchpoints(profile_ids, 10**9) if t.timestamp < at)

    def search(self, search: Search, limit: int = 20) -> list[Profile]:
        found: dict[str, Profile] = {}
        for identifier in search.identifiers:
            if (profile := self.store.lookup(identifier)) is not None:
                found[profile.profile_id] = profile
        if search.profile_id and (profile := self.store.resolve(search.profile_id)) is not None:
            found[profile.profile_id] = profile
        if search.names:
            for profile in self._active():
                values = {str(t.value) for n, t in profile.traits.items() if n in NAME_TRAITS}
                if values & set(search.names):
                    found[profile.profile_id] = profile
        return sorted(found.values(), key=newest_first)[:limit]


def _cursor_profile(cursor: Cursor) -> Profile:
    at = from_ms(cursor.last_seen_ms)
    return Profile(cursor.profile_id, "active", first_seen=at, last_seen=at)


def _in(value: int, start, end) -> bool:
    return (start is None or value >= to_ms(start)) and (end is None or value < to_ms(end))


def _matches(profile: Profile, filters: CustomerFilter, wanted: dict[str, str]) -> bool:
    touch = profile.first_touch
    if wanted and touch is None:
        return False
    if touch is not None:
        fields = {f"first_touch.attribution.{k}": v for k, v in touch.attribution.items()}
        fields["first_touch.channel"] = touch.channel
        if any(fields.get(name) != value for name, value in wanted.items()):
            return False
    if filters.has_orders and profile.counters.get("orders", 0) < 1:
        return False
    return _in(to_ms(profile.last_seen), filters.active_from, filters.active_to)
