"""``/webhooks/crm``: CRM deals and store-till orders (one order or ``{"orders": [...]}``)."""

from __future__ import annotations

import flask

from svyaz.app.runtime import Runtime
from svyaz.channels import ChannelError, crm
from svyaz.entrypoints.http import (
    allow_methods,
    channel_error,
    enqueue,
    json_response,
    parse_json,
    read_body,
    require_key,
)


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    settings = runtime.settings
    allow_methods(request, "POST")
    require_key(request, settings.crm_keys, "CRM key")
    try:
        events = crm.parse_orders(parse_json(read_body(request, settings.max_body_bytes)))
    except ChannelError as exc:
        raise channel_error(exc) from None
    queued, ignored = enqueue(runtime, events)
    return json_response({"queued": queued, "ignored": ignored}, 202)
