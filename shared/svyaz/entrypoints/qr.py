"""``GET /qr/<code>``: the landing of a QR code or NFC card printed in a store.

The shopper waits on this request, so nothing here touches Firestore; the scan is published
before the answer, waiting at most ``SVYAZ_QR_PUBLISH_DEADLINE_SECONDS`` for Pub/Sub (0: in the
background, for an always-allocated CPU); the stitching happens in the pipeline. The redirect target
comes only from the signed code (and the allow-list): never an open redirect.
"""

from __future__ import annotations

import html
import logging
import time
import uuid
from datetime import UTC, datetime

import flask

from svyaz.app.runtime import Runtime
from svyaz.channels import ChannelError, qr
from svyaz.entrypoints.http import HttpError, allow_methods, enqueue, subpath

log = logging.getLogger("svyaz.qr")
COOKIE_MAX_AGE = 2 * 365 * 24 * 3600
VISITOR_ID_LENGTH = 32


def _page(status: int, title: str, text: str) -> flask.Response:
    body = (
        "<!doctype html><html lang='ru'><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        "<body style='font-family:sans-serif;max-width:32em;margin:3em auto'>"
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    response = flask.Response(body, status, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    return response


def _visitor_id(request: flask.Request, cookie_name: str) -> tuple[str, bool]:
    """svyaz's own first-party id: the cookie's if it looks like one of ours, else a new one."""
    current = request.cookies.get(cookie_name, "")
    if len(current) == VISITOR_ID_LENGTH and all(c in "0123456789abcdef" for c in current):
        return current, False
    return uuid.uuid4().hex, True


def handle(request: flask.Request, runtime: Runtime) -> flask.Response:
    settings = runtime.settings
    try:
        allow_methods(request, "GET", "HEAD")
    except HttpError:
        response = _page(405, "Метод не поддерживается", "Откройте эту ссылку в браузере.")
        response.headers["Allow"] = "GET, HEAD"
        return response
    token = subpath(request, "/qr").strip("/")
    key = settings.qr_signing_key.get_secret_value().encode()
    try:
        code = qr.verify_code(token, key, time.time(), allowed_hosts=settings.qr_allowed_hosts)
    except qr.InvalidQrCode as exc:
        expired = "expired" in exc.reason
        return _page(
            410 if expired else 404,
            "Код устарел" if expired else "Код не найден",
            "Срок действия кода истёк."
            if expired
            else "Код недействителен. Отсканируйте код в магазине ещё раз.",
        )
    if request.method == "HEAD":
        # Link previewers and scanners probe with HEAD: no visit, no cookie, no profile.
        return flask.redirect(code.target, 302)
    visitor, new_visitor = _visitor_id(request, settings.cookie_name)
    scan_id = uuid.uuid4().hex
    try:
        event = qr.landing_event(code, request.cookies, visitor, datetime.now(UTC), scan_id)
        # Published before the answer: a platform that throttles CPU once the response is sent
        # (Cloud Run functions without always-allocated CPU) could delay or lose a background
        # publish. A broker slower than the deadline costs the scan, never the redirect.
        deadline = settings.qr_publish_deadline_seconds
        enqueue(runtime, [event], wait=False, deadline=deadline if deadline > 0 else None)
    except (ChannelError, HttpError) as exc:
        # The shopper still gets where the code leads; the lost scan is logged (no personal data).
        log.error(
            "qr scan not recorded: %s",
            type(exc).__name__,
            extra={"svyaz": {"store_id": code.store_id, "scan_id": scan_id}},
        )
    response = flask.redirect(code.target, 302)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token stays out of the target's logs
    if new_visitor:
        response.set_cookie(
            settings.cookie_name,
            visitor,
            max_age=COOKIE_MAX_AGE,
            secure=True,
            httponly=True,
            samesite="Lax",
            domain=settings.cookie_domain,
        )
    return response
