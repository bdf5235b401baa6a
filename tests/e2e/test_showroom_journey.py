"""The seed's showroom journey, end to end on the local service (every function on one port,
real HTTP, the worker applying queued events through process_event, memory store):

an ad visit (yandex / cpc) -> the contacts page -> a call from that site session (call-tracking
webhook with sessionId + callerNumber) -> two weeks later an order at the store's till by phone
(CRM webhook) -> the order's touchpoint is credited to yandex / cpc, and the attribution report
puts its revenue under yandex / cpc, offline. A web order from another customer shows the
online side of the split.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from urllib.parse import urlencode

import pytest

from svyaz.app.reports import attribution
from svyaz.cli.reports import attribution_text
from svyaz.dev.local import LocalService
from tests.pipeline_support import http

WRITE_KEY, API_KEY, CRM_KEY, CT_TOKEN = "e2e-write", "e2e-api", "e2e-crm", "e2e-calltracking"
SESSION, PHONE = "1980094328", "79091234567"
YANDEX = {"source": "yandex", "medium": "cpc", "campaign": "sofas"}


pytestmark = pytest.mark.svyaz_settings(
    write_keys=[WRITE_KEY], api_keys=[API_KEY], crm_keys=[CRM_KEY], calltracking_token=CT_TOKEN
)


def collect(service: LocalService, event: dict) -> None:
    answer = http(f"{service.url}/collect", event, key=WRITE_KEY)
    assert answer.status == 202, answer.body


def applied(service: LocalService) -> None:
    assert service.worker.wait_idle(10), "the worker did not apply the queued events"
    assert service.worker.dead_letters == []


def api(service: LocalService, path: str, **params) -> dict:
    answer = http(f"{service.url}{path}?{urlencode(params)}", key=API_KEY)
    assert answer.status == 200, answer.body
    return answer.json


def test_the_showroom_journey_credits_the_offline_sale_to_the_online_ad(svyaz_service):
    service = svyaz_service
    # 1. Ekaterina clicks a Yandex Direct ad and lands on the site.
    collect(
        service,
        {
            "event_id": "katya-landing",
            "type": "page",
            "timestamp": "2026-03-01T10:00:00Z",
            "identifiers": {"client_id": "c-5f3a9c2e", "session_id": SESSION},
            "context": {**YANDEX, "page_url": "https://shop.example/sofas?utm_source=yandex"},
        },
    )
    # 2. She opens the contacts page (same visit, no ad tags).
    collect(
        service,
        {
            "event_id": "katya-contacts",
            "type": "page",
            "timestamp": "2026-03-01T10:03:00Z",
            "identifiers": {"client_id": "c-5f3a9c2e", "session_id": SESSION},
            "context": {"page_url": "https://shop.example/contacts"},
        },
    )
    # 3. She calls the tracked number shown in that session: Calltouch notifies at call end.
    call = http(
        f"{service.url}/webhooks/calltracking?"
        + urlencode(
            {
                "token": CT_TOKEN,
                "callId": "90412233",
                "callerNumber": PHONE,
                "phoneNumber": "74951112233",
                "sessionId": SESSION,
                "date": "01/03/2026 13:05:00",  # Moscow time
                "duration": "212",
                "successful": "true",
                "callphase": "calldisconnected",
            }
        )
    )
    assert call.status == 200 and call.json == {"accepted": ["call:90412233"], "ignored": []}
    applied(service)

    # 4. Two weeks later she buys the sofa at the showroom's till, giving her phone.
    order = http(
        f"{service.url}/webhooks/crm",
        {
            "order_id": "ЦБ-000451",
            "time": "2026-03-15T14:30:00+03:00",
            "amount": "129 000,00",
            "status": "paid",
            "store_id": "msk-tverskaya",
            "phone": "8 (909) 123-45-67",
            "name": "Екатерина",
        },
        key=CRM_KEY,
    )
    assert order.status == 202 and order.json["accepted"] == ["order:%D0%A6%D0%91-000451:paid"]

    # Another customer buys online after a Google ad: the online side of the report.
    for event in (
        {
            "event_id": "vasily-landing",
            "type": "page",
            "timestamp": "2026-03-10T09:00:00Z",
            "identifiers": {"user_id": "u-77120"},
            "context": {"source": "google", "medium": "cpc", "campaign": "brand"},
        },
        {
            "event_id": "vasily-order",
            "type": "order",
            "timestamp": "2026-03-10T09:20:00Z",
            "identifiers": {"user_id": "u-77120"},
            "properties": {"order_id": "W-1001", "amount": "45990.00", "currency": "RUB", "status": "paid"},
        },
    ):
        collect(service, event)
    applied(service)

    # One profile holds the browser, the session and the phone.
    profile = api(service, "/profiles/lookup", kind="phone", value="8 (909) 123-45-67")
    assert profile["identifiers"]["client_id"] == ["c-5f3a9c2e"]
    assert profile["identifiers"]["session_id"] == [SESSION]
    assert profile["identifiers"]["phone"] == ["+79091234567"]
    assert profile["first_touch"] == {
        "at": "2026-03-01T10:00:00Z",
        "type": "page",
        "channel": "web",
        **YANDEX,
    }
    assert profile["counters"]["orders"] == 1 and profile["counters"]["revenue"] == 129000

    # Its touch history: the order (newest first) is credited to yandex / cpc.
    history = api(service, f"/profiles/{profile['profile_id']}/touchpoints")["touchpoints"]
    assert [(t["type"], t["channel"]) for t in history] == [
        ("order", "store"),
        ("call", "calltracking"),
        ("page", "web"),
        ("page", "web"),
    ]
    sale = history[0]
    assert sale["timestamp"] == "2026-03-15T11:30:00Z"
    assert sale["properties"]["amount"] == "129000.00" and sale["properties"]["store_id"] == "msk-tverskaya"
    assert sale["credit"]["first_touch"] == YANDEX
    assert sale["credit"]["last_touch"] == YANDEX  # the last ad within 90 days: the same visit
    assert history[1]["identifiers"] == [
        {"kind": "phone", "value": "+79091234567"},
        {"kind": "session_id", "value": SESSION},
    ]

    # The report: the showroom's revenue goes to yandex / cpc, offline; the web order online.
    store = service.rt.store
    march = store.touchpoints_between(
        "order", datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    )
    report = attribution(march, "first_touch")
    lines = {line.label: line for line in report.lines}
    assert set(lines) == {"yandex / cpc / sofas", "google / cpc / brand"}
    katya, vasily = lines["yandex / cpc / sofas"], lines["google / cpc / brand"]
    assert (katya.offline_orders, str(katya.offline_revenue), katya.online_orders) == (1, "129000.00", 0)
    assert (vasily.online_orders, str(vasily.online_revenue), vasily.offline_orders) == (1, "45990.00", 0)

    text = attribution_text(store, date(2026, 3, 1), date(2026, 3, 31), UTC, "last_touch", False)
    print("\n" + text)
    assert text.splitlines()[2].split() == [
        "yandex",
        "/",
        "cpc",
        "/",
        "sofas",
        "RUB",
        "1",
        "129000.00",
        "0",
        "0.00",
    ]
