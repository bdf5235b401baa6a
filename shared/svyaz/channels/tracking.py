"""The Segment / RudderStack HTTP tracking API as canonical events (pure, no I/O).

Formats, from the vendors' published spec and SDK code (fixtures and their sources are listed in
``tests/fixtures/tracking/README.md``):

* calls ``track``, ``identify``, ``page``, ``screen``, ``alias``, ``group``; ``POST /v1/<call>``
  or the analytics.js short paths ``/v1/t``, ``/v1/i``, ``/v1/p``, ``/v1/s``, ``/v1/a``, ``/v1/g``;
  ``/v1/batch`` (``/v1/b`` from analytics.js batching, ``/v1/import``) takes ``{"batch": [...],
  "context": {...}, "sentAt": ...}`` where the top-level ``context`` is merged into every call;
* ``messageId`` identifies a call (Segment deduplicates on it); the time is ``timestamp`` or
  ``originalTimestamp``, corrected for the device's clock skew with ``sentAt`` as Segment and
  RudderStack do: ``received - (sentAt - timestamp)``;
* ``context.campaign`` (UTM: ``name`` is the campaign), ``context.page`` (url, referrer, search,
  title), ``context.ip``, ``context.userAgent``, ``context.traits``, ``context.device``.

Mapping to svyaz: ``anonymousId``, ``userId`` and alias ``previousId`` become identifiers of the
kinds in :class:`TrackingKinds` (configurable); ``email`` / ``phone`` in ``traits`` or
``context.traits`` become identifiers; ``context.device`` ids become device identifiers;
``context.identifiers`` (a svyaz extension the svyaz.js tag uses for Metrica, GA and call-tracking
ids) adds identifiers by kind. Everything else a sender put in the call is kept under the event's
``properties`` (the call's own ``properties`` as they are, the rest under ``properties.call``):
unknown fields are kept, never refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from svyaz.channels import PRINTABLE_ASCII, ChannelError, build_event, clip
from svyaz.domain.events import MAX_PROPERTIES_BYTES, Context, Event

CALLS = ("track", "identify", "page", "screen", "alias", "group")
# Path below /v1/ -> call (None: a batch). The one-letter forms are analytics.js's.
PATHS: dict[str, str | None] = {
    **{call: call for call in CALLS},
    **{call[0]: call for call in CALLS},
    "batch": None,
    "b": None,
    "import": None,
}
# Top-level fields with a meaning here; any other field is kept under properties.call.
_HANDLED = {
    "type", "messageId", "anonymousId", "userId", "previousId", "properties", "traits", "context",
    "timestamp", "originalTimestamp", "sentAt", "receivedAt", "writeKey", "integrations",
}  # fmt: skip
_CONTEXT_HANDLED = {"campaign", "page", "ip", "userAgent", "traits", "identifiers"}
_TRAIT_NAMES = {
    "firstName": "first_name", "first_name": "first_name", "lastName": "last_name",
    "last_name": "last_name", "name": "name", "gender": "gender", "birthday": "birthday",
    "city": "city", "age": "age", "title": "title", "username": "username",
}  # fmt: skip
_IDENTIFIER_TRAITS = {"email": "email", "phone": "phone"}
_DEVICE_KINDS = {"id": "device_id", "advertisingId": "advertising_id", "token": "push_token"}
# Auto-tagged ad clicks: the click id alone says where the visit came from.
_CLICK_SOURCES = {"yclid": ("yandex", "cpc"), "gclid": ("google", "cpc")}
CLICK_IDS = ("yclid", "gclid", "fbclid")
_ISO_TIME = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$"
)
MAX_CLOCK_SKEW = timedelta(days=365)


def _fail(field: str, reason: str) -> ChannelError:
    """A sender's mistake in one field (the field is named in the 400 answer's details)."""
    return ChannelError(
        f"{field}: {reason}" if field else reason, details=[{"field": field, "reason": reason}]
    )


@dataclass(frozen=True)
class TrackingKinds:
    """Which identifier kind each Segment id field becomes (``SVYAZ_TRACKING_ID_KINDS``)."""

    anonymous_id: str = "client_id"
    user_id: str = "user_id"
    # An alias's previousId is usually the anonymous id the browser had before sign-up.
    previous_id: str = "client_id"

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, str]) -> TrackingKinds:
        fields = {"anonymousId": "anonymous_id", "userId": "user_id", "previousId": "previous_id"}
        unknown = set(mapping) - set(fields)
        if unknown:
            raise ValueError(f"unknown tracking id field(s) {sorted(unknown)}; use {sorted(fields)}")
        return cls(**{fields[name]: kind for name, kind in mapping.items()})


def call_for_path(path: str) -> tuple[bool, str | None]:
    """``/v1/track`` -> (True, "track"); ``/v1/batch`` -> (True, None); others -> (False, None)."""
    parts = path.strip("/").split("/")
    if parts[:1] == ["beacon"]:  # RudderStack's sendBeacon endpoint: /beacon/v1/batch
        parts = parts[1:]
    if len(parts) != 2 or parts[0] != "v1" or parts[1] not in PATHS:
        return False, None
    return True, PATHS[parts[1]]


def write_key_in_body(body: Any) -> str | None:
    """The ``writeKey`` analytics.js puts in the body (top level, or in each call of a batch)."""
    if not isinstance(body, dict):
        return None
    key = body.get("writeKey")
    batch = body.get("batch")
    if key is None and isinstance(batch, list) and batch and isinstance(batch[0], dict):
        key = batch[0].get("writeKey")
    return key if isinstance(key, str) else None


def calls_of(call: str | None, body: Any) -> tuple[list[Any], dict[str, Any], Any]:
    """The calls of a request, the batch-level context and the batch-level ``sentAt``."""
    if not isinstance(body, dict):
        raise _fail("", "the body must be a JSON object")
    if call is not None:
        return [{**body, "type": call}], {}, None
    batch = body.get("batch")
    if not isinstance(batch, list) or not batch:
        raise _fail("batch", "must be a non-empty list of calls")
    shared = body.get("context")
    return batch, shared if isinstance(shared, dict) else {}, body.get("sentAt")


def parse_request(
    call: str | None,
    body: Any,
    *,
    namespace: str,
    received_at: datetime,
    kinds: TrackingKinds = TrackingKinds(),
    write_key: str | None = None,
    max_call_bytes: int = 32 * 1024,
) -> list[Event]:
    """Every call of a request as a canonical event; one bad call refuses the whole request
    (``ChannelError`` whose details name ``batch[i].field``)."""
    items, shared_context, batch_sent_at = calls_of(call, body)
    events: list[Event] = []
    details: list[dict[str, str]] = []
    for index, item in enumerate(items):
        where = "" if call is not None else f"batch[{index}]."
        try:
            _check_call(item, write_key, max_call_bytes)
            events.append(call_event(item, shared_context, batch_sent_at, namespace, received_at, kinds))
        except ChannelError as exc:
            details.extend({"field": where + d["field"], "reason": d["reason"]} for d in exc.details)
    if details and call is not None:
        raise _fail(details[0]["field"], details[0]["reason"])
    if details:
        bad = len({d["field"].split(".")[0] for d in details})
        first = f"{details[0]['field']}: {details[0]['reason']}"
        reason = f"{bad} of {len(items)} calls are invalid; none was accepted (first: {first})"
        raise ChannelError(reason, details=details)
    return events


def _check_call(item: Any, write_key: str | None, max_call_bytes: int) -> None:
    """A call of a batch may not name another key, nor pass the per-call size of the SDKs' APIs."""
    if isinstance(item, dict) and write_key is not None and item.get("writeKey") not in (None, write_key):
        raise _fail("writeKey", "differs from the key the request is authenticated with")
    if len(json.dumps(item, default=str)) > max_call_bytes:
        raise _fail("", f"call larger than {max_call_bytes} bytes")


def call_event(
    item: Any,
    shared_context: Mapping[str, Any],
    batch_sent_at: Any,
    namespace: str,
    received_at: datetime,
    kinds: TrackingKinds,
) -> Event:
    """One Segment-spec call as a canonical event."""
    if not isinstance(item, dict):
        raise _fail("", "a call must be a JSON object")
    call = item.get("type")
    if call not in CALLS:
        raise _fail("type", f"must be one of {', '.join(CALLS)}")
    raw_context = item.get("context")
    context = {**shared_context, **(raw_context if isinstance(raw_context, dict) else {})}
    # Traits describe the person, except a group call's, which describe the company.
    user_traits = _object(item.get("traits")) if call != "group" else {}
    all_traits = {**_object(context.get("traits")), **user_traits}
    identifiers = _identifiers(item, context, all_traits, call, kinds)
    if not identifiers:
        raise _fail("anonymousId", "a call needs an anonymousId or a userId")
    traits, complex_traits = _traits(all_traits)
    return build_event(
        event_id=event_id(namespace, item),
        type=_event_type(call, item),
        timestamp=event_time(item, batch_sent_at, received_at),
        channel="web",
        identifiers=identifiers,
        traits=traits,
        context=_context(call, item, context),
        properties=_properties(call, item, context, complex_traits),
    )


def event_id(namespace: str, item: Mapping[str, Any]) -> str:
    """``<namespace>:<messageId>``: a sender can only ever collide with its own calls. Without a
    messageId (RudderStack's gateway fixtures have none) the call's content names it, so a
    retried identical call is still applied once."""
    message_id = item.get("messageId")
    if isinstance(message_id, str | int) and not isinstance(message_id, bool):
        text = str(message_id).strip()
        if text and len(text) <= 150 and PRINTABLE_ASCII.match(text):
            return f"{namespace}:{text}"
        return f"{namespace}:m-{hashlib.sha256(text.encode()).hexdigest()[:40]}"
    content = {k: v for k, v in item.items() if k not in ("sentAt", "writeKey", "receivedAt")}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()
    return f"{namespace}:h-{digest[:40]}"


def parse_time(value: Any, where: str) -> datetime:
    """An ISO-8601 time as the SDKs write it (Segment's own docs have ``2015-2-02T00:30:08.276Z``)."""
    match = _ISO_TIME.match(value.strip()) if isinstance(value, str) else None
    if not match:
        raise _fail(where, "expected an ISO-8601 time")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    offset = timedelta()
    if zone and zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        offset = -offset if zone[0] == "-" else offset
    try:
        naive = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro)
        return (naive - offset).replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise _fail(where, "not a valid date and time") from None


def event_time(item: Mapping[str, Any], batch_sent_at: Any, received_at: datetime) -> datetime:
    """The call's time on the server clock: ``received - (sentAt - time)`` when the device
    said when it sent the call (its clock may be wrong), the timestamp as given otherwise
    (historical imports), the receipt time when the call has none."""
    # originalTimestamp is the device's own clock by definition; SDKs that send only timestamp
    # (analytics.js, server libraries) mean the same by it.
    field = "originalTimestamp" if item.get("originalTimestamp") is not None else "timestamp"
    if item.get(field) is None:
        return received_at
    stamped = parse_time(item[field], field)
    sent_raw = item.get("sentAt") if item.get("sentAt") is not None else batch_sent_at
    if sent_raw is None:
        return stamped
    skew = parse_time(sent_raw, "sentAt") - stamped
    if abs(skew) > MAX_CLOCK_SKEW:  # a queue replayed after a year is kept at its own time
        return stamped
    return received_at - skew


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _add(identifiers: dict[str, list[str]], kind: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        return
    text = str(value).strip()
    if text and text not in identifiers.setdefault(kind, []):
        identifiers[kind].append(text[:512])


def _identifiers(
    item: Mapping[str, Any],
    context: Mapping[str, Any],
    traits: Mapping[str, Any],
    call: str,
    kinds: TrackingKinds,
) -> dict[str, list[str] | str]:
    found: dict[str, list[str]] = {}
    _add(found, kinds.anonymous_id, item.get("anonymousId"))
    _add(found, kinds.user_id, item.get("userId"))
    if call == "alias":
        _add(found, kinds.previous_id, item.get("previousId"))
    for trait, kind in _IDENTIFIER_TRAITS.items():
        _add(found, kind, traits.get(trait))
    for field, kind in _DEVICE_KINDS.items():
        _add(found, kind, _object(context.get("device")).get(field))
    for kind, values in _object(context.get("identifiers")).items():
        for value in values if isinstance(values, list) else [values]:
            _add(found, str(kind), value)
    return {kind: values[0] if len(values) == 1 else values for kind, values in found.items() if values}


def _traits(traits: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Scalar traits (reserved names in svyaz's snake case), and the rest (objects, lists)."""
    scalar: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for name, value in traits.items():
        if name in _IDENTIFIER_TRAITS or name in ("anonymousId", "userId"):
            continue
        if name == "address" and isinstance(value, dict) and isinstance(value.get("city"), str):
            scalar.setdefault("city", value["city"])
        if value is None or isinstance(value, str | int | float | bool):
            scalar[_TRAIT_NAMES.get(name, name)] = value
        else:
            other[name] = value
    return scalar, other


def _event_type(call: str, item: Mapping[str, Any]) -> str:
    """``track`` calls take their event's name (``lead``, ``Course Clicked`` -> ``course_clicked``);
    a name with no latin letters stays ``track``."""
    if call != "track":
        return call
    name = item.get("event")
    if not isinstance(name, str) or not name.strip():
        raise _fail("event", "a track call needs the event's name")
    slug = re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")[:40].rstrip("_")
    if not slug or not slug[0].isalpha():
        return "track"
    return slug


def _query_of(context: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, str]:
    """The page's query parameters (UTM, click ids), from the first place that has them."""
    page = _object(context.get("page"))
    for candidate in (page.get("search"), page.get("url"), properties.get("search"), properties.get("url")):
        if not isinstance(candidate, str):
            continue
        query = urlsplit(candidate).query if "://" in candidate else candidate.lstrip("?")
        if query:
            return dict(parse_qsl(query))
    return {}


def _campaign(context: Mapping[str, Any], query: Mapping[str, str]) -> dict[str, str | None]:
    """``context.campaign`` (UTM; ``name`` is the campaign), else the page URL's UTM parameters,
    else the ad network of an auto-tagged click."""
    campaign = _object(context.get("campaign"))
    fields = {"source": "source", "medium": "medium", "campaign": "name", "term": "term"}
    fields["content"] = "content"
    found = {ours: clip(campaign.get(theirs), 500) for ours, theirs in fields.items()}
    if not any(found.values()):
        found = {ours: clip(query.get(f"utm_{ours}"), 500) for ours in fields}
    if not found["source"]:
        for click, (source, medium) in _CLICK_SOURCES.items():
            if query.get(click) or campaign.get(click):
                found["source"], found["medium"] = source, found["medium"] or medium
                break
    found["source"], found["medium"] = clip(found["source"], 200), clip(found["medium"], 200)
    return found


def _context(call: str, item: Mapping[str, Any], context: Mapping[str, Any]) -> Context:
    page = _object(context.get("page"))
    properties = _object(item.get("properties")) if call in ("page", "screen") else {}
    return Context(
        **_campaign(context, _query_of(context, properties)),
        referrer=clip(page.get("referrer") or properties.get("referrer"), 2048),
        page_url=clip(page.get("url") or properties.get("url"), 2048),
        ip=clip(context.get("ip"), 64),
        user_agent=clip(context.get("userAgent"), 1024),
    )


def _properties(
    call: str, item: Mapping[str, Any], context: Mapping[str, Any], complex_traits: Mapping[str, Any]
) -> dict[str, Any]:
    """The call's own properties, and under ``call`` everything else it carried (kept, not
    refused); the extras go first when the total would pass the event's size limit."""
    properties = dict(_object(item.get("properties")))
    query = _query_of(context, properties)
    clicks = {name: query[name] for name in CLICK_IDS if query.get(name)}
    extras = {k: v for k, v in item.items() if k not in _HANDLED}
    extras["context"] = {k: v for k, v in context.items() if k not in _CONTEXT_HANDLED}
    if complex_traits:
        extras["traits"] = dict(complex_traits)
    if call == "group":  # the group's traits describe the company, not the person
        extras["group_traits"] = _object(item.get("traits"))
    if clicks:
        properties["click_ids"] = clicks
    properties["call"] = {k: v for k, v in extras.items() if v not in ({}, None)}
    if len(json.dumps(properties, default=str)) > MAX_PROPERTIES_BYTES:
        properties["call"] = {"truncated": True}
    return properties
