"""``/webhooks/crm/amocrm/<secret>`` and ``/webhooks/crm/bitrix24/<secret>``: deal webhooks.

Their webhook settings take only a URL, so the sender proves itself with a secret in the URL path
(or ``?key=``), compared in constant time; Bitrix24 also sends the outgoing webhook's
``auth[application_token]``, which must match too. The body is the CRM's PHP-style form and
names deal ids only: each deal and its contacts are read back from the CRM's REST API
(``svyaz.adapters.crm_api``) and become an order (``svyaz.channels.crm_deals``).

Answers: ``200 {"accepted", "ignored"}`` once queued (a deal the CRM no longer has, or one whose
contacts have no phone or e-mail, is listed in ``ignored``: retrying cannot help); ``503`` with
``Retry-After`` when the CRM's API cannot be read now, so the CRM delivers the webhook again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import flask

from svyaz.adapters.crm_api import AmoCrmClient, Bitrix24Client, CrmUnavailable, DealNotFound
from svyaz.app.config import Settings
from svyaz.app.runtime import Runtime
from svyaz.channels import ChannelError, crm_deals, secret_matches
from svyaz.domain.events import Event
from svyaz.entrypoints.http import HttpError, allow_methods, channel_error, enqueue, read_body, subpath
from svyaz.entrypoints.webhook import accepted_response, configured_secret

AMOCRM_PREFIX = "/webhooks/crm/amocrm"
BITRIX24_PREFIX = "/webhooks/crm/bitrix24"


def php_form(raw: bytes) -> dict[str, Any]:
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=crm_deals.MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "invalid_payload", "the body is not an URL-encoded form") from None
    try:
        return crm_deals.parse_php_form(pairs)
    except ChannelError as exc:
        raise channel_error(exc) from None


@dataclass(frozen=True)
class UrlSecret:
    """The secret as the last path segment below ``prefix``, or ``?key=``."""

    setting: str
    what: str
    prefix: str

    def verify(self, request: flask.Request, settings: Settings) -> None:
        expected = configured_secret(settings, self.setting, self.what)
        given = subpath(request, self.prefix).strip("/") or request.args.get("key")
        if not secret_matches(given, expected):
            raise HttpError(401, "unauthorized", f"a valid {self.what} is required in the URL")


def _deal_events(
    deal_ids: list[str], fetch: Callable[[str], tuple[dict, list[dict]]], build: Callable[..., Event]
) -> tuple[list[Event], list[dict[str, str]]]:
    events, ignored = [], []
    for deal_id in deal_ids:
        try:
            deal, contacts = fetch(deal_id)
            events.append(build(deal, contacts))
        except DealNotFound:
            ignored.append({"deal_id": deal_id, "reason": "the CRM has no such deal"})
        except ChannelError as exc:
            ignored.append({"deal_id": deal_id, "reason": exc.reason})
        except CrmUnavailable:
            error = HttpError(503, "crm_unavailable", "the CRM's API could not be read; retry later")
            error.headers["Retry-After"] = "30"
            raise error from None
    return events, ignored


def _answer(runtime: Runtime, events: list[Event], ignored: list[dict[str, str]]) -> flask.Response:
    accepted, not_linked = enqueue(runtime, events)
    return accepted_response(accepted, not_linked + ignored)


AMOCRM_SECRET = UrlSecret("amocrm_webhook_secret", "amoCRM webhook secret", AMOCRM_PREFIX)
BITRIX24_SECRET = UrlSecret("bitrix24_webhook_secret", "Bitrix24 webhook secret", BITRIX24_PREFIX)


def handle_amocrm(request: flask.Request, runtime: Runtime) -> flask.Response:
    settings = runtime.settings
    allow_methods(request, "POST")
    raw = read_body(request, settings.max_body_bytes)
    AMOCRM_SECRET.verify(request, settings)
    base_url = configured_secret(settings, "amocrm_base_url", "amoCRM account URL")
    token = configured_secret(settings, "amocrm_token", "amoCRM API token")
    try:
        deal_ids = crm_deals.amocrm_deal_ids(php_form(raw))
    except ChannelError as exc:
        raise channel_error(exc) from None
    client = AmoCrmClient(base_url, token, settings.crm_api_timeout_seconds)
    return _answer(runtime, *_deal_events(deal_ids, client.deal, crm_deals.amocrm_order))


def handle_bitrix24(request: flask.Request, runtime: Runtime) -> flask.Response:
    settings = runtime.settings
    allow_methods(request, "POST")
    raw = read_body(request, settings.max_body_bytes)
    BITRIX24_SECRET.verify(request, settings)
    application_token = configured_secret(
        settings, "bitrix24_application_token", "Bitrix24 application token"
    )
    form = php_form(raw)
    if not secret_matches(crm_deals.bitrix_application_token(form), application_token):
        raise HttpError(401, "unauthorized", "auth[application_token] is missing or wrong")
    rest_url = configured_secret(settings, "bitrix24_rest_url", "Bitrix24 REST URL")
    try:
        deal_id = crm_deals.bitrix_deal_id(form)
    except ChannelError as exc:
        raise channel_error(exc) from None
    if deal_id is None:
        return accepted_response([], [])  # not a deal change (another event on the same handler)
    client = Bitrix24Client(rest_url, settings.crm_api_timeout_seconds)
    return _answer(runtime, *_deal_events([deal_id], client.deal, crm_deals.bitrix_order))
