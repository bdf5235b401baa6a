"""Two customers wrongly merged by a shared family phone: each with their own cookie, email,
page views, a lead and one order. Used by the split tests on both stores."""

from __future__ import annotations

from svyaz.app.service import IdentityService
from svyaz.app.splits import Splitter, new_request
from svyaz.dev.journal_shots import family_phone
from svyaz.domain.model import Identifier

PHONE = Identifier("phone", "+79091234567")
ANNA = {Identifier("client_id", "cookie-anna"), Identifier("email", "anna@mail.ru")}
BORIS = {Identifier("client_id", "cookie-boris"), Identifier("email", "boris@mail.ru")}


def shared_phone_events() -> list:
    return family_phone()  # the journal's screenshots show them too


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
