"""``POST /collect``: web and app events, one or ``{"batch": [...]}``, into the events topic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import flask
from pydantic import ValidationError

from svyaz.app.runtime import Runtime
from svyaz.domain.events import Event, describe_validation_error
from svyaz.domain.merge import InvalidEvent, observe
from svyaz.entrypoints.http import (
    HttpError,
    allow_methods,
    answer_with,
    cors_headers,
    json_response,
    parse_json,
    publish,
    read_body,
    require_key,
)

METHODS = "POST, OPTIONS"


def validate_events(items: list[Any], runtime: Runtime) -> tuple[list[Event], list[dict[str, Any]]]:
    """Every event of the request, checked as the pipeline will check it (schema, kinds,
    normalization), so a request is accepted whole or refused whole."""
    events, errors, warnings = [], [], []
    now = datetime.now(UTC)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(
                {"index": index, "errors": [{"field": "", "reason": "an event must be a JSON object"}]}
            )
            continue
        if "timestamp" not in item:
            item = {**item, "timestamp": now}  # browsers may leave the time to the server
        try:
            event = Event.model_validate(item)
            dropped = observe(event, runtime.policy).dropped
        except ValidationError as exc:
            errors.append(
                {"index": index, "event_id": item.get("event_id"), "errors": describe_validation_error(exc)}
            )
            continue
        except InvalidEvent as exc:
            errors.append(
                {
                    "index": index,
                    "event_id": event.event_id,
                    "errors": [{"field": "identifiers", "reason": str(exc)}],
                }
            )
            continue
        events.append(event)
        if dropped:
            warnings.append({"event_id": event.event_id, "dropped": [d.as_dict() for d in dropped]})
    if errors:
        raise HttpError(
            400,
            "invalid_event",
            f"{len(errors)} of {len(items)} events are invalid; none was accepted",
            events=errors,
        )
    return events, warnings


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    settings = runtime.settings
    cors = answer_with(cors_headers(request, METHODS))  # on errors too, or the browser hides them
    if request.method == "OPTIONS":
        return flask.Response(status=204, headers=cors)
    allow_methods(request, "POST")
    require_key(request, settings.write_keys, "write key")
    body = parse_json(read_body(request, settings.max_body_bytes))
    items = body.get("batch") if isinstance(body, dict) and "batch" in body else [body]
    if not isinstance(items, list) or not items:
        raise HttpError(400, "invalid_event", "batch must be a non-empty list of events")
    if len(items) > settings.max_batch_events:
        raise HttpError(413, "too_large", f"at most {settings.max_batch_events} events per request")
    events, warnings = validate_events(items, runtime)
    publish(runtime, events)
    body = {"accepted": [e.event_id for e in events]}
    if warnings:
        body["warnings"] = warnings
    return json_response(body, 202, cors)
