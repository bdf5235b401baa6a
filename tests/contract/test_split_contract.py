"""Block a value and split a profile, as a user sees it, on both stores (Firestore: emulator)."""

from __future__ import annotations

from svyaz.app.explain import explain, path
from svyaz.domain.model import Identifier
from tests.helpers import check_invariants, event, partition
from tests.split_support import (
    ANNA,
    BORIS,
    PHONE,
    block_and_split,
    merge_by_shared_phone,
    shared_phone_events,
)


def _orders(store, profile_id):
    return [t for t in store.touchpoints([profile_id], 100) if t.type == "order"]


def test_a_shared_phone_is_blocked_and_each_customer_gets_exactly_their_own_profile_back(service, policy):
    merged = merge_by_shared_phone(service)
    assert partition(service.store) == {frozenset(ANNA | BORIS | {PHONE})}

    request = block_and_split(service, merged)

    store = service.store
    assert request.state == "done" and len(request.result["profile_ids"]) == 2
    assert partition(store) == {frozenset(ANNA), frozenset(BORIS)}
    check_invariants(store, policy)
    anna = store.lookup(Identifier("email", "anna@mail.ru"))
    boris = store.lookup(Identifier("email", "boris@mail.ru"))
    assert anna.profile_id == merged  # Anna's evidence is the oldest: she keeps the id
    assert boris.profile_id != merged and not anna.splitting and not boris.splitting
    history = {
        p.profile_id: {t.event_id for t in store.touchpoints([p.profile_id], 100)} for p in (anna, boris)
    }
    assert history[anna.profile_id] == {"anna-ad", "anna-view", "anna-lead", "anna-order"}
    assert history[boris.profile_id] == {"boris-ad", "boris-view", "boris-lead", "boris-order"}
    assert {k: t.value for k, t in anna.traits.items()} == {"name": "Анна", "city": "Казань"}
    assert {k: t.value for k, t in boris.traits.items()} == {"name": "Борис"}
    for profile, amount in ((anna, 1500), (boris, 900)):
        assert profile.counters == {
            "events": 4,
            "type_page": 2,
            "type_lead": 1,
            "type_order": 1,
            "leads": 1,
            "orders": 1,
            "revenue": amount,
        }
    assert anna.first_touch.attribution == {"source": "yandex", "medium": "cpc"}
    assert boris.first_touch.attribution == {"source": "vk", "medium": "social"}
    assert [o.credit["first_touch"] for o in _orders(store, anna.profile_id)] == [
        {"source": "yandex", "medium": "cpc"}
    ]
    assert [o.credit["first_touch"] for o in _orders(store, boris.profile_id)] == [
        {"source": "vk", "medium": "social"}
    ]
    assert store.lookup(PHONE) is None and [e.identifier for e in store.blocklist()] == [PHONE]


def test_the_blocked_phone_links_nothing_afterwards_even_on_redelivery_of_an_old_event(service):
    merged = merge_by_shared_phone(service)
    block_and_split(service, merged)
    before = partition(service.store)

    for old in shared_phone_events():  # every old event again (Pub/Sub redelivery)
        assert service.apply(old).duplicate
    late = service.apply(
        event({"client_id": "cookie-boris", "phone": "89091234567"}, event_id="boris-late", minutes=9)
    )
    assert [(d.kind, d.reason) for d in late.dropped] == [("phone", "blocked value")]
    fresh = service.apply(
        event({"email": "anna@mail.ru", "phone": "+79091234567"}, event_id="anna-late", minutes=10)
    )
    assert fresh.status == "unchanged"

    assert partition(service.store) == before
    assert service.store.lookup(PHONE) is None


def test_a_redelivered_split_request_changes_nothing(service):
    merged = merge_by_shared_phone(service)
    request = block_and_split(service, merged)
    before = (partition(service.store), sorted(p.version for p in service.store.iter_profiles()))
    from svyaz.app.splits import Splitter

    again = Splitter(service.store, service.policy).run(request.request_id)
    assert again.state == "done" and again.result == request.result
    assert (partition(service.store), sorted(p.version for p in service.store.iter_profiles())) == before


def test_explain_shows_the_event_that_carried_the_phone_with_both_customers_ids(service):
    merged = merge_by_shared_phone(service)
    profile = service.store.resolve(merged)

    view = explain(service.store, profile)

    [merge] = view["merges"]
    assert merge["event"]["event_id"] == "boris-lead" and merge["event"]["type"] == "lead"
    carried = {(i["kind"], i["value"]) for i in merge["event"]["identifiers"]}
    assert ("phone", PHONE.value) in carried and ("email", "boris@mail.ru") in carried
    by_value = {i["value"]: i for i in view["identifiers"]}
    assert by_value["boris@mail.ru"]["linked_by"]["event_id"] == "boris-lead"
    assert by_value["boris@mail.ru"]["linked_through"] == {"kind": "phone", "value": PHONE.value}
    assert by_value[PHONE.value]["linked_by"]["channel"] == "web"
    chain = path(
        service.store, profile, Identifier("email", "anna@mail.ru"), Identifier("email", "boris@mail.ru")
    )
    assert [(s["event_id"], s["joined"][1]["value"]) for s in chain["path"]] == [
        ("anna-lead", PHONE.value),
        ("boris-lead", "boris@mail.ru"),
    ]

    block_and_split(service, merged)
    after = explain(service.store, service.store.resolve(merged))
    assert [s["request_id"] is not None for s in after["splits"]] == [True]
    assert [b["reason"] for b in after["blocks"]] == ["shared family phone"]


def test_explain_names_the_order_that_brought_an_identifier(service):
    # An order's touchpoint is keyed by its order id: the explanation still finds its event.
    service.apply(event({"client_id": "c-1"}, event_id="visit"))
    order = {"order_id": "S-1", "amount": 100}
    service.apply(
        event({"client_id": "c-1", "phone": "+79161112233"}, event_id="buy", type="order", properties=order)
    )
    profile = service.store.resolve(service.store.lookup(Identifier("client_id", "c-1")).profile_id)

    by_value = {i["value"]: i for i in explain(service.store, profile)["identifiers"]}

    linked_by = by_value["+79161112233"]["linked_by"]
    assert (linked_by["event_id"], linked_by["type"]) == ("buy", "order")
    assert by_value["+79161112233"]["linked_through"] == {"kind": "client_id", "value": "c-1"}


class Sent:
    """A publisher that keeps what it was given."""

    def __init__(self) -> None:
        self.messages: list = []

    def publish(self, topic, messages) -> None:
        self.messages.extend(messages)


def test_the_same_split_confirmed_again_answers_the_standing_request(service, policy):
    from svyaz.app.splits import Splitter, queue_split

    store, sent = service.store, Sent()
    merged = merge_by_shared_phone(service)
    first = queue_split(store, sent, "events", merged, PHONE, "shared family phone")
    again = queue_split(store, sent, "events", merged, PHONE, "typed again")
    assert again.request_id == first.request_id and again.reason == "shared family phone"
    assert {m.data for m in sent.messages} == {sent.messages[0].data}  # only that request is queued
    done = Splitter(store, policy).run(first.request_id)
    assert done.state == "done"
    sent.messages.clear()
    after = queue_split(store, sent, "events", merged, PHONE, "once more")
    assert after.request_id == first.request_id and after.state == "done" and sent.messages == []
    assert store.block_entry(PHONE).request_id == first.request_id
    assert store.unblock(PHONE)  # the operator took the value off the blocklist: a new split may run
    fresh = queue_split(store, sent, "events", merged, PHONE, "shared again")
    assert fresh.request_id != first.request_id and fresh.state == "queued" and len(sent.messages) == 1
