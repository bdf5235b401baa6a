"""Identifiers, profiles, touchpoints and outcomes, with their document forms.

Documents are plain dicts (datetimes stay datetimes) so the in-memory store and Firestore
hold exactly the same shapes.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from svyaz.domain.events import namespace_of

ProfileStatus = Literal["active", "merged", "erased"]
OutcomeStatus = Literal["created", "attached", "merged", "unchanged", "conflict"]


def to_ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def from_ms(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, order=True)
class Identifier:
    kind: str
    value: str

    def __str__(self) -> str:  # for humans (CLI, demo); never logged by the service
        return f"{self.kind}:{self.value}"


@dataclass
class IdentifierRecord:
    """``identifiers/{keyed hash}``: which profile an identifier belongs to, and why."""

    identifier: Identifier
    profile_id: str
    first_seen: datetime
    last_seen: datetime
    linked_by_event: str
    # The identifier this one was linked through on that event: the evidence for the link.
    linked_through: Identifier | None = None

    def to_doc(self) -> dict[str, Any]:
        through = self.linked_through
        return {
            "kind": self.identifier.kind,
            "value": self.identifier.value,
            "profile_id": self.profile_id,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "linked_by_event": self.linked_by_event,
            "linked_through": None if through is None else {"kind": through.kind, "value": through.value},
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> IdentifierRecord:
        through = doc.get("linked_through")
        return cls(
            identifier=Identifier(doc["kind"], doc["value"]),
            profile_id=doc["profile_id"],
            first_seen=doc["first_seen"],
            last_seen=doc["last_seen"],
            linked_by_event=doc.get("linked_by_event", ""),
            linked_through=None if not through else Identifier(through["kind"], through["value"]),
        )


@dataclass(frozen=True)
class Trait:
    value: Any
    at: datetime


@dataclass(frozen=True)
class Touch:
    """Attribution of one touch: where the customer came from, and when."""

    at: datetime
    attribution: dict[str, str]
    type: str
    channel: str

    def to_doc(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "attribution": dict(self.attribution),
            "type": self.type,
            "channel": self.channel,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any] | None) -> Touch | None:
        if not doc:
            return None
        return cls(doc["at"], dict(doc.get("attribution", {})), doc.get("type", ""), doc.get("channel", ""))


@dataclass
class Profile:
    """``profiles/{id}``: one customer. The stored document is O(1) in size whatever the
    customer holds: per-kind identifier counts (for the limits), bounded traits, seen times,
    and the aggregates a ``fold`` job derived from its touchpoints (for queries across
    customers: the journal's directory). No event on the hot path writes it.

    The read model (``identifiers``, ``merged_from``) is not stored: a store's read API fills it
    from the identifier records of the profile's family, and replaces the folded aggregates by
    exact ones derived at read time (``Store.assemble``)."""

    profile_id: str
    status: ProfileStatus
    first_seen: datetime
    last_seen: datetime
    identifier_counts: dict[str, int] = field(default_factory=dict)
    traits: dict[str, Trait] = field(default_factory=dict)
    version: int = 0
    merged_into: str | None = None
    # The latest order of the family (event time): a touch older than it re-credits orders.
    last_order_at: datetime | None = None
    # The request id of a split in progress on this profile: events that would change its graph
    # wait (they are retried) until the split has finished.
    splitting: str | None = None
    # --- aggregates folded from the touchpoints by the ``fold`` job (eventually consistent) ---
    counters: dict[str, float] = field(default_factory=dict)
    first_touch: Touch | None = None
    last_touch: Touch | None = None
    # When the customer first ordered (the journal's "days to the first order"); kept if that
    # order is later cancelled: the customer did place it.
    first_order_at: datetime | None = None
    folded_ms: int = 0  # when the last fold read the touchpoints
    # --- read model, filled by the store's read API, never stored -----------------------
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    merged_from: list[str] = field(default_factory=list)

    def holds(self, identifier: Identifier) -> bool:
        return identifier.value in self.identifiers.get(identifier.kind, ())

    def counts(self) -> Counter[str]:
        return Counter({kind: n for kind, n in self.identifier_counts.items() if n})

    def all_identifiers(self) -> list[Identifier]:
        return [Identifier(kind, value) for kind, values in self.identifiers.items() for value in values]

    def copy(self) -> Profile:
        """A working copy of the stored part (the engine changes counts and traits only)."""
        return Profile(
            self.profile_id,
            self.status,
            self.first_seen,
            self.last_seen,
            dict(self.identifier_counts),
            dict(self.traits),
            self.version,
            self.merged_into,
            self.last_order_at,
            self.splitting,
            dict(self.counters),
            self.first_touch,
            self.last_touch,
            self.first_order_at,
            self.folded_ms,
        )

    def add(self, identifier: Identifier) -> None:
        """One more identifier (the split's replay; the engine counts without listing)."""
        values = self.identifiers.setdefault(identifier.kind, [])
        if identifier.value not in values:
            values.append(identifier.value)
        self.count(identifier.kind, 1)

    def remove(self, identifier: Identifier) -> None:
        values = self.identifiers.get(identifier.kind, [])
        if identifier.value in values:
            values.remove(identifier.value)
        if not values:
            self.identifiers.pop(identifier.kind, None)
        self.count(identifier.kind, -1)

    def count(self, kind: str, delta: int) -> None:
        n = self.identifier_counts.get(kind, 0) + delta
        if n > 0:
            self.identifier_counts[kind] = n
        else:
            self.identifier_counts.pop(kind, None)

    def to_doc(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "merged_into": self.merged_into,
            "first_seen_ms": to_ms(self.first_seen),
            "last_seen_ms": to_ms(self.last_seen),
            "identifier_counts": dict(self.identifier_counts),
            "traits": {name: {"value": t.value, "at": t.at} for name, t in self.traits.items()},
            "last_order_ms": None if self.last_order_at is None else to_ms(self.last_order_at),
            "version": self.version,
            "splitting": self.splitting,
            "counters": dict(self.counters),
            "first_touch": self.first_touch.to_doc() if self.first_touch else None,
            "last_touch": self.last_touch.to_doc() if self.last_touch else None,
            "first_order_ms": to_ms(self.first_order_at) if self.first_order_at else None,
            "folded_ms": self.folded_ms,
        }

    @classmethod
    def from_doc(cls, profile_id: str, doc: dict[str, Any]) -> Profile:
        last_order = doc.get("last_order_ms")
        return cls(
            profile_id=profile_id,
            status=doc["status"],
            merged_into=doc.get("merged_into"),
            first_seen=from_ms(doc.get("first_seen_ms") or 0),
            last_seen=from_ms(doc.get("last_seen_ms") or 0),
            identifier_counts=dict(doc.get("identifier_counts") or {}),
            traits={name: Trait(t["value"], t["at"]) for name, t in (doc.get("traits") or {}).items()},
            last_order_at=None if last_order is None else from_ms(last_order),
            version=int(doc.get("version", 0)),
            splitting=doc.get("splitting"),
            counters=dict(doc.get("counters") or {}),
            first_touch=Touch.from_doc(doc.get("first_touch")),
            last_touch=Touch.from_doc(doc.get("last_touch")),
            first_order_at=from_ms(doc["first_order_ms"]) if doc.get("first_order_ms") else None,
            folded_ms=int(doc.get("folded_ms") or 0),
        )


@dataclass
class Touchpoint:
    """``touchpoints/{hash of event id}``: what happened, owned by a profile, with its evidence."""

    event_id: str
    profile_id: str
    type: str
    channel: str
    timestamp: datetime
    attribution: dict[str, str]
    context: dict[str, str]
    identifiers: list[Identifier]
    properties: dict[str, Any]
    # For orders: the ad sources credited with the sale ({"first_touch": {...}, "last_touch": {...}}).
    credit: dict[str, dict[str, str]] = field(default_factory=dict)
    # The traits the event set: evidence from which a split recomputes each profile's traits.
    traits: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """What the document id is derived from: an order is one document whatever its status
        updates, any other touchpoint is its event."""
        return touchpoint_name(self.type, self.properties, self.event_id)

    def to_doc(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "profile_id": self.profile_id,
            "type": self.type,
            "channel": self.channel,
            "timestamp": self.timestamp,
            "attribution": dict(self.attribution),
            "context": dict(self.context),
            "identifiers": [{"kind": i.kind, "value": i.value} for i in self.identifiers],
            "properties": dict(self.properties),
            "credit": {k: dict(v) for k, v in self.credit.items()},
            "traits": dict(self.traits),
            # Indexed with profile_id and timestamp: the touches an order is credited to.
            "attributed": bool(self.attribution),
        }

    @property
    def touch(self) -> Touch | None:
        """The attribution of this touchpoint, if it carries any."""
        if not self.attribution:
            return None
        return Touch(self.timestamp, dict(self.attribution), self.type, self.channel)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Touchpoint:
        return cls(
            event_id=doc["event_id"],
            profile_id=doc["profile_id"],
            type=doc["type"],
            channel=doc["channel"],
            timestamp=doc["timestamp"],
            attribution=dict(doc.get("attribution") or {}),
            context=dict(doc.get("context") or {}),
            identifiers=[Identifier(i["kind"], i["value"]) for i in doc.get("identifiers") or []],
            properties=dict(doc.get("properties") or {}),
            credit={k: dict(v) for k, v in (doc.get("credit") or {}).items()},
            traits=dict(doc.get("traits") or {}),
        )


def touchpoint_name(type_: str, properties: dict[str, Any], event_id: str) -> str:
    """An order is owned by who reported it: the business's systems (CRM, till, import) share
    ``order:<id>``; a client sender (the site's public write key) reports its own orders under
    its namespace, so it can never create or alter a CRM order."""
    order_id = properties.get("order_id")
    if type_ == "order" and isinstance(order_id, str | int) and str(order_id):
        namespace = namespace_of(event_id)
        return f"{namespace}:order:{order_id}" if namespace else f"order:{order_id}"
    return event_id


JobKind = Literal["repoint", "credit", "sweep", "fold", "settle"]
JOB_KIND_NAMES = ("repoint", "credit", "sweep", "fold", "settle")


@dataclass(frozen=True, order=True)
class Job:
    """Follow-up work of an event, published as its own message and run off the event's path.
    Every job is idempotent (it recomputes from what is stored), so redelivery is harmless.

    * ``repoint``: identifier records and tombstones pointing at ``subject`` (a tombstone) are
      pointed at ``target`` (its survivor): merges stay O(1) and chains stay short;
    * ``credit``: the orders of the family of ``subject`` are credited again;
    * ``sweep``: whatever is left of the erased family of ``subject`` is deleted;
    * ``fold``: the aggregates of ``subject``'s family are folded onto its profile document,
      unless a fold that started after ``target`` (epoch ms of the job) did it already;
    * ``settle``: published by ``repoint`` when ``subject``'s records all point at the survivor
      (``target``: epoch ms then), due a grace period later: the fast-path touchpoints that
      still landed on ``subject`` go to its survivor, and downstream is told (a correction)."""

    kind: JobKind
    subject: str
    target: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "target": self.target}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        kind = data.get("kind")
        if kind not in JOB_KIND_NAMES or not isinstance(data.get("subject"), str):
            raise ValueError("not a follow-up job")
        return cls(kind, data["subject"], str(data.get("target") or ""))


@dataclass(frozen=True)
class Dropped:
    """An identifier the event carried but that was not used. ``kind`` and a reason only:
    outcomes are logged and published, so they carry no values."""

    kind: str
    reason: str
    profile_id: str | None = None  # for a limit conflict: the profile it belongs to

    def as_dict(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in {"kind": self.kind, "reason": self.reason, "profile_id": self.profile_id}.items()
            if v is not None
        }


@dataclass
class Outcome:
    event_id: str
    status: OutcomeStatus
    profile_id: str | None
    merged_profile_ids: list[str] = field(default_factory=list)
    moved: list[dict[str, str]] = field(default_factory=list)  # {"kind", "from_profile_id"}
    dropped: list[Dropped] = field(default_factory=list)
    conflicts: list[Dropped] = field(default_factory=list)
    duplicate: bool = False
    version: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "status": self.status,
            "profile_id": self.profile_id,
            "merged_profile_ids": list(self.merged_profile_ids),
            "moved": [dict(m) for m in self.moved],
            "dropped": [d.as_dict() for d in self.dropped],
            "conflicts": [c.as_dict() for c in self.conflicts],
            "duplicate": self.duplicate,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(
            event_id=data["event_id"],
            status=data["status"],
            profile_id=data.get("profile_id"),
            merged_profile_ids=list(data.get("merged_profile_ids") or []),
            moved=[dict(m) for m in data.get("moved") or []],
            dropped=[Dropped(**d) for d in data.get("dropped") or []],
            conflicts=[Dropped(**c) for c in data.get("conflicts") or []],
            duplicate=bool(data.get("duplicate", False)),
            version=int(data.get("version", 0)),
        )


AuditAction = Literal["merge", "split", "move", "conflict", "block"]


@dataclass
class AuditEntry:
    """``audit/{keyed hash}``: one change of the graph that touched a profile (merge history).

    Kinds, profile ids, event and request ids only, never identifier values: entries are
    listed by profile and erased with the customer."""

    action: AuditAction
    at: datetime
    profile_ids: list[str]  # every profile the change touched (queried with array-contains)
    event_id: str | None = None  # the event that triggered it
    request_id: str | None = None  # the split request that triggered it
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """What the document id is derived from: the same change written twice is one entry."""
        return f"audit:{self.action}:{self.event_id or self.request_id}:{','.join(self.profile_ids)}"

    def to_doc(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "at": self.at,
            "profile_ids": list(self.profile_ids),
            "event_id": self.event_id,
            "request_id": self.request_id,
            "reason": self.reason,
            "details": copy.deepcopy(self.details),
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> AuditEntry:
        return cls(
            action=doc["action"],
            at=doc["at"],
            profile_ids=list(doc.get("profile_ids") or []),
            event_id=doc.get("event_id"),
            request_id=doc.get("request_id"),
            reason=doc.get("reason"),
            details=copy.deepcopy(doc.get("details") or {}),
        )


@dataclass
class BlockEntry:
    """``blocklist/{keyed hash of kind:value}``: a value an operator blocked; it never links
    anything again (``merge.plan_event`` drops it from every event)."""

    identifier: Identifier
    at: datetime
    reason: str
    request_id: str | None = None

    def to_doc(self) -> dict[str, Any]:
        return {
            "kind": self.identifier.kind,
            "value": self.identifier.value,
            "at": self.at,
            "reason": self.reason,
            "request_id": self.request_id,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> BlockEntry:
        return cls(
            Identifier(doc["kind"], doc["value"]), doc["at"], doc.get("reason", ""), doc.get("request_id")
        )
