"""``/webhooks/telegram``: Telegram bot updates (``/start <session id>`` deep links)."""

from __future__ import annotations

import flask

from svyaz.app.runtime import Runtime
from svyaz.channels import ChannelError, telegram
from svyaz.entrypoints.http import (
    HttpError,
    allow_methods,
    channel_error,
    enqueue,
    json_response,
    parse_json,
    read_body,
)


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    settings = runtime.settings
    allow_methods(request, "POST")
    secret = settings.telegram_secret_token.get_secret_value()
    if not secret:
        raise HttpError(503, "not_configured", "no Telegram secret token is configured")
    if not telegram.verify_secret(request.headers.get("X-Telegram-Bot-Api-Secret-Token"), secret):
        raise HttpError(401, "unauthorized", "X-Telegram-Bot-Api-Secret-Token is missing or wrong")
    update = parse_json(read_body(request, settings.max_body_bytes))
    if not isinstance(update, dict):
        raise HttpError(400, "invalid_payload", "an update must be a JSON object")
    try:
        event = telegram.parse_update(update)
    except ChannelError as exc:
        raise channel_error(exc) from None
    # update_id is the event id: Telegram's redeliveries are duplicates the pipeline ignores.
    queued, ignored = enqueue(runtime, [event] if event else [])
    return json_response({"queued": queued, "ignored": ignored})
