"""The collect function: ``POST /collect`` (svyaz's canonical events, one or ``{"batch": [...]}``),
the Segment / RudderStack tracking API (``POST /v1/<call>``, ``/v1/batch``, analytics.js's short
paths, RudderStack's ``/beacon/v1/batch``) and the site tag ``GET /svyaz.js``; every event into
the events topic.

The write key is public (it ships in the site's pages): it only lets a sender append events,
each namespaced by the key so it can collide only with that key's own past events.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Any

import flask
from pydantic import ValidationError

from svyaz.app.runtime import Runtime
from svyaz.channels import ChannelError, tracking
from svyaz.domain.events import (
    Event,
    client_event_id,
    describe_validation_error,
    namespaced_event_id,
    sender_namespace,
)
from svyaz.domain.merge import InvalidEvent, observe
from svyaz.domain.validation import check_event_time
from svyaz.entrypoints import tag
from svyaz.entrypoints.http import (
    HttpError,
    allow_methods,
    answer_with,
    bearer_token,
    channel_error,
    cors_headers,
    json_response,
    key_matches,
    parse_json,
    publish,
    read_body,
    require_key,
    subpath,
)

MAX_CLIENT_EVENT_ID = 200

METHODS = "POST, OPTIONS"
PATHS = "/collect, /svyaz.js, /v1/<track|identify|page|screen|alias|group|batch>"


def _client_item(item: Any, namespace: str | None, now: datetime) -> dict[str, Any]:
    """The event object as the pipeline takes it: its id under the sender's namespace (None:
    the caller namespaced it already), the server's time when the client left it out. Raises
    ``ValueError`` for what cannot be."""
    if not isinstance(item, dict):
        raise ValueError("an event must be a JSON object")
    if namespace is not None:
        event_id = item.get("event_id")
        if not isinstance(event_id, str) or not 1 <= len(event_id) <= MAX_CLIENT_EVENT_ID:
            raise ValueError(f"event_id: 1-{MAX_CLIENT_EVENT_ID} printable ASCII characters required")
        item = {**item, "event_id": namespaced_event_id(namespace, event_id)}
    if "timestamp" not in item:
        item["timestamp"] = now  # browsers may leave the time to the server
    return item


def validate_events(
    items: list[Any], runtime: Runtime, namespace: str | None
) -> tuple[list[Event], list[dict[str, Any]]]:
    """Every event of the request, checked as the pipeline will check it (schema, storable
    values, time window, kinds, normalization), so a request is accepted whole or refused whole.
    ``namespace`` is the sender's (``domain.events.sender_namespace``): reusable by any entry
    point that takes client-made event ids."""
    events, errors, warnings = [], [], []
    now = datetime.now(UTC)
    for index, raw in enumerate(items):
        client_id = raw.get("event_id") if isinstance(raw, dict) else None
        try:
            item = _client_item(raw, namespace, now)
        except ValueError as exc:
            errors.append({"index": index, "errors": [{"field": "", "reason": str(exc)}]})
            continue
        try:
            event = Event.model_validate(item)
            if (reason := check_event_time(event, runtime.settings.time_window, now)) is not None:
                raise InvalidEvent(reason)
            dropped = observe(event, runtime.policy).dropped
        except ValidationError as exc:
            errors.append({"index": index, "event_id": client_id, "errors": describe_validation_error(exc)})
            continue
        except InvalidEvent as exc:
            field = "timestamp" if str(exc).startswith("timestamp") else "identifiers"
            errors.append(
                {"index": index, "event_id": client_id, "errors": [{"field": field, "reason": str(exc)}]}
            )
            continue
        events.append(event)
        if dropped:
            warnings.append({"event_id": client_id, "dropped": [d.as_dict() for d in dropped]})
    if errors:
        raise HttpError(
            400,
            "invalid_event",
            f"{len(errors)} of {len(items)} events are invalid; none was accepted",
            events=errors,
        )
    return events, warnings


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    path = subpath(request, "/collect")
    if path == "/svyaz.js":
        return tag.handle(request, runtime)
    cors = cors_headers(request, METHODS)
    # RudderStack's JS SDK sends the anonymous id in a header of its own.
    cors["Access-Control-Allow-Headers"] += ", AnonymousId"
    answer_with(cors)  # on errors too, or the browser hides them
    if request.method == "OPTIONS":
        return flask.Response(status=204, headers=cors)
    is_tracking, call = tracking.call_for_path(path)
    if is_tracking:
        return handle_tracking(request, runtime, call, cors)
    if path != "/":
        raise HttpError(404, "not_found", f"unknown path; the collect function serves {PATHS}")
    return handle_canonical(request, runtime, cors)


def handle_canonical(request: flask.Request, runtime: Runtime, cors: dict[str, str]) -> flask.Response:
    settings = runtime.settings
    allow_methods(request, "POST")
    key = require_key(request, settings.write_keys, "write key")
    body = parse_json(read_body(request, settings.max_body_bytes))
    items = body.get("batch") if isinstance(body, dict) and "batch" in body else [body]
    if not isinstance(items, list) or not items:
        raise HttpError(400, "invalid_event", "batch must be a non-empty list of events")
    if len(items) > settings.max_batch_events:
        raise HttpError(413, "too_large", f"at most {settings.max_batch_events} events per request")
    events, warnings = validate_events(items, runtime, sender_namespace(key))
    publish(runtime, events)
    body = {"accepted": [client_event_id(e.event_id) for e in events]}
    if warnings:
        body["warnings"] = warnings
    return json_response(body, 202, cors)


def handle_tracking(
    request: flask.Request, runtime: Runtime, call: str | None, cors: dict[str, str]
) -> flask.Response:
    """The Segment / RudderStack HTTP tracking API. Answers 200 ``{"success": true}`` as those
    APIs do (their server libraries treat anything else as a failure); a request is accepted
    whole or refused whole with a 4xx naming each bad call."""
    settings = runtime.settings
    allow_methods(request, "POST")
    limit = settings.max_body_bytes if call is None else settings.max_call_bytes
    body = parse_json(read_body(request, limit))
    key = tracking_write_key(request, body)
    if not settings.write_keys:
        raise HttpError(503, "not_configured", "no write key is configured on this service")
    if not key_matches(key, settings.write_keys):
        raise unauthorized("a valid write key is required (HTTP Basic user name, or writeKey in the body)")
    batch = body.get("batch") if call is None and isinstance(body, dict) else None
    if isinstance(batch, list) and len(batch) > settings.max_batch_events:
        raise HttpError(413, "too_large", f"at most {settings.max_batch_events} calls per batch")
    try:
        parsed = tracking.parse_request(
            call,
            body,
            namespace=key_namespace(key),
            received_at=datetime.now(UTC),
            kinds=settings.tracking_kinds,
            write_key=key,
            max_call_bytes=settings.max_call_bytes,
        )
    except ChannelError as exc:
        raise channel_error(exc) from None
    # The same checks as every /collect event (schema, kinds, normalization).
    events, warnings = validate_events([e.model_dump(mode="json") for e in parsed], runtime, None)
    publish(runtime, events)
    answer: dict[str, Any] = {"success": True, "accepted": len(events)}
    if warnings:
        answer["warnings"] = warnings
    return json_response(answer, 200, cors)


def tracking_write_key(request: flask.Request, body: Any) -> str | None:
    """The write key as the SDKs send it: HTTP Basic user name (Segment's and RudderStack's
    server libraries, RudderStack's JS SDK), ``writeKey`` in the body (analytics.js), the
    ``writeKey`` query parameter (RudderStack's beacon), or svyaz's own bearer header."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and encoded.strip():
        try:
            user, _, _ = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise unauthorized("the Basic authorization is not valid base64") from None
        return user
    return bearer_token(request) or tracking.write_key_in_body(body) or request.args.get("writeKey")


def unauthorized(reason: str) -> HttpError:
    error = HttpError(401, "unauthorized", reason)
    error.headers["WWW-Authenticate"] = 'Basic realm="svyaz"'
    return error


def key_namespace(key: str) -> str:
    """Event ids of a write key's calls start with this: a fingerprint, never the key itself
    (the same namespace as the key's ``/collect`` events: one sender, one namespace)."""
    return sender_namespace(key)
