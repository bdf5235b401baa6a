import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl

import pytest

from svyaz.channels import ChannelError
from svyaz.channels import secret_matches as verify_token
from svyaz.channels.calltracking import DEFAULT_FIELD_MAP, parse_call, parse_time

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "channels"


def journal_json() -> dict:
    return json.loads((FIXTURES / "calltouch_call.json").read_text(encoding="utf-8"))


def querystring(name: str = "calltouch_call.txt") -> str:
    return (FIXTURES / name).read_text(encoding="ascii")


def test_verify_token():
    assert verify_token("ct-8c1f0e", "ct-8c1f0e") is True
    assert verify_token("ct-8c1f0", "ct-8c1f0e") is False
    assert verify_token(None, "ct-8c1f0e") is False
    assert verify_token("", "ct-8c1f0e") is False
    assert verify_token("", "") is False
    assert verify_token("anything", "") is False


def test_calltouch_journal_call():
    event = parse_call(journal_json())
    assert event.event_id == "call:84417721"
    assert event.type == "call"
    assert event.channel == "calltracking"
    assert event.timestamp == datetime.fromtimestamp(1772363112, UTC)
    assert event.identifiers == {
        "phone": "79091234567",
        "session_id": "1980094328",
        "ct_client_id": "555123987",
        "ym_client_id": "1772358812104712345",
        "ga_client_id": "1351291232.1772360000",
    }
    context = event.context
    assert context.source == "yandex_direct"  # utmSource wins over source
    assert context.medium == "cpc"
    assert context.campaign == "warranty_spring"
    assert context.content == "ad_15432"
    assert context.term == "гарантия на технику"  # utmTerm wins over keyword
    assert context.page_url == "https://shop.ru/warranty?utm_source=yandex_direct"
    assert event.properties == {
        "duration": 187,
        "waiting": 9,
        "successful": True,
        "unique": True,
        "target": True,
        "tracked_phone": "74951112233",
        "city": "Москва",
        "ct_caller_id": "3344556677",
    }


def test_three_encodings_give_the_same_event():
    from_json = parse_call(journal_json())
    from_get = parse_call(parse_qs(querystring()))  # GET: lists of values
    from_form = parse_call(dict(parse_qsl(querystring())))  # POST form: flat strings
    assert from_json == from_get == from_form


def test_source_and_keyword_used_without_utm():
    fields = {k: v for k, v in journal_json().items() if not k.startswith("utm")}
    event = parse_call(fields)
    assert (event.context.source, event.context.medium, event.context.term) == (
        "yandex",
        "cpc",
        "расширенная гарантия",
    )
    assert event.context.campaign is None


def test_webhook_receiver_names_missed_call_without_session():
    now = datetime(2026, 3, 1, 16, 0, tzinfo=UTC)
    event = parse_call(dict(parse_qsl(querystring("calltouch_missed_nosession.txt"))), now=now)
    assert event.event_id == "call:84417790"
    assert event.identifiers == {"phone": "+79161112233"}
    assert event.timestamp == datetime(2026, 3, 1, 15, 20, tzinfo=UTC)
    assert event.properties == {"duration": 0, "successful": False, "tracked_phone": "74951112233"}
    assert "token" not in event.model_dump_json()


def test_dd_mm_yyyy_is_account_local_time():
    fields = {"callId": "1", "callerNumber": "79091234567", "date": "01/03/2026 14:05:12"}
    assert parse_call(fields).timestamp == datetime(2026, 3, 1, 11, 5, 12, tzinfo=UTC)
    utc = parse_call(fields, local_tz=UTC)
    assert utc.timestamp == datetime(2026, 3, 1, 14, 5, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "value,expected",
    [
        ("1772363112", datetime(2026, 3, 1, 11, 5, 12, tzinfo=UTC)),
        ("1772363112000", datetime(2026, 3, 1, 11, 5, 12, tzinfo=UTC)),
        ("2026-03-01T14:05:12+03:00", datetime(2026, 3, 1, 11, 5, 12, tzinfo=UTC)),
        ("2026-03-01T11:05:12Z", datetime(2026, 3, 1, 11, 5, 12, tzinfo=UTC)),
        ("2026-03-01 14:05:12", datetime(2026, 3, 1, 11, 5, 12, tzinfo=UTC)),
        ("01/03/2026 14:05:12", datetime(2026, 3, 1, 11, 5, 12, tzinfo=UTC)),
        ("01.03.2026 14:05", datetime(2026, 3, 1, 11, 5, tzinfo=UTC)),
    ],
)
def test_time_formats(value, expected):
    assert parse_time(value) == expected


@pytest.mark.parametrize(
    "value",
    # year 1 in Moscow is before year 1 in UTC: converting it was an OverflowError (a 500)
    ["yesterday", "32/13/2026 25:00:00", "2026-02-30", "0", "99999999999", "0001-01-01 00:00:00",
     "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"],
)  # fmt: skip
def test_bad_times_rejected(value):
    with pytest.raises(ChannelError, match="time"):
        parse_call({"callId": "1", "date": value})


def test_missing_time_uses_now():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=3)))
    assert parse_call({"callId": "7"}, now=now).timestamp == datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("fields", [{}, {"callId": ""}, {"callId": "  "}, {"callerNumber": "79091234567"}])
def test_missing_call_id_rejected(fields):
    with pytest.raises(ChannelError, match="call id") as info:
        parse_call(fields)
    assert "79091234567" not in str(info.value)


def test_call_id_with_spaces_rejected():
    with pytest.raises(ChannelError):
        parse_call({"callId": "84417721 OR 1=1"})


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("true", True),
        ("1", True),
        ("success", True),
        ("ANSWERED", True),
        ("false", False),
        ("0", False),
        ("missed", False),
        ("busy", False),
        ("maybe", None),
    ],
)
def test_successful_flag(raw, expected):
    event = parse_call({"callId": "1", "successful": raw})
    assert event.properties.get("successful") is expected


@pytest.mark.parametrize("raw,expected", [("125", 125), ("125.0", 125), ("00:02:05", 125), ("1:00:00", 3600)])
def test_duration_formats(raw, expected):
    assert parse_call({"callId": "1", "duration": raw}).properties["duration"] == expected


@pytest.mark.parametrize("raw", ["long", "-5", "nan", "inf"])
def test_bad_duration_rejected(raw):
    with pytest.raises(ChannelError, match="duration"):
        parse_call({"callId": "1", "duration": raw})


def test_field_names_are_case_insensitive_and_unknown_ignored():
    event = parse_call({"CALLID": "9", "CallerPhone": "79091234567", "SESSIONID": "abc", "foo": "bar"})
    assert event.event_id == "call:9"
    assert event.identifiers == {"phone": "79091234567", "session_id": "abc"}
    assert "foo" not in event.properties


def test_custom_field_map():
    field_map = {**DEFAULT_FIELD_MAP, "call_uuid": "call_id", "numa": "caller_phone", "visit": "session_id"}
    event = parse_call({"call_uuid": "c-1", "numa": "+79091234567", "visit": "s-77"}, field_map)
    assert event.event_id == "call:c-1"
    assert event.identifiers == {"phone": "+79091234567", "session_id": "s-77"}


def test_client_id_not_shaped_like_ga_is_call_tracking_id():
    event = parse_call({"callId": "1", "clientId": "ct.99817"})
    assert event.identifiers == {"ct_client_id": "ct.99817"}


def test_explicit_ct_client_id_wins_over_ambiguous_client_id():
    event = parse_call({"callId": "1", "ctClientId": "555", "clientId": "abc"})
    assert event.identifiers == {"ct_client_id": "555"}


def test_long_utm_values_are_clipped_not_rejected():
    event = parse_call({"callId": "1", "utmCampaign": "c" * 900})
    assert event.context.campaign == "c" * 500


def test_non_mapping_rejected():
    with pytest.raises(ChannelError):
        parse_call(["callId", "1"])  # type: ignore[arg-type]
