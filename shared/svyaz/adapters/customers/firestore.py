"""The customer directory on Firestore: aggregation queries, never a stream of every profile.

Per page view (N = customers matched; an aggregation query is billed one read per 1,000 index
entries it scans, at least one):

* totals: 6 aggregation queries over ``profiles`` (count / sum / avg; see ``totals``) and one
  query for the top customers: 6 x ceil(N / 1000) + 3 reads;
* the list: one query, a page of ``limit`` documents (+1 to look ahead, +1 for the cursor);
* search: one batched read of the identifier records the text normalizes as, the profiles they
  point at, and one query per name trait.

The composite indexes these need are in ``infra/firestore.tf`` (``profiles_*``).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

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
    newest_first,
)
from svyaz.adapters.store.firestore import IN_QUERY_LIMIT, FirestoreStore
from svyaz.domain.merge import follow_chain
from svyaz.domain.model import Profile, to_ms

DESCENDING = firestore.Query.DESCENDING
ENTRIES_PER_READ = 1000  # an aggregation query is billed one read per 1,000 index entries


def _at_least(field: str, value: float) -> FieldFilter:
    return FieldFilter(field, ">=", value)


class FirestoreDirectory(CustomerDirectory):
    def __init__(self, store: FirestoreStore) -> None:
        super().__init__()
        self.store = store
        self._profiles = store.client.collection("profiles")

    def _active(self) -> Any:
        return self._profiles.where(filter=FieldFilter("status", "==", "active"))

    def _cohort(self, period: Period) -> Any:
        query = self._active()
        if period.start is not None:
            query = query.where(filter=FieldFilter("first_seen_ms", ">=", to_ms(period.start)))
        if period.end is not None:
            query = query.where(filter=FieldFilter("first_seen_ms", "<", to_ms(period.end)))
        return query

    def _aggregate(self, query: Any, **wanted: tuple[str, str]) -> dict[str, Any]:
        """One aggregation query: ``count`` always, plus ``alias=("sum"|"avg", field)``."""
        aggregation = query.count(alias="n")
        for alias, (operation, field) in wanted.items():
            getattr(aggregation, operation)(field, alias=alias)
        values = {result.alias: result.value for row in aggregation.get() for result in row}
        values["n"] = int(values["n"])
        self.reads += max(1, math.ceil(values["n"] / ENTRIES_PER_READ))
        if not values["n"]:  # no customers: no averages (the emulator answers 0)
            values = {alias: None for alias in values} | {"n": 0}
        return values

    def totals(self, period: Period) -> Totals:
        cohort = self._cohort(period)
        everyone = self._aggregate(
            cohort,
            events=("avg", "counters.events"),
            first=("avg", "first_seen_ms"),
            last=("avg", "last_seen_ms"),
        )
        buyers = self._aggregate(
            cohort.where(filter=_at_least("counters.orders", 1)),
            revenue=("sum", "counters.revenue"),
            orders=("avg", "counters.orders"),
        )
        first_orders = self._aggregate(
            cohort.where(filter=FieldFilter("first_order_ms", ">", 0)),
            first_order=("avg", "first_order_ms"),
            first=("avg", "first_seen_ms"),
        )
        leads = cohort.where(filter=_at_least("counters.leads", 1))
        # No OR across fields (the emulator answers none): customers with both, subtracted.
        aggregates = Aggregates(
            customers=everyone["n"],
            with_orders=buyers["n"],
            with_leads=self._aggregate(leads)["n"],
            both=self._aggregate(leads.where(filter=_at_least("counters.orders", 1)))["n"],
            returning=self._aggregate(cohort.where(filter=_at_least("counters.orders", 2)))["n"],
            revenue=float(buyers.get("revenue") or 0),
            avg_events=everyone.get("events"),
            avg_first_seen_ms=everyone.get("first"),
            avg_last_seen_ms=everyone.get("last"),
            avg_orders=buyers.get("orders"),
            avg_first_order_ms=first_orders.get("first_order"),
            avg_first_seen_with_orders_ms=first_orders.get("first"),
        )
        return Totals.from_aggregates(aggregates, self._top(cohort))

    def _top(self, cohort: Any) -> list[Profile]:
        query = cohort.where(filter=FieldFilter("counters.revenue", ">", 0))
        query = query.order_by("counters.revenue", direction=DESCENDING).limit(TOP_CUSTOMERS)
        return self._stream(query, identifiers=False)  # totals name the top customers, no more

    def _stream(self, query: Any, identifiers: bool = True) -> list[Profile]:
        docs = list(query.stream())
        self.reads += max(1, len(docs))
        profiles = [Profile.from_doc(d.id, d.to_dict()) for d in docs]
        return [self._listed(p) for p in profiles] if identifiers else profiles

    def _listed(self, profile: Profile) -> Profile:
        """The profile with its identifiers: the document holds counts, the records say which.
        Reads: the family's tombstones, one query a level (each tombstone found, and the last
        level's empty answer: the family's size), then one per identifier record (at least one)."""
        if profile.status == "active":
            family = self.store.with_identifiers(profile)
            held = sum(len(values) for values in profile.identifiers.values())
            self.reads += len(family) + max(1, held)
        return profile

    def customers(self, filters: CustomerFilter, limit: int, after: Cursor | None = None) -> CustomerPage:
        query = self._active()
        for name, value in filters.first_touch_equalities().items():
            query = query.where(filter=FieldFilter(name, "==", value))
        if filters.has_orders:
            query = query.where(filter=_at_least("counters.orders", 1))
        if filters.active_from is not None:
            query = query.where(filter=FieldFilter("last_seen_ms", ">=", to_ms(filters.active_from)))
        if filters.active_to is not None:
            query = query.where(filter=FieldFilter("last_seen_ms", "<", to_ms(filters.active_to)))
        # Then Firestore orders by the other inequality fields and the document id, descending.
        query = query.order_by("last_seen_ms", direction=DESCENDING)
        if after is not None:
            # The cursor's own document carries every field the query orders by (with has_orders,
            # Firestore also orders by the orders counter), so the page goes on exactly after it.
            snapshot = self._profiles.document(after.profile_id).get()
            self.reads += 1
            if snapshot.exists:
                query = query.start_after(snapshot)
        # One more than a page, to know there is a next one; identifiers only for those shown.
        page = self._stream(query.limit(limit + 1), identifiers=False)
        more = len(page) > limit
        page = [self._listed(p) for p in page[:limit]]
        return CustomerPage(page, Cursor(to_ms(page[-1].last_seen), page[-1].profile_id) if more else None)

    def touches_before(self, profile_ids: list[str], at: datetime) -> int:
        touchpoints = self.store.client.collection("touchpoints")
        total = 0
        for start in range(0, len(profile_ids), IN_QUERY_LIMIT):
            query = touchpoints.where(
                filter=FieldFilter("profile_id", "in", profile_ids[start : start + IN_QUERY_LIMIT])
            )
            total += self._aggregate(query.where(filter=FieldFilter("timestamp", "<", at)))["n"]
        return total

    def search(self, search: Search, limit: int = 20) -> list[Profile]:
        found: dict[str, Profile] = {}
        for profile in self._by_identifiers(search):
            found[profile.profile_id] = profile
        if search.profile_id and (profile := self._resolve(search.profile_id)) is not None:
            found[profile.profile_id] = profile
        for trait in NAME_TRAITS if search.names else ():
            named = FieldFilter(f"traits.{trait}.value", "in", list(search.names))
            query = self._profiles.where(filter=named)
            for profile in self._stream(query.limit(limit)):
                if profile.status == "active":
                    found[profile.profile_id] = profile
        return sorted(found.values(), key=newest_first)[:limit]

    def _by_identifiers(self, search: Search) -> list[Profile]:
        if not search.identifiers:
            return []
        identifiers = self.store.client.collection("identifiers")
        refs = [identifiers.document(self.store.keys.identifier(i)) for i in search.identifiers]
        docs = list(self.store.client.get_all(refs))
        self.reads += len(refs)
        owners = {d.get("profile_id") for d in docs if d.exists}
        return [p for pid in sorted(owners) if (p := self._resolve(pid)) is not None]

    def _resolve(self, profile_id: str) -> Profile | None:
        """``store.active_profile`` (one read per hop, usually one), with its identifiers."""

        def fetch(pid: str) -> Profile | None:
            self.reads += 1
            return self.store._profile_doc(pid)

        profile = follow_chain(profile_id, fetch)
        return None if profile is None else self._listed(profile)
