"""The journal's read side, one contract on both stores: totals of a period, the customer list
(newest activity first, paged, filtered) and search. What a marketer sees must not depend on
the store; on Firestore the totals come from aggregation queries, never a stream of profiles."""

from datetime import timedelta

import pytest

from svyaz.adapters.customers import directory_for
from svyaz.adapters.customers.base import Cursor, CustomerFilter, Period, Search, name_spellings
from svyaz.domain.model import Identifier
from tests.helpers import BASE, event

DAY = 24 * 60
VK = {"source": "vk", "medium": "social", "campaign": "kitchens"}
YANDEX = {"source": "yandex", "medium": "cpc", "campaign": "sofas"}


def order(ids: dict, order_id: str, amount: str, minutes: int):
    return event(ids, type="order", minutes=minutes, properties={"order_id": order_id, "amount": amount})


@pytest.fixture
def shop(service):
    """Five customers first seen in March (day 0..3), one in April (outside the period)."""
    apply = service.apply
    # Anna: VK ad, then two orders (day 2 and day 10): returning, LTV 150.
    apply(event({"client_id": "anna"}, context=VK, traits={"first_name": "Анна"}))
    apply(order({"client_id": "anna", "phone": "+79161110001"}, "A-1", "100.00", 2 * DAY))
    apply(order({"client_id": "anna"}, "A-2", "50.00", 10 * DAY))
    # Boris: Yandex ad, a lead form, one order of 1000 four days after his first touch.
    apply(event({"client_id": "boris"}, context=YANDEX, minutes=DAY))
    apply(event({"client_id": "boris", "email": "boris@example.ru"}, type="lead", minutes=DAY + 5))
    apply(order({"client_id": "boris"}, "B-1", "1000.00", 5 * DAY))
    # Vera: a call only. Gleb: two page views, nothing else.
    apply(event({"phone": "+79161110003"}, type="call", minutes=2 * DAY, traits={"first_name": "Вера"}))
    apply(event({"client_id": "gleb"}, context=YANDEX, minutes=3 * DAY))
    apply(event({"client_id": "gleb"}, minutes=3 * DAY + 30))
    # Dina: first seen in April.
    apply(event({"client_id": "dina"}, context=VK, minutes=40 * DAY))
    return directory_for(service.store)


MARCH = Period(BASE - timedelta(days=1), BASE + timedelta(days=30))


def test_totals_of_a_period(shop):
    totals = shop.totals(MARCH)
    assert (totals.customers, totals.with_orders, totals.with_leads, totals.with_neither) == (4, 2, 2, 1)
    assert totals.returning == 1  # Anna ordered twice
    assert totals.revenue == 1150.0 and totals.average_ltv == 575.0
    assert totals.average_orders == 1.5
    # Anna: 2 days to her first order, Boris: 4 days.
    assert totals.average_days_to_first_order == pytest.approx(3.0)
    # Events: Anna 3, Boris 3, Vera 1, Gleb 2.
    assert totals.average_chain == pytest.approx(2.25)
    # Spans: Anna 10 days, Boris 4, Vera 0, Gleb 30 minutes.
    assert totals.average_span_days == pytest.approx((10 + 4 + 0 + 30 / DAY) / 4)
    assert [p.traits.get("first_name").value if p.traits.get("first_name") else None for p in totals.top] == [
        None,
        "Анна",
    ]
    assert shop.totals(Period(BASE + timedelta(days=35))).customers == 1  # Dina alone


def test_totals_of_an_empty_period_show_no_averages(shop):
    totals = shop.totals(Period(BASE + timedelta(days=100)))
    assert totals.customers == 0 and totals.average_ltv is None and totals.average_span_days is None
    assert totals.top == []


def test_the_list_is_newest_activity_first_and_pages_without_overlap(shop):
    first = shop.customers(CustomerFilter(), limit=2)
    assert len(first.customers) == 2 and first.next is not None
    second = shop.customers(CustomerFilter(), limit=2, after=Cursor.decode(first.next.encode()))
    third = shop.customers(CustomerFilter(), limit=2, after=second.next)
    everyone = first.customers + second.customers + third.customers
    assert third.next is None and len({p.profile_id for p in everyone}) == 5
    seen = [p.last_seen for p in everyone]
    assert seen == sorted(seen, reverse=True)
    assert everyone[0].holds(Identifier("client_id", "dina"))


def test_the_list_filters_by_first_touch_orders_and_activity(shop):
    def ids(**filters):
        return [
            sorted(p.identifiers["client_id"])[0]
            for p in shop.customers(CustomerFilter(**filters), 10).customers
        ]

    assert ids(source="yandex") == ["boris", "gleb"]
    assert ids(source="vk", campaign="kitchens") == ["dina", "anna"]
    assert ids(medium="cpc", has_orders=True) == ["boris"]
    assert ids(channel="web", has_orders=True) == ["anna", "boris"]
    assert ids(active_from=BASE + timedelta(days=4), active_to=BASE + timedelta(days=30)) == ["anna", "boris"]


def test_search_by_identifier_name_and_profile_id(shop, service):
    phone = Identifier("phone", "+79161110001")
    [anna] = shop.search(Search(identifiers=(phone, Identifier("email", "nobody@example.ru"))))
    assert anna.holds(Identifier("client_id", "anna"))
    [vera] = shop.search(Search(names=name_spellings("вера")))
    assert vera.holds(Identifier("phone", "+79161110003"))
    assert [p.profile_id for p in shop.search(Search(profile_id=anna.profile_id))] == [anna.profile_id]
    assert (
        shop.search(Search(names=name_spellings("Борис"), identifiers=(Identifier("phone", "+70000000000"),)))
        == []
    )


def test_a_merged_profile_id_finds_its_survivor(shop, service):
    loser = shop.search(Search(identifiers=(Identifier("client_id", "gleb"),)))[0].profile_id
    service.apply(event({"client_id": "gleb", "phone": "+79161110003"}, minutes=4 * DAY))  # Gleb is Vera
    [survivor] = shop.search(Search(profile_id=loser))
    assert survivor.holds(Identifier("client_id", "gleb")) and survivor.holds(
        Identifier("phone", "+79161110003")
    )


def test_totals_cost_a_fixed_number_of_reads_not_one_per_customer(service):
    for n in range(40):
        service.apply(event({"client_id": f"c{n}"}, context=VK, minutes=n))
        service.apply(order({"client_id": f"c{n}"}, f"O-{n}", "10.00", n + 1))
    directory = directory_for(service.store)
    totals = directory.totals(MARCH)
    assert totals.customers == 40 and totals.with_orders == 40 and len(totals.top) == 3
    if type(directory).__name__ == "FirestoreDirectory":
        assert directory.reads == 6 + 3  # six aggregation queries and the top three customers


def test_touches_before_the_first_order(shop):
    [boris] = shop.search(Search(identifiers=(Identifier("client_id", "boris"),)))
    assert shop.touches_before([boris.profile_id, *boris.merged_from], boris.first_order_at) == 2
    assert boris.first_order_at == BASE + timedelta(days=5)
