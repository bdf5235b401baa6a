"""Mango Office VPBX API Realtime events as canonical ``call`` events.

Mango posts every event as an URL-encoded form with three fields (VPBX API, "API Realtime"):
``vpbx_api_key`` (the account's unique code), ``json`` (the event, a JSON string) and ``sign``
= hex SHA-256 of ``vpbx_api_key + json + vpbx_api_salt``. The salt never travels, so the
signature authenticates the sender: :func:`verify_form` checks the key and the signature over
the ``json`` value exactly as sent, in constant time, before anything is parsed.

Mango appends the event name to the configured address (``<url>/events/call``,
``<url>/events/summary``, ...). Only ``events/summary`` (the end of a call, with its direction,
times and result) becomes a touch: ``call:mango:<entry_id>``, ``entry_id`` being the id Mango keeps
for the whole call across transfers. ``events/call`` (each leg's state changes) and the others are
acknowledged and ignored, since the summary follows and carries the outcome.

Mango's events carry no site visitor ids (no session, Metrica or GA id): a Mango call links by
the caller's phone, and its ad source comes from the static tracking number configured in
``SVYAZ_CALLTRACKING_NUMBER_SOURCES`` (``line_number``), not from the event.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from svyaz.channels import ChannelError, build_event, clip, drop_empty, from_unix, printable_id
from svyaz.channels.calltracking import number_source as _number_source
from svyaz.domain import validation
from svyaz.domain.events import Context, Event

SUMMARY = "summary"
MAX_JSON = 64 * 1024
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_PHONE = re.compile(r"^\+?\d{6,16}$")
# call_direction in events/summary: 0 internal, 1 inbound, 2 outbound.
_INBOUND, _OUTBOUND = 1, 2


def expected_sign(api_key: str, json_text: str, api_salt: str) -> str:
    return hashlib.sha256((api_key + json_text + api_salt).encode()).hexdigest()


def verify_form(form: Mapping[str, str], api_key: str, api_salt: str) -> bool:
    """True when the form carries our account code and a valid signature of its ``json``."""
    if not api_key or not api_salt:
        return False
    given_key, sign, json_text = form.get("vpbx_api_key"), form.get("sign"), form.get("json")
    if not all(isinstance(v, str) for v in (given_key, sign, json_text)):
        return False
    key_ok = hmac.compare_digest(given_key.encode(), api_key.encode())
    sign_ok = bool(_HEX64.match(sign)) and hmac.compare_digest(
        expected_sign(api_key, json_text, api_salt), sign.lower()
    )
    return key_ok and sign_ok


def event_name(path: str) -> str:
    """``/events/summary`` -> ``summary``; the last path segment Mango appended."""
    return path.rstrip("/").rsplit("/", 1)[-1].lower()


def load_json(form: Mapping[str, str]) -> dict[str, Any]:
    text = form.get("json")
    if not isinstance(text, str) or len(text) > MAX_JSON:
        raise ChannelError(f"json: expected the event as a JSON string of at most {MAX_JSON} bytes")
    try:  # signed by Mango, still read as any sender's JSON (a deep one once was a 500)
        payload = validation.load_json(text)
    except ValueError as exc:
        raise ChannelError(f"json: {exc}") from None
    if not isinstance(payload, dict):
        raise ChannelError("json: expected an object")
    return payload


def _party(payload: Mapping[str, Any], side: str) -> Mapping[str, Any]:
    party = payload.get(side)
    return party if isinstance(party, dict) else {}


def _phone(value: object) -> str | None:
    """A telephone number; SIP addresses and extensions are not customers' phones."""
    text = clip(value, 64)
    return text if text and _PHONE.match(text) else None


def _unix(payload: Mapping[str, Any], name: str) -> datetime | None:
    value = payload.get(name)
    if value in (None, 0, "0", ""):
        return None
    return from_unix(value, name)


def parse_summary(
    payload: Mapping[str, Any], number_sources: Mapping[str, Mapping[str, str]] | None = None
) -> Event | None:
    """The call touch of one ``events/summary``; None for internal calls. ``number_sources``
    gives the ad source of a static tracking number (the call's ``line_number``)."""
    entry_id = printable_id(payload.get("entry_id"), "entry_id", max_length=150)
    direction = payload.get("call_direction")
    if direction not in (_INBOUND, _OUTBOUND, str(_INBOUND), str(_OUTBOUND)):
        return None  # internal call between employees, or an unknown direction: no customer
    inbound = int(direction) == _INBOUND
    customer = _party(payload, "from" if inbound else "to")
    created = _unix(payload, "create_time")
    if created is None:
        raise ChannelError("create_time: missing")
    talk, end = _unix(payload, "talk_time"), _unix(payload, "end_time")

    identifiers: dict[str, str] = {}
    if phone := _phone(customer.get("number")):
        identifiers["phone"] = phone
    properties = drop_empty(
        {
            "direction": "inbound" if inbound else "outbound",
            "duration": int((end - talk).total_seconds()) if talk and end else 0,
            "waiting": int(((talk or end) - created).total_seconds()) if (talk or end) else None,
            "successful": str(payload.get("entry_result")) == "1",
            "tracked_phone": clip(payload.get("line_number"), 64),
            "disconnect_reason": clip(payload.get("disconnect_reason"), 16),
        }
    )
    return build_event(
        event_id="call:mango:" + entry_id,
        type="call",
        timestamp=created,
        channel="calltracking",
        identifiers=identifiers,
        context=Context(**_number_source(payload.get("line_number"), number_sources or {})),
        properties=properties,
    )


def parse_event(
    name: str, form: Mapping[str, str], number_sources: Mapping[str, Mapping[str, str]] | None = None
) -> Event | None:
    """The event of one verified Mango request, or None when it records nothing."""
    if name != SUMMARY:
        return None
    return parse_summary(load_json(form), number_sources)
