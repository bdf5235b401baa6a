"""One contract, two stores: every test here runs on the in-memory store and on Firestore
(the real emulator). What a user sees must not depend on the store."""

from datetime import timedelta

from svyaz.domain.merge import observe, plan_event
from svyaz.domain.model import Identifier
from tests.helpers import BASE, check_invariants, event, partition, profile_of


def test_a_new_customer_is_found_by_each_of_their_identifiers(service):
    outcome = service.apply(event({"client_id": "c1", "phone": "8 909 123 45 67", "email": "I@x.ru"}))
    for kind, value in [("client_id", "c1"), ("phone", "+79091234567"), ("email", "i@x.ru")]:
        assert service.store.lookup(Identifier(kind, value)).profile_id == outcome.profile_id
    assert service.store.lookup(Identifier("client_id", "c2")) is None


def test_document_ids_carry_no_personal_data(service):
    service.apply(event({"phone": "+79091234567", "email": "ivan@x.ru"}))
    key = service.store.keys.identifier(Identifier("phone", "+79091234567"))
    assert len(key) == 64 and "7909" not in key
    assert service.store.get_record(Identifier("phone", "+79091234567")).identifier.value == "+79091234567"


def test_redelivery_changes_nothing(service):
    e = event({"client_id": "c1", "session_id": "s1"}, traits={"city": "Kazan"})
    first = service.apply(e)
    profile = service.store.lookup(Identifier("client_id", "c1"))
    for _ in range(2):
        again = service.apply(e)
        assert again.duplicate and again.profile_id == first.profile_id
    after = service.store.lookup(Identifier("client_id", "c1"))
    assert (after.counters, after.version) == (profile.counters, profile.version)
    assert len(service.store.touchpoints([after.profile_id], 50)) == 1


def test_fast_path_counts_a_page_view_of_a_known_browser_once(service):
    service.apply(event({"client_id": "c1", "session_id": "s1"}, minutes=0))
    view = event({"client_id": "c1"}, minutes=30)
    service.apply(view)
    service.apply(view)  # redelivered
    assert service.stats["fast_path"] == 1
    profile = service.store.lookup(Identifier("client_id", "c1"))
    assert profile.counters["events"] == 2 and profile.last_seen == BASE + timedelta(minutes=30)
    early = event({"session_id": "s1"}, minutes=-30)  # late delivery of an older view
    service.apply(early)
    assert service.store.lookup(Identifier("client_id", "c1")).first_seen == BASE - timedelta(minutes=30)
    assert [t.event_id for t in service.store.touchpoints([profile.profile_id], 10)][0] == view.event_id


def test_merge_leaves_a_tombstone_and_every_identifier_resolves_to_the_survivor(service, policy):
    a = service.apply(event({"client_id": "c1", "session_id": "s1"}, minutes=0))
    b = service.apply(event({"phone": "+79091234567", "email": "i@x.ru"}, minutes=1))
    merged = service.apply(event({"session_id": "s1", "phone": "+79091234567"}, minutes=2))
    assert merged.status == "merged" and merged.profile_id == a.profile_id
    tombstone = service.store.get_profile(b.profile_id)
    assert (tombstone.status, tombstone.merged_into) == ("merged", a.profile_id)
    # email was not on the merging event: it resolves through the chain or the re-pointing job.
    assert service.store.lookup(Identifier("email", "i@x.ru")).profile_id == a.profile_id
    assert service.store.get_record(Identifier("email", "i@x.ru")).profile_id == a.profile_id
    survivor = service.store.get_profile(a.profile_id)
    assert survivor.merged_from == [b.profile_id]
    history = service.store.touchpoints([a.profile_id, *survivor.merged_from], 10)
    assert len(history) == 3 and history[0].timestamp > history[-1].timestamp
    check_invariants(service.store, policy)


def test_a_link_keeps_its_evidence(service):
    first = service.apply(event({"client_id": "c1"}, event_id="visit-1"))
    service.apply(event({"client_id": "c1", "phone": "+79091234567"}, event_id="call-7"))
    record = service.store.get_record(Identifier("phone", "+79091234567"))
    assert record.linked_by_event == "call-7"
    assert record.linked_through == Identifier("client_id", "c1")
    assert record.profile_id == first.profile_id


def test_limit_conflict_leaves_the_other_profile_untouched(service):
    p1 = service.apply(event({"user_id": "u1", "email": "e@x.ru"}))
    before = service.store.get_profile(p1.profile_id)
    outcome = service.apply(event({"user_id": "u2", "email": "e@x.ru"}))
    assert outcome.status == "conflict"
    assert service.store.get_profile(p1.profile_id).version == before.version
    assert profile_of(service.store, "user_id", "u2") == {"user_id:u2"}


def test_device_moves_between_logged_in_profiles(service, policy):
    service.apply(event({"user_id": "ivan", "device_id": "d1"}))
    maria = service.apply(event({"user_id": "maria", "device_id": "d1"}))
    assert maria.moved and service.store.lookup(Identifier("device_id", "d1")).profile_id == maria.profile_id
    assert profile_of(service.store, "user_id", "ivan") == {"user_id:ivan"}
    check_invariants(service.store, policy)


def test_touch_history_is_newest_first_and_pages(service):
    for minute in range(5):
        service.apply(event({"client_id": "c1"}, minutes=minute, context={"source": f"s{minute}"}))
    profile = service.store.lookup(Identifier("client_id", "c1"))
    page = service.store.touchpoints([profile.profile_id], 2)
    assert [t.attribution["source"] for t in page] == ["s4", "s3"]
    rest = service.store.touchpoints([profile.profile_id], 10, before=page[-1].timestamp)
    assert [t.attribution["source"] for t in rest] == ["s2", "s1", "s0"]


def test_erasure_removes_the_customer_and_everything_merged_into_them(service):
    a = service.apply(event({"client_id": "c1", "phone": "+79091234567"}, traits={"first_name": "Ekaterina"}))
    b = service.apply(event({"email": "k@x.ru"}, minutes=1))
    service.apply(event({"email": "k@x.ru", "client_id": "c1"}, minutes=2))
    other = service.apply(event({"client_id": "someone-else"}))
    report = service.store.erase(b.profile_id)  # erasing by a merged id reaches the survivor
    assert set(report.profile_ids) == {a.profile_id, b.profile_id}
    assert report.identifiers == 3 and report.touchpoints == 3
    for kind, value in [("client_id", "c1"), ("phone", "+79091234567"), ("email", "k@x.ru")]:
        assert service.store.lookup(Identifier(kind, value)) is None
        assert service.store.get_record(Identifier(kind, value)) is None
    assert service.store.get_profile(b.profile_id) is None  # tombstone gone
    erased = service.store.get_profile(a.profile_id)
    assert erased.status == "erased" and not erased.identifiers and not erased.traits
    assert service.store.touchpoints([a.profile_id, b.profile_id], 10) == []
    assert partition(service.store) == {frozenset({Identifier("client_id", "someone-else")})}
    assert service.store.lookup(Identifier("client_id", "someone-else")).profile_id == other.profile_id


def test_a_late_event_after_erasure_starts_a_new_profile_with_only_its_own_data(service):
    a = service.apply(event({"client_id": "c1", "phone": "+79091234567"}, traits={"first_name": "Ekaterina"}))
    service.store.erase(a.profile_id)
    late = service.apply(event({"phone": "+79091234567"}))
    assert late.status == "created" and late.profile_id != a.profile_id
    profile = service.store.lookup(Identifier("phone", "+79091234567"))
    assert profile.all_identifiers() == [Identifier("phone", "+79091234567")]
    assert profile.traits == {} and profile.counters["events"] == 1
    assert service.store.erase("no-such-profile") is None


def test_merge_of_a_1000_identifier_profile_is_a_bounded_transaction(service, policy):
    for batch in range(25):
        service.apply(event({"session_id": [f"s{batch}-{n}" for n in range(40)], "client_id": "big"}))
    service.apply(event({"client_id": "small"}))
    merging = event({"client_id": ["small", "big"]})
    observation = observe(merging, policy)
    plans = []
    service.store.transact(
        observation.all_linking,
        merging.event_id,
        lambda snapshot: plans.append(plan_event(observation, snapshot, policy, "unused")) or plans[-1],
    )
    assert plans[-1].outcome.status == "merged" and plans[-1].document_writes == 6
    survivor = service.store.lookup(Identifier("client_id", "small"))
    assert len(survivor.identifiers["session_id"]) == 1000
    assert service.store.lookup(Identifier("session_id", "s24-39")).profile_id == survivor.profile_id


def test_an_order_stays_one_touchpoint_through_its_status_updates(service):
    def order(status: str, minutes: int):
        return event(
            {"phone": "+79091234567"},
            event_id=f"order:S-1:{status}",
            type="order",
            minutes=minutes,
            properties={"order_id": "S-1", "amount": "1990.50", "status": status},
        )

    service.apply(event({"phone": "+79091234567"}, context={"source": "yandex", "medium": "cpc"}))
    for status, minutes in (("new", 1), ("paid", 2), ("paid", 2), ("refunded", 3)):
        service.apply(order(status, minutes))
    profile = service.store.lookup(Identifier("phone", "+79091234567"))
    assert (profile.counters["orders"], profile.counters["revenue"]) == (0, 0)
    sales = [t for t in service.store.touchpoints([profile.profile_id], 10) if t.type == "order"]
    assert len(sales) == 1 and sales[0].properties["status"] == "refunded"
    assert sales[0].credit["first_touch"] == {"source": "yandex", "medium": "cpc"}
    start, end = BASE - timedelta(days=1), BASE + timedelta(days=1)
    assert [t.properties["order_id"] for t in service.store.touchpoints_between("order", start, end)] == [
        "S-1"
    ]


def test_an_order_applied_before_its_ad_touch_is_credited_once_they_link(service):
    ad = {"source": "yandex", "medium": "cpc"}
    till = event(
        {"phone": "+79091234567"},
        event_id="order:T-9:paid",
        type="order",
        minutes=600,
        properties={"order_id": "T-9", "amount": "100", "status": "paid"},
    )
    service.apply(till)
    service.apply(event({"client_id": "c1"}, minutes=0, context=ad))
    service.apply(event({"client_id": "c1", "phone": "+79091234567"}, minutes=5))
    profile = service.store.lookup(Identifier("phone", "+79091234567"))
    [sale] = [
        t
        for t in service.store.touchpoints([profile.profile_id, *profile.merged_from], 10)
        if t.type == "order"
    ]
    assert sale.credit == {"first_touch": ad, "last_touch": ad}
