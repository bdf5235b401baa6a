"""/webhooks/calltracking and /webhooks/crm called exactly as GCP calls them (functions-framework
test clients on functions/main.py), then the queued events applied with ``apply_message``, the
code process_event runs."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from svyaz.domain.model import Identifier
from tests.pipeline_support import apply_queued, client, queued

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "calls_orders"
TOKEN = "ct-test-token-7f3a"
CRM_KEY = "crm-test-key-19bd"
CALL_ID = "call:90412233"

pytestmark = pytest.mark.svyaz_settings(calltracking_token=TOKEN, crm_keys=[CRM_KEY], max_body_bytes=4096)


def call_json() -> dict:
    return json.loads((FIXTURES / "calltouch_end_of_call.json").read_text(encoding="utf-8"))


def call_query() -> str:
    return (FIXTURES / "calltouch_end_of_call.txt").read_text(encoding="ascii")


def order_json(name: str = "crm_order_paid.json") -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# --- call tracking ----------------------------------------------------------------------------


def send_call(encoding: str, token_in: str, token: str | None = TOKEN, fields: dict | None = None):
    """One call notification in one of the three encodings Calltouch and peers use."""
    headers = {"X-Svyaz-Token": token} if token_in == "header" and token else {}
    query = f"?token={token}" if token_in == "query" and token else ""
    ct = client("calltracking_webhook")
    if encoding == "get":
        from urllib.parse import urlencode

        body = urlencode(fields) if fields is not None else call_query()
        sep = "&" if query else "?"
        return ct.get(f"/{query}{sep}{body}", headers=headers)
    if encoding == "form":
        from urllib.parse import urlencode

        body = urlencode(fields) if fields is not None else call_query()
        return ct.post(
            f"/{query}", data=body, headers={**headers, "Content-Type": "application/x-www-form-urlencoded"}
        )
    return ct.post(f"/{query}", json=fields if fields is not None else call_json(), headers=headers)


@pytest.mark.parametrize("token_in", ["query", "header"])
@pytest.mark.parametrize("encoding", ["get", "form", "json"])
def test_a_call_is_queued_in_every_encoding_with_the_token_in_url_or_header(rt, encoding, token_in):
    answer = send_call(encoding, token_in)
    assert answer.status_code == 200, answer.json
    assert answer.json == {"accepted": [CALL_ID], "ignored": []}
    [event] = queued(rt)
    assert event["event_id"] == CALL_ID and event["type"] == "call" and event["channel"] == "calltracking"
    assert event["identifiers"] == {
        "phone": "79091234567",
        "session_id": "1980094328",
        "ct_client_id": "555123987",
        "ym_client_id": "1772358812104712345",
    }
    assert event["context"]["source"] == "yandex" and event["context"]["campaign"] == "sofas"
    assert event["timestamp"].startswith("2026-03-15T09:41:07")  # 12:41:07 Moscow time
    assert event["properties"]["duration"] == 212 and event["properties"]["successful"] is True


def test_unknown_fields_are_ignored(rt):
    fields = call_json()
    assert {"hostname", "callphase", "redirectNumber", "order"} <= set(fields)
    assert send_call("json", "header", fields=fields).status_code == 200
    [event] = queued(rt)
    flat = json.dumps(event, ensure_ascii=False)
    for unknown in ("hostname", "callphase", "redirectNumber", "74957778899", "nested"):
        assert unknown not in flat
    assert set(event["properties"]) == {
        "duration",
        "waiting",
        "successful",
        "unique",
        "target",
        "tracked_phone",
        "city",
    }


@pytest.mark.parametrize("encoding", ["get", "form", "json"])
@pytest.mark.parametrize(
    "token_in,token", [("query", None), ("query", "wrong-token"), ("header", "wrong-token"), ("header", "")]
)
def test_missing_or_wrong_token_is_401_and_nothing_is_queued(rt, encoding, token_in, token):
    answer = send_call(encoding, token_in, token=token)
    assert answer.status_code == 401
    assert answer.json["error"] == "unauthorized"
    assert queued(rt) == []


def test_a_token_in_the_body_does_not_authenticate(rt):
    fields = {**call_json(), "token": TOKEN}
    assert send_call("json", "none", fields=fields).status_code == 401
    assert queued(rt) == []


def test_the_token_is_not_kept_as_a_field(rt):
    answer = client("calltracking_webhook").get(f"/?token={TOKEN}&callId=7&callerphone=%2B79161112233")
    assert answer.status_code == 200
    assert TOKEN not in json.dumps(queued(rt))


def test_a_call_with_no_session_phone_only_is_still_queued_and_links_the_phone(rt):
    missed = "callerphone=%2B79161112233&calledphone=74951112233&calltime=2026-03-01T18%3A20%3A00%2B03%3A00"
    answer = client("calltracking_webhook").get(
        f"/?token={TOKEN}&{missed}&duration=0&status=missed&callId=55"
    )
    assert answer.status_code == 200 and answer.json == {"accepted": ["call:55"], "ignored": []}
    [event] = queued(rt)
    assert event["identifiers"] == {"phone": "+79161112233"}
    assert event["properties"]["successful"] is False
    [outcome] = apply_queued(rt)
    assert outcome.status == "created"
    assert rt.store.lookup(Identifier("phone", "+79161112233")).profile_id == outcome.profile_id


@pytest.mark.parametrize("phone", [None, "anonymous", "0", "undefined"])
def test_a_call_with_no_usable_phone_and_no_id_is_answered_2xx_and_reported_ignored(rt, phone):
    fields = {"callId": "9001", "date": "15/03/2026 12:00:00", "duration": "31"}
    if phone is not None:
        fields["callerNumber"] = phone
    answer = send_call("form", "query", fields=fields)
    assert answer.status_code == 200
    assert answer.json["accepted"] == []
    [ignored] = answer.json["ignored"]
    assert ignored["event_id"] == "call:9001" and "no usable identifier" in ignored["reason"]
    assert queued(rt) == []


def test_a_call_without_call_id_is_400(rt):
    answer = send_call("form", "query", fields={"callerNumber": "79091234567"})
    assert answer.status_code == 400 and "call id" in answer.json["reason"]
    assert queued(rt) == []


@pytest.mark.parametrize("encoding", ["form", "json"])
def test_an_oversized_call_notification_is_413(rt, encoding):
    fields = {**call_json(), "padding": "x" * 5000}
    answer = send_call(encoding, "header", fields=fields)
    assert answer.status_code == 413 and answer.json["error"] == "too_large"
    assert queued(rt) == []


def test_a_json_array_is_400(rt):
    answer = client("calltracking_webhook").post(f"/?token={TOKEN}", json=[call_json()])
    assert answer.status_code == 400 and queued(rt) == []


def test_the_same_call_notified_at_start_and_at_end_applies_once(rt):
    start = {k: v for k, v in parse_qsl(call_query()) if k not in ("duration", "successful")}
    assert send_call("get", "query", fields=start).status_code == 200
    assert send_call("get", "query").status_code == 200
    first, second = apply_queued(rt)
    assert not first.duplicate and second.duplicate
    profile = rt.store.resolve(first.profile_id)
    assert profile.counters["type_call"] == 1


def test_other_methods_are_405(rt):
    assert client("calltracking_webhook").put(f"/?token={TOKEN}").status_code == 405


# --- CRM --------------------------------------------------------------------------------------

CRM_AUTH = {"Authorization": f"Bearer {CRM_KEY}"}


def post_orders(body, headers=CRM_AUTH):
    return client("crm_webhook").post("/", json=body, headers=headers)


def counters(rt, phone: str = "+79091234567") -> dict:
    profile = rt.store.lookup(Identifier("phone", phone))
    assert profile is not None
    return profile.counters


def test_one_order_with_the_bearer_key_is_queued(rt):
    answer = post_orders(order_json())
    assert answer.status_code == 202
    assert answer.json == {"accepted": ["order:%D0%A6%D0%91-000451:paid"], "ignored": []}
    [event] = queued(rt)
    assert event["type"] == "order" and event["channel"] == "store"
    assert event["identifiers"] == {"phone": "8 (909) 123-45-67"}
    assert event["properties"] == {
        "order_id": "ЦБ-000451",
        "amount": "129000.00",
        "currency": "RUB",
        "status": "paid",
        "store_id": "msk-tverskaya",
    }
    assert "manager" not in json.dumps(event) and "SOFA-3" not in json.dumps(event)  # unknown fields
    apply_queued(rt)
    assert counters(rt)["orders"] == 1 and counters(rt)["revenue"] == 129000.0


def test_a_batch_is_queued_whole(rt):
    answer = post_orders(order_json("crm_batch.json"))
    assert answer.status_code == 202
    assert answer.json["accepted"] == ["order:W-1001:paid", "order:448812:new"]
    events = queued(rt)
    assert [e["channel"] for e in events] == ["crm", "store"]
    apply_queued(rt)
    assert rt.store.lookup(Identifier("user_id", "crm-77120")).counters["revenue"] == 45990.0
    assert counters(rt, "+79165550102")["revenue"] == 2490.5


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key"},
        {"Authorization": CRM_KEY},  # no scheme
        {"Authorization": f"Basic {CRM_KEY}"},
        {"X-Svyaz-Token": CRM_KEY},
    ],
)
def test_missing_or_wrong_crm_key_is_401_and_nothing_is_queued(rt, headers):
    answer = post_orders(order_json(), headers=headers)
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    assert queued(rt) == []


def order_update(status: str, hour: int, amount: str = "15000.00") -> dict:
    return {
        "order_id": "A-1",
        "time": f"2026-03-10T{hour:02d}:00:00+03:00",
        "amount": amount,
        "status": status,
        "phone": "+7 909 123-45-67",
    }


def test_status_updates_new_paid_refunded_move_the_counters_by_the_difference(rt):
    seen = []
    for status, hour in (("new", 10), ("paid", 11), ("refunded", 15)):
        answer = post_orders(order_update(status, hour))
        assert answer.json["accepted"] == [f"order:A-1:{status}"]
        [outcome] = apply_queued(rt)
        assert not outcome.duplicate
        seen.append((counters(rt)["orders"], counters(rt)["revenue"]))
    assert seen == [(1, 15000.0), (1, 15000.0), (0, 0.0)]  # never double-counted; refund returns it
    profile = rt.store.lookup(Identifier("phone", "+79091234567"))
    [order] = rt.store.touchpoints([profile.profile_id], 10)  # one touchpoint per order
    assert order.event_id == "order:A-1:refunded" and order.properties["status"] == "refunded"
    assert profile.counters["events"] == 1


def test_a_duplicate_delivery_changes_nothing(rt):
    for _ in range(2):
        assert post_orders(order_update("paid", 11)).status_code == 202
    assert len(queued(rt)) == 2  # the webhook accepts both; the pipeline applies once
    first, second = apply_queued(rt)
    assert not first.duplicate and second.duplicate
    assert (counters(rt)["orders"], counters(rt)["revenue"]) == (1, 15000.0)


def test_a_late_status_update_does_not_undo_a_newer_one(rt):
    post_orders(order_update("refunded", 15))
    post_orders(order_update("paid", 11))  # delivered late
    apply_queued(rt)
    assert (counters(rt)["orders"], counters(rt)["revenue"]) == (0, 0.0)


def test_a_corrected_amount_moves_revenue_by_the_difference(rt):
    post_orders(order_update("new", 10, amount="15000.00"))
    post_orders(order_update("paid", 11, amount="14000.00"))
    apply_queued(rt)
    assert (counters(rt)["orders"], counters(rt)["revenue"]) == (1, 14000.0)


def test_bad_amounts_are_400_naming_the_order_and_field_and_nothing_is_queued(rt):
    answer = post_orders(order_json("crm_batch_bad_amounts.json"))
    assert answer.status_code == 400 and answer.json["error"] == "invalid_payload"
    fields = [d["field"] for d in answer.json["details"]]
    assert fields == ["orders[1].amount", "orders[2].amount", "orders[3].amount"]
    assert "orders[1].amount" in answer.json["reason"]
    assert "сто рублей" not in json.dumps(answer.json, ensure_ascii=False)  # no input echoed
    assert queued(rt) == []


@pytest.mark.parametrize(
    "body,field",
    [
        ({"order_id": "A-1", "amount": "1.00"}, "order"),  # no customer identifier
        ({"order_id": "A-1", "amount": "1.00", "phone": "+79091234567", "status": "lost"}, "order.status"),
        (
            {"order_id": "A-1", "amount": "1.00", "phone": "+79091234567", "currency": "рубли"},
            "order.currency",
        ),
        ({"amount": "1.00", "phone": "+79091234567"}, "order.order_id"),
    ],
)
def test_other_invalid_orders_are_400_with_the_field(rt, body, field):
    answer = post_orders(body)
    assert answer.status_code == 400
    assert answer.json["details"][0]["field"] == field
    assert queued(rt) == []


def test_an_order_whose_identifiers_are_all_unusable_is_accepted_and_reported_ignored(rt):
    answer = post_orders({"order_id": "A-9", "amount": "1.00", "phone": "000", "email": "test@test.com"})
    assert answer.status_code == 202
    assert answer.json["accepted"] == [] and answer.json["ignored"][0]["event_id"] == "order:A-9:new"
    assert queued(rt) == []


def test_an_oversized_crm_body_is_413(rt):
    body = {"orders": [order_update("paid", 11) | {"order_id": f"A-{i}"} for i in range(60)]}
    answer = post_orders(body)
    assert answer.status_code == 413 and queued(rt) == []


def test_not_json_is_400(rt):
    answer = client("crm_webhook").post("/", data="order_id=1", headers=CRM_AUTH)
    assert answer.status_code == 400 and answer.json["error"] == "invalid_json"


def test_status_updates_of_one_order_count_one_order_event(rt):
    for status, hour in (("new", 10), ("paid", 11), ("refunded", 15)):
        post_orders(order_update(status, hour))
        apply_queued(rt)
    assert counters(rt)["type_order"] == 1


@pytest.mark.svyaz_settings(
    calltracking_field_map={"CallerNum": "caller_phone", "visit": "session_id", "uid": "call_id"}
)
def test_a_vendor_with_other_field_names_is_mapped_through_the_configured_field_map(rt):
    query = f"token={TOKEN}&uid=77&CallerNum=89091234567&visit=1980094328&utmSource=yandex"
    answer = client("calltracking_webhook").get(f"/webhooks/calltracking?{query}")
    assert answer.status_code == 200 and answer.json["accepted"] == ["call:77"]
    [message] = rt.publisher.drain(rt.settings.events_topic)
    event = json.loads(message.data)
    assert event["identifiers"] == {"phone": "89091234567", "session_id": "1980094328"}
    assert event["context"]["source"] == "yandex"  # the Calltouch defaults still apply
