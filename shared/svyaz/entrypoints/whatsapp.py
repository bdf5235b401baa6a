"""``/webhooks/whatsapp``: the WhatsApp Business Cloud API webhook."""

from __future__ import annotations

import flask

from svyaz.app.runtime import Runtime
from svyaz.channels import whatsapp
from svyaz.entrypoints.http import HttpError, allow_methods, parse_json
from svyaz.entrypoints.webhook import BodySignature, receive

SIGNATURE = BodySignature(
    "whatsapp_app_secret", "WhatsApp app secret", "X-Hub-Signature-256", whatsapp.verify_signature
)


def _parse(request: flask.Request, raw: bytes, runtime: Runtime) -> list:
    return whatsapp.parse_webhook(parse_json(raw), runtime.settings.whatsapp_session_pattern)


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    allow_methods(request, "GET", "POST")
    if request.method == "GET":
        # Meta's verification handshake: echo the challenge when our verify token matches.
        token = runtime.settings.whatsapp_verify_token.get_secret_value()
        challenge = whatsapp.verify_handshake(request.args, token)
        if challenge is None:
            raise HttpError(403, "forbidden", "verification token does not match")
        return flask.Response(challenge, 200, mimetype="text/plain")
    # 200 only once the messages are queued: Meta retries anything else for a day, and the
    # message id makes each retry a duplicate the pipeline ignores.
    return receive(request, runtime, methods=("POST",), authentication=SIGNATURE, parse=_parse)
