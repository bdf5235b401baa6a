"""``/webhooks/crm/amocrm/<secret>`` and ``/webhooks/crm/bitrix24``: deal webhooks.

How each sender proves itself is what its vendor allows:

* Bitrix24 sends ``auth[application_token]`` (the outgoing webhook's token) and ``auth[domain]``
  (the portal) in the body of every event, so the handler URL carries no secret: the token is
  compared in constant time and the portal must be the one of ``SVYAZ_BITRIX24_REST_URL``
  (https://apidocs.bitrix24.com/api-reference/events/safe-event-handlers.html,
  https://apidocs.bitrix24.com/api-reference/crm/deals/events/on-crm-deal-update.html). The old
  URL ``/webhooks/crm/bitrix24/<secret>`` (or ``?key=``) is still accepted when its secret is
  ``SVYAZ_BITRIX24_WEBHOOK_SECRET``: deprecated, the secret lands in request logs.
* amoCRM's account webhooks are neither signed nor given headers: their settings are a URL and
  the events (https://www.amocrm.ru/developers/content/crm_platform/webhooks-format; only its
  chat webhooks carry an ``X-Signature``), so the secret stays the last path segment (or
  ``?key=``), a capability URL that svyaz never logs (``registry.loggable_path``). The body's
  ``account[subdomain]`` must also be the account of ``SVYAZ_AMOCRM_BASE_URL``.

The body is the CRM's PHP-style form and names deal ids only: each deal and its contacts are read
back from the CRM's REST API (``svyaz.adapters.crm_api``) and become an order
(``svyaz.channels.crm_deals``).

Answers: ``200 {"accepted", "ignored"}`` once queued (a deal the CRM no longer has, or one whose
contacts have no phone or e-mail, is listed in ``ignored``: retrying cannot help); ``401`` for a
missing or wrong secret or token; ``403`` for another account or portal; ``503`` with
``Retry-After`` when the CRM's API cannot be read now, so the CRM delivers the webhook again.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger(__name__)

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

    def given(self, request: flask.Request) -> str | None:
        return subpath(request, self.prefix).strip("/") or request.args.get("key") or None

    def verify(self, request: flask.Request, settings: Settings) -> None:
        expected = configured_secret(settings, self.setting, self.what)
        if not secret_matches(self.given(request), expected):
            raise HttpError(401, "unauthorized", f"a valid {self.what} is required in the URL")

    def verify_if_given(self, request: flask.Request, settings: Settings) -> None:
        """The deprecated form: no secret is fine; one that is given must be the configured one."""
        given = self.given(request)
        if given is None:
            return
        if not secret_matches(given, getattr(settings, self.setting).get_secret_value()):
            raise HttpError(
                401, "unauthorized", f"the URL holds no valid {self.what} (deprecated: use {self.prefix})"
            )
        log.warning("a delivery used the deprecated %s in the URL; use %s", self.what, self.prefix)


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
# Deprecated: Bitrix24 authenticates by its application token; old URLs with a secret still work.
BITRIX24_SECRET = UrlSecret("bitrix24_webhook_secret", "Bitrix24 webhook secret", BITRIX24_PREFIX)


def handle_amocrm(request: flask.Request, runtime: Runtime) -> flask.Response:
    settings = runtime.settings
    allow_methods(request, "POST")
    raw = read_body(request, settings.max_body_bytes)
    AMOCRM_SECRET.verify(request, settings)
    base_url = configured_secret(settings, "amocrm_base_url", "amoCRM account URL")
    token = configured_secret(settings, "amocrm_token", "amoCRM API token")
    form = php_form(raw)
    if not crm_deals.amocrm_account_matches(form, base_url):
        raise HttpError(
            403, "forbidden", "account[subdomain] is not the amoCRM account of SVYAZ_AMOCRM_BASE_URL"
        )
    try:
        deal_ids = crm_deals.amocrm_deal_ids(form)
    except ChannelError as exc:
        raise channel_error(exc) from None
    client = AmoCrmClient(base_url, token, settings.crm_api_timeout_seconds)
    return _answer(runtime, *_deal_events(deal_ids, client.deal, crm_deals.amocrm_order))


def handle_bitrix24(request: flask.Request, runtime: Runtime) -> flask.Response:
    settings = runtime.settings
    allow_methods(request, "POST")
    raw = read_body(request, settings.max_body_bytes)
    BITRIX24_SECRET.verify_if_given(request, settings)
    application_token = configured_secret(
        settings, "bitrix24_application_token", "Bitrix24 application token"
    )
    form = php_form(raw)
    if not secret_matches(crm_deals.bitrix_application_token(form), application_token):
        raise HttpError(401, "unauthorized", "auth[application_token] is missing or wrong")
    rest_url = configured_secret(settings, "bitrix24_rest_url", "Bitrix24 REST URL")
    if not crm_deals.bitrix_portal_matches(form, rest_url):
        raise HttpError(
            403, "forbidden", "auth[domain] is not the Bitrix24 portal of SVYAZ_BITRIX24_REST_URL"
        )
    try:
        deal_id = crm_deals.bitrix_deal_id(form)
    except ChannelError as exc:
        raise channel_error(exc) from None
    if deal_id is None:
        return accepted_response([], [])  # not a deal change (another event on the same handler)
    client = Bitrix24Client(rest_url, settings.crm_api_timeout_seconds)
    return _answer(runtime, *_deal_events([deal_id], client.deal, crm_deals.bitrix_order))
