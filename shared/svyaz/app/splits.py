"""Block a value and split a profile: the request, and carrying it out in resumable steps.

A split request is queued on the events topic (``kind=split``) like an erasure. ``run`` takes it
as far as the time budget allows, each step one transaction and idempotent, its progress kept
in ``splits/{request id}``:

1. **block** (one transaction): the value goes on the store's blocklist and leaves the profile
   holding it; the profile is marked ``splitting``: from now on events that would change it
   raise ``ProfileBusy`` and are retried by Pub/Sub until the split is done.
2. **plan**: read the evidence (the touchpoints of the profile and its tombstones, the records
   it holds), re-partition it (``domain.split.repartition``), store the writes in chunks of at
   most 400 documents, create the new profiles.
3. **move**: one transaction per chunk (records re-pointed with their re-derived evidence,
   touchpoints re-pointed and orders re-credited); the cursor is part of the transaction.
4. **finish** (one transaction): the kept profile's recomputed document, every resulting profile
   open to events again, the audit entries.
5. **settle**, a grace period later (``FAST_GRACE_MS``): fast-path page views that read a record
   before it moved and wrote after the evidence was read go to the profile their identifiers
   resolve to; then ``profile-updates`` hears of each profile.

When the budget runs out between chunks, ``run`` returns ``None`` and the caller queues the
request again: a 10,000-identifier, 50,000-touchpoint profile is ~150 chunks over a few
invocations, never one huge transaction nor one over-long function run.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

from svyaz.adapters.queue import Publisher, split_message
from svyaz.adapters.store.base import CLOCK_MARGIN_MS, FAST_GRACE_MS, Later, Store
from svyaz.domain.model import AuditEntry, Identifier, Touchpoint, to_ms
from svyaz.domain.split import SplitRequest, plan_parts, repartition, split_profile_id, summary
from svyaz.identity.policy import Policy

log = logging.getLogger("svyaz.app.splits")


def new_request(profile_id: str, block: Identifier, reason: str) -> SplitRequest:
    return SplitRequest(uuid.uuid4().hex, profile_id, block, reason, datetime.now(UTC))


def queue_split(
    store: Store, publisher: Publisher, topic: str, profile_id: str, block: Identifier, reason: str
) -> SplitRequest:
    """Store a split request and queue it on the events topic (``kind=split``): what the
    profiles API and the journal's split action do. ``QueueUnavailable`` raises when it could
    not be queued (the stored request then stays ``queued``: a second confirm queues it again).

    Idempotent: the request id is derived from the profile, the value and a generation, so
    confirming the same split again (a double submit, a second tab, a retried API call) answers
    the standing request; a new one is stored only after the last one failed or its value was
    unblocked since."""
    for generation in range(MAX_SPLIT_GENERATIONS):
        request_id = store.keys.split_request(profile_id, block, generation)
        existing = store.get_split(request_id)
        if existing is not None and not _standing(store, existing):
            continue
        if existing is None:
            request = SplitRequest(request_id, profile_id, block, reason, datetime.now(UTC))
            store.create_split(request)  # a concurrent confirm's create wins: read what is stored
            existing = store.get_split(request_id) or request
        if existing.state == "queued":  # a repeat may find its message lost: queued again, harmless
            publisher.publish(topic, [split_message(existing.request_id)])
        return existing
    request = new_request(profile_id, block, reason)
    store.create_split(request)
    publisher.publish(topic, [split_message(request.request_id)])
    return request


MAX_SPLIT_GENERATIONS = 32  # splits of one profile on one value; past them a random id


def _standing(store: Store, request: SplitRequest) -> bool:
    """Whether a request still answers for its profile and value: under way, or done and its
    value still blocked by it (an operator who unblocked the value may split on it again)."""
    if request.state in ("queued", "moving"):
        return True
    if request.state != "done":
        return False
    entry = store.block_entry(request.block)
    return entry is not None and entry.request_id == request.request_id


class Splitter:
    """``wait``: raise ``Later`` while the settling pass is not due (the queue redelivers the
    request); without it the pass runs at once (callers with no fast-path write in flight)."""

    def __init__(
        self,
        store: Store,
        policy: Policy,
        clock=time.monotonic,
        wait: bool = False,
        updates: Callable[[list[tuple[Touchpoint, str]]], None] | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.clock = clock
        self.wait = wait
        self.updates = updates  # corrections for downstream (``IdentityService.updates``)

    def run(self, request_id: str, budget_seconds: float = 300.0) -> SplitRequest | None:
        """Carry the request as far as the budget allows: the finished (or failed) request, or
        None when it must be queued again to go on. Unknown request ids raise ``KeyError``."""
        deadline = self.clock() + budget_seconds
        request = self.store.get_split(request_id)
        if request is None:
            raise KeyError(request_id)
        if request.state == "queued":
            request = self.store.begin_split(request_id, datetime.now(UTC))
        if request.state == "moving" and request.parts < 0:
            request = self._plan(request)
        while request.state == "moving" and request.cursor < request.parts:
            request = self.store.apply_split_part(request_id, request.cursor)
            # At least one chunk per invocation, so every delivery makes progress.
            if request.cursor < request.parts and self.clock() > deadline:
                log.info("split continues later", extra={"svyaz": {"request_id": request_id}})
                return None
        if request.state == "moving":
            self._tell_moved(request)
            request = self.store.finish_split(request_id, self._audit(request))
            log.info("profile split", extra={"svyaz": {"request_id": request_id, **request.result}})
        if request.state == "done" and request.settle_ms:
            request = self._settle(request)
        if request.state == "done":  # the profile documents' aggregates, from the moved evidence
            for profile_id in request.result.get("profile_ids", [request.profile_id]):
                self.store.fold(profile_id)
        return request

    def _tell_moved(self, request: SplitRequest) -> None:
        """Every touchpoint the split gave to a new profile was published (profile update,
        warehouse row) with a profile of the family: downstream hears, before the split is
        done (a redelivery tells again), that it belongs to the new profile now."""
        if self.updates is None:
            return
        kept = request.profile_id
        for profile_id in request.result.get("profile_ids", []):
            if profile_id != kept:
                moved = self.store.touchpoints_of([profile_id])
                self.updates([(dataclasses.replace(t, profile_id=kept), profile_id) for t in moved])

    def _settle(self, request: SplitRequest) -> SplitRequest:
        """5. *settle*: a fast-path page view that read a record of the family before the split
        moved it, and wrote after the evidence was read, sits on the profile it read. Due a grace
        period after the last record moved (``FAST_GRACE_MS``), this pass gives each such write
        to the profile all its identifiers resolve to now, and credits the orders again."""
        now = to_ms(datetime.now(UTC))
        if self.wait and now < request.settle_ms:
            raise Later(f"split settles in {request.settle_ms - now} ms")
        since = request.planned_ms - FAST_GRACE_MS - CLOCK_MARGIN_MS
        late = self.store.late_touchpoints(request.family, since)
        resolved = self.store.resolve_late(late, lambda i: self.policy.kind(i.kind).links)
        current = {pid: self.store.active_profile(pid) for pid in {t.profile_id for _, t in late}}
        moves: dict[str, str] = {}
        for key, touchpoint in late:
            held = current.get(touchpoint.profile_id)
            if key in resolved and (held is None or held.profile_id != resolved[key]):
                moves[key] = resolved[key]
        if moves:
            if self.updates is not None:  # their outcomes named the profile they read: corrected
                held = dict(late)
                self.updates([(held[key], target) for key, target in sorted(moves.items())])
            self.store.move_touchpoints(moves)
            for profile_id in sorted(set(moves.values()) | {request.profile_id}):
                self.store.credit_orders(profile_id, self.policy.attribution_lookback_days)
            log.info("split settled late writes", extra={"svyaz": {"request_id": request.request_id}})
        return self.store.settled(request.request_id)

    def _plan(self, request: SplitRequest) -> SplitRequest:
        # The stored document only: the evidence below is read once, not also for a read model.
        profile = self.store.active_profile(request.profile_id)
        assert profile is not None and profile.splitting == request.request_id
        profile.merged_from = list(request.family[1:])
        planned_ms = to_ms(datetime.now(UTC))  # before the evidence is read
        evidence = list(self.store.touchpoints_of(request.family))
        owned = {r.identifier: r for r in self.store.records_of(request.family)}
        blocked = {entry.identifier for entry in self.store.blocklist()}
        partition = repartition(
            profile,
            evidence,
            owned,
            blocked,
            self.policy,
            lambda n: split_profile_id(request.request_id, n),
        )
        parts = plan_parts(partition, evidence)
        profiles = [c.profile for c in partition.components]
        for created in profiles[1:]:
            created.splitting = request.request_id
        request.parts, request.cursor, request.version = len(parts), 0, profile.version
        request.planned_ms = planned_ms
        request.result = summary(partition)
        return self.store.save_split_plan(request, parts, profiles, partition.tombstones)

    def _audit(self, request: SplitRequest) -> list[AuditEntry]:
        ids = list(request.result.get("profile_ids", [request.profile_id]))
        return [
            AuditEntry(
                "split",
                datetime.now(UTC),
                ids,
                request_id=request.request_id,
                reason=request.reason,
                details={"kind": request.block.kind, "from": request.profile_id, "into": ids},
            )
        ]
