"""The journeys the vendor formats exist for, through the deployed HTTP functions and the memory
store: a site visit, a call tracked by Calltouch / UIS / Mango, a deal won in amoCRM / Bitrix24.
What the user sees: which identifiers end in which profile, and what each touch is credited to."""

from __future__ import annotations

import json

import pytest

from svyaz.domain.model import Identifier
from tests.pipeline_support import apply_queued
from tests.vendor_support import VENDOR_FIXTURES, CrmRest, call, sign_whatsapp, vendor_runtime

SESSION = "1980094328"
YM = "1773558812104712345"
GA = "1351291232.1773560000"
PHONE = "+79161234567"
YANDEX = {"source": "yandex", "medium": "cpc", "campaign": "sofas"}
VK = {"source": "vk", "medium": "social", "campaign": "kitchens-promo"}


def fixture(path: str) -> dict:
    return json.loads((VENDOR_FIXTURES / path).read_text(encoding="utf-8"))


def send(request: dict) -> dict:
    headers = sign_whatsapp(request["headers"], request["body"])
    answer = call(request["target"], request["method"], request["path"], headers, request["body"])
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def collect(event: dict) -> None:
    answer = call(
        "collect",
        "POST",
        "/collect",
        {"Authorization": "Bearer dev-write-key", "Content-Type": "application/json"},
        json.dumps(event),
    )
    assert answer.status_code == 202, answer.get_json()


def visit(event_id: str, at: str, context: dict, **identifiers: str) -> None:
    collect(
        {
            "event_id": event_id,
            "type": "page",
            "timestamp": at,
            "identifiers": identifiers,
            "context": context,
        }
    )


def profile_of(rt, kind: str, value: str):
    return rt.store.lookup(Identifier(kind, value))


def touches(rt, profile) -> list:
    return rt.store.touchpoints([profile.profile_id, *profile.merged_from], 50)


def the_site_visit() -> None:
    """The visitor of session 1980094328, with Metrica and GA ids, arriving from a Yandex ad."""
    visit("web-1", "2026-03-15T09:30:00Z", YANDEX, session_id=SESSION, ym_client_id=YM, ga_client_id=GA)


@pytest.mark.parametrize(
    "case",
    ["calltouch/webhook_call_get", "calltouch/webhook_call_post_form", "uis/notification_call_end"],
)
def test_a_tracked_call_lands_on_the_visitor_of_its_session_with_its_ad_source(case):
    with vendor_runtime() as rt:
        the_site_visit()
        send(fixture(f"{case}.request.json"))
        apply_queued(rt)

        caller = profile_of(rt, "phone", PHONE)
        visitor = profile_of(rt, "session_id", SESSION)
        assert caller is not None and caller.profile_id == visitor.profile_id
        assert profile_of(rt, "ym_client_id", YM).profile_id == caller.profile_id
        assert profile_of(rt, "ga_client_id", GA).profile_id == caller.profile_id
        [call_touch] = [t for t in touches(rt, caller) if t.type == "call"]
        assert {k: call_touch.attribution[k] for k in YANDEX} == YANDEX


def test_a_mango_call_lands_on_the_customer_of_its_phone_with_the_static_number_source():
    # Mango's events carry no visitor ids: the call joins the visitor who left this phone on the site.
    with vendor_runtime() as rt:
        the_site_visit()
        collect(
            {
                "event_id": "lead-1",
                "type": "lead",
                "timestamp": "2026-03-15T09:31:00Z",
                "identifiers": {"session_id": SESSION, "phone": "8 (916) 123-45-67"},
            }
        )
        send(fixture("mango/events_summary_inbound.request.json"))
        send(fixture("mango/events_call_appeared.request.json"))  # acknowledged, records nothing
        apply_queued(rt)

        caller = profile_of(rt, "phone", PHONE)
        assert caller.profile_id == profile_of(rt, "session_id", SESSION).profile_id
        [call_touch] = [t for t in touches(rt, caller) if t.type == "call"]
        assert call_touch.event_id == "call:mango:MzUyODMzNzg4OTo0MDE="
        assert call_touch.attribution == YANDEX  # SVYAZ_CALLTRACKING_NUMBER_SOURCES for 74951112233


@pytest.mark.parametrize("case", ["amocrm/lead_status_won", "bitrix24/deal_update_won"])
def test_a_won_deal_is_an_order_of_the_deal_contacts_customer_credited_to_first_and_last_ad(case: str):
    request = fixture(f"{case}.request.json")
    with CrmRest() as crm:
        crm.routes.update(fixture(f"{case}.rest.json"))
        with vendor_runtime(crm) as rt:
            # First touch: a VK ad; then the Yandex ad visit and the Calltouch call; then a direct visit.
            visit("web-0", "2026-03-10T08:00:00Z", VK, session_id="1980000001", ym_client_id=YM)
            the_site_visit()
            send(fixture("calltouch/webhook_call_post_form.request.json"))
            visit("web-2", "2026-03-20T08:00:00Z", {"source": "(direct)"}, ym_client_id=YM)
            apply_queued(rt)

            answer = send(request)
            apply_queued(rt)

            customer = profile_of(rt, "phone", PHONE)
            assert profile_of(rt, "session_id", SESSION).profile_id == customer.profile_id
            [order] = [t for t in touches(rt, customer) if t.type == "order"]
            assert answer["accepted"] == [order.event_id]
            assert order.properties["status"] == "completed" and order.properties["amount"] == "129000.00"
            assert {k: order.credit["first_touch"][k] for k in VK} == VK
            assert {k: order.credit["last_touch"][k] for k in YANDEX} == YANDEX
            assert customer.counters["orders"] == 1 and customer.counters["revenue"] == 129000


def test_a_whatsapp_number_change_keeps_one_customer_for_both_numbers():
    with vendor_runtime() as rt:
        send(fixture("whatsapp/call_connect_user_initiated.request.json"))  # the old number calls
        send(fixture("whatsapp/system_user_changed_number.request.json"))
        apply_queued(rt)
        old, new = profile_of(rt, "phone", "+79161234567"), profile_of(rt, "phone", "+79037654321")
        assert old is not None and old.profile_id == new.profile_id
        assert [t.type for t in touches(rt, old) if t.type == "call"] == ["call"]
