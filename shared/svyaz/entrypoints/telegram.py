"""``/webhooks/telegram``: Telegram bot updates (``/start <session id>`` deep links)."""

from __future__ import annotations

import flask

from svyaz.app.runtime import Runtime
from svyaz.channels import telegram
from svyaz.entrypoints.http import HttpError, parse_json
from svyaz.entrypoints.webhook import SharedSecret, receive

SECRET = SharedSecret(
    "telegram_secret_token", "Telegram secret token", header="X-Telegram-Bot-Api-Secret-Token"
)


def _parse(request: flask.Request, raw: bytes, runtime: Runtime) -> list:
    update = parse_json(raw)
    if not isinstance(update, dict):
        raise HttpError(400, "invalid_payload", "an update must be a JSON object")
    # update_id is the event id: Telegram's redeliveries are duplicates the pipeline ignores.
    event = telegram.parse_update(update)
    return [event] if event else []


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    return receive(request, runtime, methods=("POST",), authentication=SECRET, parse=_parse)
