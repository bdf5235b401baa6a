"""Identifiers, profiles, touchpoints and outcomes, with their document forms.

Documents are plain dicts (datetimes stay datetimes) so the in-memory store and Firestore
hold exactly the same shapes.
"""

from __future__ import annotations

import copy
import dataclasses
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


@dataclass
class Trait:
    value: Any
    at: datetime


@dataclass
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
    profile_id: str
    status: ProfileStatus
    first_seen: datetime
    last_seen: datetime
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    traits: dict[str, Trait] = field(default_factory=dict)
    first_touch: Touch | None = None
    last_touch: Touch | None = None
    counters: dict[str, float] = field(default_factory=dict)
    version: int = 0
    merged_into: str | None = None
    # Every profile ever merged into this one (tombstones), so history and erasure reach them.
    merged_from: list[str] = field(default_factory=list)
    # The latest attributed touches (bounded), to credit an order with the ad that preceded it.
    recent_touches: list[Touch] = field(default_factory=list)
    # When the customer first ordered (the journal's "days to the first order"); kept if that
    # order is later cancelled: the customer did place it.
    first_order_at: datetime | None = None
    # The request id of a split in progress on this profile: events that would change its graph
    # wait (they are retried) until the split has finished.
    splitting: str | None = None
    # Not stored: the store's revision of the document this was read from (Firestore: its
    # update time), so the fast path can write the profile only if nothing changed it since.
    revision: Any = field(default=None, compare=False, repr=False)

    def copy(self) -> Profile:
        """A working copy the engine may change without touching this one: containers are new,
        the traits and touches inside them are shared (the engine replaces them, never mutates)."""
        return dataclasses.replace(
            self,
            identifiers={kind: list(values) for kind, values in self.identifiers.items()},
            traits=dict(self.traits),
            counters=dict(self.counters),
            merged_from=list(self.merged_from),
            recent_touches=list(self.recent_touches),
        )

    def holds(self, identifier: Identifier) -> bool:
        return identifier.value in self.identifiers.get(identifier.kind, ())

    def counts(self) -> Counter[str]:
        return Counter({kind: len(values) for kind, values in self.identifiers.items() if values})

    def all_identifiers(self) -> list[Identifier]:
        return [Identifier(kind, value) for kind, values in self.identifiers.items() for value in values]

    def add(self, identifier: Identifier) -> None:
        values = self.identifiers.setdefault(identifier.kind, [])
        if identifier.value not in values:
            values.append(identifier.value)

    def remove(self, identifier: Identifier) -> None:
        values = self.identifiers.get(identifier.kind, [])
        if identifier.value in values:
            values.remove(identifier.value)
        if not values:
            self.identifiers.pop(identifier.kind, None)

    def to_doc(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "merged_into": self.merged_into,
            "merged_from": list(self.merged_from),
            # Epoch milliseconds: Firestore's Minimum/Maximum transforms work on numbers only,
            # and the fast path keeps these without a transaction.
            "first_seen_ms": to_ms(self.first_seen),
            "last_seen_ms": to_ms(self.last_seen),
            "identifiers": {kind: list(values) for kind, values in self.identifiers.items()},
            "traits": {name: {"value": t.value, "at": t.at} for name, t in self.traits.items()},
            "first_touch": self.first_touch.to_doc() if self.first_touch else None,
            "last_touch": self.last_touch.to_doc() if self.last_touch else None,
            "counters": dict(self.counters),
            "recent_touches": [t.to_doc() for t in self.recent_touches],
            "first_order_ms": to_ms(self.first_order_at) if self.first_order_at else None,
            "version": self.version,
            "splitting": self.splitting,
        }

    @classmethod
    def from_doc(cls, profile_id: str, doc: dict[str, Any]) -> Profile:
        return cls(
            profile_id=profile_id,
            status=doc["status"],
            merged_into=doc.get("merged_into"),
            merged_from=list(doc.get("merged_from") or []),
            first_seen=from_ms(doc["first_seen_ms"]),
            last_seen=from_ms(doc["last_seen_ms"]),
            identifiers={kind: list(values) for kind, values in (doc.get("identifiers") or {}).items()},
            traits={name: Trait(t["value"], t["at"]) for name, t in (doc.get("traits") or {}).items()},
            first_touch=Touch.from_doc(doc.get("first_touch")),
            last_touch=Touch.from_doc(doc.get("last_touch")),
            counters=dict(doc.get("counters") or {}),
            recent_touches=[t for d in doc.get("recent_touches") or [] if (t := Touch.from_doc(d))],
            first_order_at=from_ms(doc["first_order_ms"]) if doc.get("first_order_ms") else None,
            version=int(doc.get("version", 0)),
            splitting=doc.get("splitting"),
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
        }

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
