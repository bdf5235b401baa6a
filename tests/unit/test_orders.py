"""Orders as the user sees them: one order whatever its status updates, revenue never doubled,
and each sale credited to the ad sources that brought the customer."""

from __future__ import annotations

from svyaz.adapters.store.memory import MemoryStore
from svyaz.app.service import IdentityService
from svyaz.domain.model import Identifier
from svyaz.identity.policy import Policy
from tests.conftest import PEPPER
from tests.helpers import event


def order(status: str, *, minutes: int, amount: str = "1000.00", order_id: str = "S-1", **ids):
    return event(
        ids or {"phone": "+79091234567"},
        event_id=f"order:{order_id}:{status}",
        type="order",
        minutes=minutes,
        channel="store",
        properties={"order_id": order_id, "amount": amount, "currency": "RUB", "status": status},
    )


def counters(service: IdentityService) -> dict:
    c = service.store.lookup(Identifier("phone", "+79091234567")).counters
    return {k: c.get(k, 0) for k in ("orders", "revenue", "events")}


def history(service: IdentityService) -> list:
    profile = service.store.lookup(Identifier("phone", "+79091234567"))
    return service.store.touchpoints([profile.profile_id, *profile.merged_from], 50)


def test_status_updates_keep_one_order_and_never_double_count(memory_service):
    memory_service.apply(order("new", minutes=0))
    memory_service.apply(order("paid", minutes=5))
    memory_service.apply(order("paid", minutes=5))  # duplicate delivery
    assert counters(memory_service) == {"orders": 1, "revenue": 1000.0, "events": 1}
    memory_service.apply(order("refunded", minutes=60))
    assert counters(memory_service) == {"orders": 0, "revenue": 0.0, "events": 1}
    [touch] = history(memory_service)
    assert touch.properties["status"] == "refunded"


def test_a_late_older_status_does_not_undo_a_newer_one(memory_service):
    memory_service.apply(order("refunded", minutes=60))
    memory_service.apply(order("paid", minutes=5))  # arrives late
    assert counters(memory_service)["revenue"] == 0.0
    assert history(memory_service)[0].properties["status"] == "refunded"


def test_an_amount_correction_moves_revenue_by_the_difference(memory_service):
    memory_service.apply(order("paid", minutes=0, amount="1000.00"))
    memory_service.apply(order("completed", minutes=10, amount="1250.50"))
    memory_service.apply(order("paid", minutes=20, amount="99.90", order_id="S-2"))
    assert counters(memory_service) == {"orders": 2, "revenue": 1350.4, "events": 2}


def test_an_offline_order_is_credited_to_the_ad_that_brought_the_customer(memory_service):
    ad = {"source": "yandex", "medium": "cpc", "campaign": "sofas"}
    memory_service.apply(event({"client_id": "c1", "session_id": "s1"}, minutes=0, context=ad))
    memory_service.apply(event({"client_id": "c1"}, minutes=10, context={"source": "direct"}))
    memory_service.apply(event({"session_id": "s1", "phone": "+79091234567"}, minutes=20, type="call"))
    memory_service.apply(order("paid", minutes=14 * 24 * 60))  # two weeks later, at the till
    [sale] = [t for t in history(memory_service) if t.type == "order"]
    assert sale.credit == {"first_touch": ad, "last_touch": ad}  # direct visits are never credited


def test_touches_older_than_the_lookback_window_get_no_last_touch_credit():
    service = IdentityService(MemoryStore(PEPPER), Policy.from_mapping({"attribution_lookback_days": 7}))
    service.apply(event({"phone": "+79091234567"}, minutes=0, context={"source": "vk", "medium": "social"}))
    service.apply(order("paid", minutes=10 * 24 * 60))
    [sale] = [t for t in history(service) if t.type == "order"]
    assert sale.credit == {"first_touch": {"source": "vk", "medium": "social"}}


def test_orders_merge_with_their_profile(memory_service):
    memory_service.apply(order("paid", minutes=0, amount="500.00", order_id="A", loyalty_card="777"))
    memory_service.apply(order("paid", minutes=1, amount="700.00", order_id="B"))
    memory_service.apply(event({"loyalty_card": "777", "phone": "+79091234567"}, minutes=2))
    assert counters(memory_service) == {"orders": 2, "revenue": 1200.0, "events": 3}


def test_credit_does_not_depend_on_arrival_order(memory_service):
    """The till's order arrives first; the ad visit and the call that link it arrive later."""
    ad = {"source": "yandex", "medium": "cpc", "campaign": "sofas"}
    memory_service.apply(order("paid", minutes=14 * 24 * 60))
    assert history(memory_service)[0].credit == {}
    memory_service.apply(event({"client_id": "c1", "session_id": "s1"}, minutes=0, context=ad))
    memory_service.apply(event({"session_id": "s1", "phone": "+79091234567"}, minutes=20, type="call"))
    [sale] = [t for t in history(memory_service) if t.type == "order"]
    assert sale.credit == {"first_touch": ad, "last_touch": ad}


def test_a_late_touch_on_the_same_profile_is_credited_too(memory_service):
    memory_service.apply(event({"phone": "+79091234567"}, minutes=0))
    memory_service.apply(order("paid", minutes=60))
    memory_service.apply(
        event({"phone": "+79091234567"}, minutes=30, context={"source": "vk", "medium": "social"})
    )
    [sale] = [t for t in history(memory_service) if t.type == "order"]
    assert sale.credit["last_touch"] == {"source": "vk", "medium": "social"}
