"""Call-tracking notifications (Calltouch, UIS/CoMagic and peers) as canonical ``call`` events.

The HTTP layer accepts GET query strings, URL-encoded POST forms and JSON, authenticates the
sender (a token in the URL or a header), and passes one flat mapping to :func:`parse_call`. Vendor field
names go through a field map: a vendor preset (:data:`PRESETS`: ``calltouch``, ``uis``,
``generic``) overlaid with the deployment's own renames; lookup ignores case, so ``callerphone``
and ``callerPhone`` both map. Unknown fields are ignored. Mango Office signs a JSON event instead
(:mod:`svyaz.channels.mango`) and is not a field-map preset.

Event ids are namespaced by preset (``call:calltouch:<id>``, ``call:uis:<id>``); ``generic``
keeps the historical ``call:<id>``. A notification without a call id but with the caller's phone
and the call time gets a stable derived id (``d-<hash of vendor, phone digits, time, tracked
number>``), so its redeliveries still deduplicate; without those it is refused with the reason.

Identifier decisions:

* ``callerNumber`` / ``callerphone`` -> ``phone`` (raw; the engine normalizes ``7909...``).
* ``sessionId`` -> ``session_id``: the site session the tracking number was shown in.
* ``ctClientId`` -> ``ct_client_id``: the call-tracking visitor (browser) id.
* ``clientId`` -> ``client_id`` (ambiguous): Calltouch journals also carry a web-analytics client
  id under this name, so a value shaped like a Google Analytics cid (``<digits>.<digits>``) goes
  to ``ga_client_id`` and anything else to ``ct_client_id``.
* ``yaClientId`` -> ``ym_client_id``.
* ``ctCallerId`` -> the property ``ct_caller_id``: Calltouch's id of the *calling number*, which
  identifies nothing the phone doesn't already, so it is kept for reference, not linked.

Times: unix seconds (``timestamp``, preferred when present), ISO 8601, or Calltouch's
``dd/mm/yyyy HH:MM:SS``. Times without an offset are in the call-tracking account's time zone,
``local_tz`` (Moscow by default). Calltouch can notify at call start and at call end with the
same ``callId``; the event id ``call:<callId>`` deduplicates them, so configure the webhook on
call *end* to get the duration and outcome.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from svyaz.channels import (
    CALLTOUCH_DATE,
    ChannelError,
    build_event,
    clip,
    day_first_iso,
    drop_empty,
    from_unix,
    printable_id,
)
from svyaz.domain.events import Context, Event, utcnow

MOSCOW = timezone(timedelta(hours=3), "MSK")

DEFAULT_FIELD_MAP: dict[str, str] = {
    # call
    "callId": "call_id",
    "call_id": "call_id",
    "callerNumber": "caller_phone",
    "callerphone": "caller_phone",
    "phoneNumber": "tracked_phone",
    "calledphone": "tracked_phone",
    "date": "time",
    "calltime": "time",
    "timestamp": "timestamp",
    "duration": "duration",
    "waitingConnect": "waiting",
    "successful": "successful",
    "status": "successful",
    "uniqueCall": "unique",
    "targetCall": "target",
    "city": "city",
    # attribution (utm* win over source/medium/keyword)
    "source": "source",
    "medium": "medium",
    "keyword": "term",
    "utmSource": "utm_source",
    "utmMedium": "utm_medium",
    "utmCampaign": "utm_campaign",
    "utmContent": "utm_content",
    "utmTerm": "utm_term",
    "callUrl": "page_url",
    "ref": "referrer",
    "ip": "ip",
    "userAgent": "user_agent",
    # identifiers
    "sessionId": "session_id",
    "ctClientId": "ct_client_id",
    "clientId": "client_id",
    "yaClientId": "ym_client_id",
    "ctCallerId": "ct_caller_id",
}

# Calltouch: the call-journal/API names above plus what its webhooks send (lower/snake case).
# Sources: Calltouch's webhook help page (GET or POST, URL-encoded) and public receivers of those
# webhooks, cited in tests/fixtures/vendors/calltouch/README.md.
CALLTOUCH_FIELD_MAP: dict[str, str] = {
    **DEFAULT_FIELD_MAP,
    "id": "call_id",
    "calledphone": "tracked_phone",
    "gcid": "ga_client_id",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_content": "utm_content",
    "utm_term": "utm_term",
    "unique": "unique",
    "targetcall": "target",
    "uniqtargetcall": "unique_target",
    "uniqTargetCall": "unique_target",
    "waiting_time": "waiting",
    "url": "landing_url",
}

# UIS / CoMagic notification variables (the notification template picks them) and the same
# names its Data API reports; cited in tests/fixtures/vendors/uis/README.md.
UIS_FIELD_MAP: dict[str, str] = {
    "call_session_id": "call_id",
    "contact_phone_number": "caller_phone",
    "virtual_phone_number": "tracked_phone",
    "notification_time": "time",
    "start_time": "time",
    "talk_time_duration": "duration",
    "wait_time_duration": "waiting",
    "visitor_session_id": "session_id",
    "visitor_id": "ct_client_id",
    "ua_client_id": "ga_client_id",
    "ym_client_id": "ym_client_id",
    "utm_source": "utm_source",
    "utm_medium": "utm_medium",
    "utm_campaign": "utm_campaign",
    "utm_content": "utm_content",
    "utm_term": "utm_term",
    "entrance_page": "landing_url",
    "referrer": "referrer",
    "communication_page_url": "page_url",
}

ATTRIBUTION_FIELDS = ("source", "medium", "campaign", "content", "term")

# preset -> (field map, event-id namespace); "generic" is the configurable historical default.
PRESETS: dict[str, tuple[Mapping[str, str], str]] = {
    "generic": (DEFAULT_FIELD_MAP, ""),
    "calltouch": (CALLTOUCH_FIELD_MAP, "calltouch"),
    "uis": (UIS_FIELD_MAP, "uis"),
}

_TRUE = frozenset({"true", "1", "yes", "y", "success", "successful", "answered", "answer", "ok", "да"})
_FALSE = frozenset(
    {
        "false",
        "0",
        "no",
        "n",
        "fail",
        "failed",
        "unsuccessful",
        "missed",
        "noanswer",
        "no_answer",
        "no answer",
        "busy",
        "cancel",
        "cancelled",
        "canceled",
        "нет",
    }
)
_GA_CID = re.compile(r"^\d+\.\d+$")
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2})$")


def preset(name: str, overrides: Mapping[str, str] | None = None) -> tuple[dict[str, str], str]:
    """The field map (preset overlaid with the deployment's renames) and event-id namespace."""
    if name not in PRESETS:
        raise ChannelError(f"unknown call-tracking vendor; one of: {', '.join(sorted(PRESETS))}")
    field_map, namespace = PRESETS[name]
    return {**field_map, **(overrides or {})}, namespace


def _text(value: object) -> str | None:
    if isinstance(value, list | tuple):  # a repeated query parameter: the first one
        value = value[0] if value else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return value.strip() or None
    return None


def _canonical(fields: Mapping[str, Any], field_map: Mapping[str, str]) -> dict[str, str]:
    lowered = {vendor.lower(): canonical for vendor, canonical in field_map.items()}
    out: dict[str, str] = {}
    for name, raw in fields.items():
        canonical = lowered.get(name.lower()) if isinstance(name, str) else None
        value = _text(raw)
        if canonical and value is not None and canonical not in out:
            out[canonical] = value
    return out


def parse_time(value: str, local_tz: tzinfo = MOSCOW) -> datetime:
    """Unix seconds, ISO 8601 or ``dd/mm/yyyy HH:MM:SS``; naive times are in ``local_tz``."""
    value = value.strip()
    if value.isdigit():
        # 13 digits: milliseconds, as JavaScript-minded senders send them.
        return from_unix(int(value) // 1000 if len(value) == 13 else value, "time")
    try:
        moment = datetime.fromisoformat(day_first_iso(value, CALLTOUCH_DATE) or value.replace("Z", "+00:00"))
    except ValueError:
        raise ChannelError("time: not unix seconds, ISO 8601 or dd/mm/yyyy HH:MM:SS") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=local_tz)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # year 1 east of UTC, 9999 west of it: was a 500
        raise ChannelError("time: out of range") from None


def _seconds(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    clock = _CLOCK.match(value)
    if clock:
        hours, minutes, seconds = clock.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    try:
        number = float(value)
    except ValueError:
        raise ChannelError(f"{name}: expected seconds") from None
    if not 0 <= number < 10**7:
        raise ChannelError(f"{name}: out of range")
    return int(number)


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


def _digits(value: str | None) -> str:
    return re.sub(r"\D", "", value or "")


def _call_id(f: Mapping[str, str], namespace: str) -> str:
    """The vendor's call id, or one derived from fields every redelivery repeats."""
    if f.get("call_id"):
        return printable_id(f.get("call_id"), "call id")
    phone, moment = _digits(f.get("caller_phone")), f.get("timestamp") or f.get("time")
    if not phone or not moment:
        raise ChannelError(
            "call id: missing, and no caller phone with a call time to derive a stable one from "
            "(send the vendor's call id, or the caller's number and the call time)"
        )
    basis = "|".join((namespace, phone, moment.strip(), _digits(f.get("tracked_phone"))))
    return "d-" + hashlib.sha256(basis.encode()).hexdigest()[:32]


def number_source(tracked: str | None, number_sources: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Static call tracking: the ad source configured for the number that was called."""
    if not tracked or not number_sources:
        return {}
    digits = _digits(tracked)
    for number, source in number_sources.items():
        if _digits(number) == digits and isinstance(source, Mapping):
            return {k: str(v) for k in ATTRIBUTION_FIELDS if (v := source.get(k))}
    return {}


def parse_call(
    fields: Mapping[str, Any],
    field_map: Mapping[str, str] = DEFAULT_FIELD_MAP,
    now: datetime | None = None,
    *,
    local_tz: tzinfo = MOSCOW,
    namespace: str = "",
    number_sources: Mapping[str, Mapping[str, str]] | None = None,
) -> Event:
    """One ``call`` event from a flat notification, whichever encoding it arrived in.

    ``namespace`` prefixes the event id (``call:<namespace>:<id>``); ``number_sources`` maps a
    tracked number to the ad source it stands for (static call tracking), used when the
    notification names no source of its own.
    """
    if not isinstance(fields, Mapping):
        raise ChannelError("call notification: expected key/value fields")
    f = _canonical(fields, field_map)
    call_id = _call_id(f, namespace)

    if "timestamp" in f:
        timestamp = parse_time(f["timestamp"], local_tz)
    elif "time" in f:
        timestamp = parse_time(f["time"], local_tz)
    else:
        timestamp = now or utcnow()
    static = number_source(f.get("tracked_phone"), number_sources or {})
    return _call_event(f, call_id, namespace, timestamp, static)


def _call_event(
    f: Mapping[str, str], call_id: str, namespace: str, timestamp: datetime, static: Mapping[str, str]
) -> Event:
    identifiers: dict[str, str] = {}
    for canonical, kind in (
        ("caller_phone", "phone"),
        ("session_id", "session_id"),
        ("ct_client_id", "ct_client_id"),
        ("ym_client_id", "ym_client_id"),
        ("ga_client_id", "ga_client_id"),
    ):
        if value := clip(f.get(canonical), 512):
            identifiers[kind] = value
    if client_id := clip(f.get("client_id"), 512):
        identifiers.setdefault("ga_client_id" if _GA_CID.match(client_id) else "ct_client_id", client_id)

    named = f.get("utm_source") or f.get("source")
    context = Context(
        source=clip(named or static.get("source"), 200),
        medium=clip(f.get("utm_medium") or f.get("medium") or (None if named else static.get("medium")), 200),
        campaign=clip(f.get("utm_campaign") or (None if named else static.get("campaign")), 500),
        content=clip(f.get("utm_content"), 500),
        term=clip(f.get("utm_term") or f.get("term"), 500),
        referrer=clip(f.get("referrer"), 2048),
        page_url=clip(f.get("page_url"), 2048),
        ip=clip(f.get("ip"), 64),
        user_agent=clip(f.get("user_agent"), 1024),
    )
    properties = drop_empty(
        {
            "duration": _seconds(f.get("duration"), "duration"),
            "waiting": _seconds(f.get("waiting"), "waiting"),
            "successful": _flag(f.get("successful")),
            "unique": _flag(f.get("unique")),
            "target": _flag(f.get("target")),
            "unique_target": _flag(f.get("unique_target")),
            "landing_url": clip(f.get("landing_url"), 2048),
            "tracked_phone": clip(f.get("tracked_phone"), 64),
            "city": clip(f.get("city"), 200),
            "ct_caller_id": clip(f.get("ct_caller_id"), 200),
        }
    )
    return build_event(
        event_id=f"call:{namespace}:{call_id}" if namespace else f"call:{call_id}",
        type="call",
        timestamp=timestamp,
        channel="calltracking",
        identifiers=identifiers,
        context=context,
        properties=properties,
    )
