"""The vendor parsers, pure: call-tracking presets and derived call ids, Mango's signature and
summaries, the CRMs' PHP-style forms and deal answers, WhatsApp number changes and calls, Telegram
callback queries."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from svyaz.channels import ChannelError, calltracking, crm_deals, mango, telegram, whatsapp

# --- call tracking --------------------------------------------------------------------------

WEBHOOK = {
    "id": "412890117",
    "callerphone": "79161234567",
    "phonenumber": "74951112233",
    "calltime": "2026-03-15 12:41:07",
    "gcid": "1351291232.1773560000",
    "utm_source": "yandex",
    "uniqtargetcall": "true",
    "waiting_time": "7",
}


def calltouch(fields: dict, **kwargs):
    field_map, namespace = calltracking.preset("calltouch")
    return calltracking.parse_call(fields, field_map, namespace=namespace, **kwargs)


def test_calltouch_webhook_names_are_read_and_the_id_is_namespaced():
    event = calltouch(WEBHOOK)
    assert event.event_id == "call:calltouch:412890117"
    assert event.identifiers == {"phone": "79161234567", "ga_client_id": "1351291232.1773560000"}
    assert event.context.source == "yandex"
    assert event.properties["unique_target"] is True and event.properties["waiting"] == 7
    assert event.timestamp == datetime(2026, 3, 15, 9, 41, 7, tzinfo=UTC)  # Moscow by default


def test_the_generic_preset_keeps_the_historical_event_id_and_renames_apply_over_a_preset():
    field_map, namespace = calltracking.preset("generic", {"visit": "session_id"})
    event = calltracking.parse_call({"callId": "7", "callerNumber": "79161234567", "visit": "42"}, field_map)
    assert event.event_id == "call:7" and namespace == ""
    assert event.identifiers["session_id"] == "42"
    with pytest.raises(ChannelError, match="unknown call-tracking vendor"):
        calltracking.preset("calltouchh")


def test_times_without_an_offset_are_in_the_accounts_time_zone():
    event = calltouch(WEBHOOK, local_tz=ZoneInfo("Asia/Yekaterinburg"))
    assert event.timestamp == datetime(2026, 3, 15, 7, 41, 7, tzinfo=UTC)


def test_a_call_without_id_gets_an_id_every_redelivery_repeats():
    without_id = {k: v for k, v in WEBHOOK.items() if k != "id"}
    first, again = calltouch(dict(without_id)), calltouch({**without_id, "callerphone": "+7 916 123-45-67"})
    assert first.event_id == again.event_id and first.event_id.startswith("call:calltouch:d-")
    later = calltouch({**without_id, "calltime": "2026-03-15 12:50:00"})
    assert later.event_id != first.event_id


def test_a_call_without_id_and_without_phone_or_time_is_refused_with_the_reason():
    with pytest.raises(ChannelError, match="no caller phone with a call time"):
        calltouch({"callerphone": "79161234567"})
    with pytest.raises(ChannelError, match="call id: missing"):
        calltouch({"calltime": "2026-03-15 12:41:07"})


def test_a_static_tracking_number_gives_the_source_only_when_the_call_names_none():
    sources = {"+7 (495) 111-22-33": {"source": "avito", "medium": "classified"}}
    unnamed = {k: v for k, v in WEBHOOK.items() if k != "utm_source"}
    assert calltouch(unnamed, number_sources=sources).context.source == "avito"
    assert calltouch(unnamed, number_sources=sources).context.medium == "classified"
    assert calltouch(WEBHOOK, number_sources=sources).context.source == "yandex"


def test_uis_names():
    field_map, namespace = calltracking.preset("uis")
    event = calltracking.parse_call(
        {"call_session_id": 2883719921, "contact_phone_number": "79161234567", "visitor_session_id": 19,
         "ua_client_id": "1.2", "ym_client_id": "3", "notification_time": "2026-03-15 12:41:48.717"},
        field_map, namespace=namespace,
    )  # fmt: skip
    assert event.event_id == "call:uis:2883719921"
    assert event.identifiers == {
        "phone": "79161234567",
        "session_id": "19",
        "ym_client_id": "3",
        "ga_client_id": "1.2",
    }


# --- Mango ----------------------------------------------------------------------------------

SUMMARY = {
    "entry_id": "MzUyODMzNzg4OTo0MDE=",
    "call_direction": 1,
    "from": {"number": "79161234567"},
    "to": {"extension": "101", "number": "sip:a@b.mangosip.ru"},
    "line_number": "74951112233",
    "create_time": 1773567475,
    "talk_time": 1773567495,
    "end_time": 1773567708,
    "entry_result": 1,
}


def signed(payload: dict, key: str = "k", salt: str = "s") -> dict:
    text = json.dumps(payload)
    return {
        "vpbx_api_key": key,
        "json": text,
        "sign": hashlib.sha256((key + text + salt).encode()).hexdigest(),
    }


def test_mango_signature_is_checked_over_the_json_as_sent():
    form = signed(SUMMARY)
    assert mango.verify_form(form, "k", "s")
    assert not mango.verify_form(form, "k", "other-salt")
    assert not mango.verify_form({**form, "vpbx_api_key": "x"}, "k", "s")
    assert not mango.verify_form(
        {**form, "json": form["json"].replace("79161234567", "79990000000")}, "k", "s"
    )
    assert not mango.verify_form({**form, "sign": "00"}, "k", "s")
    assert not mango.verify_form(form, "k", "")  # no salt configured: nothing verifies


def test_mango_summary_directions():
    inbound = mango.parse_summary(SUMMARY)
    assert inbound.identifiers == {"phone": "79161234567"}
    assert inbound.properties["duration"] == 213 and inbound.properties["waiting"] == 20
    outbound = mango.parse_summary({**SUMMARY, "call_direction": 2, "to": {"number": "79035550000"}})
    assert outbound.identifiers == {"phone": "79035550000"} and outbound.properties["direction"] == "outbound"
    assert mango.parse_summary({**SUMMARY, "call_direction": 0}) is None  # internal: no customer
    assert mango.parse_event("call", signed(SUMMARY)) is None
    assert mango.event_name("/events/summary/") == "summary"
    with pytest.raises(ChannelError, match="create_time"):
        mango.parse_summary({**SUMMARY, "create_time": 0})


# --- CRM forms ------------------------------------------------------------------------------


def test_php_forms_nest_and_are_bounded():
    form = crm_deals.parse_php_form(
        [("leads[status][0][id]", "25476081"), ("leads[status][0][status_id]", "142"), ("account[id]", "3")]
    )
    assert form == {
        "leads": {"status": {"0": {"id": "25476081", "status_id": "142"}}},
        "account": {"id": "3"},
    }
    assert crm_deals.amocrm_deal_ids(form) == ["25476081"]
    with pytest.raises(ChannelError, match="deeper"):
        crm_deals.parse_php_form([("a[b][c][d][e][f][g]", "1")])
    with pytest.raises(ChannelError, match="more than"):
        crm_deals.parse_php_form([(f"a[{i}]", "1") for i in range(crm_deals.MAX_FIELDS + 1)])
    with pytest.raises(ChannelError, match="longer than"):
        crm_deals.parse_php_form([("a" * 300, "1")])
    with pytest.raises(ChannelError, match="both a value and a list"):
        crm_deals.parse_php_form([("a", "1"), ("a[b]", "2")])


def test_deal_ids_must_be_numeric_and_present():
    with pytest.raises(ChannelError, match="no leads"):
        crm_deals.amocrm_deal_ids({"account": {"id": "1"}})
    with pytest.raises(ChannelError, match="numeric deal id"):
        crm_deals.amocrm_deal_ids({"leads": {"update": {"0": {"id": "../contacts"}}}})
    assert crm_deals.bitrix_deal_id({"event": "ONCRMDEALDELETE", "data": {"FIELDS": {"ID": "1"}}}) is None
    assert crm_deals.bitrix_deal_id({"event": "ONCRMDEALUPDATE", "data": {"FIELDS": {"ID": "759"}}}) == "759"


def test_deal_statuses():
    assert [crm_deals.amocrm_status(s) for s in (142, "143", 5555)] == ["completed", "cancelled", "new"]
    assert crm_deals.bitrix_status({"STAGE_ID": "C2:WON"}) == "completed"
    assert crm_deals.bitrix_status({"STAGE_SEMANTIC_ID": "F", "STAGE_ID": "C2:JUNK"}) == "cancelled"
    assert crm_deals.bitrix_status({"STAGE_SEMANTIC_ID": "P", "STAGE_ID": "PREPARATION"}) == "new"


def test_a_deal_whose_contacts_have_no_phone_or_email_cannot_be_an_order():
    with pytest.raises(ChannelError, match="customer identifier"):
        crm_deals.amocrm_order({"id": 1, "status_id": 142, "price": 10}, [{"name": "Без контактов"}])


# --- WhatsApp -------------------------------------------------------------------------------


def wa(field: str, value: dict) -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": field, "value": value}]}],
    }


def test_a_number_change_links_both_numbers_old_names_included():
    for system in ({"wa_id": "79037654321"}, {"new_wa_id": "79037654321", "type": "customer_changed_number"}):
        message = {"from": "79161234567", "id": "wamid.1", "timestamp": "1773570100", "type": "system",
                   "system": {"type": "user_changed_number", **system}}  # fmt: skip
        [event] = whatsapp.parse_webhook(wa("messages", {"messages": [message]}), "x(\\d+)")
        assert event.type == "identify" and event.identifiers == {"phone": ["+79161234567", "+79037654321"]}


def test_only_user_initiated_call_connects_are_touches():
    call = {"id": "wacid.1", "from": "79161234567", "event": "connect", "timestamp": "1773571000",
            "direction": "USER_INITIATED"}  # fmt: skip
    [event] = whatsapp.parse_webhook(wa("calls", {"calls": [call]}), "x(\\d+)")
    assert event.event_id == "wa:call:wacid.1" and event.type == "call"
    business = {**call, "direction": "BUSINESS_INITIATED"}
    terminate = {**call, "event": "terminate", "status": "COMPLETED", "duration": 33}
    assert whatsapp.parse_webhook(wa("calls", {"calls": [business, terminate]}), "x(\\d+)") == []


# --- Telegram -------------------------------------------------------------------------------


def test_callback_queries_are_touches_of_their_user_and_bots_are_ignored():
    query = {"id": "1", "from": {"id": 5523401987, "is_bot": False, "username": "ekaterina_s"}, "data": "x"}
    event = telegram.parse_update(
        {"update_id": 9, "callback_query": query}, now=datetime(2026, 3, 15, tzinfo=UTC)
    )
    assert event.event_id == "tg:9" and event.type == "callback_query"
    assert (
        event.identifiers == {"telegram_id": "5523401987"}
        and event.traits["telegram_username"] == "ekaterina_s"
    )
    assert event.timestamp == datetime(2026, 3, 15, tzinfo=UTC)
    assert (
        telegram.parse_update(
            {"update_id": 9, "callback_query": {**query, "from": {"id": 1, "is_bot": True}}}
        )
        is None
    )
    with pytest.raises(ChannelError, match="callback_query.from"):
        telegram.parse_update({"update_id": 9, "callback_query": {"id": "1"}})


def test_a_user_id_change_links_both_ids_and_other_system_notices_record_nothing():
    def system(body: dict) -> list:
        message = {
            "from": "79161234567",
            "id": "wamid.2",
            "timestamp": "1773570100",
            "type": "system",
            "system": body,
        }
        return whatsapp.parse_webhook(wa("messages", {"messages": [message]}), "x(\\d+)")

    [event] = system({"type": "user_changed_user_id", "previous_user_id": "RU.1", "user_id": "RU.2"})
    assert event.type == "identify" and event.identifiers == {"whatsapp_id": ["RU.1", "RU.2"]}
    assert system({"type": "some_future_notice", "body": "..."}) == []
    with pytest.raises(ChannelError, match="user id change"):
        system({"type": "user_changed_user_id"})
