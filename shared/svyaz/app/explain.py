"""Read API of the explanation (the profile API, the CLI and the journal page render from here):
how each identifier got into a profile, its merge history, and the evidence between two
identifiers."""

from __future__ import annotations

from typing import Any

from svyaz.adapters.store.base import Store
from svyaz.domain.explain import evidence_events, evidence_path, explanation
from svyaz.domain.model import Identifier, Profile


def family(profile: Profile) -> list[str]:
    return [profile.profile_id, *profile.merged_from]


def explain(store: Store, profile: Profile) -> dict[str, Any]:
    """The explanation of an active profile, as JSON-ready data."""
    ids = family(profile)
    records = store.records_of(ids)
    audit = store.audit(ids)
    wanted = evidence_events(records, audit)
    events = store.touchpoints_by_event(wanted)
    if missing := set(wanted) - set(events):
        # An order's touchpoint is keyed by its order id, not its event id: the family's orders
        # (one query, only when some evidence was not found by event id).
        for order in store.family_touchpoints(ids, type_="order"):
            if order.event_id in missing:
                events[order.event_id] = order
    return explanation(profile, records, events, audit)


def path(store: Store, profile: Profile, start: Identifier, end: Identifier) -> dict[str, Any]:
    """The chain of events joining two identifiers of the profile (``path`` None if none)."""
    steps = evidence_path(store.touchpoints_of(family(profile)), start, end)
    return {
        "profile_id": profile.profile_id,
        "from": {"kind": start.kind, "value": start.value},
        "to": {"kind": end.kind, "value": end.value},
        "path": steps,
    }
