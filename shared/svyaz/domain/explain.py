"""Why a profile holds what it holds: pure read models over its evidence, no I/O.

Every identifier record names the event that linked it and the identifier it was linked
through; every touchpoint keeps the identifiers its event joined; audit entries keep merges,
device moves, refused links, blocks and splits. ``explanation`` puts them together for one
profile; ``evidence_path`` finds the chain of events joining two of its identifiers.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from svyaz.domain.model import AuditEntry, Identifier, IdentifierRecord, Profile, Touchpoint

HISTORY = {"merge": "merges", "split": "splits", "move": "moves", "conflict": "conflicts", "block": "blocks"}


def _iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at else None


def _identifier(identifier: Identifier | None) -> dict[str, str] | None:
    return None if identifier is None else {"kind": identifier.kind, "value": identifier.value}


def event_view(event_id: str, touchpoint: Touchpoint | None) -> dict[str, Any]:
    """An event as evidence: when, where, what, and the identifiers it carried together."""
    if touchpoint is None:  # erased, or older than the evidence kept
        return {"event_id": event_id}
    return {
        "event_id": event_id,
        "at": _iso(touchpoint.timestamp),
        "channel": touchpoint.channel,
        "type": touchpoint.type,
        "identifiers": [_identifier(i) for i in touchpoint.identifiers],
    }


def explanation(
    profile: Profile,
    records: Iterable[IdentifierRecord],
    events: dict[str, Touchpoint],
    audit: Iterable[AuditEntry],
) -> dict[str, Any]:
    """How every identifier got into ``profile`` and the history of changes that touched it.
    ``events``: the touchpoints of the events named by the records and audit entries."""
    identifiers = []
    for record in sorted(records, key=lambda r: (r.first_seen, r.identifier)):
        if not profile.holds(record.identifier):
            continue
        identifiers.append(
            {
                **_identifier(record.identifier),
                "first_seen": _iso(record.first_seen),
                "last_seen": _iso(record.last_seen),
                "linked_by": event_view(record.linked_by_event, events.get(record.linked_by_event)),
                "linked_through": _identifier(record.linked_through),
            }
        )
    history: dict[str, list[dict[str, Any]]] = {name: [] for name in HISTORY.values()}
    for entry in audit:
        item = {
            "at": _iso(entry.at),
            "profile_ids": list(entry.profile_ids),
            **({"event": event_view(entry.event_id, events.get(entry.event_id))} if entry.event_id else {}),
            **({"request_id": entry.request_id} if entry.request_id else {}),
            **({"reason": entry.reason} if entry.reason else {}),
            **entry.details,
        }
        history[HISTORY[entry.action]].append(item)
    return {
        "profile_id": profile.profile_id,
        "identifiers": identifiers,
        "merged_profile_ids": sorted(profile.merged_from),
        **history,
    }


def evidence_events(records: Iterable[IdentifierRecord], audit: Iterable[AuditEntry]) -> list[str]:
    """The event ids an explanation shows (to read their touchpoints in one round)."""
    ids = {r.linked_by_event for r in records if r.linked_by_event}
    ids |= {e.event_id for e in audit if e.event_id}
    return sorted(ids)


def evidence_path(
    evidence: Iterable[Touchpoint], start: Identifier, end: Identifier
) -> list[dict[str, Any]] | None:
    """The shortest chain of events joining ``start`` to ``end`` (each step names the event and
    the two identifiers it joined); None when no evidence joins them. Breadth-first over the
    co-occurrence graph of the touchpoints' identifiers."""
    edges: dict[Identifier, list[tuple[Identifier, Touchpoint]]] = {}
    for touchpoint in sorted(evidence, key=lambda t: (t.timestamp, t.event_id)):
        ids = list(dict.fromkeys(touchpoint.identifiers))
        for a in ids:
            edges.setdefault(a, []).extend((b, touchpoint) for b in ids if b != a)
    came_from: dict[Identifier, tuple[Identifier, Touchpoint] | None] = {start: None}
    queue = deque([start])
    while queue and end not in came_from:
        here = queue.popleft()
        for there, touchpoint in edges.get(here, []):
            if there not in came_from:
                came_from[there] = (here, touchpoint)
                queue.append(there)
    if end not in came_from:
        return None
    steps, at = [], end
    while (step := came_from[at]) is not None:
        before, touchpoint = step
        steps.append(
            {**event_view(touchpoint.event_id, touchpoint), "joined": [_identifier(before), _identifier(at)]}
        )
        at = before
    return list(reversed(steps))


def render_tree(view: dict[str, Any]) -> str:
    """An explanation as a person reads it in a terminal: each identifier under the one it was
    linked through, with the event that linked it; then the history."""
    children: dict[tuple[str, str] | None, list[dict[str, Any]]] = {}
    held = {(i["kind"], i["value"]) for i in view["identifiers"]}
    for item in view["identifiers"]:
        through = item["linked_through"]
        parent = (through["kind"], through["value"]) if through else None
        children.setdefault(parent if parent in held else None, []).append(item)
    lines = [f"Profile {view['profile_id']}"]

    def walk(parent: tuple[str, str] | None, depth: int, seen: set[tuple[str, str]]) -> None:
        for item in children.get(parent, []):
            key = (item["kind"], item["value"])
            if key in seen:
                continue
            seen.add(key)
            event = item["linked_by"]
            how = f"event {event['event_id']}"
            if "at" in event:
                how += f" ({event['type']} via {event['channel']}, {event['at']})"
            lines.append(f"{'  ' * depth}└─ {item['kind']}:{item['value']}  ← {how}")
            walk(key, depth + 1, seen)

    seen: set[tuple[str, str]] = set()
    walk(None, 1, seen)
    for item in view["identifiers"]:  # linked through each other only: still shown
        if (item["kind"], item["value"]) not in seen:
            walk((item["linked_through"]["kind"], item["linked_through"]["value"]), 1, seen)
    for name in HISTORY.values():
        for entry in view.get(name, []):
            event = entry.get("event", {}).get("event_id") or entry.get("request_id", "")
            lines.append(f"  {name[:-1]:<8} {entry['at']}  {event}  {', '.join(entry['profile_ids'])}")
    return "\n".join(lines)
