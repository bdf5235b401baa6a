"""A smaller property run on the real Firestore emulator: same invariants, real transactions."""

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from svyaz.app.service import IdentityService
from tests.conftest import make_firestore_store
from tests.helpers import check_invariants, partition
from tests.properties.test_invariants import NO_LIMITS, as_event, expected_partition, observation
from tests.properties.test_split_invariants import run_block_and_split

pytestmark = pytest.mark.emulator


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.lists(observation, min_size=1, max_size=12), seed=st.integers(0, 2**32 - 1))
def test_partition_is_the_connected_components_on_firestore(firestore_emulator, stream, seed):
    events = [as_event(ids, garbage, n) for n, (ids, garbage) in enumerate(stream)]
    rng = random.Random(seed)
    delivery = events + rng.sample(events, k=len(events) // 3)
    rng.shuffle(delivery)
    service = IdentityService(make_firestore_store(firestore_emulator), NO_LIMITS)
    for e in delivery:
        service.apply(e)
    assert partition(service.store) == expected_partition(stream)
    check_invariants(service.store, NO_LIMITS)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=st.lists(observation, min_size=1, max_size=10), seed=st.integers(0, 2**32 - 1))
def test_block_and_split_gives_the_components_without_the_value_on_firestore(
    firestore_emulator, stream, seed
):  # noqa: E501
    run_block_and_split(IdentityService(make_firestore_store(firestore_emulator), NO_LIMITS), stream, seed)
