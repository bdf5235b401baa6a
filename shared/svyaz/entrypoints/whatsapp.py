"""``/webhooks/whatsapp``: the WhatsApp Business Cloud API webhook."""

from __future__ import annotations

import flask

from svyaz.app.runtime import Runtime
from svyaz.channels import ChannelError, whatsapp
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
    allow_methods(request, "GET", "POST")
    if request.method == "GET":
        # Meta's verification handshake: echo the challenge when our verify token matches.
        challenge = whatsapp.verify_handshake(request.args, settings.whatsapp_verify_token.get_secret_value())
        if challenge is None:
            raise HttpError(403, "forbidden", "verification token does not match")
        return flask.Response(challenge, 200, mimetype="text/plain")
    secret = settings.whatsapp_app_secret.get_secret_value()
    if not secret:
        raise HttpError(503, "not_configured", "no WhatsApp app secret is configured")
    raw = read_body(request, settings.max_body_bytes)  # the signature covers the raw bytes
    if not whatsapp.verify_signature(raw, request.headers.get("X-Hub-Signature-256"), secret.encode()):
        raise HttpError(401, "unauthorized", "X-Hub-Signature-256 is missing or wrong")
    try:
        events = whatsapp.parse_webhook(parse_json(raw), settings.whatsapp_session_pattern)
    except ChannelError as exc:
        raise channel_error(exc) from None
    # Answer 200 only once the messages are safely queued: Meta retries anything else for a day,
    # and the message id makes each retry a duplicate the pipeline ignores.
    queued, ignored = enqueue(runtime, events)
    return json_response({"queued": queued, "ignored": ignored})
