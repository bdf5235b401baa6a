"""Invariants 1-4 of the design page, as properties over random event streams."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svyaz.adapters.store.memory import MemoryStore
from svyaz.app.service import IdentityService
from svyaz.domain.model import Identifier
from svyaz.identity.normalize import normalize
from svyaz.identity.policy import Policy
from tests.conftest import PEPPER
from tests.helpers import check_invariants, components, event, partition

# Limits high enough that no conflict can occur: invariant 3 is about those streams.
NO_LIMITS = Policy.from_mapping(
    {"kinds": {k: {"limit": 10_000} for k in ("email", "phone", "client_id", "session_id", "user_id")}}
)
GARBAGE = ["undefined", "null", "0", "[object Object]", "'none'", "-1"]

linking_value = st.sampled_from(
    [("client_id", f"c{i}") for i in range(8)]
    + [("session_id", f"s{i}") for i in range(8)]
    + [("email", f"e{i}@x.ru") for i in range(4)]
    + [("phone", f"+7909123450{i}") for i in range(4)]
)
garbage_value = st.tuples(
    st.sampled_from(["client_id", "email", "phone"]), st.sampled_from(GARBAGE)
) | st.sampled_from(
    [
        ("email", "test@test.com"),
        ("email", "TEST@TEST.COM"),
        ("phone", "+70000000000"),
        ("phone", "8 000 000 00 00"),
    ]
)
observation = st.lists(linking_value, min_size=1, max_size=4).flatmap(
    lambda ids: st.tuples(st.just(ids), st.lists(garbage_value, max_size=2))
)


def as_event(ids: list[tuple[str, str]], garbage: list[tuple[str, str]], n: int):
    identifiers: dict[str, list[str]] = {}
    for kind, value in ids + garbage:
        identifiers.setdefault(kind, []).append(value)
    return event(identifiers, event_id=f"e{n}", minutes=n)


def expected_partition(stream: list[tuple[list[tuple[str, str]], list]]) -> set[frozenset[Identifier]]:
    return components([[Identifier(k, normalize(NO_LIMITS, k, v)) for k, v in ids] for ids, _ in stream])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=st.lists(observation, min_size=1, max_size=25), seed=st.integers(0, 2**32 - 1))
def test_partition_is_the_connected_components_whatever_the_order_and_duplication(stream, seed):
    events = [as_event(ids, garbage, n) for n, (ids, garbage) in enumerate(stream)]
    rng = random.Random(seed)
    delivery = events + rng.sample(events, k=len(events) // 2)  # duplicated deliveries
    rng.shuffle(delivery)
    service = IdentityService(MemoryStore(PEPPER), NO_LIMITS)
    for e in delivery:
        service.apply(e)
    assert partition(service.store) == expected_partition(stream)  # invariants 3 and 4
    check_invariants(service.store, NO_LIMITS)  # invariants 1 and 2


any_identifier = st.sampled_from(
    [("user_id", f"u{i}") for i in range(3)]
    + [("email", f"e{i}@x.ru") for i in range(7)]
    + [("phone", f"+7909123450{i}") for i in range(3)]
    + [("client_id", f"c{i}") for i in range(4)]
    + [("device_id", f"d{i}") for i in range(3)]
    + [("push_token", f"t{i}") for i in range(2)]
)
tight = Policy.from_mapping({"kinds": {"email": {"limit": 2}, "device_id": {"limit": 1}}})


@settings(max_examples=150, deadline=None)
@given(stream=st.lists(st.lists(any_identifier, min_size=1, max_size=4), min_size=1, max_size=25))
def test_limits_and_moves_never_break_resolution_or_limits(stream):
    service = IdentityService(MemoryStore(PEPPER), tight)
    only_in_conflicts: set[Identifier] = set()
    kept: set[Identifier] = set()
    for n, ids in enumerate(stream):
        identifiers: dict[str, list[str]] = {}
        for kind, value in ids:
            identifiers.setdefault(kind, []).append(value)
        outcome = service.apply(event(identifiers, event_id=f"e{n}", minutes=n))
        normalized = {Identifier(k, normalize(tight, k, v)) for k, v in ids}
        (only_in_conflicts if outcome.status == "conflict" else kept).update(normalized)
    check_invariants(service.store, tight)
    recorded = {r.identifier for r in service.store.iter_records()}
    # No identifier is lost: each one is recorded unless every event carrying it hit a limit.
    assert kept <= recorded <= kept | only_in_conflicts
