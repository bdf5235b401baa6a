"""The application service: apply one canonical event to the identity graph.

This is the one code path every entry point uses (the Pub/Sub function, the local worker,
bulk import, the benchmark): observe the event, take the fast path when the graph does not
change, else run the merge engine inside one store transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

from svyaz.adapters.store.base import Duplicate, FastWrite, Store, StoreError
from svyaz.domain.events import Event
from svyaz.domain.merge import (
    Observation,
    Plan,
    counter_increments,
    fast_path_profile,
    may_take_fast_path,
    observe,
    order_credit,
    plan_event,
    touch_update,
    touchpoint_for,
)
from svyaz.domain.model import Outcome
from svyaz.identity.policy import Policy

log = logging.getLogger("svyaz.app.service")
ORDERS_SCANNED = 1000  # the latest touches of a profile searched for its orders
FAST_PATH_ATTEMPTS = 3
# Attributed page views on the fast path (first/last touch written under a revision precondition).
# Off until a stress run clears the one split customer seen in 1 of 4 contended emulator runs with
# it on (docs/performance.md); with it off, attributed events take the transaction, as before.
ATTRIBUTED_FAST_PATH = False
RETRY = object()  # the fast path lost a race: read again


def new_profile_id() -> str:
    return uuid.uuid4().hex


class IdentityService:
    def __init__(self, store: Store, policy: Policy, id_factory: Callable[[], str] = new_profile_id) -> None:
        self.store = store
        self.policy = policy
        self.id_factory = id_factory
        self.stats = {"fast_path": 0, "fast_path_retries": 0, "transactions": 0, "duplicates": 0}

    def apply(self, event: Event) -> Outcome:
        """Apply an event exactly once. Raises ``InvalidEvent`` for an event that can never
        apply, ``store.Contention`` / ``StoreError`` for a transient failure (retry later)."""
        observation = observe(event, self.policy)
        # An event that cannot take the fast path goes straight to its transaction (which
        # replays a duplicate too): no read outside it.
        eligible = may_take_fast_path(observation) and (
            ATTRIBUTED_FAST_PATH or not observation.event.context.attribution()
        )
        outcome = self._fast_path(observation) if eligible else None
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
        # A concurrent write to the profile (a busy customer's other page views) only costs a
        # fresh read: the transaction is for events that change the graph.
        for _ in range(FAST_PATH_ATTEMPTS):
            outcome = self._fast_path_once(observation)
            if outcome is not RETRY:
                return outcome
            self.stats["fast_path_retries"] += 1
        return None

    def _fast_path_once(self, observation: Observation) -> Outcome | None | object:
        event = observation.event
        snapshot = self.store.read_snapshot(observation.all_linking, event.event_id)
        if snapshot.processed is not None:
            snapshot.processed.duplicate = True
            return snapshot.processed
        profile = fast_path_profile(observation, snapshot)
        if profile is None:
            return None
        outcome = Outcome(event.event_id, "unchanged", profile.profile_id, dropped=list(observation.dropped))
        touches = touch_update(profile, event)
        if touches is not None and profile.counters.get("orders") and event.timestamp < profile.last_seen:
            return None  # a late touch of a customer with orders: the transaction path re-credits them
        write = FastWrite(
            profile_id=profile.profile_id,
            touchpoint=touchpoint_for(observation, profile.profile_id),
            outcome=outcome,
            increments=counter_increments(event),
            seen_at=event.timestamp,
            touches=touches,
            revision=profile.revision if touches is not None else None,
        )
        try:
            self.store.write_fast(write)
        except Duplicate:
            return None  # applied meanwhile: the transaction path replays its outcome
        except KeyError:
            return None  # the profile vanished (erased) meanwhile: decide again in a transaction
        except StoreError:
            return RETRY  # the profile changed since it was read, or the write was contended
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
