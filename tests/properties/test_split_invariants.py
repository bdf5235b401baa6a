"""Invariant 3 after a split: once "block v, split" has run, the partition of identifiers is the
connected components of the evidence without v, and stays so when every event is redelivered."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svyaz.adapters.store.memory import MemoryStore
from svyaz.app.service import IdentityService
from svyaz.domain.model import Identifier
from svyaz.identity.normalize import normalize
from tests.conftest import PEPPER
from tests.helpers import check_invariants, components, partition
from tests.properties.test_invariants import NO_LIMITS, as_event, observation
from tests.split_support import block_and_split


def run_block_and_split(service: IdentityService, stream, seed: int) -> None:
    events = [as_event(ids, garbage, n) for n, (ids, garbage) in enumerate(stream)]
    rng = random.Random(seed)
    delivery = events + rng.sample(events, k=len(events) // 2)
    rng.shuffle(delivery)
    for e in delivery:
        service.apply(e)
    observed = [[Identifier(k, normalize(NO_LIMITS, k, v)) for k, v in ids] for ids, _ in stream]
    blocked = rng.choice(sorted({i for ids in observed for i in ids}))
    holder = service.store.lookup(blocked)
    assert holder is not None
    block_and_split(service, holder.profile_id, blocked=blocked)

    expected = components([[i for i in ids if i != blocked] for ids in observed])
    assert partition(service.store) == expected
    check_invariants(service.store, NO_LIMITS)
    for e in delivery:  # redelivered: the blocked value links nothing
        service.apply(e)
    assert partition(service.store) == expected


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=st.lists(observation, min_size=1, max_size=20), seed=st.integers(0, 2**32 - 1))
def test_after_block_and_split_the_partition_is_the_components_of_the_evidence_without_the_value(
    stream, seed
):
    run_block_and_split(IdentityService(MemoryStore(PEPPER), NO_LIMITS), stream, seed)
