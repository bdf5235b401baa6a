"""``/webhooks/calltracking``: call notifications from Calltouch and peers (GET query string,
URL-encoded form or JSON), authenticated by a secret token in the URL or a header."""

from __future__ import annotations

import flask

from svyaz.app.runtime import Runtime
from svyaz.channels import calltracking
from svyaz.entrypoints.http import HttpError, parse_json
from svyaz.entrypoints.webhook import SharedSecret, receive

TOKEN_HEADER = "X-Svyaz-Token"  # noqa: S105 - a header name, not a secret


def _fields(request: flask.Request, raw: bytes) -> dict[str, str]:
    fields = {k: v for k, v in request.args.items() if k != "token"}
    if request.method == "POST":
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


TOKEN = SharedSecret("calltracking_token", "call-tracking token", header=TOKEN_HEADER, param="token")


def _parse(request: flask.Request, raw: bytes, runtime: Runtime) -> list:
    settings = runtime.settings
    field_map = {**calltracking.DEFAULT_FIELD_MAP, **settings.calltracking_field_map}
    # callId is the event id: redeliveries dedupe
    return [calltracking.parse_call(_fields(request, raw), field_map)]


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    return receive(request, runtime, methods=("GET", "POST"), authentication=TOKEN, parse=_parse)
