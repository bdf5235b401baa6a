"""The merge engine: pure rules, no I/O.

``observe`` turns a canonical event into an ``Observation`` (normalized linking identifiers,
context-only identifiers, dropped ones with reasons). ``plan_event`` takes the observation and
a ``Snapshot`` of the documents the store read for it, and returns a ``Plan``: the documents to
write, the ``Outcome`` and the follow-up ``Job``s. The fast path asks ``fast_path_owner`` before
its write and ``fast_path_verdict`` after it. The stores only read, call these and write what
they say, so every rule of the design page lives in this file.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from svyaz.domain.events import Event
from svyaz.domain.model import (
    AuditEntry,
    Dropped,
    Identifier,
    IdentifierRecord,
    Job,
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


MAX_HOPS = 64  # merged_into hops a read follows before it reports a broken chain


class ChainTooLong(RuntimeError):
    """A ``merged_into`` chain longer than ``MAX_HOPS`` (or a cycle): reads never give up
    silently; the event is retried after the repoint jobs have shortened the chain."""


def follow_chain(profile_id: str | None, fetch: Callable[[str], Profile | None]) -> Profile | None:
    """The one chain resolution: follow ``merged_into`` to the active profile. None for an
    unknown or erased profile; ``ChainTooLong`` rather than a silent None for a long chain."""
    for _ in range(MAX_HOPS):
        if profile_id is None:
            return None
        profile = fetch(profile_id)
        if profile is None or profile.status == "erased":
            return None
        if profile.status == "active":
            return profile
        profile_id = profile.merged_into
    raise ChainTooLong(f"merged_into chain longer than {MAX_HOPS} hops from {profile_id}")


@dataclass
class Replay:
    """What a store keeps of an applied event: its outcome and its follow-up jobs, so that a
    redelivery (e.g. after a lost commit reply) answers the same and publishes the jobs again."""

    outcome: Outcome
    jobs: list[Job] = field(default_factory=list)

    def as_doc(self) -> dict[str, Any]:
        return {"outcome": self.outcome.as_dict(), "jobs": [j.as_dict() for j in self.jobs]}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Replay:
        return cls(Outcome.from_dict(doc["outcome"]), [Job.from_dict(j) for j in doc.get("jobs") or []])


def named_profiles(outcome: Outcome) -> list[str]:
    """Every profile id an outcome names (kept on the idempotency record, indexed, so an
    erasure finds the records that name its customer)."""
    ids = {outcome.profile_id, *outcome.merged_profile_ids, *(c.profile_id for c in outcome.conflicts)}
    ids |= {m.get("from_profile_id") for m in outcome.moved}
    return sorted(i for i in ids if i)


def replay_after_erasure(replay: Replay, erased: set[str]) -> Replay:
    """An idempotency record once the profiles ``erased`` (a customer's family) are erased. An
    event of that customer keeps only the fact that it was applied: no profile, no ids, no jobs,
    so its redelivery is a duplicate answering with no profile and publishing nothing of the
    customer. Another customer's event forgets the erased ids it names (a refused link to the
    erased customer, a device moved from them)."""
    outcome = replay.outcome
    if outcome.profile_id is None or outcome.profile_id in erased or erased & set(outcome.merged_profile_ids):
        return Replay(Outcome("", "unchanged", None))
    kept = dataclasses.replace(
        outcome,
        conflicts=[c if c.profile_id not in erased else Dropped(c.kind, c.reason) for c in outcome.conflicts],
        moved=[m if m.get("from_profile_id") not in erased else {"kind": m["kind"]} for m in outcome.moved],
    )
    jobs = [j for j in replay.jobs if j.subject not in erased and j.target not in erased]
    return Replay(kept, jobs)


@dataclass
class Snapshot:
    """What the store read for one event: identifier records, every profile they point to
    (following ``merged_into`` chains), and what shows the event was applied already: its
    idempotency record (``processed``) or its touchpoint (``applied``: the fast path's write)."""

    records: dict[Identifier, IdentifierRecord] = field(default_factory=dict)
    profiles: dict[str, Profile] = field(default_factory=dict)
    processed: Replay | None = None
    applied: Touchpoint | None = None
    # The touchpoint this event updates (an order's earlier status), when there is one.
    previous: Touchpoint | None = None
    # The event's identifiers that are on the store's blocklist (read in the same transaction).
    blocked: set[Identifier] = field(default_factory=set)
    # When the record showing it applied was committed (ms, rounded up; None: unknown).
    written_ms: int | None = None

    def owner(self, identifier: Identifier) -> Profile | None:
        """The active profile an identifier resolves to; None if unknown or erased."""
        record = self.records.get(identifier)
        return None if record is None else self.resolve(record.profile_id)

    def resolve(self, profile_id: str | None) -> Profile | None:
        return follow_chain(profile_id, self.profiles.get)

    def missing_profile_ids(self) -> set[str]:
        """Profile ids a store still has to read to resolve every record (chain following)."""
        wanted = {r.profile_id for r in self.records.values()}
        if (
            self.previous is not None and self.previous.profile_id
        ):  # the order's owner, for the ownership rule
            wanted.add(self.previous.profile_id)
        wanted |= {p.merged_into for p in self.profiles.values() if p.status == "merged" and p.merged_into}
        return wanted - set(self.profiles)


@dataclass
class Plan:
    outcome: Outcome
    records: list[IdentifierRecord] = field(default_factory=list)
    profiles: list[Profile] = field(default_factory=list)  # survivor, tombstones, owners a device left
    touchpoint: Touchpoint | None = None
    jobs: list[Job] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)  # merges, moves and conflicts, for explain
    written_ms: int | None = None  # a duplicate's: when its first application was committed

    @property
    def document_writes(self) -> int:
        """Documents this plan writes in its transaction (+1 for the idempotency record)."""
        if self.outcome.duplicate:
            return 0
        return len(self.records) + len(self.profiles) + (1 if self.touchpoint else 0) + 1

    @property
    def merges(self) -> list[tuple[str, str]]:
        return [(j.subject, j.target) for j in self.jobs if j.kind == "repoint"]


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


# Lead forms, calls and messages also count as ``leads`` (the journal's customers with leads).
LEAD_TYPES = ("lead", "call", "message")
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


# --- aggregates: derived from touchpoints, never written by every event --------------------
@dataclass
class Aggregates:
    """What a profile's touchpoints add up to: counters (events, per type, orders, revenue),
    first / last seen, first / last touch. Computed at read time (``Store.aggregates``)."""

    counters: dict[str, float] = field(default_factory=dict)
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    first_touch: Touch | None = None
    last_touch: Touch | None = None
    first_order_at: datetime | None = None  # the first order placed (even if cancelled since)

    def add(self, touchpoint: Touchpoint) -> None:
        counters, at = self.counters, touchpoint.timestamp
        names = ["events", f"type_{touchpoint.type}"] + (["leads"] if touchpoint.type in LEAD_TYPES else [])
        for name in names:
            counters[name] = counters.get(name, 0) + 1
        if touchpoint.type == "order":
            orders, revenue = order_value(touchpoint.type, touchpoint.properties)
            counters["orders"] = counters.get("orders", 0) + orders
            counters["revenue"] = round(counters.get("revenue", 0) + revenue, 2)
            self.first_order_at = _earliest(self.first_order_at, at)
        self.first_seen = at if self.first_seen is None else min(self.first_seen, at)
        self.last_seen = at if self.last_seen is None else max(self.last_seen, at)
        touch = touchpoint.touch
        if touch is not None:
            self.first_touch = _earlier_touch(self.first_touch, touch)
            self.last_touch = touch if _later_touch(touch, self.last_touch) else self.last_touch


def aggregate(touchpoints: Iterable[Touchpoint]) -> Aggregates:
    result = Aggregates()
    for touchpoint in touchpoints:
        result.add(touchpoint)
    return result


def _touch_key(touch: Touch) -> tuple[datetime, str]:
    # Equal times break by content so every delivery order agrees.
    return touch.at, repr(sorted(touch.attribution.items()))


def _earlier_touch(current: Touch | None, touch: Touch) -> Touch:
    return touch if current is None or _touch_key(touch) < _touch_key(current) else current


def _later_touch(touch: Touch, current: Touch | None) -> bool:
    return current is None or _touch_key(touch) > _touch_key(current)


def order_credit(touches: Iterable[Touch], at: datetime, lookback_days: int) -> dict[str, dict[str, str]]:
    """The ad sources an order at ``at`` is credited to: the family's first touch, and the
    last non-direct touch before the order within the lookback window."""
    touches = list(touches)
    credit: dict[str, dict[str, str]] = {}
    first = min(touches, key=_touch_key, default=None)
    if first is not None and first.at <= at:
        credit["first_touch"] = dict(first.attribution)
    window_start = at - timedelta(days=lookback_days)
    candidates = [
        t
        for t in touches
        if window_start <= t.at <= at and t.attribution.get("source", "").lower() not in DIRECT_SOURCES
    ]
    if candidates:
        credit["last_touch"] = dict(max(candidates, key=_touch_key).attribution)
    return credit


# --- the fast path --------------------------------------------------------------------------
def may_take_fast_path(observation: Observation) -> bool:
    """What the event itself says about the fast path, before anything is read: traits need a
    read-compare-write of the profile; an order is one touchpoint whatever its status updates,
    so it is counted in a transaction (an order without ``order_id`` too)."""
    event = observation.event
    return (
        not event.traits
        and event.type != "order"
        and observation.touchpoint_name == event.event_id
        and bool(observation.all_linking)
    )


def fast_path_owner(observation: Observation, records: dict[Identifier, IdentifierRecord]) -> str | None:
    """The profile id a no-change event's touchpoint goes to, from its identifier records
    alone: every identifier known and pointing at one profile. None: a transaction decides."""
    if not may_take_fast_path(observation):
        return None
    owners = {records[i].profile_id if i in records else None for i in observation.all_linking}
    if len(owners) != 1 or None in owners:
        return None
    return owners.pop()


FastVerdict = Literal["applied", "fall_back", "erased"]


def fast_path_verdict(observation: Observation, profile: Profile | None) -> tuple[FastVerdict, list[Job]]:
    """After the fast path created its touchpoint, the profile as it is now decides: still
    active, the event is applied (a late touch re-credits the orders after it); merged away
    meanwhile, the touchpoint is withdrawn and a transaction decides (no write lands on a
    tombstone); erased meanwhile, the touchpoint is erased with the rest."""
    if profile is None or profile.status == "erased":
        return "erased", []
    if profile.status != "active" or profile.splitting:
        return "fall_back", []  # a split in progress: the transaction waits for it
    event = observation.event
    late_touch = (
        bool(event.context.attribution())
        and profile.last_order_at is not None
        and event.timestamp <= profile.last_order_at
    )
    return "applied", [Job("credit", profile.profile_id)] if late_touch else []


# --- the transaction: plan_event in named steps ---------------------------------------------
@dataclass
class Group:
    """Rule 3: the event's group, built greedily strongest identifier first."""

    owners: list[Profile] = field(default_factory=list)  # known profiles joining, in order
    new: list[Identifier] = field(default_factory=list)  # identifiers nobody holds yet
    joined: list[Identifier] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    conflicts: list[Dropped] = field(default_factory=list)

    def holds(self, profile: Profile | None) -> bool:
        return profile is not None and any(p.profile_id == profile.profile_id for p in self.owners)

    def over_limit(self, extra: Counter[str], policy: Policy) -> str | None:
        return next((k for k, n in extra.items() if self.counts[k] + n > policy.kind(k).limit), None)


@dataclass
class Working:
    """Copies of every profile the plan writes, the survivor first."""

    survivor: Profile
    created: bool
    changed: dict[str, Profile] = field(default_factory=dict)
    tombstones: list[Profile] = field(default_factory=list)

    def edit(self, profile: Profile) -> Profile:
        if profile.profile_id == self.survivor.profile_id:
            return self.survivor
        return self.changed.setdefault(profile.profile_id, profile.copy())


def plan_event(observation: Observation, snapshot: Snapshot, policy: Policy, new_profile_id: str) -> Plan:
    replay = replay_plan(observation, snapshot)
    if replay is not None:
        return replay
    observation = admissible(observation, snapshot)
    group = build_group(observation, snapshot, policy)
    work = choose_survivor(group, observation, snapshot, new_profile_id)
    refused = order_conflict(snapshot, {work.survivor.profile_id, *(p.profile_id for p in group.owners)})
    if refused is not None:
        # Nothing of the event is written but its outcome: the order stays with its customer.
        conflict = Outcome(observation.event.event_id, "conflict", None, dropped=list(observation.dropped))
        conflict.conflicts.append(refused)
        return Plan(outcome=conflict)
    fold_losers(work, group)
    moved, attached = move_devices(work, group, observation, snapshot, policy)
    touchpoint = record_event(work, group, observation, snapshot.previous)
    if (full := oversized(work.survivor)) is not None:
        # Nothing of the event is written but its outcome: the stored profile stays readable.
        conflict = Outcome(observation.event.event_id, "conflict", None, dropped=list(observation.dropped))
        conflict.conflicts.append(full)
        return Plan(outcome=conflict)
    outcome = decide_outcome(work, group, observation, moved, attached)
    profiles = _written_profiles(work, snapshot)
    outcome.version = work.survivor.version
    linked = outcome.status != "unchanged"  # records change only when the graph does
    return Plan(
        outcome=outcome,
        records=_records(observation, snapshot, group.joined, work.survivor.profile_id) if linked else [],
        profiles=profiles,
        touchpoint=touchpoint,
        jobs=follow_up_jobs(work, group, observation, snapshot),
        audit=audit_entries(outcome, observation.event.timestamp),
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


def order_conflict(snapshot: Snapshot, customer: set[str]) -> Dropped | None:
    """An order belongs to the customer it was first seen with: the same order id seen with a
    customer that is not (and does not become, by this event) that one is refused as a conflict,
    never a move of the order and its revenue. ``customer``: the profiles this event ends in."""
    if snapshot.previous is None or not snapshot.previous.profile_id:
        return None
    owner = snapshot.resolve(snapshot.previous.profile_id)
    if owner is None or owner.profile_id in customer:
        return None  # a new order, the owner's own update, or the owner was erased
    return Dropped("order_id", "the order belongs to another customer", owner.profile_id)


def replay_plan(observation: Observation, snapshot: Snapshot) -> Plan | None:
    """Exactly once: an event applied before answers with its first outcome and jobs."""
    if snapshot.processed is not None:
        outcome = Outcome.from_dict(snapshot.processed.outcome.as_dict())
        outcome.event_id, outcome.duplicate = observation.event.event_id, True  # (erased: no id kept)
        return Plan(outcome=outcome, jobs=list(snapshot.processed.jobs), written_ms=snapshot.written_ms)
    applied = snapshot.applied
    if applied is not None:  # applied by the fast path, or erased since (a stub)
        event_id = observation.event.event_id
        profile_id = applied.profile_id or None
        return Plan(
            outcome=Outcome(event_id, "unchanged", profile_id, duplicate=True), written_ms=snapshot.written_ms
        )
    return None


def build_group(observation: Observation, snapshot: Snapshot, policy: Policy) -> Group:
    """Rule 3: each identifier joins, bringing its whole profile, only if every limit holds."""
    group = Group()
    for identifier in observation.linking:
        owner = snapshot.owner(identifier)
        if group.holds(owner):
            group.joined.append(identifier)
            continue
        extra = owner.counts() if owner is not None else Counter({identifier.kind: 1})
        over = group.over_limit(extra, policy)
        if over is not None:
            reason = f"would exceed the limit of {over}"
            group.conflicts.append(Dropped(identifier.kind, reason, owner.profile_id if owner else None))
            continue
        group.counts.update(extra)
        group.joined.append(identifier)
        if owner is None:
            group.new.append(identifier)
        else:
            group.owners.append(owner)
    return group


def choose_survivor(
    group: Group, observation: Observation, snapshot: Snapshot, new_profile_id: str
) -> Working:
    """Rule 6: the profile first seen earliest survives (ties: smaller id); rule 5: an event of
    device ids only resolves to the owner of the strongest known one; else a new profile."""
    source = min(group.owners, key=lambda p: (p.first_seen, p.profile_id)) if group.owners else None
    if source is None and not observation.linking:
        source = next((o for i in observation.moving if (o := snapshot.owner(i))), None)
        if source is not None:
            group.counts = source.counts()
    if source is None:
        at = observation.event.timestamp
        return Working(Profile(new_profile_id, "active", first_seen=at, last_seen=at), created=True)
    return Working(source.copy(), created=False)


def fold_losers(work: Working, group: Group) -> None:
    """Rule 6: losers become tombstones; the survivor takes their counts, the earliest first
    seen, the latest last seen and each trait by last write wins, so merge order never matters."""
    survivor = work.survivor
    for loser in sorted(group.owners, key=lambda p: p.profile_id):
        if loser.profile_id == survivor.profile_id:
            continue
        survivor.first_seen = min(survivor.first_seen, loser.first_seen)
        survivor.last_seen = max(survivor.last_seen, loser.last_seen)
        survivor.last_order_at = _latest(survivor.last_order_at, loser.last_order_at)
        for kind, n in loser.identifier_counts.items():
            survivor.count(kind, n)
        refused = [
            name for name, trait in sorted(loser.traits.items()) if not _set_trait(survivor, name, trait)
        ]
        group.conflicts.extend(trait_conflicts(refused, loser.profile_id))
        tombstone = loser.copy()
        tombstone.status, tombstone.merged_into = "merged", survivor.profile_id
        tombstone.identifier_counts, tombstone.traits, tombstone.counters = {}, {}, {}
        tombstone.first_touch = tombstone.last_touch = tombstone.first_order_at = None
        work.tombstones.append(tombstone)
    for identifier in group.new:
        survivor.count(identifier.kind, 1)


def move_devices(
    work: Working, group: Group, observation: Observation, snapshot: Snapshot, policy: Policy
) -> tuple[list[dict[str, str]], list[Identifier]]:
    """Rule 5: device-bound identifiers move to the group, never merge it."""
    survivor = work.survivor
    family = {survivor.profile_id, *(t.profile_id for t in work.tombstones)}
    moved: list[dict[str, str]] = []
    attached: list[Identifier] = []
    for identifier in observation.moving:
        owner = snapshot.owner(identifier)
        if owner is not None and owner.profile_id in family:
            group.joined.append(identifier)
            continue
        if group.counts[identifier.kind] + 1 > policy.kind(identifier.kind).limit:
            reason = f"would exceed the limit of {identifier.kind}"
            group.conflicts.append(Dropped(identifier.kind, reason, owner.profile_id if owner else None))
            continue
        group.counts[identifier.kind] += 1
        if owner is not None:
            work.edit(owner).count(identifier.kind, -1)
            moved.append({"kind": identifier.kind, "from_profile_id": owner.profile_id})
        survivor.count(identifier.kind, 1)
        attached.append(identifier)
        group.joined.append(identifier)
    return moved, attached


def record_event(
    work: Working, group: Group, observation: Observation, previous: Touchpoint | None
) -> Touchpoint:
    """The event itself: its traits (last write wins by event time), its touchpoint with the
    identifiers that joined as evidence, and for an order the latest status by event time."""
    event, survivor = observation.event, work.survivor
    refused = [
        name
        for name, value in event.traits.items()
        if not _set_trait(survivor, name, Trait(value, event.timestamp))
    ]
    group.conflicts.extend(trait_conflicts(refused))
    kept = set(group.joined)
    evidence = Observation(
        event,
        [i for i in observation.linking if i in kept],
        [i for i in observation.moving if i in kept],
        observation.context,
        [],
    )
    touchpoint = touchpoint_for(evidence, survivor.profile_id)
    if event.type == "order":
        if previous is not None and previous.timestamp > touchpoint.timestamp:
            # A status older than the one applied changes nothing.
            touchpoint.properties = dict(previous.properties)
            touchpoint.timestamp, touchpoint.event_id = previous.timestamp, previous.event_id
        if previous is not None:
            touchpoint.credit = dict(previous.credit)
        survivor.last_order_at = _latest(survivor.last_order_at, touchpoint.timestamp)
    return touchpoint


def decide_outcome(
    work: Working,
    group: Group,
    observation: Observation,
    moved: list[dict[str, str]],
    attached: list[Identifier],
) -> Outcome:
    if group.conflicts:
        status = "conflict"
    elif work.tombstones:
        status = "merged"
    elif work.created:
        status = "created"
    elif group.new or attached:
        status = "attached"
    else:
        status = "unchanged"
    survivor = work.survivor
    if status != "unchanged":  # seen times of the graph; the views take them from touchpoints
        at = observation.event.timestamp
        survivor.first_seen, survivor.last_seen = min(survivor.first_seen, at), max(survivor.last_seen, at)
    return Outcome(
        event_id=observation.event.event_id,
        status=status,
        profile_id=survivor.profile_id,
        merged_profile_ids=sorted(t.profile_id for t in work.tombstones),
        moved=moved,
        dropped=list(observation.dropped),
        conflicts=group.conflicts,
    )


def _written_profiles(work: Working, snapshot: Snapshot) -> list[Profile]:
    """Only the documents that change: a no-change event with traits writes its profile only
    if a trait changed; the version counts the writes."""
    written = []
    for profile in [work.survivor, *work.tombstones, *work.changed.values()]:
        before = snapshot.profiles.get(profile.profile_id)
        if before is None or profile.to_doc() != before.to_doc():
            profile.version += 1
            written.append(profile)
    return written


def follow_up_jobs(work: Working, group: Group, observation: Observation, snapshot: Snapshot) -> list[Job]:
    """Work that must not run inside the event: re-pointing the losers' (and any stale chain's)
    records, re-crediting orders after a merge, an order or a late touch."""
    survivor = work.survivor
    jobs = {Job("repoint", t.profile_id, survivor.profile_id) for t in work.tombstones}
    gone = {t.profile_id: survivor.profile_id for t in work.tombstones}
    for profile_id, profile in snapshot.profiles.items():
        if profile.status == "merged" and (final := snapshot.resolve(profile_id)) is not None:
            target = gone.get(final.profile_id, final.profile_id)
            if profile_id != target:
                jobs.add(Job("repoint", profile_id, target))
    event = observation.event
    last_order = survivor.last_order_at
    attributed = bool(event.context.attribution())
    late_touch = attributed and last_order is not None and event.timestamp <= last_order
    if event.type == "order" or (last_order is not None and (work.tombstones or late_touch)):
        jobs.add(Job("credit", survivor.profile_id))
    return sorted(jobs)


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
        record = dataclasses.replace(old)
        if owner.profile_id != profile_id or old.profile_id != profile_id:
            # Re-pointed by a merge or a move: this event is the new evidence.
            record.linked_by_event, record.linked_through = event_id, through(identifier)
        record.profile_id = profile_id
        record.first_seen, record.last_seen = min(record.first_seen, at), max(record.last_seen, at)
        records.append(record)
    return records


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


# A profile keeps at most this many trait names: with names of 128 characters and values of
# 1000 (the event validation's bounds) its traits stay far below Firestore's 1 MiB document.
MAX_PROFILE_TRAITS = 100
# What the engine lets one profile document grow to (Firestore's limit is 1 MiB, less overhead).
SAFE_PROFILE_BYTES = 800_000


def trait_conflicts(names: list[str], profile_id: str | None = None) -> list[Dropped]:
    """Refused trait names as conflicts (the name, never the value: it may be personal data)."""
    reason = f"the profile keeps at most {MAX_PROFILE_TRAITS} traits"
    return [Dropped("trait", f"{name}: {reason}", profile_id) for name in names]


def _set_trait(profile: Profile, name: str, trait: Trait) -> bool:
    """Set a trait by last write wins; False for a new name the profile has no room for (past
    the cap, which name a merge keeps depends on the order of merges)."""
    current = profile.traits.get(name)
    if current is None and len(profile.traits) >= MAX_PROFILE_TRAITS:
        return False
    # Last write wins by event time; equal times break by value so any delivery order agrees.
    if current is None or (trait.at, repr(trait.value)) > (current.at, repr(current.value)):
        profile.traits[name] = trait
    return True


def oversized(profile: Profile) -> Dropped | None:
    """A conflict when the profile's document would pass ``SAFE_PROFILE_BYTES``: the event that
    would grow it so is refused (its outcome says why), never a write that fails on every retry."""
    size = len(json.dumps(profile.to_doc(), default=str, ensure_ascii=False).encode())
    if size <= SAFE_PROFILE_BYTES:
        return None
    return Dropped("profile", f"the profile would pass {SAFE_PROFILE_BYTES} bytes", profile.profile_id)
