"""``/webhooks/calltracking/mango``: Mango Office VPBX API Realtime events.

Mango posts ``vpbx_api_key``, ``sign`` and ``json`` as a form to ``<this URL>/events/<name>``;
the signature (SHA-256 of key + json + salt) is checked over the ``json`` value exactly as sent,
in constant time, before the event is read. Only ``events/summary`` records a call
(``svyaz.channels.mango``); every other event is answered 200 and recorded nowhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

import flask

from svyaz.app.config import Settings
from svyaz.app.runtime import Runtime
from svyaz.channels import mango
from svyaz.entrypoints.http import HttpError, subpath
from svyaz.entrypoints.webhook import configured_secret, receive

PREFIX = "/webhooks/calltracking/mango"


def form(raw: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "invalid_payload", "the body is not an URL-encoded form") from None
    return dict(pairs)


@dataclass(frozen=True)
class MangoSignature:
    """``vpbx_api_key`` equals ours and ``sign`` is SHA-256(key + json + salt)."""

    def verify(self, request: flask.Request, raw: bytes, settings: Settings) -> None:
        key = configured_secret(settings, "mango_api_key", "Mango API key")
        salt = configured_secret(settings, "mango_api_salt", "Mango API salt")
        if not mango.verify_form(form(raw), key, salt):
            raise HttpError(401, "unauthorized", "vpbx_api_key or sign is missing or wrong")


def _parse(request: flask.Request, raw: bytes, runtime: Runtime) -> list:
    name = mango.event_name(subpath(request, PREFIX))
    event = mango.parse_event(name, form(raw), runtime.settings.calltracking_number_sources)
    return [event] if event else []


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    return receive(request, runtime, methods=("POST",), authentication=MangoSignature(), parse=_parse)
