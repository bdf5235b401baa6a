"""What a user sees of the graph, for assertions: the partition of identifiers into profiles."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from svyaz.adapters.store.base import Store
from svyaz.domain.events import Event
from svyaz.domain.model import Identifier
from svyaz.identity.policy import Policy

BASE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_counter = itertools.count()


def event(
    identifiers: dict, *, event_id: str | None = None, minutes: int = 0, type: str = "page", **fields
) -> Event:
    return Event(
        event_id=event_id or f"ev-{next(_counter)}",
        type=type,
        timestamp=BASE + timedelta(minutes=minutes),
        identifiers=identifiers,
        **fields,
    )


def partition(store: Store) -> set[frozenset[Identifier]]:
    """Identifiers grouped by the active profile they resolve to (what a user would see)."""
    groups: dict[str, set[Identifier]] = {}
    for record in store.iter_records():
        profile = store.resolve(record.profile_id)
        assert profile is not None, f"{record.identifier} resolves to no active profile"
        groups.setdefault(profile.profile_id, set()).add(record.identifier)
    return {frozenset(g) for g in groups.values()}


def profile_of(store: Store, kind: str, value: str) -> set[str]:
    """The identifiers (as 'kind:value') in the profile holding this identifier."""
    profile = store.lookup(Identifier(kind, value))
    assert profile is not None, f"{kind}:{value} has no profile"
    return {f"{i.kind}:{i.value}" for i in profile.all_identifiers()}


def check_invariants(store: Store, policy: Policy) -> None:
    """Invariants 1 and 2 of the design page."""
    for record in store.iter_records():
        profile = store.resolve(record.profile_id)
        assert profile is not None, f"{record.identifier} resolves to nothing"
        assert profile.holds(record.identifier), f"{profile.profile_id} does not list {record.identifier}"
    listed: dict[Identifier, str] = {}
    for profile in store.iter_profiles():
        if profile.status != "active":
            assert not profile.identifiers, "tombstones hold no identifiers"
            continue
        for kind, values in profile.identifiers.items():
            assert len(values) <= policy.kind(kind).limit, f"{profile.profile_id} exceeds the {kind} limit"
            for value in values:
                identifier = Identifier(kind, value)
                assert identifier not in listed, f"{identifier} listed by two active profiles"
                listed[identifier] = profile.profile_id
                record = store.get_record(identifier)
                assert record is not None, f"{identifier} listed but has no record"
                resolved = store.resolve(record.profile_id)
                assert resolved is not None and resolved.profile_id == profile.profile_id


def components(observations: list[list[Identifier]]) -> set[frozenset[Identifier]]:
    """Connected components of the co-occurrence graph (the expected partition)."""
    parent: dict[Identifier, Identifier] = {}

    def find(x: Identifier) -> Identifier:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for ids in observations:
        for identifier in ids:
            find(identifier)
        for a, b in itertools.pairwise(ids):
            parent[find(a)] = find(b)
    groups: dict[Identifier, set[Identifier]] = {}
    for identifier in parent:
        groups.setdefault(find(identifier), set()).add(identifier)
    return {frozenset(g) for g in groups.values()}
