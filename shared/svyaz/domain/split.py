"""Undoing a wrong merge: re-partition a profile from its evidence, without a blocked value.

Pure rules, no I/O. The evidence of a profile is its touchpoints: each keeps the identifiers
its event joined. ``repartition`` replays that evidence in event-time order through the merge
engine itself (``merge.plan_event`` over an in-memory graph), with the blocked values left
out, so the result follows exactly the policy live events follow (limits, priorities, moving
kinds, last-write-wins traits, counters, touches, order counting); orders are then credited
once more against their component's final touches, as the live follow-up does.
"""

from __future__ import annotations

import copy
import hashlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from svyaz.domain.events import Context, Event
from svyaz.domain.merge import Observation, ProfileBusy, Snapshot, order_credit, plan_event
from svyaz.domain.model import AuditEntry, BlockEntry, Identifier, IdentifierRecord, Profile, Touchpoint
from svyaz.identity.policy import Policy, UnknownKind

CONTEXT_FIELDS = ("referrer", "page_url", "ip", "user_agent")


@dataclass
class Component:
    """One customer after the split: its profile (aggregates recomputed from its evidence),
    the identifier records it holds and the touchpoints it owns."""

    profile: Profile
    records: list[IdentifierRecord] = field(default_factory=list)
    touchpoints: list[str] = field(default_factory=list)  # touchpoint names
    credits: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)  # order name -> credit

    @property
    def profile_id(self) -> str:
        return self.profile.profile_id


@dataclass
class Partition:
    """``components[0]`` keeps the profile id (it holds the oldest evidence)."""

    components: list[Component]
    # Owned identifiers that no remaining evidence places (kept with the first component).
    unplaced_identifiers: int = 0
    # Touchpoints whose only linking identifiers were blocked (kept with the first component).
    unplaced_touchpoints: int = 0
    # Each tombstone merged into the profile -> the resulting profile that took most of its
    # touchpoints (its old id answers with that customer from now on).
    tombstones: dict[str, str] = field(default_factory=dict)

    def owner_of(self) -> dict[str, str]:
        """Touchpoint name -> the profile id it belongs to after the split."""
        return {name: c.profile_id for c in self.components for name in c.touchpoints}


def split_profile_id(request_id: str, n: int) -> str:
    """The id of the n-th new profile of a split request: the same on every retry, so a
    redelivered request never creates a profile twice."""
    return hashlib.sha256(f"split:{request_id}:{n}".encode()).hexdigest()[:32]


def event_of(touchpoint: Touchpoint) -> Event:
    """The event a touchpoint records, as the merge engine needs it (no re-validation: it
    was validated when it arrived)."""
    context = Context.model_construct(
        **touchpoint.attribution, **{k: v for k, v in touchpoint.context.items() if k in CONTEXT_FIELDS}
    )
    return Event.model_construct(
        event_id=touchpoint.event_id,
        type=touchpoint.type,
        timestamp=touchpoint.timestamp,
        channel=touchpoint.channel,
        identifiers={},
        traits=dict(touchpoint.traits),
        context=context,
        properties=dict(touchpoint.properties),
    )


def observation_of(
    touchpoint: Touchpoint, policy: Policy, owned: set[Identifier], blocked: set[Identifier]
) -> Observation:
    """What the engine would observe of the touchpoint's event today: its identifiers the
    profile still owns and that are not blocked, by today's policy."""
    linking: list[Identifier] = []
    moving: list[Identifier] = []
    context: list[Identifier] = []
    for identifier in dict.fromkeys(touchpoint.identifiers):
        try:
            rules = policy.kind(identifier.kind)
        except UnknownKind:
            continue
        if not rules.links:
            context.append(identifier)
        elif identifier in owned and identifier not in blocked:
            if not policy.blocked_by_config(identifier.kind, identifier.value):
                (moving if rules.moves else linking).append(identifier)
    order = lambda i: policy.order_key(i.kind, i.value)  # noqa: E731
    return Observation(
        event_of(touchpoint), sorted(linking, key=order), sorted(moving, key=order), context, []
    )


class _Graph:
    """An in-memory identity graph the evidence is replayed into (records and profiles only)."""

    def __init__(self) -> None:
        self.records: dict[Identifier, IdentifierRecord] = {}
        self.profiles: dict[str, Profile] = {}
        self.owner_at_event: dict[str, str] = {}  # touchpoint name -> replay profile id
        self._ids = 0

    def new_id(self) -> str:
        self._ids += 1
        return f"replay-{self._ids:08d}"

    def apply(self, observation: Observation, policy: Policy) -> None:
        ids = observation.all_linking
        snapshot = Snapshot(
            records={i: self.records[i] for i in ids if i in self.records}, profiles=self.profiles
        )
        plan = plan_event(observation, snapshot, policy, self.new_id())
        for record in plan.records:
            self.records[record.identifier] = record
        for profile in plan.profiles:
            self.profiles[profile.profile_id] = profile
        assert plan.touchpoint is not None
        self.owner_at_event[plan.touchpoint.name] = plan.touchpoint.profile_id

    def active(self, profile_id: str) -> str:
        profile = self.profiles[profile_id]
        while profile.status == "merged" and profile.merged_into:
            profile = self.profiles[profile.merged_into]
        return profile.profile_id


def repartition(
    profile: Profile,
    evidence: Iterable[Touchpoint],
    owned: dict[Identifier, IdentifierRecord],
    blocked: set[Identifier],
    policy: Policy,
    new_profile_id: Callable[[int], str],
) -> Partition:
    """The profiles ``profile`` splits into once ``blocked`` values link nothing.

    ``evidence``: every touchpoint of the profile and of the profiles merged into it.
    ``owned``: the records of the identifiers it holds now (a device moved away since stays
    where it is; a blocked value is no longer among them).
    The component holding the oldest evidence keeps ``profile``'s id; the others get
    ``new_profile_id(1)``, ``new_profile_id(2)``, ... in the order of their oldest evidence."""
    touchpoints = sorted(evidence, key=lambda t: (t.timestamp, t.event_id))
    graph, unplaced = _Graph(), []
    for touchpoint in touchpoints:
        observation = observation_of(touchpoint, policy, owned, blocked)
        if observation.all_linking:
            graph.apply(observation, policy)
        else:
            unplaced.append(touchpoint)

    actives = sorted(
        (p for p in graph.profiles.values() if p.status == "active"),
        key=lambda p: (p.first_seen, p.profile_id),
    )
    if not actives:  # no evidence left to place: the profile keeps whatever remains
        empty = Profile("", "active", profile.first_seen, profile.first_seen)
        graph.profiles[""], actives = empty, [empty]
    components = {
        p.profile_id: Component(_renamed(p, profile.profile_id if n == 0 else new_profile_id(n), profile))
        for n, p in enumerate(actives)
    }
    first = components[actives[0].profile_id]
    for record in graph.records.values():
        owner = components[graph.active(record.profile_id)]
        record.profile_id = owner.profile_id
        owner.records.append(record)
    for name, replay_id in graph.owner_at_event.items():
        components[graph.active(replay_id)].touchpoints.append(name)
    leftovers = {i: r for i, r in owned.items() if i not in graph.records and i not in blocked}
    _place_leftovers(first, unplaced, leftovers, policy)
    for component in components.values():
        _credit_orders(component, touchpoints, policy)
    result = Partition(list(components.values()), len(leftovers), len(unplaced))
    result.tombstones = _tombstone_owners(profile, touchpoints, result)
    for component in result.components:
        component.profile.merged_from = sorted(
            t for t, pid in result.tombstones.items() if pid == component.profile_id
        )
    return result


def _tombstone_owners(
    profile: Profile, touchpoints: list[Touchpoint], partition: Partition
) -> dict[str, str]:
    owner_of = partition.owner_of()
    votes: dict[str, Counter[str]] = {loser: Counter() for loser in profile.merged_from}
    for touchpoint in touchpoints:
        if touchpoint.profile_id in votes:
            votes[touchpoint.profile_id][owner_of.get(touchpoint.name, profile.profile_id)] += 1
    # Ties and tombstones without touchpoints stay with the kept profile.
    return {
        loser: max(counts, key=lambda pid: (counts[pid], pid == profile.profile_id))
        if counts
        else profile.profile_id
        for loser, counts in votes.items()
    }


def _renamed(replayed: Profile, profile_id: str, original: Profile) -> Profile:
    """A replayed profile under its final id: every field the engine folded, nothing else."""
    result = copy.deepcopy(replayed)
    result.profile_id, result.status, result.merged_into, result.merged_from = profile_id, "active", None, []
    result.identifiers = {kind: sorted(values) for kind, values in replayed.identifiers.items()}
    result.version, result.splitting = original.version + 1, None
    return result


def _place_leftovers(
    first: Component,
    unplaced: list[Touchpoint],
    unplaced_ids: dict[Identifier, IdentifierRecord],
    policy: Policy,
) -> None:
    """Evidence the split cannot place keeps the profile id: touchpoints whose only linking
    identifiers were blocked are still this customer's history (counted, never linked), and
    identifiers with no touchpoint left stay where they were, with their old evidence."""
    profile = first.profile
    for touchpoint in unplaced:  # its aggregates follow the touchpoint (derived, then folded)
        first.touchpoints.append(touchpoint.name)
    for identifier, old in sorted(unplaced_ids.items()):
        profile.add(identifier)
        record = copy.deepcopy(old)
        record.profile_id = profile.profile_id
        first.records.append(record)


def _credit_orders(component: Component, touchpoints: list[Touchpoint], policy: Policy) -> None:
    """Each order credited to the touches of its own customer, as the live follow-up credits
    an order once a merge brings earlier touches."""
    mine = set(component.touchpoints)
    touches = [t.touch for t in touchpoints if t.name in mine and t.touch is not None]
    for touchpoint in touchpoints:
        if touchpoint.type == "order" and touchpoint.name in mine:
            credit = order_credit(touches, touchpoint.timestamp, policy.attribution_lookback_days)
            component.credits[touchpoint.name] = credit


def summary(partition: Partition) -> dict[str, Any]:
    """What a split request answers: the resulting profiles and their sizes, no values."""
    return {
        "profile_ids": [c.profile_id for c in partition.components],
        "components": [
            {"profile_id": c.profile_id, "identifiers": len(c.records), "touchpoints": len(c.touchpoints)}
            for c in partition.components
        ],
        "unplaced_identifiers": partition.unplaced_identifiers,
        "unplaced_touchpoints": partition.unplaced_touchpoints,
    }


SplitState = Literal["queued", "moving", "done", "failed"]
PART_SIZE = 400  # writes per chunk: one transaction of at most 400 documents (Firestore: 500)


@dataclass
class SplitRequest:
    """``splits/{request id}``: a block-and-split request and how far it got.

    queued -> (block: one transaction) moving -> (one transaction per part) done; or failed."""

    request_id: str
    profile_id: str
    block: Identifier
    reason: str
    requested_at: datetime
    state: SplitState = "queued"
    family: list[str] = field(default_factory=list)  # the profile and the tombstones merged into it
    version: int = 0  # the profile's version when the evidence was read (a later write: sweep)
    parts: int = -1  # chunks of the plan (-1: not planned yet)
    cursor: int = 0  # chunks applied
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    planned_ms: int = 0  # wall clock when the evidence was read
    settle_ms: int = 0  # when the pass placing late fast-path writes is due (0: none pending)

    def to_doc(self) -> dict[str, Any]:
        return {
            "profile_id": self.profile_id,
            "block": {"kind": self.block.kind, "value": self.block.value},
            "reason": self.reason,
            "requested_at": self.requested_at,
            "state": self.state,
            "family": list(self.family),
            "version": self.version,
            "parts": self.parts,
            "cursor": self.cursor,
            "result": copy.deepcopy(self.result),
            "error": self.error,
            "planned_ms": self.planned_ms,
            "settle_ms": self.settle_ms,
        }

    @classmethod
    def from_doc(cls, request_id: str, doc: dict[str, Any]) -> SplitRequest:
        return cls(
            request_id=request_id,
            profile_id=doc["profile_id"],
            block=Identifier(doc["block"]["kind"], doc["block"]["value"]),
            reason=doc.get("reason", ""),
            requested_at=doc["requested_at"],
            state=doc.get("state", "queued"),
            family=list(doc.get("family") or []),
            version=int(doc.get("version", 0)),
            parts=int(doc.get("parts", -1)),
            cursor=int(doc.get("cursor", 0)),
            result=copy.deepcopy(doc.get("result") or {}),
            error=doc.get("error"),
            planned_ms=int(doc.get("planned_ms") or 0),
            settle_ms=int(doc.get("settle_ms") or 0),
        )

    def view(self) -> dict[str, Any]:
        """What ``GET /splits/<id>`` answers: no identifier value."""
        return {
            "request_id": self.request_id,
            "state": self.state,
            "profile_id": self.profile_id,
            "blocked_kind": self.block.kind,
            "reason": self.reason,
            "progress": {"parts": max(self.parts, 0), "applied": self.cursor},
            **({"error": self.error} if self.error else {}),
            **self.result,
        }


@dataclass
class BlockDecision:
    """What the block step writes, in one transaction with the reads it was decided from."""

    request: SplitRequest
    entry: BlockEntry | None = None
    profiles: list[Profile] = field(default_factory=list)
    delete_record: bool = False
    audit: list[AuditEntry] = field(default_factory=list)


def decide_block(
    request: SplitRequest,
    profile: Profile | None,
    record: IdentifierRecord | None,
    owner: Profile | None,
    at: datetime,
) -> BlockDecision:
    """The block step: the value goes on the blocklist and leaves whichever profile held it;
    the profile to split (``profile``, resolved from the request's id) is marked as splitting,
    so events that would change it wait until the split is done."""
    request = copy.deepcopy(request)
    if request.state != "queued":
        return BlockDecision(request)
    if profile is None:
        request.state, request.error = "failed", "the profile does not exist (erased?)"
        return BlockDecision(request)
    if profile.splitting and profile.splitting != request.request_id:
        raise ProfileBusy(profile.profile_id)
    profiles: dict[str, Profile] = {}
    target = profiles.setdefault(profile.profile_id, copy.deepcopy(profile))
    if owner is not None:
        holder = profiles.setdefault(owner.profile_id, copy.deepcopy(owner))
        holder.remove(request.block)
        holder.version += 1
    target.splitting = request.request_id
    target.version += 1
    request.state, request.profile_id = "moving", profile.profile_id
    request.family = [profile.profile_id, *profile.merged_from]
    audit = AuditEntry(
        "block",
        at,
        [profile.profile_id],
        request_id=request.request_id,
        reason=request.reason,
        details={"kind": request.block.kind},
    )
    return BlockDecision(
        request,
        BlockEntry(request.block, at, request.reason, request.request_id),
        list(profiles.values()),
        delete_record=record is not None,
        audit=[audit],
    )


def plan_parts(partition: Partition, evidence: Iterable[Touchpoint]) -> list[dict[str, Any]]:
    """The writes that carry a partition out, in chunks of at most ``PART_SIZE`` documents:
    every identifier record (its profile and re-derived evidence), and each touchpoint whose
    owner or order credit changes. Each chunk is applied in one transaction, in any number of
    invocations: a chunk applied twice writes the same documents again."""
    owner_of = partition.owner_of()
    credits = {name: credit for c in partition.components for name, credit in c.credits.items()}
    writes: list[tuple[str, Any]] = [("record", r.to_doc()) for c in partition.components for r in c.records]
    for touchpoint in evidence:
        target = owner_of.get(touchpoint.name, touchpoint.profile_id)
        credit = credits.get(touchpoint.name, touchpoint.credit)
        if target != touchpoint.profile_id or credit != touchpoint.credit:
            writes.append(("touchpoint", {"name": touchpoint.name, "profile_id": target, "credit": credit}))
    parts = []
    for start in range(0, len(writes), PART_SIZE):
        chunk = writes[start : start + PART_SIZE]
        parts.append(
            {
                "records": [doc for what, doc in chunk if what == "record"],
                "touchpoints": [doc for what, doc in chunk if what == "touchpoint"],
            }
        )
    return parts
