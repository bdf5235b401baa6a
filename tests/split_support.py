"""Two customers wrongly merged by a shared family phone: each with their own cookie, email,
page views, a lead and one order. Used by the split tests on both stores."""

from __future__ import annotations

from svyaz.app.service import IdentityService
from svyaz.app.splits import Splitter, new_request
from svyaz.domain.model import Identifier
from tests.helpers import event

PHONE = Identifier("phone", "+79091234567")
ANNA = {Identifier("client_id", "cookie-anna"), Identifier("email", "anna@mail.ru")}
BORIS = {Identifier("client_id", "cookie-boris"), Identifier("email", "boris@mail.ru")}


def shared_phone_events() -> list:
    return [
        event(
            {"client_id": "cookie-anna"},
            event_id="anna-ad",
            minutes=0,
            context={"source": "yandex", "medium": "cpc"},
        ),
        event(
            {"client_id": "cookie-boris"},
            event_id="boris-ad",
            minutes=1,
            context={"source": "vk", "medium": "social"},
        ),
        event({"client_id": "cookie-anna"}, event_id="anna-view", minutes=2),
        event({"client_id": "cookie-boris"}, event_id="boris-view", minutes=3),
        event(
            {"client_id": "cookie-anna", "email": "anna@mail.ru", "phone": "8 909 123-45-67"},
            event_id="anna-lead",
            minutes=4,
            type="lead",
            traits={"name": "Анна", "city": "Казань"},
        ),
        event(
            {"client_id": "cookie-boris", "email": "boris@mail.ru", "phone": "+7 909 123 45 67"},
            event_id="boris-lead",
            minutes=5,
            type="lead",
            traits={"name": "Борис"},
        ),
        event(
            {"email": "anna@mail.ru"},
            event_id="anna-order",
            minutes=6,
            type="order",
            channel="crm",
            properties={"order_id": "A-1", "amount": 1500, "status": "paid"},
        ),
        event(
            {"email": "boris@mail.ru"},
            event_id="boris-order",
            minutes=7,
            type="order",
            channel="crm",
            properties={"order_id": "B-1", "amount": 900, "status": "paid"},
        ),
    ]


def merge_by_shared_phone(service: IdentityService) -> str:
    """Apply the two customers' events; returns the one profile they (wrongly) end up in."""
    for e in shared_phone_events():
        service.apply(e)
    profile = service.store.lookup(PHONE)
    assert profile is not None
    return profile.profile_id


def block_and_split(
    service: IdentityService, profile_id: str, budget: float = 300.0, blocked: Identifier = PHONE
):
    request = new_request(profile_id, blocked, "shared family phone")
    service.store.create_split(request)
    splitter = Splitter(service.store, service.policy)
    while (done := splitter.run(request.request_id, budget)) is None:
        pass
    return done
