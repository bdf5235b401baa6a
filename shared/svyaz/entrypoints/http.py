"""What every HTTP entry point shares: JSON answers, errors in one place, sender
authentication in constant time, body size caps, JSON parsing that refuses what could hurt
(too deep, invalid Unicode, NaN), CORS."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import flask
from werkzeug.exceptions import HTTPException

from svyaz.channels import secret_matches
from svyaz.domain.validation import load_json

log = logging.getLogger("svyaz.http")

JsonObject = dict[str, Any]


class HttpError(Exception):
    """An answer other than success. ``reason`` is shown to the sender: no personal data."""

    def __init__(self, status: int, error: str, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason, self.extra = status, error, reason, extra
        self.headers: dict[str, str] = {}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    try:
        text = json.dumps(body, ensure_ascii=False).encode()
    except (UnicodeEncodeError, ValueError, TypeError):
        # Never fail while answering: escaped ASCII holds whatever a sender's text was.
        text = json.dumps(body, ensure_ascii=True, default=str).encode()
    response = flask.Response(text, status=status, mimetype="application/json")
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
        except HTTPException as exc:  # the framework's own (a malformed body, say)
            return framework_error(exc)
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


def framework_error(exc: Exception) -> flask.Response:
    """Errors raised by Flask or Werkzeug around our handlers (unknown paths, malformed
    requests), as the same JSON answers: registered on every function's app by ``functions/main.py``."""
    cause = getattr(exc, "original_exception", None)
    if isinstance(cause, OSError):  # the framework draining a malformed (chunked) body after us
        return json_response({"error": "invalid_body", "reason": "the body could not be read"}, 400)
    if isinstance(exc, HTTPException) and exc.code is not None and exc.code < 500:
        error = (exc.name or "error").lower().replace(" ", "_")
        return json_response({"error": error, "reason": exc.name or "bad request"}, exc.code)
    log.error("unhandled error: %s", type(exc).__name__)
    return json_response({"error": "internal", "reason": "internal error"}, 500)


def require_path(request: flask.Request, *prefixes: str) -> None:
    """A function that serves exactly its paths (its own URL's ``/``, or a prefix behind the
    load balancer): any path below them is a JSON 404, never a silent accept."""
    if not any(subpath(request, prefix) == "/" for prefix in prefixes or ("/",)):
        raise HttpError(404, "not_found", f"unknown path; this function serves {', '.join(prefixes)}")


@functools.cache
def openapi_document() -> bytes:
    """The OpenAPI 3.1 description of the whole HTTP API (``entrypoints/openapi.json``, package
    data; ``tests/unit/test_openapi.py`` checks it against the code)."""
    from importlib.resources import files

    return files("svyaz.entrypoints").joinpath("openapi.json").read_bytes()


def openapi_response() -> flask.Response:
    response = flask.Response(openapi_document(), 200, mimetype="application/json")
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def bearer_token(request: flask.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def key_matches(given: str | None, keys: Iterable[str]) -> bool:
    """Constant-time comparison against every configured key (no early exit on a match)."""
    return matching_key(given, keys) is not None


def matching_key(given: str | None, keys: Iterable[str]) -> str | None:
    """The configured key ``given`` equals, compared in constant time against every key."""
    found = None
    for key in keys:
        if secret_matches(given, key):
            found = key
    return found


def require_key(request: flask.Request, keys: list[str], what: str) -> str:
    """The key the request authenticated with (for its sender namespace); else 503 / 401."""
    if not keys:
        raise HttpError(503, "not_configured", f"no {what} is configured on this service")
    key = matching_key(bearer_token(request), keys)
    if key is None:
        error = HttpError(401, "unauthorized", f"a valid {what} is required (Authorization: Bearer <key>)")
        error.headers["WWW-Authenticate"] = "Bearer"
        raise error
    return key


def read_body(request: flask.Request, limit: int) -> bytes:
    """The raw body, at most ``limit`` bytes (413 past it), whatever Content-Length claims."""
    if request.content_length is not None and request.content_length > limit:
        raise HttpError(413, "too_large", f"body larger than {limit} bytes")
    try:
        data = request.stream.read(limit + 1)
    except (HTTPException, OSError, ValueError) as exc:  # a malformed chunked body, a cut or stalled stream
        # What is left of it is never read again: the framework drains the body after every
        # answer (functions-framework's read_request), which would fail (and log a traceback)
        # a second time on the same broken stream.
        request._cached_data = b""
        raise HttpError(400, "invalid_body", f"the body could not be read: {type(exc).__name__}") from None
    if len(data) > limit:
        raise HttpError(413, "too_large", f"body larger than {limit} bytes")
    return data


def parse_json(data: bytes) -> Any:
    """The body as JSON, or a 400 (``validation.load_json``'s refusals: invalid JSON or UTF-8,
    ``NaN``/``Infinity``, nesting deeper than ``MAX_JSON_DEPTH``, invalid Unicode)."""
    if not data.strip():
        raise HttpError(400, "invalid_json", "the body is empty; JSON expected")
    try:
        return load_json(data)
    except ValueError as exc:
        raise HttpError(400, "invalid_json", f"the body: {exc}") from None


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


def publish(runtime: Any, events: list[Any], *, wait: bool = True, deadline: float | None = None) -> None:
    """Put events on the events topic; a queue that is down is a 503 the sender retries.
    ``wait=False`` hands them to the publisher's background batching; ``deadline`` waits for the
    broker at most that many seconds."""
    from svyaz.adapters.queue import QueueUnavailable, event_message

    messages = [event_message(e) for e in events]
    try:
        if deadline is not None:
            runtime.publisher.publish_within(runtime.settings.events_topic, messages, deadline)
        elif wait:
            runtime.publisher.publish(runtime.settings.events_topic, messages)
        else:
            runtime.publisher.publish_nowait(runtime.settings.events_topic, messages)
    except QueueUnavailable:
        error = HttpError(503, "queue_unavailable", "events could not be queued; retry later")
        error.headers["Retry-After"] = "5"
        raise error from None


def enqueue(
    runtime: Any, events: list[Any], *, wait: bool = True, deadline: float | None = None
) -> tuple[list[str], list[dict[str, str]]]:
    """Queue channel events. Events with nothing to stitch on are left out and reported (the
    sender gets 2xx: retrying would not help)."""
    from svyaz.domain.merge import InvalidEvent, observe
    from svyaz.domain.validation import check_event_time

    queued, ignored = [], []
    for event in events:
        try:
            observe(event, runtime.policy)
        except InvalidEvent as exc:
            ignored.append({"event_id": event.event_id, "reason": str(exc)})
            continue
        # Vendors retry a refused delivery for a day: an event outside the time window is
        # answered as ignored, with its reason, like one with nothing to stitch on.
        if (reason := check_event_time(event, runtime.settings.time_window)) is not None:
            ignored.append({"event_id": event.event_id, "reason": reason})
            continue
        queued.append(event)
    publish(runtime, queued, wait=wait, deadline=deadline)
    return [e.event_id for e in queued], ignored


def channel_error(exc: Exception) -> HttpError:
    """A parser's ``ChannelError`` as a 400 answer (its reason carries no personal data)."""
    return HttpError(
        400, "invalid_payload", getattr(exc, "reason", str(exc)), details=getattr(exc, "details", [])
    )
