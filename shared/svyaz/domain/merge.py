"""The merge engine: pure rules, no I/O.

``observe`` turns a canonical event into an ``Observation`` (normalized linking identifiers,
context-only identifiers, dropped ones with reasons). ``plan_event`` takes the observation and
a ``Snapshot`` of the documents the store read for it, and returns a ``Plan``: the documents to
write and the ``Outcome``. The stores only read, call ``plan_event`` and write what it says, so
every rule of the design page lives in this file.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from svyaz.domain.events import Event
from svyaz.domain.model import (
    AuditEntry,
    Dropped,
    Identifier,
    IdentifierRecord,
    Outcome,
    Profile,
    Touch,
    Touchpoint,
    Trait,
    touchpoint_name,
)
from svyaz.identity.normalize import Rejected, normalize
from svyaz.identity.policy import Policy, UnknownKind


class InvalidEvent(ValueError):
    """The event cannot be applied at all (e.g. an undeclared identifier kind)."""


class ProfileBusy(RuntimeError):
    """A profile the event would change is being split: the event is retried later (Pub/Sub
    redelivers it), so nothing it does is lost or overwritten by the split."""

    def __init__(self, profile_id: str) -> None:
        super().__init__(f"profile {profile_id} is being split; retry later")
        self.profile_id = profile_id


BLOCKED_REASON = "blocked value"


@dataclass
class Observation:
    event: Event
    linking: list[Identifier]  # strongest first (priority, kind, value), deduplicated
    moving: list[Identifier]  # device-bound kinds, same order
    context: list[Identifier]  # kinds that never link (ip): touchpoint context only
    dropped: list[Dropped]

    @property
    def touchpoint_name(self) -> str:
        return touchpoint_name(self.event.type, self.event.properties, self.event.event_id)

    @property
    def all_linking(self) -> list[Identifier]:
        return self.linking + self.moving


def observe(event: Event, policy: Policy) -> Observation:
    seen: set[Identifier] = set()
    linking: list[Identifier] = []
    moving: list[Identifier] = []
    context: list[Identifier] = []
    dropped: list[Dropped] = []
    for kind, raw in event.identifier_pairs():
        try:
            rules = policy.kind(kind)
        except UnknownKind as exc:
            raise InvalidEvent(str(exc)) from exc
        try:
            identifier = Identifier(kind, normalize(policy, kind, raw))
        except Rejected as exc:
            dropped.append(Dropped(kind, exc.reason))
            continue
        if identifier in seen:
            continue
        seen.add(identifier)
        if not rules.links:
            context.append(identifier)
        elif rules.moves:
            moving.append(identifier)
        else:
            linking.append(identifier)
    if not linking and not moving:
        # Nothing to stitch on: no profile could ever be found again, so the event is refused.
        reasons = "; ".join(f"{d.kind}: {d.reason}" for d in dropped) or "the event carries no identifiers"
        raise InvalidEvent(f"no usable identifier ({reasons})")
    order = lambda i: policy.order_key(i.kind, i.value)  # noqa: E731
    return Observation(event, sorted(linking, key=order), sorted(moving, key=order), context, dropped)


@dataclass
class Snapshot:
    """What the store read for one event: identifier records, every profile they point to
    (following ``merged_into`` chains), and the idempotency record if the event was applied."""

    records: dict[Identifier, IdentifierRecord] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)
    processed: Outcome | None = None
    # The touchpoint this event updates (an order's earlier status), when there is one.
    previous: Touchpoint | None = None
    # The event's identifiers that are on the store's blocklist (read in the same transaction).
    blocked: set[Identifier] = field(default_factory=set)

    def owner(self, identifier: Identifier) -> Profile | None:
        """The active profile an identifier resolves to; None if unknown or erased."""
        record = self.records.get(identifier)
        return None if record is None else self.resolve(record.profile_id)

    def resolve(self, profile_id: str | None) -> Profile | None:
        hops = 0
        while profile_id is not None and hops < 64:
            profile = self.profiles.get(profile_id)
            if profile is None or profile.status == "erased":
                return None
            if profile.status == "active":
                return profile
            profile_id, hops = profile.merged_into, hops + 1
        return None

    def missing_profile_ids(self) -> set[str]:
        """Profile ids a store still has to read to resolve every record (chain following)."""
        wanted = {r.profile_id for r in self.records.values()}
        if self.previous is not None:  # the order's owner, for the ownership rule
            wanted.add(self.previous.profile_id)
        wanted |= {p.merged_into for p in self.profiles.values() if p.status == "merged" and p.merged_into}
        return wanted - set(self.profiles)


@dataclass
class Plan:
    outcome: Outcome
    records: list[IdentifierRecord] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)  # survivor, tombstones, owners a device moved from
    touchpoint: Touchpoint | None = None
    merges: list[tuple[str, str]] = field(default_factory=list)  # (loser, survivor) for the re-pointing job
    audit: list[AuditEntry] = field(default_factory=list)  # merges, moves and conflicts, for explain

    @property
    def document_writes(self) -> int:
        """Documents this plan writes in its transaction (+1 for the idempotency record)."""
        return len(self.records) + len(self.profiles) + (1 if self.touchpoint else 0) + 1


def touchpoint_for(observation: Observation, profile_id: str) -> Touchpoint:
    event = observation.event
    ctx = event.context
    technical = {k: v for k in ("referrer", "page_url", "ip", "user_agent") if (v := getattr(ctx, k))}
    return Touchpoint(
        event_id=event.event_id,
        profile_id=profile_id,
        type=event.type,
        channel=event.channel,
        timestamp=event.timestamp,
        attribution=ctx.attribution(),
        context=technical,
        identifiers=observation.all_linking + observation.context,
        properties=dict(event.properties),
        traits=dict(event.traits),
    )


def counter_increments(event: Event) -> dict[str, float]:
    """What one event adds to its profile's counters (orders: see ``_order_counters``). Lead
    forms, calls and messages also count as ``leads`` (the journal's customers with leads)."""
    increments = {"events": 1, f"type_{event.type}": 1}
    if event.type in LEAD_TYPES:
        increments["leads"] = 1
    return increments


LEAD_TYPES = ("lead", "call", "message")


RECENT_TOUCHES = 20
UNCOUNTED_ORDER_STATUSES = ("cancelled", "refunded")
DIRECT_SOURCES = ("", "direct", "(direct)", "none", "(none)")


def order_value(type_: str, properties: dict) -> tuple[int, float]:
    """(orders, revenue) an order touchpoint counts for: nothing once cancelled or refunded."""
    if type_ != "order" or properties.get("status") in UNCOUNTED_ORDER_STATUSES:
        return 0, 0.0
    try:
        amount = round(float(Decimal(str(properties.get("amount") or 0))), 2)
    except (InvalidOperation, ValueError):
        amount = 0.0
    return 1, amount


def order_credit(profile: Profile, at: datetime, lookback_days: int) -> dict[str, dict[str, str]]:
    """The ad sources an order at ``at`` is credited to: the profile's first touch, and the
    last non-direct touch before the order within the lookback window."""
    credit: dict[str, dict[str, str]] = {}
    if profile.first_touch is not None and profile.first_touch.at <= at:
        credit["first_touch"] = dict(profile.first_touch.attribution)
    window_start = at - timedelta(days=lookback_days)
    candidates = [
        t
        for t in profile.recent_touches
        if window_start <= t.at <= at and t.attribution.get("source", "").lower() not in DIRECT_SOURCES
    ]
    if candidates:
        credit["last_touch"] = dict(max(candidates, key=lambda t: t.at).attribution)
    return credit


def may_take_fast_path(observation: Observation) -> bool:
    """What the event itself says about the fast path, before anything is read: traits need a
    read-compare-write of the profile, orders count revenue and credit in a transaction (an
    order without ``order_id`` too: the fast path would not count it)."""
    event = observation.event
    return (
        not event.traits
        and event.type != "order"
        and observation.touchpoint_name == event.event_id
        and bool(observation.all_linking)
    )


def fast_path_profile(observation: Observation, snapshot: Snapshot) -> Profile | None:
    """The fast path test: returns the profile when the event changes nothing in the graph and
    nothing on the profile but counters and seen times; None when a transaction is needed."""
    if not may_take_fast_path(observation):
        return None
    owners = {getattr(snapshot.owner(i), "profile_id", None) for i in observation.all_linking}
    if len(owners) != 1 or None in owners:
        return None
    profile = snapshot.resolve(owners.pop())
    return None if profile is None or profile.splitting else profile


def touch_update(profile: Profile, event: Event) -> dict[str, Any] | None:
    """The touch fields an attributed event changes on its profile (first / last touch, recent
    touches), as document fields; None when it changes none of them."""
    attribution = event.context.attribution()
    if not attribution:
        return None
    touched = Profile(
        profile.profile_id,
        profile.status,
        profile.first_seen,
        profile.last_seen,
        first_touch=profile.first_touch,
        last_touch=profile.last_touch,
        recent_touches=list(profile.recent_touches),
    )
    touch = Touch(event.timestamp, attribution, event.type, event.channel)
    _touch(touched, touch)
    _remember_touch(touched, touch)
    if (touched.first_touch, touched.last_touch, touched.recent_touches) == (
        profile.first_touch,
        profile.last_touch,
        profile.recent_touches,
    ):
        return None
    doc = touched.to_doc()
    return {name: doc[name] for name in ("first_touch", "last_touch", "recent_touches")}


def plan_event(observation: Observation, snapshot: Snapshot, policy: Policy, new_profile_id: str) -> Plan:
    event = observation.event
    if snapshot.processed is not None:
        replay = copy.deepcopy(snapshot.processed)
        replay.duplicate = True
        return Plan(outcome=replay)
    observation = admissible(observation, snapshot)

    at = event.timestamp
    profiles: dict[str, Profile] = {}  # working copies of every profile the plan writes

    def working(profile: Profile) -> Profile:
        if profile.profile_id not in profiles:
            profiles[profile.profile_id] = profile.copy()
        return profiles[profile.profile_id]

    # Rule 3: build the group greedily, strongest identifier first.
    group: list[Profile] = []
    new: list[Identifier] = []
    joined: list[Identifier] = []
    counts: Counter[str] = Counter()
    conflicts: list[Dropped] = []

    def fits(extra: Counter[str]) -> str | None:
        for kind, n in extra.items():
            if counts[kind] + n > policy.kind(kind).limit:
                return kind
        return None

    for identifier in observation.linking:
        owner = snapshot.owner(identifier)
        if owner is not None and any(p.profile_id == owner.profile_id for p in group):
            joined.append(identifier)
            continue
        extra = owner.counts() if owner is not None else Counter({identifier.kind: 1})
        over = fits(extra)
        if over is not None:
            conflicts.append(
                Dropped(
                    identifier.kind, f"would exceed the limit of {over}", owner.profile_id if owner else None
                )
            )
            continue
        counts.update(extra)
        joined.append(identifier)
        if owner is None:
            new.append(identifier)
        else:
            group.append(owner)

    # Rule 6: the survivor is the profile first seen earliest (ties: smaller id).
    survivor_source = min(group, key=lambda p: (p.first_seen, p.profile_id)) if group else None
    if survivor_source is None and not observation.linking:
        # Rule 5: only device-bound identifiers: resolve to the owner of the strongest known one.
        survivor_source = next((o for i in observation.moving if (o := snapshot.owner(i))), None)
    created = survivor_source is None
    if created:
        survivor = Profile(new_profile_id, "active", first_seen=at, last_seen=at)
        profiles[survivor.profile_id] = survivor
    else:
        survivor = working(survivor_source)
        counts = counts if group else survivor.counts()

    losers = [p for p in group if p.profile_id != survivor.profile_id]
    loser_ids = {p.profile_id for p in losers}
    refused = order_conflict(snapshot, {survivor.profile_id, *loser_ids})
    if refused is not None:
        # Nothing of the event is written but its outcome: the order stays with its customer.
        conflict = Outcome(event.event_id, "conflict", None, dropped=list(observation.dropped))
        conflict.conflicts.append(refused)
        return Plan(outcome=conflict)
    for loser_source in sorted(losers, key=lambda p: p.profile_id):
        loser = working(loser_source)
        for identifier in loser.all_identifiers():
            survivor.add(identifier)
        _absorb(survivor, loser)
        survivor.merged_from.extend([loser.profile_id, *loser.merged_from])
        loser.status, loser.merged_into = "merged", survivor.profile_id
        loser.identifiers, loser.traits, loser.counters, loser.merged_from = {}, {}, {}, []
        loser.first_touch = loser.last_touch = None
    for identifier in new:
        survivor.add(identifier)

    # Rule 5: device-bound identifiers move to the group, never merge it.
    moved: list[dict[str, str]] = []
    attached_devices: list[Identifier] = []
    for identifier in observation.moving:
        owner = snapshot.owner(identifier)
        if owner is not None and (owner.profile_id == survivor.profile_id or owner.profile_id in loser_ids):
            joined.append(identifier)
            continue
        if counts[identifier.kind] + 1 > policy.kind(identifier.kind).limit:
            conflicts.append(
                Dropped(
                    identifier.kind,
                    f"would exceed the limit of {identifier.kind}",
                    owner.profile_id if owner else None,
                )
            )
            continue
        counts[identifier.kind] += 1
        if owner is not None:
            working(owner).remove(identifier)
            moved.append({"kind": identifier.kind, "from_profile_id": owner.profile_id})
        survivor.add(identifier)
        attached_devices.append(identifier)
        joined.append(identifier)

    _apply_event(survivor, event)
    # The touchpoint keeps as evidence the identifiers that joined (not the refused ones).
    kept = set(joined)
    evidence = Observation(
        event,
        [i for i in observation.linking if i in kept],
        [i for i in observation.moving if i in kept],
        observation.context,
        [],
    )
    touchpoint = touchpoint_for(evidence, survivor.profile_id)
    if event.type == "order":
        _count_order(survivor, touchpoint, snapshot.previous, policy)
    for profile in profiles.values():
        profile.version += 1

    records = _records(observation, snapshot, joined, survivor.profile_id)
    if conflicts:
        status = "conflict"
    elif losers:
        status = "merged"
    elif created:
        status = "created"
    elif new or attached_devices:
        status = "attached"
    else:
        status = "unchanged"
    outcome = Outcome(
        event_id=event.event_id,
        status=status,
        profile_id=survivor.profile_id,
        merged_profile_ids=sorted(p.profile_id for p in losers),
        moved=moved,
        dropped=list(observation.dropped),
        conflicts=conflicts,
        version=survivor.version,
    )
    return Plan(
        outcome=outcome,
        records=records,
        profiles=list(profiles.values()),
        touchpoint=touchpoint,
        merges=[(loser.profile_id, survivor.profile_id) for loser in losers],
        audit=audit_entries(outcome, at),
    )


def admissible(observation: Observation, snapshot: Snapshot) -> Observation:
    """What of the event may change the graph: no blocklisted value, and no profile that is
    being split (``ProfileBusy``: the event is retried once the split is done)."""
    observation = without_blocked(observation, snapshot.blocked)
    for identifier in observation.all_linking:
        owner = snapshot.owner(identifier)
        if owner is not None and owner.splitting:
            raise ProfileBusy(owner.profile_id)
    return observation


def without_blocked(observation: Observation, blocked: set[Identifier]) -> Observation:
    """The observation with the store's blocklisted values dropped, as placeholders are: they
    never link, and the event goes on with its other identifiers."""
    hits = [i for i in observation.all_linking if i in blocked]
    if not hits:
        return observation
    kept = Observation(
        observation.event,
        [i for i in observation.linking if i not in blocked],
        [i for i in observation.moving if i not in blocked],
        observation.context,
        [*observation.dropped, *(Dropped(i.kind, BLOCKED_REASON) for i in hits)],
    )
    if not kept.all_linking:
        raise InvalidEvent(f"no usable identifier ({'; '.join(f'{i.kind}: {BLOCKED_REASON}' for i in hits)})")
    return kept


def audit_entries(outcome: Outcome, at: datetime) -> list[AuditEntry]:
    """The merge history an outcome adds: one entry per merge, device move and refused link."""
    survivor, event_id = outcome.profile_id or "", outcome.event_id
    entries = []
    if outcome.merged_profile_ids:
        entries.append(
            AuditEntry(
                "merge",
                at,
                [survivor, *outcome.merged_profile_ids],
                event_id,
                details={"into": survivor, "merged": list(outcome.merged_profile_ids)},
            )
        )
    for move in outcome.moved:
        entries.append(
            AuditEntry(
                "move",
                at,
                [survivor, move["from_profile_id"]],
                event_id,
                details={"kind": move["kind"], "from": move["from_profile_id"], "to": survivor},
            )
        )
    for conflict in outcome.conflicts:
        entries.append(
            AuditEntry(
                "conflict",
                at,
                sorted({survivor, *filter(None, [conflict.profile_id])}),
                event_id,
                reason=conflict.reason,
                details=conflict.as_dict(),
            )
        )
    return entries


def fold_event(profile: Profile, observation: Observation, policy: Policy) -> Touchpoint:
    """Add one event to a profile's aggregates (seen times, counters, traits, touches, order
    counting) without changing its identifiers; returns the event's touchpoint."""
    _apply_event(profile, observation.event)
    touchpoint = touchpoint_for(observation, profile.profile_id)
    if observation.event.type == "order":
        _count_order(profile, touchpoint, None, policy)
    return touchpoint


def order_conflict(snapshot: Snapshot, customer: set[str]) -> Dropped | None:
    """An order belongs to the customer it was first seen with: the same order id seen with a
    customer that is not (and does not become, by this event) that one is refused as a conflict,
    never a move of the order and its revenue. ``customer``: the profiles this event ends in."""
    if snapshot.previous is None:
        return None
    owner = snapshot.resolve(snapshot.previous.profile_id)
    if owner is None or owner.profile_id in customer:
        return None  # a new order, the owner's own update, or the owner was erased
    return Dropped("order_id", "the order belongs to another customer", owner.profile_id)


def _count_order(
    profile: Profile, touchpoint: Touchpoint, previous: Touchpoint | None, policy: Policy
) -> None:
    """An order is one touchpoint whatever its status updates: counters move by the difference
    between what it counts for now and what it counted for before, so revenue is never doubled.
    A status update older than the one already applied changes nothing."""
    if previous is not None and previous.timestamp > touchpoint.timestamp:
        touchpoint.properties = dict(previous.properties)
        touchpoint.timestamp, touchpoint.event_id = previous.timestamp, previous.event_id
    orders, revenue = order_value(touchpoint.type, touchpoint.properties)
    before = order_value(previous.type, previous.properties) if previous is not None else (0, 0.0)
    if previous is not None:  # the same order again, not a new event
        for name in ("events", "type_order"):
            profile.counters[name] = profile.counters.get(name, 0) - 1
    profile.counters["orders"] = profile.counters.get("orders", 0) + orders - before[0]
    profile.counters["revenue"] = round(profile.counters.get("revenue", 0) + revenue - before[1], 2)
    if orders:
        profile.first_order_at = _earliest(profile.first_order_at, touchpoint.timestamp)
    touchpoint.credit = order_credit(profile, touchpoint.timestamp, policy.attribution_lookback_days)


def _records(
    observation: Observation,
    snapshot: Snapshot,
    joined: list[Identifier],
    profile_id: str,
) -> list[IdentifierRecord]:
    at, event_id = observation.event.timestamp, observation.event.event_id
    # The evidence of a link: the strongest identifier of the event that was already known
    # (it brought the profile), else the strongest other identifier of the event.
    known = [i for i in joined if snapshot.owner(i) is not None]

    def through(identifier: Identifier) -> Identifier | None:
        return next((i for i in known + joined if i != identifier), None)

    records = []
    for identifier in joined:
        old = snapshot.records.get(identifier)
        owner = snapshot.owner(identifier)
        if old is None or owner is None:
            records.append(IdentifierRecord(identifier, profile_id, at, at, event_id, through(identifier)))
            continue
        record = dataclasses.replace(old)  # every field is an immutable value: a shallow copy is one
        if owner.profile_id != profile_id or old.profile_id != profile_id:
            # Re-pointed by a merge or a move: this event is the new evidence.
            record.linked_by_event, record.linked_through = event_id, through(identifier)
        record.profile_id = profile_id
        record.first_seen, record.last_seen = min(record.first_seen, at), max(record.last_seen, at)
        records.append(record)
    return records


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return min((t for t in (a, b) if t is not None), default=None)


def _later(a: datetime, b: datetime | None) -> bool:
    return b is None or a > b


def _absorb(survivor: Profile, loser: Profile) -> None:
    """Fold a loser's data into the survivor so the result does not depend on merge order."""
    survivor.first_seen = min(survivor.first_seen, loser.first_seen)
    survivor.last_seen = max(survivor.last_seen, loser.last_seen)
    for name, trait in loser.traits.items():
        _set_trait(survivor, name, trait)
    for name, value in loser.counters.items():
        survivor.counters[name] = survivor.counters.get(name, 0) + value
    survivor.first_order_at = _earliest(survivor.first_order_at, loser.first_order_at)
    _touch(survivor, loser.first_touch)
    _touch(survivor, loser.last_touch)
    for touch in loser.recent_touches:
        _remember_touch(survivor, touch)


def _set_trait(profile: Profile, name: str, trait: Trait) -> None:
    current = profile.traits.get(name)
    # Last write wins by event time; equal times break by value so any delivery order agrees.
    if current is None or (trait.at, repr(trait.value)) > (current.at, repr(current.value)):
        profile.traits[name] = Trait(trait.value, trait.at)


def _touch(profile: Profile, touch: Touch | None) -> None:
    if touch is None:
        return
    if profile.first_touch is None or touch.at < profile.first_touch.at:
        profile.first_touch = copy.deepcopy(touch)
    if _later(touch.at, profile.last_touch.at if profile.last_touch else None):
        profile.last_touch = copy.deepcopy(touch)


def _apply_event(profile: Profile, event: Event) -> None:
    at = event.timestamp
    profile.first_seen, profile.last_seen = min(profile.first_seen, at), max(profile.last_seen, at)
    for name, value in counter_increments(event).items():
        profile.counters[name] = profile.counters.get(name, 0) + value
    for name, value in event.traits.items():
        _set_trait(profile, name, Trait(value, at))
    attribution = event.context.attribution()
    if attribution:
        touch = Touch(at, attribution, event.type, event.channel)
        _touch(profile, touch)
        _remember_touch(profile, touch)


def _remember_touch(profile: Profile, touch: Touch) -> None:
    if any(t.at == touch.at and t.attribution == touch.attribution for t in profile.recent_touches):
        return
    profile.recent_touches.append(copy.deepcopy(touch))
    profile.recent_touches.sort(key=lambda t: t.at)
    del profile.recent_touches[:-RECENT_TOUCHES]
