import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from svyaz.channels import ChannelError
from svyaz.channels import secret_matches as verify_secret
from svyaz.channels.telegram import START_PAYLOAD, deep_link, parse_update

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "channels"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def test_verify_secret():
    assert verify_secret("s3cr3t-token_value", "s3cr3t-token_value") is True
    assert verify_secret("wrong", "s3cr3t-token_value") is False
    assert verify_secret(None, "s3cr3t-token_value") is False
    assert verify_secret("", "s3cr3t-token_value") is False
    assert verify_secret("", "") is False
    assert verify_secret("anything", "") is False


def test_deep_link():
    assert deep_link("svyaz_bot", "1980094328") == "https://t.me/svyaz_bot?start=1980094328"
    assert deep_link("@svyaz_bot", "abc-DEF_123") == "https://t.me/svyaz_bot?start=abc-DEF_123"


@pytest.mark.parametrize("session_id", ["", "a" * 65, "has space", "кириллица", "a=b", "a&start=x", "x/y"])
def test_deep_link_rejects_impossible_payload(session_id):
    with pytest.raises(ChannelError):
        deep_link("svyaz_bot", session_id)


@pytest.mark.parametrize("bot", ["", "ab", "bad bot", "evil.com/x", "bot?start=1"])
def test_deep_link_rejects_bad_bot(bot):
    with pytest.raises(ChannelError):
        deep_link(bot, "1980094328")


def test_start_payload_pattern():
    assert START_PAYLOAD.match("a" * 64)
    assert not START_PAYLOAD.match("a" * 65)


def test_start_update_links_session():
    event = parse_update(load("telegram_start.json"))
    assert event is not None
    assert event.event_id == "tg:902345671"
    assert event.type == "messenger_start"
    assert event.channel == "telegram"
    assert event.timestamp == datetime.fromtimestamp(1772373600, UTC)
    assert event.identifiers == {"telegram_id": "5523401987", "session_id": "1980094328"}
    assert event.traits == {"first_name": "Дмитрий", "last_name": "Соколов", "telegram_username": "dsokolov"}
    assert (event.context.source, event.context.medium) == ("telegram", "messenger")
    assert event.properties["chat_type"] == "private"


def test_plain_text_is_a_message_without_text():
    event = parse_update(load("telegram_text.json"))
    assert event is not None
    assert event.type == "message"
    assert event.identifiers == {"telegram_id": "5523401987"}
    assert event.traits == {"first_name": "Дмитрий"}
    assert event.properties["text_length"] == len("Здравствуйте! Когда будет доставка?")
    assert "доставка" not in event.model_dump_json()


def test_bare_start_and_bad_payload_have_no_session():
    update = load("telegram_start.json")
    update["message"]["text"] = "/start"
    event = parse_update(update)
    assert event.type == "messenger_start"
    assert "session_id" not in event.identifiers
    update["message"]["text"] = "/start bad=payload"
    assert "session_id" not in parse_update(update).identifiers


def test_start_addressed_to_bot_in_group():
    update = load("telegram_start.json")
    update["message"]["text"] = "/start@svyaz_bot 1980094328"
    assert parse_update(update).identifiers["session_id"] == "1980094328"


def test_large_user_id_kept_exact():
    update = load("telegram_text.json")
    update["message"]["from"]["id"] = 2**52 - 1
    assert parse_update(update).identifiers["telegram_id"] == str(2**52 - 1)


def test_shared_own_contact_gives_phone():
    update = load("telegram_text.json")
    del update["message"]["text"]
    update["message"]["contact"] = {
        "phone_number": "79091234567",
        "first_name": "Дмитрий",
        "user_id": 5523401987,
    }
    event = parse_update(update)
    assert event.identifiers == {"telegram_id": "5523401987", "phone": "+79091234567"}
    assert event.properties["message_kind"] == "contact"


def test_someone_elses_contact_is_not_linked():
    update = load("telegram_text.json")
    del update["message"]["text"]
    update["message"]["contact"] = {"phone_number": "79160000000", "first_name": "Друг", "user_id": 42}
    assert "phone" not in parse_update(update).identifiers


def test_bots_are_ignored():
    update = load("telegram_start.json")
    update["message"]["from"]["is_bot"] = True
    assert parse_update(update) is None


@pytest.mark.parametrize("kind", ["edited_message", "channel_post", "my_chat_member"])
def test_updates_without_message_are_ignored(kind):
    update = load("telegram_start.json")
    update[kind] = update.pop("message")
    assert parse_update(update) is None


def test_message_without_sender_ignored():
    update = load("telegram_text.json")
    del update["message"]["from"]
    assert parse_update(update) is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda u: u.pop("update_id"),
        lambda u: u.update(update_id="902345671"),
        lambda u: u.update(update_id=True),
        lambda u: u.update(message="hi"),
        lambda u: u["message"].update({"from": "me"}),
        lambda u: u["message"]["from"].update(id="5523401987"),
        lambda u: u["message"].pop("date"),
        lambda u: u["message"].update(text=["/start"]),
    ],
)
def test_malformed_updates_raise_channel_error(mutate):
    update = load("telegram_start.json")
    mutate(update)
    with pytest.raises(ChannelError):
        parse_update(update)


def test_non_dict_update_rejected():
    with pytest.raises(ChannelError):
        parse_update([1, 2])  # type: ignore[arg-type]
