import copy
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from svyaz.app.config import Settings
from svyaz.channels import ChannelError
from svyaz.channels.whatsapp import extract_session_id, parse_webhook, verify_handshake, verify_signature

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "channels"
PATTERN = Settings().whatsapp_session_pattern
SECRET = b"0123456789abcdef0123456789abcdef"


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def load(name: str) -> dict:
    return json.loads(raw(name))


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


# --- handshake -------------------------------------------------------------------------------


def test_handshake_returns_challenge_when_token_matches():
    params = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"}
    assert verify_handshake(params, "verify-me") == "1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1158201444"},
        {"hub.mode": "unsubscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"},
        {"hub.mode": "subscribe", "hub.challenge": "1158201444"},
        {"hub.mode": "subscribe", "hub.verify_token": "verify-me"},
        {
            "hub.mode": "subscribe",
            "hub.verify_token": "verify-me",
            "hub.challenge": "<script>alert(1)</script>",
        },
        {},
    ],
)
def test_handshake_refuses(params):
    assert verify_handshake(params, "verify-me") is None


def test_handshake_refuses_when_no_token_configured():
    params = {"hub.mode": "subscribe", "hub.verify_token": "", "hub.challenge": "1"}
    assert verify_handshake(params, "") is None


# --- signature -------------------------------------------------------------------------------


def test_signature_over_raw_bytes_accepted():
    body = raw("whatsapp_text_message.json")
    assert verify_signature(body, sign(body), SECRET) is True
    assert verify_signature(body, sign(body).upper().replace("SHA256=", "sha256="), SECRET) is True


def test_signature_of_reserialized_json_rejected():
    body = raw("whatsapp_text_message.json")
    reserialized = json.dumps(json.loads(body)).encode()
    assert reserialized != body
    assert verify_signature(reserialized, sign(body), SECRET) is False


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "sha256=" + "0" * 64,
        "sha256=" + "z" * 64,
        "sha256=abc",
        "garbage",
    ],
)
def test_signature_missing_malformed_or_wrong(header):
    body = raw("whatsapp_text_message.json")
    assert verify_signature(body, header, SECRET) is False


def test_signature_with_other_secret_or_empty_secret_rejected():
    body = raw("whatsapp_text_message.json")
    assert verify_signature(body, sign(body, b"another-secret"), SECRET) is False
    assert verify_signature(body, sign(body, b""), b"") is False


def test_signature_detects_one_changed_byte():
    body = raw("whatsapp_text_message.json")
    header = sign(body)
    tampered = body.replace(b"1980094328", b"1980094329")
    assert verify_signature(tampered, header, SECRET) is False


# --- messages --------------------------------------------------------------------------------


def test_seed_template_yields_session_id():
    assert extract_session_id("Отправьте ваш номер заявки 1980094328 менеджеру.", PATTERN) == "1980094328"
    assert extract_session_id("НОМЕР ЗАЯВКИ: 1980094328", PATTERN) == "1980094328"


def test_text_message_event():
    events = parse_webhook(load("whatsapp_text_message.json"), PATTERN)
    assert len(events) == 1
    event = events[0]
    assert event.event_id == "wa:wamid.HBgLNzkwOTEyMzQ1NjcVAgASGBQzQTVDMEI3QUQzRjBBMzM1QTk5MQA="
    assert event.type == "message"
    assert event.channel == "whatsapp"
    assert event.timestamp == datetime.fromtimestamp(1772371805, UTC)
    assert event.identifiers == {
        "phone": "+79091234567",
        "whatsapp_id": "RU.13491208655302741918",
        "session_id": "1980094328",
    }
    assert event.traits == {"name": "Мария Иванова"}
    assert event.context.source == "whatsapp"
    assert event.context.medium == "messenger"
    assert event.properties["message_type"] == "text"
    assert event.properties["phone_number_id"] == "106540352242922"
    assert event.properties["text_length"] == len("Отправьте ваш номер заявки 1980094328 менеджеру.")


def test_message_text_is_never_stored():
    event = parse_webhook(load("whatsapp_text_message.json"), PATTERN)[0]
    dumped = event.model_dump_json()
    assert "Отправьте" not in dumped
    assert "менеджеру" not in dumped


def test_edited_away_template_still_produces_event_without_session():
    payload = load("whatsapp_text_message.json")
    message = payload["entry"][0]["changes"][0]["value"]["messages"][0]
    message["text"]["body"] = "Здравствуйте, подскажите цену на ремонт"
    event = parse_webhook(payload, PATTERN)[0]
    assert "session_id" not in event.identifiers
    assert event.identifiers["phone"] == "+79091234567"
    assert event.type == "message"


def test_compiled_pattern_accepted():
    pattern = re.compile(r"ref-(\w+)")
    payload = load("whatsapp_text_message.json")
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = "hi ref-abc123"
    assert parse_webhook(payload, pattern)[0].identifiers["session_id"] == "abc123"


def test_referral_ad_sets_attribution():
    event = parse_webhook(load("whatsapp_referral.json"), PATTERN)[0]
    assert event.context.source == "facebook"
    assert event.context.medium == "cpc"
    assert event.context.content == "120211842517240512"
    assert event.properties["ctwa_clid"].startswith("ARAkLkA8rmlFeiCktEJQ")
    assert event.properties["referral_source_type"] == "ad"
    assert event.identifiers == {"phone": "+79161112233"}
    assert event.traits == {"name": "Алексей"}
    assert "гарантию" not in event.model_dump_json()


def test_referral_post_on_instagram_is_social():
    payload = load("whatsapp_referral.json")
    referral = payload["entry"][0]["changes"][0]["value"]["messages"][0]["referral"]
    referral.update(source_type="post", source_url="https://www.instagram.com/p/C4xYz/")
    referral.pop("ctwa_clid")
    event = parse_webhook(payload, PATTERN)[0]
    assert (event.context.source, event.context.medium) == ("instagram", "social")
    assert "ctwa_clid" not in event.properties


def test_statuses_are_ignored():
    assert parse_webhook(load("whatsapp_status.json"), PATTERN) == []


def test_username_user_without_phone_gets_whatsapp_id_only():
    event = parse_webhook(load("whatsapp_username_user.json"), PATTERN)[0]
    assert event.identifiers == {"whatsapp_id": "RU.88120034411002"}
    assert event.properties["message_type"] == "image"
    assert "text_length" not in event.properties


def test_several_messages_give_several_events():
    payload = load("whatsapp_text_message.json")
    value = payload["entry"][0]["changes"][0]["value"]
    second = copy.deepcopy(value["messages"][0])
    second["id"] = "wamid.second"
    second["text"]["body"] = "ещё вопрос"
    value["messages"].append(second)
    events = parse_webhook(payload, PATTERN)
    assert [e.event_id for e in events] == [
        "wa:wamid.HBgLNzkwOTEyMzQ1NjcVAgASGBQzQTVDMEI3QUQzRjBBMzM1QTk5MQA=",
        "wa:wamid.second",
    ]
    assert "session_id" not in events[1].identifiers


def test_non_message_fields_are_skipped():
    payload = load("whatsapp_text_message.json")
    payload["entry"][0]["changes"][0]["field"] = "account_update"
    assert parse_webhook(payload, PATTERN) == []


def test_wrong_object_rejected():
    payload = load("whatsapp_text_message.json")
    payload["object"] = "page"
    with pytest.raises(ChannelError, match="whatsapp_business_account"):
        parse_webhook(payload, PATTERN)


def _mutations():
    def msg(p):
        return p["entry"][0]["changes"][0]["value"]["messages"][0]

    yield "payload not a dict", lambda p: ["not", "a", "dict"]
    yield "entry not a list", lambda p: {**p, "entry": {"id": 1}}
    yield "change not a dict", lambda p: {**p, "entry": [{"changes": ["x"]}]}
    yield "value missing", lambda p: {**p, "entry": [{"changes": [{"field": "messages"}]}]}
    yield "messages not a list", lambda p: (p["entry"][0]["changes"][0]["value"].update(messages="x"), p)[1]
    yield "id missing", lambda p: (msg(p).pop("id"), p)[1]
    yield "id with spaces", lambda p: (msg(p).update(id="wamid with spaces"), p)[1]
    yield "timestamp not digits", lambda p: (msg(p).update(timestamp="yesterday"), p)[1]
    yield "timestamp in ms", lambda p: (msg(p).update(timestamp="1772371805000"), p)[1]
    yield "text body a number", lambda p: (msg(p).update(text={"body": 5}), p)[1]
    yield "text not an object", lambda p: (msg(p).update(text="hello"), p)[1]
    yield (
        "no sender",
        lambda p: (
            msg(p).pop("from"),
            p["entry"][0]["changes"][0]["value"].update(contacts=[]),
            p,
        )[2],
    )
    yield "referral not an object", lambda p: (msg(p).update(referral="ad"), p)[1]


@pytest.mark.parametrize("name,mutate", list(_mutations()), ids=[n for n, _ in _mutations()])
def test_malformed_shapes_raise_channel_error(name, mutate):
    payload = mutate(load("whatsapp_text_message.json"))
    with pytest.raises(ChannelError) as info:
        parse_webhook(payload, PATTERN)
    assert "79091234567" not in str(info.value)
    assert "Отправьте" not in str(info.value)
