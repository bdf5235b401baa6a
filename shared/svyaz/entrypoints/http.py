"""What every HTTP entry point shares: JSON answers, errors in one place, sender
authentication in constant time, body size caps, CORS."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import flask

from svyaz.channels import secret_matches

log = logging.getLogger("svyaz.http")

JsonObject = dict[str, Any]


class HttpError(Exception):
    """An answer other than success. ``reason`` is shown to the sender: no personal data."""

    def __init__(self, status: int, error: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason, self.extra = status, error, reason, extra
        self.headers: dict[str, str] = {}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    response = flask.Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def answer_with(headers: dict[str, str]) -> dict[str, str]:
    """Headers every answer of this request carries, errors included (CORS: without them a
    browser hides the error from the page). Returns them for the success answer."""
    flask.g.svyaz_answer_headers = headers
    return headers


def endpoint(handler: Callable[[flask.Request], flask.Response]) -> Callable[[flask.Request], flask.Response]:
    """Errors in one place: ``HttpError`` becomes its JSON answer; anything else is logged with
    its stack (the exception's message is left out: it may quote personal data) and answered 500
    without details."""

    @functools.wraps(handler)
    def wrapped(request: flask.Request) -> flask.Response:
        try:
            return handler(request)
        except HttpError as exc:
            body = {"error": exc.error, "reason": exc.reason, **exc.extra}
            return json_response(body, exc.status, {**_answer_headers(), **exc.headers})
        except Exception:
            log.exception("unhandled error in %s", handler.__name__)
            return json_response({"error": "internal", "reason": "internal error"}, 500, _answer_headers())

    return wrapped


def background(handler: Callable[..., None]) -> Callable[..., None]:
    """The same for an event-triggered function: a failure is logged with its stack and raised
    again, so the platform redelivers the message (poison messages are acknowledged inside)."""

    @functools.wraps(handler)
    def wrapped(*args: Any) -> None:
        try:
            handler(*args)
        except Exception:
            log.exception("delivery failed in %s; it will be redelivered", handler.__name__)
            raise

    return wrapped


def _answer_headers() -> dict[str, str]:
    return getattr(flask.g, "svyaz_answer_headers", {}) if flask.has_request_context() else {}


def bearer_token(request: flask.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def key_matches(given: str | None, keys: Iterable[str]) -> bool:
    """Constant-time comparison against every configured key (no early exit on a match)."""
    matched = False
    for key in keys:
        matched |= secret_matches(given, key)
    return matched


def require_key(request: flask.Request, keys: list[str], what: str) -> None:
    if not keys:
        raise HttpError(503, "not_configured", f"no {what} is configured on this service")
    if not key_matches(bearer_token(request), keys):
        error = HttpError(401, "unauthorized", f"a valid {what} is required (Authorization: Bearer <key>)")
        error.headers["WWW-Authenticate"] = "Bearer"
        raise error


def read_body(request: flask.Request, limit: int) -> bytes:
    """The raw body, at most ``limit`` bytes (413 past it), whatever Content-Length claims."""
    if request.content_length is not None and request.content_length > limit:
        raise HttpError(413, "too_large", f"body larger than {limit} bytes")
    data = request.stream.read(limit + 1)
    if len(data) > limit:
        raise HttpError(413, "too_large", f"body larger than {limit} bytes")
    return data


def parse_json(data: bytes) -> Any:
    if not data.strip():
        raise HttpError(400, "invalid_json", "the body is empty; JSON expected")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise HttpError(400, "invalid_json", f"the body is not valid JSON: {type(exc).__name__}") from None


def allow_methods(request: flask.Request, *methods: str) -> None:
    if request.method not in methods:
        error = HttpError(405, "method_not_allowed", f"use {' or '.join(methods)}")
        error.headers["Allow"] = ", ".join(methods)
        raise error


def cors_headers(request: flask.Request, methods: str) -> dict[str, str]:
    """Browsers post events from the customer's own site: any origin may send, no cookies
    (credentials are not allowed, so the write key alone authenticates)."""
    return {
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": methods,
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "3600",
    }


def subpath(request: flask.Request, prefix: str) -> str:
    """The path below this function's prefix: the same handler serves ``/profiles/x`` behind a
    load balancer and ``/x`` on the function's own URL."""
    path = request.path or "/"
    if path == prefix or path.startswith(prefix + "/"):
        path = path[len(prefix) :]
    return path or "/"


def publish(runtime: Any, events: list[Any], *, wait: bool = True) -> None:
    """Put events on the events topic; a queue that is down is a 503 the sender retries.
    ``wait=False`` hands them to the publisher's background batching."""
    from svyaz.adapters.queue import QueueUnavailable, event_message

    messages = [event_message(e) for e in events]
    try:
        if wait:
            runtime.publisher.publish(runtime.settings.events_topic, messages)
        else:
            runtime.publisher.publish_nowait(runtime.settings.events_topic, messages)
    except QueueUnavailable:
        error = HttpError(503, "queue_unavailable", "events could not be queued; retry later")
        error.headers["Retry-After"] = "5"
        raise error from None


def enqueue(runtime: Any, events: list[Any], *, wait: bool = True) -> tuple[list[str], list[dict[str, str]]]:
    """Queue channel events. Events with nothing to stitch on are left out and reported (the
    sender gets 2xx: retrying would not help)."""
    from svyaz.domain.merge import InvalidEvent, observe

    queued, ignored = [], []
    for event in events:
        try:
            observe(event, runtime.policy)
        except InvalidEvent as exc:
            ignored.append({"event_id": event.event_id, "reason": str(exc)})
            continue
        queued.append(event)
    publish(runtime, queued, wait=wait)
    return [e.event_id for e in queued], ignored


def channel_error(exc: Exception) -> HttpError:
    """A parser's ``ChannelError`` as a 400 answer (its reason carries no personal data)."""
    return HttpError(
        400, "invalid_payload", getattr(exc, "reason", str(exc)), details=getattr(exc, "details", [])
    )
