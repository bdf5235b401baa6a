"""WhatsApp Business Cloud API webhooks: handshake, signature and inbound messages.

* ``GET`` verification: :func:`verify_handshake` returns the ``hub.challenge`` to echo back as
  ``text/plain`` (or None: answer 403).
* ``POST`` delivery: :func:`verify_signature` over the *raw* body bytes, then
  :func:`parse_webhook` on the decoded JSON. Meta retries non-200 answers for about a day;
  the event id ``wa:<message id>`` makes redeliveries idempotent.

Linking: the site's ``https://wa.me/<digits>?text=...`` link carries the site session id in the
prefilled text; the configured pattern (group 1) extracts it. The customer may edit the text
away, so the session id is best effort and the event is produced either way.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from svyaz.channels import ChannelError, build_event, clip, drop_empty, from_unix, printable_id
from svyaz.domain.events import Context, Event

OBJECT = "whatsapp_business_account"
SIGNATURE_HEADER = "X-Hub-Signature-256"
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")
# Meta sends an integer; anything else is not echoed (the answer must not reflect arbitrary text).
_CHALLENGE = re.compile(r"^[A-Za-z0-9_.\-]{1,256}$")
# WhatsApp text messages are at most 4096 characters; never run the pattern over more.
MAX_TEXT = 4096

_SOCIAL_HOSTS = {
    "fb.me": "facebook",
    "fb.com": "facebook",
    "facebook.com": "facebook",
    "instagram.com": "instagram",
    "instagr.am": "instagram",
}
_MEDIUM_BY_SOURCE_TYPE = {"ad": "cpc", "post": "social"}


def verify_handshake(params: Mapping[str, str], verify_token: str) -> str | None:
    """The challenge to answer the subscription check with, or None (answer 403)."""
    if not verify_token:
        return None
    mode = params.get("hub.mode")
    token = params.get("hub.verify_token")
    challenge = params.get("hub.challenge")
    if mode != "subscribe" or not isinstance(token, str) or not isinstance(challenge, str):
        return None
    if not hmac.compare_digest(token.encode(), verify_token.encode()):
        return None
    return challenge if _CHALLENGE.match(challenge) else None


def verify_signature(raw_body: bytes, header: str | None, app_secret: bytes) -> bool:
    """True when ``X-Hub-Signature-256: sha256=<hex>`` is the HMAC-SHA256 of the raw body."""
    if not app_secret or not isinstance(header, str) or not isinstance(raw_body, bytes | bytearray):
        return False
    match = _SIGNATURE.match(header.strip())
    if match is None:
        return False
    expected = hmac.new(app_secret, bytes(raw_body), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, match.group(1).lower())


def _compile(pattern: re.Pattern[str] | str) -> re.Pattern[str]:
    if isinstance(pattern, re.Pattern):
        return pattern
    # Customers retype "Номер заявки" with any capitalization.
    return re.compile(pattern, re.IGNORECASE)


def _dict(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ChannelError(f"{where}: expected an object")
    return value


def _list(value: object, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ChannelError(f"{where}: expected a list")
    return value


def _str(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _digits(value: object) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return None
    digits = re.sub(r"\D", "", value)
    return digits or None


def extract_session_id(text: str, pattern: re.Pattern[str] | str) -> str | None:
    """The session id the prefilled text carries (group 1 of the pattern), if still there."""
    match = _compile(pattern).search(text[:MAX_TEXT])
    if match is None:
        return None
    value = match.group(1) if match.re.groups else match.group(0)
    return value or None


def _sender_contact(contacts: list[Any], wa_id: str | None, user_id: str | None) -> dict[str, Any]:
    candidates = [c for c in contacts if isinstance(c, dict)]
    for contact in candidates:
        if wa_id and _digits(contact.get("wa_id")) == wa_id:
            return contact
        if user_id and _str(contact.get("user_id")) == user_id:
            return contact
    # One contact and a message without a matching key: it is the sender.
    return candidates[0] if len(candidates) == 1 else {}


def _referral_context(referral: dict[str, Any]) -> tuple[Context, dict[str, Any]]:
    source_type = _str(referral.get("source_type"))
    source_url = _str(referral.get("source_url"))
    host = None
    if source_url:
        try:
            host = (urlsplit(source_url).hostname or "").lower() or None
        except ValueError:
            host = None
    source = None
    if host:
        bare = re.sub(r"^(www|m|l|lm)\.", "", host)
        source = _SOCIAL_HOSTS.get(bare, bare)
    context = Context(
        source=clip(source or "meta", 200),
        medium=_MEDIUM_BY_SOURCE_TYPE.get((source_type or "").lower(), "referral"),
        content=clip(referral.get("source_id"), 500),
        referrer=clip(source_url, 2048),
    )
    properties = drop_empty(
        {
            "ctwa_clid": clip(referral.get("ctwa_clid"), 500),
            "referral_source_type": clip(source_type, 40),
        }
    )
    return context, properties


def _profile_traits(contact: Mapping[str, Any]) -> dict[str, str]:
    """Profile name and, for users who share a username instead of a number, the username."""
    profile = contact.get("profile")
    if not isinstance(profile, dict):
        return {}
    traits = {
        "name": clip(profile.get("name"), 1000),
        "whatsapp_username": clip(profile.get("username"), 100),
    }
    return {k: v for k, v in traits.items() if v}


def _system_event(message: dict[str, Any], where: str, message_id: str, timestamp: Any) -> Event | None:
    """A ``system`` message: the identifiers one user changed, queued together as one
    ``identify`` event so the old and new values stay one customer. ``user_changed_number``:
    the old number (``from``) and the new one (``system.wa_id``; ``new_wa_id`` in older payloads);
    ``user_changed_user_id``: the previous and new business-scoped user ids. Other system notices
    are not customer touches (None)."""
    system = _dict(message.get("system"), f"{where}.system")
    kind = system.get("type")
    identifiers: dict[str, Any] = {}
    if kind in ("user_changed_number", "customer_changed_number"):
        old, new = _digits(message.get("from")), _digits(system.get("wa_id") or system.get("new_wa_id"))
        if not old or not new:
            raise ChannelError(f"{where}: a number change needs from and system.wa_id")
        identifiers["phone"] = ["+" + old, "+" + new]
    elif kind != "user_changed_user_id":
        return None
    user_ids = [u for k in ("previous_user_id", "user_id") if (u := _str(system.get(k)))]
    if user_ids:
        identifiers["whatsapp_id"] = user_ids
    if not identifiers:
        raise ChannelError(f"{where}: a user id change needs system.previous_user_id and system.user_id")
    return build_event(
        event_id="wa:" + message_id,
        type="identify",
        timestamp=timestamp,
        channel="whatsapp",
        identifiers=identifiers,
        properties={"system_type": kind},
    )


def _call_event(call: dict[str, Any], where: str, contacts: list[Any]) -> Event | None:
    """A call the user placed to the business (Calling API, ``calls`` field, ``connect``)."""
    if str(call.get("direction", "")).upper() != "USER_INITIATED" or call.get("event") != "connect":
        return None  # business-initiated calls and the terminate/status notices: not a new touch
    call_id = printable_id(call.get("id"), f"{where}.id", max_length=180)
    wa_id, user_id = _digits(call.get("from")), _str(call.get("from_user_id"))
    contact = _sender_contact(contacts, wa_id, user_id)
    user_id = user_id or _str(contact.get("user_id"))
    if not wa_id and not user_id:
        raise ChannelError(f"{where}: no caller (from / from_user_id)")
    identifiers = {
        k: v for k, v in (("phone", "+" + wa_id if wa_id else None), ("whatsapp_id", user_id)) if v
    }
    return build_event(
        event_id="wa:call:" + call_id,
        type="call",
        timestamp=from_unix(call.get("timestamp"), f"{where}.timestamp"),
        channel="whatsapp",
        identifiers=identifiers,
        traits=_profile_traits(contact),
        context=Context(source="whatsapp", medium="messenger"),
        properties={"direction": "inbound"},
    )


def _message_event(
    message: dict[str, Any],
    where: str,
    contacts: list[Any],
    metadata: dict[str, Any],
    pattern: re.Pattern[str],
) -> Event | None:
    message_id = printable_id(message.get("id"), f"{where}.id", max_length=190)
    timestamp = from_unix(message.get("timestamp"), f"{where}.timestamp")
    message_type = _str(message.get("type")) or "unknown"
    if message_type == "system":
        return _system_event(message, where, message_id, timestamp)

    wa_id = _digits(message.get("from"))
    user_id = _str(message.get("from_user_id"))
    contact = _sender_contact(contacts, wa_id, user_id)
    wa_id = wa_id or _digits(contact.get("wa_id"))
    user_id = _str(contact.get("user_id")) or user_id
    if not wa_id and not user_id:
        raise ChannelError(f"{where}: no sender (from / wa_id / user_id)")

    identifiers: dict[str, str] = {}
    if wa_id:
        identifiers["phone"] = "+" + wa_id
    if user_id:
        identifiers["whatsapp_id"] = user_id

    properties: dict[str, Any] = {"message_type": message_type}
    text = message.get("text")
    if text is not None:
        body = _dict(text, f"{where}.text").get("body")
        if body is not None and not isinstance(body, str):
            raise ChannelError(f"{where}.text.body: expected a string")
        if body:
            properties["text_length"] = len(body)
            session_id = extract_session_id(body, pattern)
            if session_id:
                identifiers["session_id"] = session_id

    traits = _profile_traits(contact)

    referral = message.get("referral")
    if referral is not None:
        context, referral_properties = _referral_context(_dict(referral, f"{where}.referral"))
        properties.update(referral_properties)
    else:
        context = Context(source="whatsapp", medium="messenger")

    phone_number_id = clip(metadata.get("phone_number_id"), 64)
    if phone_number_id:
        properties["phone_number_id"] = phone_number_id

    return build_event(
        event_id="wa:" + message_id,
        type="message",
        timestamp=timestamp,
        channel="whatsapp",
        identifiers=identifiers,
        traits=traits,
        context=context,
        properties=properties,
    )


def parse_webhook(payload: dict, session_pattern: re.Pattern[str] | str) -> list[Event]:
    """One event per inbound message (``message``; ``identify`` for a number change) and per
    user-initiated call (``call``); delivery statuses produce no events."""
    body = _dict(payload, "payload")
    if body.get("object") != OBJECT:
        raise ChannelError(f"object must be {OBJECT!r}")
    pattern = _compile(session_pattern)
    events: list[Event] = []
    for e, entry in enumerate(_list(body.get("entry"), "entry")):
        entry = _dict(entry, f"entry[{e}]")
        for c, change in enumerate(_list(entry.get("changes"), f"entry[{e}].changes")):
            change = _dict(change, f"entry[{e}].changes[{c}]")
            field = change.get("field", "messages")
            if field not in ("messages", "calls"):
                continue  # account, template and quality updates: not customer touches
            events += _change_events(change, f"entry[{e}].changes[{c}].value", pattern)
    return events


def _change_events(change: dict[str, Any], where: str, pattern: re.Pattern[str]) -> list[Event]:
    value = _dict(change.get("value"), where)
    metadata = value.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    contacts = _list(value.get("contacts"), f"{where}.contacts")
    events: list[Event] = []
    for m, message in enumerate(_list(value.get("messages"), f"{where}.messages")):
        message_where = f"{where}.messages[{m}]"
        event = _message_event(_dict(message, message_where), message_where, contacts, metadata, pattern)
        if event is not None:
            events.append(event)
    for k, call in enumerate(_list(value.get("calls"), f"{where}.calls")):
        if event := _call_event(_dict(call, f"{where}.calls[{k}]"), f"{where}.calls[{k}]", contacts):
            events.append(event)
    # value.statuses[]: delivery receipts for our own outbound messages, ignored.
    return events
