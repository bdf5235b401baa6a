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
