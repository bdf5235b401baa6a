"""Telegram bot webhooks: deep links carrying the site session, and incoming updates.

The site shows ``https://t.me/<bot>?start=<session id>``; the bot then receives a message whose
text is ``/start <session id>``, which links the Telegram user to the browser session.
Webhook authenticity: the ``X-Telegram-Bot-Api-Secret-Token`` header equals the secret given
to ``setWebhook``. ``tg:<update_id>`` makes redeliveries idempotent.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from svyaz.channels import ChannelError, build_event, clip, from_unix
from svyaz.domain.events import Context, Event, utcnow

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name, not a secret
START_PAYLOAD = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
BOT_USERNAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{3,31}$")
# "/start", "/start@my_bot", each optionally followed by a payload.
_START = re.compile(r"^/start(?:@[A-Za-z0-9_]{1,64})?(?:\s+(\S+))?\s*$")


def deep_link(bot_username: str, session_id: str) -> str:
    """``https://t.me/<bot>?start=<session id>``; ChannelError if either can't be used."""
    bot = bot_username.removeprefix("@") if isinstance(bot_username, str) else ""
    if not BOT_USERNAME.match(bot):
        raise ChannelError("bot username must be 4-32 letters, digits or _")
    if not isinstance(session_id, str) or not START_PAYLOAD.match(session_id):
        raise ChannelError("session id can't be a start payload (1-64 of A-Z a-z 0-9 _ -)")
    return f"https://t.me/{bot}?start={session_id}"


def _user_id(value: object, where: str = "message.from.id") -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChannelError(f"{where}: expected an integer")
    return str(value)


def _sender_traits(sender: dict[str, Any]) -> dict[str, str]:
    return {
        name: value
        for name, key in (
            ("first_name", "first_name"),
            ("last_name", "last_name"),
            ("telegram_username", "username"),
        )
        if (value := clip(sender.get(key), 1000))
    }


def _update_id(update: dict) -> int:
    update_id = update.get("update_id")
    if isinstance(update_id, bool) or not isinstance(update_id, int) or update_id < 0:
        raise ChannelError("update_id: expected a non-negative integer")
    return update_id


def _callback_event(update_id: int, query: object, now: datetime | None) -> Event | None:
    """A press on one of the bot's inline buttons (``callback_query``): a touch by that user.
    The query has no date of its own; the message it came from, or the arrival time, dates it."""
    if not isinstance(query, dict):
        raise ChannelError("callback_query: expected an object")
    sender = query.get("from")
    if not isinstance(sender, dict):
        raise ChannelError("callback_query.from: expected an object")
    if sender.get("is_bot") is True:
        return None
    telegram_id = _user_id(sender.get("id"), "callback_query.from.id")
    properties: dict[str, Any] = {}
    data = query.get("data")
    if isinstance(data, str):
        properties["data_length"] = len(data)
    message = query.get("message")
    chat = message.get("chat") if isinstance(message, dict) else None
    if isinstance(chat, dict) and isinstance(chat.get("type"), str):
        properties["chat_type"] = clip(chat["type"], 40)
    return build_event(
        event_id=f"tg:{update_id}",
        type="callback_query",
        timestamp=now or utcnow(),
        channel="telegram",
        identifiers={"telegram_id": telegram_id},
        traits=_sender_traits(sender),
        context=Context(source="telegram", medium="messenger"),
        properties=properties,
    )


def parse_update(update: dict, now: datetime | None = None) -> Event | None:
    """A ``messenger_start``, ``message`` or ``callback_query`` event; None for bots and other
    updates."""
    if not isinstance(update, dict):
        raise ChannelError("update: expected an object")
    update_id = _update_id(update)
    if "callback_query" in update:
        return _callback_event(update_id, update["callback_query"], now)
    message = update.get("message")
    if message is None:
        return None  # edited_message, my_chat_member, ...: not a new touch
    if not isinstance(message, dict):
        raise ChannelError("message: expected an object")
    sender = message.get("from")
    if sender is None:
        return None  # channel posts and anonymous group admins have no user
    if not isinstance(sender, dict):
        raise ChannelError("message.from: expected an object")
    if sender.get("is_bot") is True:
        return None
    return _message_event(update_id, message, sender)


def _text_facts(message: dict, identifiers: dict[str, str], properties: dict[str, Any]) -> str:
    """The event type the text makes (``/start <session>`` or a message) and its facts."""
    text = message.get("text")
    if text is not None and not isinstance(text, str):
        raise ChannelError("message.text: expected a string")
    if not text:
        kind = next(
            (k for k in ("contact", "photo", "sticker", "voice", "document", "location") if k in message),
            None,
        )
        if kind:
            properties["message_kind"] = kind
        return "message"
    properties["text_length"] = len(text)
    start = _START.match(text.strip())
    if not start:
        return "message"
    payload = start.group(1)
    if payload and START_PAYLOAD.match(payload):
        identifiers["session_id"] = payload
    return "messenger_start"


def _message_event(update_id: int, message: dict, sender: dict) -> Event:
    telegram_id = _user_id(sender.get("id"))
    timestamp = from_unix(message.get("date"), "message.date")
    identifiers: dict[str, str] = {"telegram_id": telegram_id}
    properties: dict[str, Any] = {}
    event_type = _text_facts(message, identifiers, properties)

    # The user shared their own contact card (request_contact button): a verified phone.
    contact = message.get("contact")
    if isinstance(contact, dict) and contact.get("user_id") == sender.get("id"):
        phone = clip(contact.get("phone_number"), 64)
        if phone:
            identifiers["phone"] = "+" + phone if phone.isdigit() else phone

    chat = message.get("chat")
    if isinstance(chat, dict) and isinstance(chat.get("type"), str):
        properties["chat_type"] = clip(chat["type"], 40)

    return build_event(
        event_id=f"tg:{update_id}",
        type=event_type,
        timestamp=timestamp,
        channel="telegram",
        identifiers=identifiers,
        traits=_sender_traits(sender),
        context=Context(source="telegram", medium="messenger"),
        properties=properties,
    )
