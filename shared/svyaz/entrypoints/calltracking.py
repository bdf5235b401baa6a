"""``/webhooks/calltracking``: call notifications from Calltouch and peers (GET query string,
URL-encoded form or JSON), authenticated by a secret token in the URL or a header."""

from __future__ import annotations

import flask

from svyaz.app.runtime import Runtime
from svyaz.channels import ChannelError, calltracking
from svyaz.entrypoints.http import (
    HttpError,
    allow_methods,
    channel_error,
    enqueue,
    json_response,
    parse_json,
    read_body,
)

TOKEN_HEADER = "X-Svyaz-Token"  # noqa: S105 - a header name, not a secret


def _fields(request: flask.Request, limit: int) -> dict[str, str]:
    fields = {k: v for k, v in request.args.items() if k != "token"}
    if request.method == "POST":
        raw = read_body(request, limit)
        if request.mimetype == "application/json":
            body = parse_json(raw)
            if not isinstance(body, dict):
                raise HttpError(400, "invalid_payload", "a call notification must be a JSON object")
            fields.update({k: v for k, v in body.items() if k != "token"})
        elif raw:
            from urllib.parse import parse_qsl

            try:
                pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=200)
            except (UnicodeDecodeError, ValueError):
                raise HttpError(400, "invalid_payload", "the form body is not valid URL encoding") from None
            fields.update({k: v for k, v in pairs if k != "token"})
    return fields


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    settings = runtime.settings
    allow_methods(request, "GET", "POST")
    expected = settings.calltracking_token.get_secret_value()
    if not expected:
        raise HttpError(503, "not_configured", "no call-tracking token is configured")
    given = request.headers.get(TOKEN_HEADER) or request.args.get("token")
    if not calltracking.verify_token(given, expected):
        raise HttpError(401, "unauthorized", f"a valid token is required (?token= or {TOKEN_HEADER})")
    try:
        field_map = {**calltracking.DEFAULT_FIELD_MAP, **settings.calltracking_field_map}
        event = calltracking.parse_call(_fields(request, settings.max_body_bytes), field_map)
    except ChannelError as exc:
        raise channel_error(exc) from None
    queued, ignored = enqueue(runtime, [event])  # callId is the event id: redeliveries dedupe
    return json_response({"queued": queued, "ignored": ignored})
