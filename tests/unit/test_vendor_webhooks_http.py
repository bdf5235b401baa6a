"""The vendor webhooks' answers as senders see them: authentication, unknown vendors, the CRM API
down, deals that cannot become orders. Nothing is queued unless the answer says so."""

from __future__ import annotations

import json

import pytest

from tests.pipeline_support import queued
from tests.vendor_support import VENDOR_FIXTURES, CrmRest, call, vendor_runtime


def fixture(path: str) -> dict:
    return json.loads((VENDOR_FIXTURES / path).read_text(encoding="utf-8"))


def send(request: dict, path: str | None = None, body: str | None = None):
    return call(request["target"], request["method"], path or request["path"], request["headers"],
                request["body"] if body is None else body)  # fmt: skip


def test_the_deployment_vendor_applies_to_the_bare_url_and_an_unknown_vendor_is_404():
    request = fixture("calltouch/webhook_call_post_form.request.json")
    with vendor_runtime(calltracking_vendor="calltouch") as rt:
        answer = send(request, path="/webhooks/calltracking?token=dev-calltracking-token")
        assert answer.get_json()["accepted"] == ["call:calltouch:412890117"]
        assert (
            send(request, path="/webhooks/calltracking/calltuch?token=dev-calltracking-token").status_code
            == 404
        )
        assert len(queued(rt)) == 1


def test_the_configured_time_zone_reads_the_calls_local_time():
    request = fixture("calltouch/webhook_call_get.request.json")
    with vendor_runtime(calltracking_timezone="Asia/Yekaterinburg") as rt:
        assert send(request).status_code == 200
        assert queued(rt)[0]["timestamp"] == "2026-03-15T07:41:07Z"  # 12:41:07 at UTC+5


@pytest.mark.parametrize(
    "change", [lambda b: b.replace("sign=", "sign=0"), lambda b: b.replace("79161234567", "79990000000")]
)
def test_a_mango_event_with_a_wrong_signature_is_401_and_queues_nothing(change):
    request = fixture("mango/events_summary_inbound.request.json")
    with vendor_runtime() as rt:
        answer = send(request, body=change(request["body"]))
        assert answer.status_code == 401 and queued(rt) == []


def test_mango_without_a_configured_salt_is_503():
    with vendor_runtime(mango_api_salt="") as rt:
        assert send(fixture("mango/events_summary_inbound.request.json")).status_code == 503
        assert queued(rt) == []


def amocrm(path: str | None = None, rest: dict | None = None, **settings):
    request = fixture("amocrm/lead_status_won.request.json")
    with CrmRest() as crm:
        crm.routes.update(fixture("amocrm/lead_status_won.rest.json") if rest is None else rest)
        with vendor_runtime(crm, **settings) as rt:
            answer = send(request, path=path)
            return answer, queued(rt), crm.requests


def test_amocrm_secret_in_the_path_or_query_and_the_token_on_the_api_calls():
    answer, events, requests = amocrm(path="/webhooks/crm/amocrm?key=dev-amocrm-secret")
    assert answer.status_code == 200 and [e["event_id"] for e in events] == [
        "order:amocrm:25476081:completed"
    ]
    assert [path for path, _ in requests] == [
        "/api/v4/leads/25476081?with=contacts",
        "/api/v4/contacts/40318199",
    ]
    assert {auth for _, auth in requests} == {"Bearer dev-amocrm-token"}
    for path in ("/webhooks/crm/amocrm/guess", "/webhooks/crm/amocrm", "/webhooks/crm/amocrm?key="):
        answer, events, requests = amocrm(path=path)
        assert answer.status_code == 401 and events == [] and requests == []


def test_a_crm_api_that_cannot_be_read_is_503_with_retry_after():
    answer, events, _ = amocrm(amocrm_base_url="http://127.0.0.1:9")
    assert answer.status_code == 503 and answer.headers["Retry-After"] and events == []


def test_a_deleted_deal_or_one_without_phone_or_email_is_ignored_with_the_reason():
    answer, events, _ = amocrm(rest={})
    assert answer.status_code == 200 and events == []
    assert answer.get_json()["ignored"] == [{"deal_id": "25476081", "reason": "the CRM has no such deal"}]
    rest = fixture("amocrm/lead_status_won.rest.json")
    rest["/api/v4/contacts/40318199"]["custom_fields_values"] = []
    answer, events, _ = amocrm(rest=rest)
    assert events == [] and "customer identifier" in answer.get_json()["ignored"][0]["reason"]


def test_bitrix24_checks_the_application_token_and_ignores_other_events():
    request = fixture("bitrix24/deal_update_won.request.json")
    with CrmRest() as crm, vendor_runtime(crm) as rt:
        crm.routes.update(fixture("bitrix24/deal_update_won.rest.json"))
        wrong = request["body"].replace("dev-bitrix24-application-token", "guess")
        assert send(request, body=wrong).status_code == 401
        other = request["body"].replace("ONCRMDEALUPDATE", "ONCRMDEALDELETE")
        assert send(request, body=other).get_json() == {"accepted": [], "ignored": []}
        assert queued(rt) == [] and crm.requests == []


# Bitrix24 signs nothing but sends auth[application_token] (and auth[domain], the portal) in the
# body of every event: https://apidocs.bitrix24.com/api-reference/events/safe-event-handlers.html,
# https://apidocs.bitrix24.com/api-reference/crm/deals/events/on-crm-deal-update.html. So its
# handler URL needs no secret; the old URL with one still works (deprecated).
@pytest.mark.parametrize("url_secret", ["", "dev-bitrix24-secret"])
def test_bitrix24_on_the_bare_url_is_authenticated_by_its_application_token_alone(url_secret):
    request = fixture("bitrix24/deal_update_won.request.json")
    with CrmRest() as crm, vendor_runtime(crm, bitrix24_webhook_secret=url_secret) as rt:
        crm.routes.update(fixture("bitrix24/deal_update_won.rest.json"))
        answer = send(request, path="/webhooks/crm/bitrix24")
        assert answer.status_code == 200, answer.get_json()
        assert [e["event_id"] for e in queued(rt)] == ["order:bitrix24:759:completed"]


def test_bitrix24_old_url_with_its_secret_still_works_and_a_wrong_one_is_401():
    request = fixture("bitrix24/deal_update_won.request.json")
    with CrmRest() as crm, vendor_runtime(crm) as rt:
        crm.routes.update(fixture("bitrix24/deal_update_won.rest.json"))
        assert send(request, path="/webhooks/crm/bitrix24/dev-bitrix24-secret").status_code == 200
        for path in ("/webhooks/crm/bitrix24/guess", "/webhooks/crm/bitrix24?key=guess"):
            answer = send(request, path=path)
            assert answer.status_code == 401 and "deprecated" in answer.get_json()["reason"]
        assert len(queued(rt)) == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda body: body.replace("shopexample.bitrix24.ru", "othershop.bitrix24.ru"),  # another portal
        lambda body: body.replace("auth%5Bdomain%5D=", "auth%5Bnot_domain%5D="),  # no portal at all
    ],
)
def test_bitrix24_event_of_another_portal_is_403_and_reads_nothing(change):
    request = fixture("bitrix24/deal_update_won.request.json")
    with CrmRest() as crm:
        rest_url = "https://shopexample.bitrix24.ru/rest/1/dev-inbound-code/"  # never called here
        with vendor_runtime(crm, bitrix24_rest_url=rest_url) as rt:
            answer = send(request, path="/webhooks/crm/bitrix24", body=change(request["body"]))
            assert answer.status_code == 403, answer.get_json()
            assert answer.get_json() == {
                "error": "forbidden",
                "reason": "auth[domain] is not the Bitrix24 portal of SVYAZ_BITRIX24_REST_URL",
            }
            assert queued(rt) == [] and crm.requests == []


# amoCRM's account webhooks are not signed (their settings are a URL and the events; the body
# names the account: account[subdomain], account[id]):
# https://www.amocrm.ru/developers/content/crm_platform/webhooks-format. A delivery that names
# another account than SVYAZ_AMOCRM_BASE_URL's would read its lead ids from the wrong account.
@pytest.mark.parametrize(
    "change",
    [
        lambda body: body.replace("account%5Bsubdomain%5D=shopexample", "account%5Bsubdomain%5D=othershop"),
        lambda body: body.replace("account%5Bsubdomain%5D=shopexample&", ""),
    ],
)
def test_amocrm_webhook_of_another_account_is_403_and_reads_nothing(change):
    request = fixture("amocrm/lead_status_won.request.json")
    with CrmRest() as crm, vendor_runtime(crm, amocrm_base_url="https://shopexample.amocrm.ru") as rt:
        answer = send(request, body=change(request["body"]))
        assert answer.status_code == 403, answer.get_json()
        assert answer.get_json() == {
            "error": "forbidden",
            "reason": "account[subdomain] is not the amoCRM account of SVYAZ_AMOCRM_BASE_URL",
        }
        assert queued(rt) == [] and crm.requests == []


def test_the_account_checks_compare_with_the_configured_urls():
    from svyaz.channels.crm_deals import amocrm_account_matches, bitrix_portal_matches

    form = {"account": {"subdomain": "ShopExample", "id": "31209857"}}
    assert amocrm_account_matches(form, "https://shopexample.amocrm.ru")
    assert amocrm_account_matches(form, "https://shopexample.kommo.com/")
    assert not amocrm_account_matches(form, "https://othershop.amocrm.ru")
    assert not amocrm_account_matches({"account": "x"}, "https://shopexample.amocrm.ru")
    # A local stand-in of the API (an address, not a name): there is no account name to compare.
    assert amocrm_account_matches({}, "http://127.0.0.1:8081")
    portal = {"auth": {"domain": "shopexample.bitrix24.ru"}}
    assert bitrix_portal_matches(portal, "https://shopexample.bitrix24.ru/rest/1/code/")
    assert bitrix_portal_matches(
        {"auth": {"domain": "crm.shop.example:8443"}}, "https://crm.shop.example:8443/rest/1/c/"
    )
    assert not bitrix_portal_matches(portal, "https://othershop.bitrix24.ru/rest/1/code/")
    assert bitrix_portal_matches({}, "http://127.0.0.1:8081/rest/1/code/")
