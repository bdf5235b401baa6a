"""The application service: apply one canonical event to the identity graph.

This is the one code path every entry point uses (the Pub/Sub function, the local worker,
bulk import, the benchmark): observe the event, take the fast path when the graph does not
change, else run the merge engine inside one store transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from .domain.events import Event
from .domain.merge import (
    Observation,
    Plan,
    counter_increments,
    fast_path_profile,
    observe,
    order_credit,
    plan_event,
    touchpoint_for,
)
from .domain.model import Outcome
from .identity.policy import Policy
from .store.base import Duplicate, FastWrite, Store, StoreError

log = logging.getLogger("svyaz.service")
ORDERS_SCANNED = 1000  # the latest touches of a profile searched for its orders


def new_profile_id() -> str:
    return uuid.uuid4().hex


class IdentityService:
    def __init__(self, store: Store, policy: Policy, id_factory: Callable[[], str] = new_profile_id) -> None:
        self.store = store
        self.policy = policy
        self.id_factory = id_factory
        self.stats = {"fast_path": 0, "transactions": 0, "duplicates": 0}

    def apply(self, event: Event) -> Outcome:
        """Apply an event exactly once. Raises ``InvalidEvent`` for an event that can never
        apply, ``store.Contention`` / ``StoreError`` for a transient failure (retry later)."""
        observation = observe(event, self.policy)
        outcome = self._fast_path(observation)
        if outcome is None:
            outcome = self._transaction(observation)
        if outcome.duplicate:
            self.stats["duplicates"] += 1
        log.info(
            "event applied",
            extra={"svyaz": {k: v for k, v in outcome.as_dict().items() if k != "dropped"}},
        )
        return outcome

    def _fast_path(self, observation: Observation) -> Outcome | None:
        event = observation.event
        snapshot = self.store.read_snapshot(observation.all_linking, event.event_id)
        if snapshot.processed is not None:
            snapshot.processed.duplicate = True
            return snapshot.processed
        profile = fast_path_profile(observation, snapshot)
        if profile is None:
            return None
        outcome = Outcome(event.event_id, "unchanged", profile.profile_id, dropped=list(observation.dropped))
        write = FastWrite(
            profile_id=profile.profile_id,
            touchpoint=touchpoint_for(observation, profile.profile_id),
            outcome=outcome,
            increments=counter_increments(event),
            seen_at=event.timestamp,
        )
        try:
            self.store.write_fast(write)
        except Duplicate:
            return None  # applied meanwhile: the transaction path replays its outcome
        except KeyError:
            return None  # the profile vanished (erased) meanwhile: decide again in a transaction
        except StoreError:
            return None  # contended: the transaction path retries with backoff
        self.stats["fast_path"] += 1
        return outcome

    def _transaction(self, observation: Observation) -> Outcome:
        new_id = self.id_factory()
        plan = self.store.transact(
            observation.all_linking,
            observation.event.event_id,
            lambda snapshot: plan_event(observation, snapshot, self.policy, new_id),
            observation.touchpoint_name,
        )
        self.stats["transactions"] += 1
        for loser, survivor in plan.merges:
            try:
                self.store.repoint(loser, survivor)
            except StoreError:
                # The merge is committed and reads follow merged_into: the records stay right,
                # only one hop longer to resolve.
                log.warning("re-pointing deferred", extra={"svyaz": {"loser": loser, "survivor": survivor}})
        self._recredit_orders(plan, observation)
        return plan.outcome

    def _recredit_orders(self, plan: Plan, observation: Observation) -> None:
        """Keep each order credited to the touches that really preceded it, whatever the arrival
        order: when a merge brings a profile's earlier touches, or a touch arrives after a later
        order, the profile's orders get their credit again (a follow-up, like re-pointing)."""
        survivor = next((p for p in plan.profiles if p.profile_id == plan.outcome.profile_id), None)
        if survivor is None or not survivor.counters.get("orders"):
            return
        event = observation.event
        late_touch = bool(event.context.attribution()) and event.timestamp < survivor.last_seen
        if not plan.merges and not late_touch:
            return
        family = [survivor.profile_id, *survivor.merged_from]
        try:
            for order in self.store.touchpoints(family, ORDERS_SCANNED):
                if order.type != "order":
                    continue
                credit = order_credit(survivor, order.timestamp, self.policy.attribution_lookback_days)
                if credit != order.credit:
                    self.store.set_credit(order.name, credit)
        except StoreError:
            log.warning("order credit not refreshed", extra={"svyaz": {"profile_id": survivor.profile_id}})
