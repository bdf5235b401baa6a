"""The merge rules as a user sees them: which identifiers end up in which profile.

Runs the real service on the in-memory store; the same rules run on Firestore in tests/contract.
"""

import itertools

import pytest

from svyaz.adapters.store.memory import MemoryStore
from svyaz.app.service import IdentityService
from svyaz.domain.merge import InvalidEvent, observe, plan_event
from svyaz.domain.model import Identifier
from tests.conftest import PEPPER
from tests.helpers import check_invariants, event, partition, profile_of


@pytest.fixture
def svc(memory_service):
    return memory_service


def test_neither_identifier_known_creates_one_profile_with_both(svc):
    outcome = svc.apply(event({"client_id": "c1", "phone": "8 909 123-45-67"}))
    assert outcome.status == "created"
    assert profile_of(svc.store, "client_id", "c1") == {"client_id:c1", "phone:+79091234567"}


def test_one_known_identifier_attaches_the_new_one(svc):
    first = svc.apply(event({"client_id": "c1"}))
    outcome = svc.apply(event({"client_id": "c1", "email": "A@B.ru"}))
    assert outcome.status == "attached" and outcome.profile_id == first.profile_id
    assert profile_of(svc.store, "email", "a@b.ru") == {"client_id:c1", "email:a@b.ru"}


def test_both_known_in_different_profiles_merges_them_into_the_first_seen(svc):
    older = svc.apply(event({"client_id": "c1", "session_id": "s1"}, minutes=0))
    newer = svc.apply(event({"phone": "+79091234567"}, minutes=5))
    outcome = svc.apply(event({"session_id": "s1", "phone": "+79091234567"}, minutes=10))
    assert outcome.status == "merged"
    assert outcome.profile_id == older.profile_id and outcome.merged_profile_ids == [newer.profile_id]
    assert profile_of(svc.store, "client_id", "c1") == {"client_id:c1", "session_id:s1", "phone:+79091234567"}
    loser = svc.store.get_profile(newer.profile_id)
    assert loser.status == "merged" and loser.merged_into == older.profile_id


def test_both_known_in_the_same_profile_changes_nothing_in_the_graph(svc):
    svc.apply(event({"client_id": "c1", "session_id": "s1"}))
    before = partition(svc.store)
    outcome = svc.apply(event({"client_id": "c1", "session_id": "s1"}))
    assert outcome.status == "unchanged" and partition(svc.store) == before


@pytest.mark.parametrize("garbage", ["undefined", "null", "0", "[object Object]", "'none'", "-1"])
def test_a_blocked_value_on_either_side_never_links(svc, garbage):
    svc.apply(event({"user_id": "u1", "client_id": garbage}))
    outcome = svc.apply(event({"user_id": "u2", "client_id": garbage}))
    assert outcome.status == "created"  # still processed with its remaining identifier
    assert [(d.kind, d.reason) for d in outcome.dropped] == [("client_id", "placeholder value")]
    assert profile_of(svc.store, "user_id", "u1") == {"user_id:u1"}
    assert profile_of(svc.store, "user_id", "u2") == {"user_id:u2"}


def test_an_event_with_only_garbage_identifiers_is_refused_with_the_reasons(svc):
    with pytest.raises(InvalidEvent, match="no usable identifier") as caught:
        svc.apply(event({"email": "test@test.com", "phone": "+70000000000", "ip": "10.0.0.1"}))
    assert "email: blocklisted value" in str(caught.value) and "phone:" in str(caught.value)
    assert list(svc.store.iter_records()) == [] and list(svc.store.iter_profiles()) == []


def test_two_user_ids_are_never_merged_and_the_conflict_is_recorded(svc):
    p1 = svc.apply(event({"user_id": "u1", "email": "e@x.ru"}))
    outcome = svc.apply(event({"user_id": "u2", "email": "e@x.ru"}))
    assert outcome.status == "conflict"
    assert outcome.profile_id != p1.profile_id
    assert [(c.kind, c.profile_id) for c in outcome.conflicts] == [("email", p1.profile_id)]
    assert "user_id" in outcome.conflicts[0].reason
    assert profile_of(svc.store, "user_id", "u1") == {"user_id:u1", "email:e@x.ru"}
    assert profile_of(svc.store, "user_id", "u2") == {"user_id:u2"}


def test_the_same_event_without_user_id_resolves_to_the_known_profile(svc):
    p1 = svc.apply(event({"user_id": "u1", "email": "e@x.ru"}))
    assert svc.apply(event({"email": "e@x.ru", "client_id": "c9"})).profile_id == p1.profile_id


def test_limits_drop_the_weaker_identifier_not_the_stronger(svc):
    # Profile A holds five emails (the limit); B holds a phone. An event carrying a sixth email
    # and B's phone keeps the email (stronger) and gives up the phone (weaker).
    for n in range(5):
        svc.apply(event({"client_id": "a", "email": f"a{n}@x.ru"}))
    b = svc.apply(event({"phone": "+79091112233"}))
    outcome = svc.apply(event({"email": "new@x.ru", "client_id": "a"}))
    assert outcome.status == "conflict"  # the sixth email does not fit into A
    assert profile_of(svc.store, "email", "new@x.ru") == {"email:new@x.ru"}
    assert profile_of(svc.store, "phone", "+79091112233") == {"phone:+79091112233"}
    assert svc.store.lookup(Identifier("phone", "+79091112233")).profile_id == b.profile_id


def test_a_device_seen_with_another_logged_in_profile_moves_there_and_profiles_stay_apart(svc):
    ivan = svc.apply(event({"user_id": "ivan", "device_id": "tablet-1", "push_token": "tok-1"}))
    maria = svc.apply(event({"user_id": "maria"}))
    outcome = svc.apply(event({"user_id": "maria", "device_id": "tablet-1"}))
    assert outcome.status == "attached" and outcome.profile_id == maria.profile_id
    assert outcome.moved == [{"kind": "device_id", "from_profile_id": ivan.profile_id}]
    assert profile_of(svc.store, "user_id", "maria") == {"user_id:maria", "device_id:tablet-1"}
    assert profile_of(svc.store, "user_id", "ivan") == {"user_id:ivan", "push_token:tok-1"}


def test_an_event_with_only_a_device_id_resolves_to_its_current_owner(svc):
    svc.apply(event({"user_id": "ivan", "device_id": "d1"}))
    maria = svc.apply(event({"user_id": "maria", "device_id": "d1"}))
    outcome = svc.apply(event({"device_id": "d1", "advertising_id": "6D92078A-8246-4BA4-AE5B-76104861E7DC"}))
    assert outcome.profile_id == maria.profile_id
    assert "advertising_id:6d92078a-8246-4ba4-ae5b-76104861e7dc" in profile_of(svc.store, "user_id", "maria")


def test_older_traits_never_overwrite_newer_ones_whatever_the_arrival_order(policy):
    newer = event({"client_id": "c1"}, minutes=60, traits={"city": "Kazan", "first_name": "Ivan"})
    older = event({"client_id": "c1", "email": "i@x.ru"}, minutes=0, traits={"city": "Moscow", "gender": "m"})
    for order in (newer, older), (older, newer):
        store = MemoryStore(PEPPER)
        service = IdentityService(store, policy)
        for e in order:
            service.apply(e)
        traits = {name: t.value for name, t in store.lookup(Identifier("client_id", "c1")).traits.items()}
        assert traits == {"city": "Kazan", "first_name": "Ivan", "gender": "m"}


def test_traits_of_merged_profiles_are_last_write_wins_by_event_time(svc):
    svc.apply(event({"client_id": "c1"}, minutes=30, traits={"city": "Kazan"}))
    svc.apply(event({"phone": "+79091234567"}, minutes=10, traits={"city": "Moscow", "first_name": "Ivan"}))
    svc.apply(event({"client_id": "c1", "phone": "+79091234567"}, minutes=40))
    profile = svc.store.lookup(Identifier("client_id", "c1"))
    assert {n: t.value for n, t in profile.traits.items()} == {"city": "Kazan", "first_name": "Ivan"}


def test_the_same_event_applied_twice_changes_nothing_the_second_time(svc):
    e = event({"client_id": "c1", "phone": "+79091234567"}, traits={"city": "Kazan"})
    first = svc.apply(e)
    before = svc.store.lookup(Identifier("client_id", "c1"))
    again = svc.apply(e)
    assert again.duplicate and again.profile_id == first.profile_id
    after = svc.store.lookup(Identifier("client_id", "c1"))
    assert after.counters == before.counters and after.version == before.version
    assert len(svc.store.touchpoints([after.profile_id], 10)) == 1


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_a_chain_arriving_in_any_order_ends_as_one_profile(policy, order):
    links = [
        {"client_id": "A", "session_id": "B"},
        {"session_id": "B", "phone": "+79091234567"},
        {"phone": "+79091234567", "email": "d@x.ru"},
    ]
    service = IdentityService(MemoryStore(PEPPER), policy)
    for i in order:
        service.apply(event(links[i], minutes=i))
    assert profile_of(service.store, "client_id", "A") == {
        "client_id:A",
        "session_id:B",
        "phone:+79091234567",
        "email:d@x.ru",
    }
    check_invariants(service.store, policy)


def test_first_and_last_touch_come_from_event_time_not_arrival(svc):
    svc.apply(event({"client_id": "c1"}, minutes=50, context={"source": "vk", "medium": "social"}))
    svc.apply(event({"client_id": "c1"}, minutes=5, context={"source": "yandex", "medium": "cpc"}))
    profile = svc.store.lookup(Identifier("client_id", "c1"))
    assert profile.first_touch.attribution == {"source": "yandex", "medium": "cpc"}
    assert profile.last_touch.attribution == {"source": "vk", "medium": "social"}


def test_counters_are_summed_on_merge(svc):
    for _ in range(3):
        svc.apply(event({"client_id": "c1"}))
    svc.apply(event({"phone": "+79091234567"}))
    svc.apply(event({"client_id": "c1", "phone": "+79091234567"}))
    assert svc.store.lookup(Identifier("phone", "+79091234567")).counters["events"] == 5


def test_unknown_kinds_make_the_event_invalid(svc, policy):
    with pytest.raises(InvalidEvent, match="shoe_size"):
        svc.apply(event({"shoe_size": "42"}))
    assert list(svc.store.iter_records()) == []


def test_ip_is_context_only_and_never_links(svc):
    svc.apply(event({"client_id": "c1", "ip": "10.0.0.1"}))
    svc.apply(event({"client_id": "c2", "ip": "10.0.0.1"}))
    assert len(partition(svc.store)) == 2


def test_merging_a_profile_of_1000_identifiers_writes_a_bounded_number_of_documents(policy):
    store = MemoryStore(PEPPER)
    service = IdentityService(store, policy)
    for batch in range(25):
        service.apply(event({"session_id": [f"s{batch}-{n}" for n in range(40)], "client_id": "big"}))
    service.apply(event({"client_id": "small", "phone": "+79091234567"}))
    merging = event({"client_id": ["big", "small"]})
    observation = observe(merging, policy)
    snapshot = store.read_snapshot(observation.all_linking, merging.event_id)
    plan = plan_event(observation, snapshot, policy, "new")
    # 2 identifier records + survivor + tombstone + touchpoint + idempotency record
    assert plan.outcome.status == "merged" and plan.document_writes == 6
