"""``/webhooks/calltracking``: call notifications from Calltouch, UIS/CoMagic and peers (GET query
string, URL-encoded form or JSON), authenticated by a secret token in the URL or a header.

The vendor preset (field names, event-id namespace) is the deployment's
``SVYAZ_CALLTRACKING_VENDOR``, or the URL's: ``/webhooks/calltracking/calltouch``,
``/webhooks/calltracking/uis``, ``/webhooks/calltracking/generic``. Mango Office signs its events
and has its own function (``/webhooks/calltracking/mango``, ``svyaz.entrypoints.mango``)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import flask

from svyaz.app.runtime import Runtime
from svyaz.channels import calltracking
from svyaz.entrypoints.http import HttpError, parse_json, subpath
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


PREFIX = "/webhooks/calltracking"


def vendor(request: flask.Request, default: str) -> str:
    """The preset named by the URL (``/<vendor>`` below the prefix), else the deployment's."""
    below = subpath(request, PREFIX).strip("/")
    if not below:
        return default
    if below not in calltracking.PRESETS:
        known = ", ".join(f"{PREFIX}/{name}" for name in sorted(calltracking.PRESETS))
        raise HttpError(404, "not_found", f"unknown call-tracking vendor in the path; use {known}")
    return below


def _parse(request: flask.Request, raw: bytes, runtime: Runtime) -> list:
    settings = runtime.settings
    field_map, namespace = calltracking.preset(
        vendor(request, settings.calltracking_vendor), settings.calltracking_field_map
    )
    # The vendor's call id is the event id (namespaced per vendor): redeliveries dedupe.
    event = calltracking.parse_call(
        _fields(request, raw),
        field_map,
        local_tz=ZoneInfo(settings.calltracking_timezone),
        namespace=namespace,
        number_sources=settings.calltracking_number_sources,
    )
    return [event]


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    vendor(request, runtime.settings.calltracking_vendor)  # an unknown vendor is 404 before anything
    return receive(request, runtime, methods=("GET", "POST"), authentication=TOKEN, parse=_parse)
