"""Telegram bot webhooks: deep links carrying the site session, and incoming updates.

The site shows ``https://t.me/<bot>?start=<session id>``; the bot then receives a message whose
text is ``/start <session id>``, which links the Telegram user to the browser session.
Webhook authenticity: the ``X-Telegram-Bot-Api-Secret-Token`` header equals the secret given
to ``setWebhook``. ``tg:<update_id>`` makes redeliveries idempotent.
"""

from __future__ import annotations

import re
from typing import Any

from svyaz.channels import ChannelError, build_event, clip, from_unix
from svyaz.domain.events import Context, Event

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


def _user_id(value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChannelError("message.from.id: expected an integer")
    return str(value)


def parse_update(update: dict) -> Event | None:
    """A ``messenger_start`` or ``message`` event; None for bots and non-message updates."""
    if not isinstance(update, dict):
        raise ChannelError("update: expected an object")
    update_id = update.get("update_id")
    if isinstance(update_id, bool) or not isinstance(update_id, int) or update_id < 0:
        raise ChannelError("update_id: expected a non-negative integer")
    message = update.get("message")
    if message is None:
        return None  # edited_message, callback_query, my_chat_member, ...: not a new touch
    if not isinstance(message, dict):
        raise ChannelError("message: expected an object")
    sender = message.get("from")
    if sender is None:
        return None  # channel posts and anonymous group admins have no user
    if not isinstance(sender, dict):
        raise ChannelError("message.from: expected an object")
    if sender.get("is_bot") is True:
        return None
    telegram_id = _user_id(sender.get("id"))
    timestamp = from_unix(message.get("date"), "message.date")

    identifiers: dict[str, str] = {"telegram_id": telegram_id}
    properties: dict[str, Any] = {}
    event_type = "message"

    text = message.get("text")
    if text is not None and not isinstance(text, str):
        raise ChannelError("message.text: expected a string")
    if text:
        properties["text_length"] = len(text)
        start = _START.match(text.strip())
        if start:
            event_type = "messenger_start"
            payload = start.group(1)
            if payload and START_PAYLOAD.match(payload):
                identifiers["session_id"] = payload
    else:
        kind = next(
            (k for k in ("contact", "photo", "sticker", "voice", "document", "location") if k in message),
            None,
        )
        if kind:
            properties["message_kind"] = kind

    # The user shared their own contact card (request_contact button): a verified phone.
    contact = message.get("contact")
    if isinstance(contact, dict) and contact.get("user_id") == sender.get("id"):
        phone = clip(contact.get("phone_number"), 64)
        if phone:
            identifiers["phone"] = "+" + phone if phone.isdigit() else phone

    chat = message.get("chat")
    if isinstance(chat, dict) and isinstance(chat.get("type"), str):
        properties["chat_type"] = clip(chat["type"], 40)

    traits = {
        name: value
        for name, key in (
            ("first_name", "first_name"),
            ("last_name", "last_name"),
            ("telegram_username", "username"),
        )
        if (value := clip(sender.get(key), 1000))
    }

    return build_event(
        event_id=f"tg:{update_id}",
        type=event_type,
        timestamp=timestamp,
        channel="telegram",
        identifiers=identifiers,
        traits=traits,
        context=Context(source="telegram", medium="messenger"),
        properties=properties,
    )
