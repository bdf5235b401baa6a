"""``/webhooks/crm``: CRM deals and store-till orders (one order or ``{"orders": [...]}``)."""

from __future__ import annotations

import flask

from svyaz.app.runtime import Runtime
from svyaz.channels import crm
from svyaz.entrypoints.http import parse_json
from svyaz.entrypoints.webhook import BearerKey, receive

KEY = BearerKey("crm_keys", "CRM key")


def _parse(request: flask.Request, raw: bytes, runtime: Runtime) -> list:
    return crm.parse_orders(parse_json(raw))


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    return receive(request, runtime, methods=("POST",), authentication=KEY, parse=_parse, status=202)
