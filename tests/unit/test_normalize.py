import pytest

from svyaz.identity.normalize import Rejected, normalize
from svyaz.identity.policy import Policy, UnknownKind

policy = Policy.default()


@pytest.mark.parametrize(
    "raw", ["8 (909) 123-45-67", "+7 909 123 45 67", "79091234567", "+7(909)1234567", 79091234567]
)
def test_russian_phone_spellings_are_one_value(raw):
    assert normalize(policy, "phone", raw) == "+79091234567"


def test_phone_default_region_is_configurable():
    by = Policy.from_mapping({"default_region": "BY"})
    assert normalize(by, "phone", "29 123 45 67") == "+375291234567"


@pytest.mark.parametrize("raw", ["12345", "+7 000 000 00 00", "+70000000000", "phone", "8 (909) 123-45"])
def test_invalid_phones_are_rejected(raw):
    with pytest.raises(Rejected):
        normalize(policy, "phone", raw)


def test_email_is_trimmed_and_lower_cased():
    assert normalize(policy, "email", "  Ivan.Petrov@Example.RU ") == "ivan.petrov@example.ru"


@pytest.mark.parametrize("raw", ["not-an-email", "a@", "test@test.com", "TEST@test.com"])
def test_bad_and_placeholder_emails_are_rejected(raw):
    with pytest.raises(Rejected):
        normalize(policy, "email", raw)


def test_ga_cookie_and_its_cid_are_one_value():
    assert normalize(policy, "ga_client_id", "GA1.1.471788507.1650790107") == "471788507.1650790107"
    assert normalize(policy, "ga_client_id", "471788507.1650790107") == "471788507.1650790107"
    assert normalize(policy, "ga_client_id", "GA1.2.1471788507.1650790107") == "1471788507.1650790107"


def test_yandex_client_ids_of_any_length_are_kept():
    assert normalize(policy, "ym_client_id", "1650790107471788507") == "1650790107471788507"
    with pytest.raises(Rejected):
        normalize(policy, "ym_client_id", "abc")


@pytest.mark.parametrize("raw", ["AA:BB:CC:00:11:22", "aa-bb-cc-00-11-22", "aabb.cc00.1122"])
def test_mac_has_one_canonical_form(raw):
    assert normalize(policy, "mac", raw) == "aa:bb:cc:00:11:22"


@pytest.mark.parametrize(
    ("kind", "raw"),
    [("mac", "00:00:00:00:00:00"), ("advertising_id", "00000000-0000-0000-0000-000000000000")],
)
def test_all_zero_device_ids_are_rejected(kind, raw):
    with pytest.raises(Rejected):
        normalize(policy, kind, raw)


def test_telegram_ids_are_64_bit_integers_as_strings():
    assert normalize(policy, "telegram_id", 5_000_000_000_123) == "5000000000123"
    with pytest.raises(Rejected):
        normalize(policy, "telegram_id", "9" * 20)
    with pytest.raises(Rejected):
        normalize(policy, "telegram_id", "@durov")


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "  ",
        "undefined",
        "NULL",
        "None",
        "nan",
        "0",
        "-1",
        "anonymous",
        "Guest",
        "unknown",
        "test",
        "[object Object]",
        "true",
        "FALSE",
        "'undefined'",
        '"null"',
        "0000-0000",
        "---",
        True,
        None,
    ],
)
@pytest.mark.parametrize("kind", ["user_id", "client_id", "session_id", "device_id"])
def test_garbage_is_blocked_for_every_kind(kind, raw):
    with pytest.raises(Rejected):
        normalize(policy, kind, raw)


def test_config_blocklist_accepts_regexes():
    custom = Policy.from_mapping({"kinds": {"user_id": {"blocklist": ["demo-.*"]}}})
    with pytest.raises(Rejected):
        normalize(custom, "user_id", "DEMO-42")
    assert normalize(custom, "user_id", "u-42") == "u-42"


def test_unknown_kind_is_an_error_unless_declared():
    with pytest.raises(UnknownKind, match="shoe_size"):
        normalize(policy, "shoe_size", "42")
    declared = Policy.from_mapping({"kinds": {"shoe_size": {"limit": 1, "priority": 9}}})
    assert normalize(declared, "shoe_size", "42") == "42"


def test_reasons_never_carry_the_value():
    with pytest.raises(Rejected) as caught:
        normalize(policy, "email", "ivan.secret@")
    assert "ivan" not in caught.value.reason
