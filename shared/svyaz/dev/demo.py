"""The two customer journeys of the seed talk ("Building a unified customer profile"):

* Vasily comes from a Yandex Direct ad, logs in and orders: everything happens in one visit,
  so every identifier links at once.
* Ekaterina comes from a social-network ad, looks up the store on the contacts page and leaves
  the site. In the store she scans a QR code for an extended warranty: the landing recognises
  her browser cookie, she registers with her phone, and the purchase at the till (by phone)
  now carries the ad that brought her.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from svyaz.domain.events import Event

START = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def _at(days: float) -> datetime:
    return START + timedelta(days=days)


def vasily() -> list[Event]:
    browser = {"client_id": "3f1c9a7e2b", "ym_client_id": "1681971876942937034", "session_id": "1980094328"}
    ad = {"source": "yandex", "medium": "cpc", "campaign": "sofas-autumn", "term": "купить диван"}
    return [
        Event(
            event_id="vasily-1",
            type="page",
            timestamp=_at(0),
            identifiers=browser,
            context={**ad, "page_url": "https://shop.example/sofas?utm_source=yandex"},
        ),
        Event(
            event_id="vasily-2",
            type="identify",
            timestamp=_at(0.01),
            identifiers={**browser, "user_id": "crm-10442"},
            traits={"first_name": "Василий"},
        ),
        Event(
            event_id="vasily-3",
            type="order",
            timestamp=_at(0.02),
            identifiers={
                **browser,
                "user_id": "crm-10442",
                "phone": "8 (909) 123-45-67",
                "email": "Vasily.P@Example.ru",
                "loyalty_card": "7700123456",
            },
            properties={"order_id": "W-1001", "amount": "45990.00", "currency": "RUB"},
        ),
    ]


def ekaterina() -> list[Event]:
    browser = {"client_id": "a81d03c4f6", "ym_client_id": "1702385561118374409"}
    social = {"source": "vk", "medium": "social", "campaign": "kitchens-promo"}
    return [
        Event(
            event_id="ekaterina-1",
            type="page",
            timestamp=_at(1),
            channel="web",
            identifiers={**browser, "session_id": "2011873356"},
            context=social,
        ),
        Event(
            event_id="ekaterina-2",
            type="page",
            timestamp=_at(1.001),
            channel="web",
            identifiers={**browser, "session_id": "2011873356"},
            context={"page_url": "https://shop.example/contacts"},
            properties={"page": "contacts"},
        ),
        # In the showroom: the warranty QR code; the landing sees the site's first-party cookies.
        Event(
            event_id="ekaterina-3",
            type="qr_scan",
            timestamp=_at(8),
            channel="qr",
            identifiers=browser,
            context={"source": "store", "medium": "qr", "campaign": "warranty"},
            properties={"store_id": "msk-tverskaya", "offer": "extended-warranty"},
        ),
        Event(
            event_id="ekaterina-4",
            type="lead",
            timestamp=_at(8.001),
            channel="qr",
            identifiers={**browser, "phone": "+7 916 555-01-02"},
            traits={"first_name": "Екатерина"},
            properties={"form": "warranty-registration"},
        ),
        # At the till, by phone number only.
        Event(
            event_id="ekaterina-5",
            type="order",
            timestamp=_at(8.01),
            channel="store",
            identifiers={"phone": "89165550102"},
            properties={
                "order_id": "S-77",
                "amount": "129000.00",
                "currency": "RUB",
                "store_id": "msk-tverskaya",
            },
        ),
    ]


JOURNEYS = {"Vasily": vasily, "Ekaterina": ekaterina}
